"""A strategy whose state cannot be snapshotted is refused by name when the session starts
(before any actor runs), and the session's id is left free; a plain one starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actors.config import load_paper_config
from runtime.errors import ConfigError
from tests.actors.paper_helpers import write_paper_config, write_sample


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("snapshot-data"))


def test_an_unpicklable_strategy_is_refused_at_session_start(data_dir: Path,
                                                            tmp_path: Path) -> None:
    from actors.session import prepare_session

    path = write_paper_config(tmp_path, "sma", data_dir)
    (tmp_path / "keeps_a_lambda.py").write_text(
        "from backtest.strategies.sma_cross import SmaCross\n\n\n"
        "class KeepsALambda(SmaCross):\n"
        "    def on_start(self) -> None:\n"
        "        super().on_start()\n"
        "        self.rule = lambda x: x > 0\n")
    trading = yaml.safe_load((tmp_path / "trading.yaml").read_text())
    trading["strategies"][0]["class"] = "keeps_a_lambda:KeepsALambda"
    (tmp_path / "trading.yaml").write_text(yaml.safe_dump(trading))
    config = load_paper_config(path)
    with pytest.raises(ConfigError, match=r"strategy 'sma' \(keeps_a_lambda:KeepsALambda\) "
                                          r"cannot be snapshotted: its state does not pickle"):
        prepare_session(config, session_id="odd1")
    assert not (tmp_path / "var" / "odd1" / "session.json").exists()  # the id stays free

    trading["strategies"][0]["class"] = "backtest.strategies.sma_cross:SmaCross"
    (tmp_path / "trading.yaml").write_text(yaml.safe_dump(trading))
    prepared = prepare_session(load_paper_config(path), session_id="odd2")
    prepared.claim.release()
