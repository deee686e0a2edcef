"""What a strategy author meets in a backtest config: file bar stamps, every error at once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from backtest.api import run_backtest
from backtest.config import load_config
from backtest.data import SampleSpec, generate_sample
from backtest.store import open_store
from runtime.errors import ConfigError
from tests.backtest.test_api import config


@pytest.fixture(scope="module")
def sample_bars() -> pa.Table:
    spec = SampleSpec(instruments=("SIM-A",), days=1)
    return generate_sample(np.random.default_rng(11), spec)["bars"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sample_bars: pa.Table) -> Any:
    path = tmp_path_factory.mktemp("store") / "ch"
    with open_store(f"chdb://{path}") as s:
        s.write_market("bars", sample_bars)
        yield s


def _close_stamped_csv(bars: pa.Table, path: Path) -> Path:
    """The store's bars as a file whose time column is each bar's close (as many vendors do)."""
    lines = ["time,open,high,low,close,volume"]
    for row in bars.to_pylist():
        stamp = dt.datetime.fromtimestamp(row["ts_event"] / 1e9, dt.UTC).isoformat()
        px = [f"{row[c] / 1e9:.2f}" for c in ("open", "high", "low", "close")]
        lines.append(",".join([stamp, *px, str(row["volume"] // 10**9)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_close_stamped_file_replays_like_the_store(
    tmp_path: Path, store: Any, sample_bars: pa.Table
) -> None:
    csv = _close_stamped_csv(sample_bars, tmp_path / "bars.csv")
    from_store = run_backtest(config(tmp_path), store=store, write=False)
    stream = {"kind": "bars", "instrument": "SIM-A", "path": str(csv), "interval": "1m"}
    closing = run_backtest(
        config(tmp_path, data=[{**stream, "bar_stamp": "close"}]), store=store, write=False
    )
    assert from_store.n_fills > 0
    assert _trading(closing) == _trading(from_store)
    assert closing.state_hash == from_store.state_hash
    assert closing.equity["equity"].tolist() == from_store.equity["equity"].tolist()
    # read as open-stamped (the file default), every bar moves a minute later: not the same run
    opening = run_backtest(config(tmp_path, data=[stream]), store=store, write=False)
    assert _trading(opening) != _trading(from_store)
    assert opening.state_hash != from_store.state_hash


def _trading(result: Any) -> list[tuple[Any, ...]]:
    columns = ["ts_event", "side", "qty", "price", "fee"]
    return [tuple(r) for r in result.fills[columns].itertuples(index=False)]


def test_bar_stamp_is_refused_for_the_store(tmp_path: Path) -> None:
    data = [{"kind": "bars", "instrument": "SIM-A", "bar_stamp": "close"}]
    with pytest.raises(ConfigError, match=r"data\.0: .*bar_stamp applies to bar files"):
        load_config(config(tmp_path, data=data))


def test_every_validation_error_is_shown(tmp_path: Path) -> None:
    raw = config(tmp_path, seed="x", data=[{"kind": "bars", "instrument": "SIM-A", "stamp": 1}])
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    text = str(info.value)
    assert "more error" not in text
    assert "seed: " in text and "data.0.stamp: unknown field 'stamp'" in text


HOLD_TIES = '''
from runtime.messages import Bar
from runtime.strategy import Qty, Strategy, StrategyParams


class HoldParams(StrategyParams):
    size: Qty = 1
    entry_rsi: float = 30.0


class Hold(Strategy[HoldParams]):
    def on_bar(self, bar: Bar) -> None:
        self.target_position(bar.instrument_id, self.params.size)
'''


def _user_config(tmp_path: Path, module: str, cls: str = "Hold", **over: Any) -> Path:
    """A YAML config in its own folder naming ``module:cls`` (a module not on sys.path)."""
    import yaml

    raw = config(tmp_path)
    raw.pop("output_dir")
    raw["strategies"] = [{"id": "hold", "class": f"{module}:{cls}", "instruments": ["SIM-A"],
                          "params": {"size": 10}}]
    raw.update(over)
    path = tmp_path / "cfg" / "run.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_strategy_beside_the_config_runs_without_pythonpath(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "hold_ties_beside")
    (path.parent / "hold_ties_beside.py").write_text(HOLD_TIES)
    result = run_backtest(path, store=store, write=False)
    assert result.n_fills == 1 and result.fills["qty"].sum() == 10


def test_strategy_paths_name_other_folders(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "hold_ties_lib", strategy_paths=["../lib"])
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hold_ties_lib.py").write_text(HOLD_TIES)
    assert run_backtest(path, store=store, write=False).n_fills == 1


def test_a_missing_module_names_where_it_looked(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "no_such_strategy_module")
    with pytest.raises(ConfigError) as info:
        run_backtest(path, store=store, write=False)
    text = str(info.value)
    assert text.startswith(f"{path}: strategies.hold.class: cannot import module")
    assert str(path.parent.resolve()) in text and "strategy_paths" in text


def test_a_missing_class_is_not_called_a_non_strategy(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "hold_ties_missing", cls="Hodl")
    (path.parent / "hold_ties_missing.py").write_text(HOLD_TIES)
    with pytest.raises(ConfigError) as info:
        run_backtest(path, store=store, write=False)
    assert "module 'hold_ties_missing' has no class 'Hodl'; its strategies: Hold" in str(info.value)
    assert "not a Strategy subclass" not in str(info.value)


def test_a_misspelt_param_is_named(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "hold_ties_params")
    (path.parent / "hold_ties_params.py").write_text(HOLD_TIES)
    text = path.read_text().replace("size: 10", "size: 10\n    entry_rs: 25")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        run_backtest(path, store=store, write=False)
    message = str(info.value)
    assert message.startswith(f"{path}: strategies.hold.params.entry_rs: unknown field 'entry_rs'")
    assert "params of Hold: size, entry_rsi" in message
    assert "errors.pydantic.dev" not in message


def test_a_strategy_that_imports_a_missing_package_says_which(tmp_path: Path, store: Any) -> None:
    path = _user_config(tmp_path, "hold_ties_deps")
    (path.parent / "hold_ties_deps.py").write_text("import no_such_ta_package\n" + HOLD_TIES)
    with pytest.raises(ConfigError, match="'hold_ties_deps' imports 'no_such_ta_package', "
                                          "which is not installed"):
        run_backtest(path, store=store, write=False)


def test_sample_data_is_a_source_that_needs_no_store(tmp_path: Path, store: Any) -> None:
    """``sample_days``: generated sample data, the same as ``tradewind data sample`` stores
    from the config's seed, read without a store: the same fills and state hash as those
    bars from the store."""
    generated = run_backtest(
        config(tmp_path, seed=11, data=[{"kind": "bars", "instrument": "SIM-A",
                                         "sample_days": 1}]), write=False)
    stored = run_backtest(config(tmp_path, seed=11), store=store, write=False)
    assert generated.n_fills > 0
    assert _trading(generated) == _trading(stored)
    assert generated.state_hash == stored.state_hash


@pytest.mark.parametrize(("extra", "message"), [
    ({"path": "bars.csv"}, "path and sample_days name two sources"),
    ({"interval": "5m"}, "sample data has one-minute bars, not 5m"),
    ({"sample_days": 0}, "sample_days"),
])
def test_sample_data_refuses_what_it_cannot_be(tmp_path: Path, extra: dict[str, Any],
                                               message: str) -> None:
    data = [{"kind": "bars", "instrument": "SIM-A", "sample_days": 1, **extra}]
    with pytest.raises(ConfigError, match=message):
        load_config(config(tmp_path, data=data))


def test_sample_data_outside_its_days_is_an_error_naming_the_range(tmp_path: Path) -> None:
    from runtime.errors import DataError

    data = [{"kind": "bars", "instrument": "SIM-A", "sample_days": 1, "start": "2030-01-01"}]
    with pytest.raises(DataError, match=r"no sample bars for SIM-A in \[2030-01-01"):
        run_backtest(config(tmp_path, data=data), write=False)
