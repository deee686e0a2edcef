"""The rehearsal's guard probe in a backtest of the rehearsal's own config (the real kernel and
risk engine, in process): each probe order is denied by the guard it targets, with that reason
code; the daily-loss round trips lose until the day's limit turns trading close-only; a probe
whose limit is not in its params says it had nothing to send. And the drills' runner: a drill
that raises fails with its error, a drill after the session ended fails without running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.drills import Drills
from actors.rehearsal import GuardProbe, write_workspace
from backtest.api import simulate
from backtest.config import load_config
from backtest.feed import load_feed


def _probe_run(tmp_path: Path, drill: str, **params: Any) -> tuple[GuardProbe, Any]:
    write_workspace(tmp_path / "w", minutes=10)
    config = yaml.safe_load((tmp_path / "w" / "trading.yaml").read_text())
    probe = next(s for s in config["strategies"] if s["id"] == "probe")
    probe["params"] |= {"drill": drill} | params
    loaded = load_config(config)
    kernel, _ = simulate(loaded, load_feed(loaded))
    (strategy,) = [s for s in kernel.strategies if s.strategy_id == "probe"]
    assert isinstance(strategy, GuardProbe)
    return strategy, kernel


@pytest.mark.parametrize("code", ["max_position", "max_order_notional", "price_band"])
def test_each_probe_order_is_denied_by_its_guard(tmp_path: Path, code: str) -> None:
    probe, kernel = _probe_run(tmp_path, code)
    report = probe.report()
    assert report["sent"] == [code]
    assert report["denied"][code][0] == code, report
    (order,) = [o for o in kernel.orders.values() if o.strategy_id == "probe"]
    assert str(order.status) == "denied" and not order.filled_qty  # it never reached the venue


def test_the_daily_loss_round_trips_turn_trading_close_only(tmp_path: Path) -> None:
    probe, kernel = _probe_run(tmp_path, "daily_loss")
    assert str(kernel.risk.state) == "reducing"
    assert kernel.risk.state_reason.startswith("daily loss")
    report = probe.report()
    assert report["round_trips"] >= 1
    assert report["denied"]["daily_loss"][0] == "reducing"  # the next entry, refused


def test_a_probe_without_its_limit_says_it_sent_nothing(tmp_path: Path) -> None:
    probe, _ = _probe_run(tmp_path, "price_band", price_band_pct=None)
    code, reason = probe.report()["denied"]["price_band"]
    assert code == "" and "nothing to send" in reason


def test_the_runner_fails_a_drill_that_raises_and_those_after_the_session_ended(
        tmp_path: Path) -> None:
    class Two(Drills):
        def plan(self) -> Any:
            def boom() -> Any:
                self.over.set()  # the session ends while this drill runs
                raise TimeoutError("waited 1 s for trading to halt")

            return [("first", "kill file", boom), ("second", "risk max_position", boom)]

    drills = Two(session_id="x", journal_dir=tmp_path, kill_file=tmp_path / "KILL").run()
    assert [(d.name, d.result) for d in drills] == [("first", "FAIL"), ("second", "FAIL")]
    assert drills[0].fired == "TimeoutError: waited 1 s for trading to halt"
    assert drills[1].fired == "the session ended before this drill"


def test_the_silence_watchdog_names_instruments_of_the_session(tmp_path: Path) -> None:
    """The rehearsal's config loads (its silence watchdog watches SIM-A only: SIM-B's data ends
    on purpose); a rule naming an instrument the session does not trade is refused at load,
    naming the file and the field."""
    from actors.config import load_paper_config
    from runtime.errors import ConfigError

    path = write_workspace(tmp_path / "w", minutes=10)
    loaded = load_paper_config(path)
    rule = loaded.watchdogs.market_data_silence
    assert rule is not None and rule.instruments == ("SIM-A",)
    paper = yaml.safe_load(path.read_text())
    paper["watchdogs"]["market_data_silence"]["instruments"] = ["SIM-A", "SIM-Z"]
    path.write_text(yaml.safe_dump(paper))
    with pytest.raises(ConfigError) as caught:
        load_paper_config(path)
    message = str(caught.value)
    assert str(path) in message and "watchdogs.market_data_silence.instruments" in message
    assert "SIM-Z: not an instrument of the session" in message
