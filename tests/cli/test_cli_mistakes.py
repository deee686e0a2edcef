"""User mistakes end in one line on stderr and exit 2, before anything starts: never a traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEWIND_STORE_DSN", raising=False)
    return tmp_path


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def backtest_config(tmp_path: Path, **over: Any) -> Path:
    data = tmp_path / "bars.csv"
    data.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10,1\n"
                    "2024-01-03,10,11,9,10,1\n")
    config: dict[str, Any] = {
        "instruments": [{"id": "X"}],
        "data": [{"kind": "bars", "instrument": "X", "path": str(data), "timezone": "UTC"}],
        "strategies": [{"id": "s", "class": "backtest.strategies.sma_cross:SmaCross",
                        "instruments": ["X"], "params": {"fast": 1, "slow": 2, "size": 1}}],
        "venue": {"latency": {"kind": "constant", "entry_ns": 0, "response_ns": 0},
                  "fills": {"kind": "bars", "price": "next_open", "path": "auto"},
                  "slippage": {"kind": "none"},
                  "fees": {"kind": "bps", "maker_bps": 0, "taker_bps": 0}},
        "store": {"record": False},
        "output_dir": str(tmp_path / "runs"),
    }
    config.update(over)
    path = tmp_path / "bt.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "0"])
def test_paper_speed_must_be_finite_and_positive(capsys: pytest.CaptureFixture[str],
                                                 speed: str) -> None:
    err = one_line(capsys, ["paper", "--config", "nowhere.yaml", f"--speed={speed}"])
    assert err == ("tradewind paper: error: --speed: must be a positive finite number or max, "
                   f"got {speed!r}")


@pytest.mark.parametrize(("source", "said"), [
    ("def broken(:\n", "syntax error ({dir}/badstrat.py, line 1): invalid syntax"),
    ("raise RuntimeError('no network here')\n",
     "it raised RuntimeError: no network here"),
])
def test_a_strategy_module_that_fails_to_import(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                source: str, said: str) -> None:
    import sys
    (tmp_path / "badstrat.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "badstrat", raising=False)
    path = backtest_config(tmp_path, strategies=[{"id": "s", "class": "badstrat:S",
                                                  "instruments": ["X"]}])
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err == (f"tradewind backtest: error: {path}: strategies.s.class: cannot import "
                   f"module 'badstrat': {said.format(dir=tmp_path)}")


def test_bad_params_and_repeated_ids_name_the_file_and_the_strategy(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    strategy = {"id": "s", "class": "backtest.strategies.sma_cross:SmaCross",
                "instruments": ["X"], "params": {"fast": 0, "slow": 2, "size": 1}}
    path = backtest_config(tmp_path, strategies=[strategy])
    err = one_line(capsys, ["backtest", "--config", str(path), "--no-write"])
    assert err.startswith(f"tradewind backtest: error: {path}: strategies.s.params.fast: ")
    path = backtest_config(tmp_path, strategies=[dict(strategy, params={}), dict(strategy)])
    assert one_line(capsys, ["backtest", "--config", str(path)]) == (
        f"tradewind backtest: error: {path}: strategies: Value error, strategy id 's' appears "
        "more than once: ids must be unique")


@pytest.mark.parametrize("command", ["backtest", "paper", "sweep"])
def test_a_config_that_is_a_directory_binary_or_huge(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, command: str) -> None:
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (tmp_path / "big.yaml").write_text("a: " + "x" * (2 << 20) + "\n")
    for name, said in (("dir.yaml", "is a directory, not a config file"),
                       ("bin.yaml", "not a text file (it holds NUL bytes): expected YAML"),
                       ("big.yaml", "2,097,156 bytes is too large for a config (at most "
                                    "1,048,576)")):
        err = one_line(capsys, [command, "--config", str(tmp_path / name)])
        assert err == f"tradewind {command}: error: {tmp_path / name}: {said}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = backtest_config(tmp_path)
    path.chmod(0)
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err.endswith(": cannot read the file: Permission denied")


def test_a_yaml_alias_bomb_is_refused_fast(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err.endswith("refused: the YAML has more than 100,000 values once its aliases "
                        "are expanded")
    path.write_text("x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n")
    assert one_line(capsys, ["backtest", "--config", str(path)]).endswith(
        "refused: the YAML has more than 100 aliases (*name)")


def test_yaml_errors_say_line_and_column(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nseed: [1, 2\nfoo: bar\n")
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err.startswith(f"tradewind backtest: error: {path}: not valid YAML at line 3, "
                          "column 4: ")


def test_an_unwritable_output_dir_is_refused_before_the_run(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    path = backtest_config(tmp_path, output_dir=str(tmp_path / "afile" / "runs"))
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err == (f"tradewind backtest: error: {path}: output_dir: cannot write into "
                   f"'{tmp_path / 'afile' / 'runs'}': Not a directory")


def test_paper_journal_dir_is_checked_before_any_actor(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    trading = backtest_config(tmp_path)
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"name": "p", "trading": str(trading),
                                     "journal_dir": str(tmp_path / "afile" / "j")}))
    err = one_line(capsys, ["paper", "--config", str(paper)])
    assert err == (f"tradewind paper: error: {paper}: journal_dir: cannot write into "
                   f"'{tmp_path / 'afile' / 'j'}': Not a directory")


@pytest.mark.parametrize(("start", "end", "what"), [
    ("2024-01-03", "2024-01-03", "empty"), ("2024-01-05", "2024-01-02", "reversed")])
def test_an_empty_or_reversed_date_range_says_so(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, start: str, end: str,
                                                 what: str) -> None:
    path = backtest_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["data"][0].update(start=start, end=end)
    path.write_text(yaml.safe_dump(config))
    err = one_line(capsys, ["backtest", "--config", str(path)])
    assert err.startswith(f"tradewind backtest: error: {path}: data.0: Value error, the date "
                          f"range is {what}: start {start} is not before end {end} (end is "
                          "exclusive)")


@pytest.mark.parametrize("url", ["not a url", "http://", "ftp://host:1", "http://h:notaport"])
def test_status_with_a_bad_url(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TRADEWIND_API_TOKEN", "t")
    assert one_line(capsys, ["status", "--url", url]) == (
        f"tradewind status: error: --url: {url!r} is not a control API URL: expected "
        "http(s)://host:port, e.g. http://127.0.0.1:8000")


def test_paper_refuses_bad_strategy_params_before_any_actor(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a session was prepared for a config with bad params")

    monkeypatch.setattr("actors.session.prepare_session", no_session)
    trading = backtest_config(tmp_path, strategies=[{
        "id": "s", "class": "backtest.strategies.sma_cross:SmaCross", "instruments": ["X"],
        "params": {"fast": 1, "slow": 2, "size": 1, "colour": "red"}}])
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"name": "p", "trading": str(trading)}))
    err = one_line(capsys, ["paper", "--config", str(paper)])
    assert err.startswith(f"tradewind paper: error: {trading}: strategies.s.params.colour: ")


@pytest.mark.parametrize("command", ["sweep", "walkforward"])
def test_a_study_checks_its_output_dir_before_it_runs(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, command: str) -> None:
    (tmp_path / "afile").write_text("")
    study: dict[str, Any] = {
        "name": "g", "backtest": str(backtest_config(tmp_path)), "strategy": "s",
        "grid": {"fast": [1], "slow": [2]}, "objective": {"metric": "sharpe", "goal": "maximize"},
        "output_dir": str(tmp_path / "afile" / "runs")}
    if command == "walkforward":
        study["windows"] = {"train": 1, "test": 1}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    err = one_line(capsys, [command, "--config", str(path)])
    assert err == (f"tradewind {command}: error: {path}: output_dir: cannot write into "
                   f"'{tmp_path / 'afile' / 'runs'}': Not a directory")
