"""Generated bad input: a file or config either loads with exactly its data or is refused with
one line (DataError / ConfigError) naming the problem; never another exception, never a partial
write."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.config import load_config
from backtest.data import read_file, stream_file
from backtest.data import source as data_source
from backtest.store import Store, open_store
from backtest.yaml_source import read_yaml_source
from runtime.errors import ConfigError, DataError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

good_time = st.integers(1_600_000_000, 1_700_000_000).map(lambda s: _iso(s))
bad_time = st.sampled_from(["", "0", "2300-01-01T00:00:00Z", "2024-13-01T00:00:00Z", "yesterday",
                            "2024-01-02 10:00:00", "1704205800", "1704205800000", "nan"])
good_number = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal("1000000"),
                          places=9, allow_nan=False).map(lambda d: format(d.normalize(), "f"))
bad_number = st.sampled_from(["", "NaN", "inf", "-1", "0", "1e400", "12x", "1.0000000001",
                              "99999999999999999999", " "])
cell_time = st.one_of(good_time, good_time, bad_time)
cell_number = st.one_of(good_number, good_number, bad_number)


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _exact(text: str) -> int | None:
    """The fixed-point raw value a cell must load as, or None when it may be refused."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("1e-9")):
        return None
    raw = int(value * 10**9)
    return raw if raw < 2**63 else None


def _one_line(error: Exception, source: str) -> None:
    text = str(error)
    assert "\n" not in text and text.startswith(source), text


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with open_store(f"chdb://{tmp_path_factory.mktemp('gen') / 'ch'}") as opened:
        yield opened


@SETTINGS
@given(rows=st.lists(st.tuples(cell_time, cell_number, cell_number), min_size=1, max_size=12))
def test_generated_trade_csv_loads_exactly_or_is_refused_whole(
        tmp_path: Path, store: Store, rows: list[tuple[str, str, str]]) -> None:
    path = tmp_path / "gen.csv"
    path.write_text("timestamp,price,size\n" + "".join(f"{t},{p},{s}\n" for t, p, s in rows))
    instrument = f"G{abs(hash(tuple(rows))) % 10**12}"
    try:
        result = read_file(path, "trades", instrument)
    except DataError as error:
        _one_line(error, str(path))
        before = store.read_market("trades", instrument).num_rows
        with pytest.raises(DataError):
            store.import_market("trades", stream_file(path, "trades", instrument))
        assert store.read_market("trades", instrument).num_rows == before == 0
        return
    assert result.table.column("price").to_pylist() == [_exact(p) for _, p, _ in rows]
    assert result.table.column("size").to_pylist() == [_exact(s) for _, _, s in rows]
    assert store.write_market("trades", result.table) == len(rows)
    assert store.read_market("trades", instrument).equals(result.table)


@SETTINGS
@given(data=st.data())
def test_generated_parquet_columns_load_or_are_refused(tmp_path: Path, data: Any) -> None:
    n = data.draw(st.integers(1, 8))
    ts = data.draw(st.one_of(
        st.lists(st.integers(-2**62, 2**62), min_size=n, max_size=n).map(pa.array),
        st.lists(st.integers(1_600_000_000_000, 1_700_000_000_000), min_size=n, max_size=n)
        .map(lambda v: pa.array(v, pa.timestamp("ms", tz=data.draw(
            st.sampled_from([None, "UTC", "Asia/Taipei"]))))),
        st.lists(st.one_of(st.none(), good_time), min_size=n, max_size=n).map(pa.array),
    ))
    price = data.draw(st.lists(st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.none()), min_size=n, max_size=n))
    size = data.draw(st.lists(st.integers(-5, 10**12), min_size=n, max_size=n))
    path = tmp_path / "gen.parquet"
    pq.write_table(pa.table({"ts": ts, "price": pa.array(price, pa.float64()), "size": size}),
                   path)
    try:
        table = read_file(path, "trades", "P").table
    except DataError as error:
        _one_line(error, str(path))
        return
    assert table.num_rows == n
    for raw, value in zip(table.column("price").to_pylist(), price, strict=True):
        assert value is not None and math.isfinite(value) and value > 0
        assert raw == int(Decimal(f"{value:.9f}") * 10**9)


@SETTINGS
@given(rows=st.lists(st.tuples(good_time, good_number), min_size=2, max_size=40),
       bad_at=st.integers(0, 39))
def test_a_problem_in_a_late_batch_writes_nothing(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch,
        rows: list[tuple[str, str]], bad_at: int) -> None:
    monkeypatch.setattr(data_source, "BLOCK_BYTES", 64)  # many small batches
    rows = sorted(rows)
    rows[bad_at % len(rows)] = (rows[bad_at % len(rows)][0], "-1")
    path = tmp_path / "late.csv"
    path.write_text("timestamp,price,size\n" + "".join(f"{t},{p},1\n" for t, p in rows))
    instrument = f"L{abs(hash(tuple(rows))) % 10**12}"
    with pytest.raises(DataError) as info:
        store.import_market("trades", stream_file(path, "trades", instrument))
    _one_line(info.value, str(path))
    assert store.read_market("trades", instrument).num_rows == 0


VALID: dict[str, Any] = {
    "instruments": [{"id": "X", "price_precision": 2}],
    "data": [{"kind": "bars", "instrument": "X"}],
    "strategies": [{"id": "s", "class": "backtest.strategies.sma_cross:SmaCross",
                    "instruments": ["X"], "params": {"fast": 2, "slow": 5, "size": 1}}],
    "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
              "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
              "slippage": {"kind": "none"},
              "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
}
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@SETTINGS
@given(data=st.data())
def test_generated_configs_load_or_are_refused_in_one_line(tmp_path: Path, data: Any) -> None:
    config = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(_paths(config)))
        parent = config
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = data.draw(junk)
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(config))
    try:
        load_config(path)
    except ConfigError as error:
        _one_line(error, str(path))


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_generated_yaml_text_is_a_mapping_or_one_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gen.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        raw, _ = read_yaml_source(path)
    except ConfigError as error:
        _one_line(error, str(path))
        return
    assert isinstance(raw, dict)
