"""Claiming a session id (``actors.claim``): the id's pattern, one session per id (a second
one is refused before it writes anything), and a resume only with the config the session was
started with. No Ray."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.claim import claim_session
from actors.config import load_paper_config
from runtime.errors import ConfigError
from tests.actors.paper_helpers import write_paper_config, write_sample


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("claim-data"))


@pytest.mark.parametrize("sid", ["..", ".", ".hidden", "a/b", "../up", "a-b", "café", "x" * 65,
                                 "", "tab\there", "日本"])
def test_an_unsafe_session_id_is_refused_by_name(data_dir: Path, tmp_path: Path,
                                                 sid: str) -> None:
    config = load_paper_config(write_paper_config(tmp_path, "mm", data_dir))
    with pytest.raises(ConfigError, match="use 1 to 64 ASCII letters") as info:
        claim_session(config, sid)
    assert info.value.field == "session_id"
    assert not (tmp_path / "var").exists()  # nothing written
    if len(sid) > 40:
        assert f"({len(sid)} characters)" in str(info.value)  # not echoed whole


def test_a_second_session_with_the_same_id_is_refused_before_it_writes(
        data_dir: Path, tmp_path: Path) -> None:
    config = load_paper_config(write_paper_config(tmp_path, "mm", data_dir))
    first = claim_session(config, "same1")
    with pytest.raises(ConfigError, match=r"session same1 is already running \(process \d+ "
                                          r"\(this process\)\)"):
        claim_session(config, "same1")
    first.release()
    again = claim_session(config, "same1")  # free once the first let go
    again.release()


def test_the_lock_holds_across_processes_and_goes_with_its_holder(data_dir: Path,
                                                                  tmp_path: Path) -> None:
    path = write_paper_config(tmp_path, "mm", data_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from actors.claim import claim_session
            from actors.config import load_paper_config
            claim = claim_session(load_paper_config({str(path)!r}), "cross1")
            print("held", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        config = load_paper_config(path)
        with pytest.raises(ConfigError, match=f"already running \\(process {holder.pid}\\)"):
            claim_session(config, "cross1")
        assert not (tmp_path / "var" / "cross1").exists()
    finally:
        holder.kill()
        holder.wait()
    claim_session(load_paper_config(path), "cross1").release()  # the OS dropped the lock


def test_a_resume_with_another_config_is_refused_naming_both(data_dir: Path,
                                                             tmp_path: Path) -> None:
    config = load_paper_config(write_paper_config(tmp_path, "mm", data_dir))
    new = claim_session(config, "res1")
    assert not new.resumed  # an id that never existed starts new
    new.save()
    new.release()
    same = claim_session(config, "res1")
    assert same.resumed and same.record["resumes"] == 1
    same.save()
    same.release()
    other = load_paper_config(write_paper_config(tmp_path, "mm", data_dir, cancel_on_stop=True))
    started = same.record["config_hash"][:12]
    with pytest.raises(ConfigError, match=f"started with another config \\(hash {started}, "
                                          r"this one [0-9a-f]{12}\)") as info:
        claim_session(other, "res1")
    assert info.value.field == "--config"
    claim = claim_session(other, "res1", accept_config_change=True)  # asked explicitly
    assert claim.resumed and claim.record["resumes"] == 2
    (change,) = claim.record["config_changes"]
    assert change["config_hash"] != same.record["config_hash"]
    assert claim.record["config_hash"] == change["config_hash"]
    claim.release()


def test_a_session_whose_data_failed_leaves_no_record(data_dir: Path, tmp_path: Path) -> None:
    """A mistake found while preparing (here: a feed override that does not fit) releases the
    id and records nothing, so the corrected command starts the same id new."""
    from actors.session import prepare_session

    config = load_paper_config(write_paper_config(tmp_path, "mm", data_dir))
    with pytest.raises(ConfigError, match="'auto', 'sockets' or 'calls'"):
        prepare_session(config, session_id="fail1", transport="fast")
    assert not (tmp_path / "var" / "fail1" / "session.json").exists()
    prepared = prepare_session(config, session_id="fail1")
    assert not prepared.claim.resumed
    assert (tmp_path / "var" / "fail1" / "session.json").exists()
    prepared.claim.release()
