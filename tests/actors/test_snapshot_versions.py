"""After an upgrade, each actor of a session with a snapshot of another version, as the actor
restores (in one process, without Ray): a book rebuilds from the feed's log with one warning
and the same book; risk, a strategy host and the paper gateway refuse with a DataError naming
their journal and both versions, not an unpickling traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actors.book import SNAPSHOT_VERSION as BOOK_VERSION
from actors.book import BookActor
from actors.gateway import GatewayActor
from actors.risk import RiskActor
from actors.strategy import StrategyActor
from runtime.errors import DataError
from runtime.snapshots import SNAPSHOT_VERSION
from tests.actors.test_lockstep_inprocess import _plain, _run, _session
from tests.runtime.test_recovery import rewrite_snapshot


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.actors.paper_helpers import write_sample

    return write_sample(tmp_path_factory.mktemp("versions-data"))


def _upgraded(data_dir: Path, folder: Path) -> tuple[object, dict[str, str]]:
    """A session run to its end with a snapshot every 40 inputs, closed, and each journal's
    snapshot put back as a newer version of the code would have written it; the state hashes
    before."""
    _, setup, risk, gateway, hosts = _session("mm", data_dir, folder, minutes=3,
                                              snapshot_every=40)
    _run(setup, risk, gateway, hosts)
    hashes = {"risk": risk.state_hash(), "gateway": gateway.venue.state_hash()}
    hashes |= {k: v.state_hash() for k, v in hosts.items()}
    risk.jk.journal.close()
    gateway.venue.journal.close()
    for key, host in hosts.items():
        (host.journal if key.startswith("book:") else host.jk.journal).close()
    for name in ["risk", "gateway", "strategy.mm", "book.SIM-A"]:
        version = (BOOK_VERSION if name.startswith("book.") else SNAPSHOT_VERSION) + 1
        rewrite_snapshot(setup.path(name), version=version)
    return setup, hashes


def test_after_an_upgrade_books_rebuild_and_the_others_name_journal_and_versions(
        data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    setup, hashes = _upgraded(data_dir, tmp_path / "var")
    with caplog.at_level(logging.WARNING, logger="actors.book"):
        book = _plain(BookActor)("SIM-A", setup)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "actors.book"]
    assert line == (f"book SIM-A: {setup.path('book.SIM-A')}: its snapshot has version "
                    f"{BOOK_VERSION + 1}; this code reads version {BOOK_VERSION}; rebuilding it "
                    "from the feed's log")
    assert book.state_hash() == hashes["book:SIM-A"]
    book.journal.close()
    refusals = {"risk": lambda: _plain(RiskActor)(setup),
                "strategy.mm": lambda: _plain(StrategyActor)(setup, "mm"),
                "gateway": lambda: _plain(GatewayActor)(setup)}
    for name, start in refusals.items():
        with pytest.raises(DataError) as caught:
            start()
        assert str(caught.value) == (
            f"{setup.path(name)}: its snapshot has version {SNAPSHOT_VERSION + 1}; this code "
            f"reads version {SNAPSHOT_VERSION}"), name
