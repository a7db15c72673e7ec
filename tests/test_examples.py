"""Examples are tests: every notebook in examples/ runs top to bottom in a real kernel."""

from __future__ import annotations

import gc
import shutil
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def execute(notebook: Path, cwd: Path) -> nbformat.NotebookNode:
    shutil.copy(notebook, cwd / notebook.name)
    for module in EXAMPLES.glob("*_app.py"):  # the apps the notebooks import
        shutil.copy(module, cwd / module.name)
    nb = nbformat.read(cwd / notebook.name, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.km = client.create_kernel_manager()
    client.km.kernel_spec.argv[0] = sys.executable  # this virtualenv's Python
    try:
        client.execute()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    nbformat.write(nb, cwd / notebook.name)
    return nb


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_example_runs(notebook: Path, tmp_path: Path) -> None:
    execute(notebook, tmp_path)


@pytest.mark.postgres_only
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_example_runs_on_postgres(
    notebook: Path, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same notebooks, unchanged, with RXNB_URL naming a PostgreSQL store."""
    monkeypatch.setenv("RXNB_URL", url)
    execute(notebook, tmp_path)
    assert not (tmp_path / ".rxnb").exists()  # nothing went to a SQLite file instead


def test_live_queries_example_saves_its_final_state(tmp_path: Path) -> None:
    nb = execute(EXAMPLES / "00_live_queries.ipynb", tmp_path)
    htmls = [
        "".join(output["data"]["text/html"])
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "rxnb-snapshot" in "".join(output.get("data", {}).get("text/html", ""))
    ]
    assert len(htmls) == 3
    assert "50 rows" in htmls[1] and "note 50 of 50" in htmls[1]
    assert ">50<" in htmls[0]
    assert "note 50 of 50" in htmls[2]
    # The saved widget state (what JupyterLab restores without a kernel) is final too.
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    payloads = [m["state"]["payload"] for m in state.values() if "payload" in m["state"]]
    assert sorted(p["kind"] for p in payloads) == ["markdown", "table", "value"]
    assert {p["kind"]: p for p in payloads}["table"]["rows"][-1][2] == "note 50 of 50"
