"""The notebooks under notebooks/ run top to bottom on the embedded sample data (no ../shared,
no network), each in a fresh folder with a real Jupyter kernel (nbclient); and they are kept in
git without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quickstart", "research", "paper")


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_kept_without_outputs(name: str) -> None:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, name


@pytest.mark.slow  # research and paper start their own private Ray session, as a user's would
@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # a kernel of this interpreter, whatever kernels the machine has installed
    spec = tmp_path / "jupyter" / "kernels" / "tradewind"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tradewind", "language": "python",
    }))  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name_ in ("RAY_ADDRESS", "TRADEWIND_STORE_DSN"):
        monkeypatch.delenv(name_, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="tradewind", timeout=900, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # a cell that raises fails the test, naming the cell and its traceback
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert (work / "runs").is_dir()
