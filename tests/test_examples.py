"""Examples are tests: every notebook in examples/ runs top to bottom in a real kernel.

The numbered notebooks are a course. Each ends with an exercise: a code cell tagged
`exercise` (left for the reader) and one tagged `check` that prints `right: ...` or
`not yet: ...`. Run as shipped, the check says "not yet"; run with the exercise cell
replaced by `examples/solutions/<notebook>.py`, it says "right". Both are checked here,
so a check cell that cannot fail, or cannot pass, fails the suite.
"""

from __future__ import annotations

import gc
import re
import shutil
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
COURSE = [n for n in NOTEBOOKS if re.match(r"\d\d_", n.name)]
SOLUTIONS = EXAMPLES / "solutions"


def execute(
    notebook: Path, cwd: Path, nb: nbformat.NotebookNode | None = None
) -> nbformat.NotebookNode:
    """Run `notebook` (or `nb`, a changed copy of it) in a real kernel in `cwd`."""
    for module in EXAMPLES.glob("*.py"):  # the apps and modules the notebooks import
        shutil.copy(module, cwd / module.name)
    if nb is None:
        nb = nbformat.read(notebook, as_version=4)
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


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def check_says(nb: nbformat.NotebookNode) -> str:
    """What the notebook's check cell printed."""
    (cell,) = tagged(nb, "check")
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").strip()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_example_runs(notebook: Path, tmp_path: Path) -> None:
    nb = execute(notebook, tmp_path)
    if notebook in COURSE:
        assert check_says(nb).startswith("not yet:"), check_says(nb)


@pytest.mark.postgres_only
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_example_runs_on_postgres(
    notebook: Path, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same notebooks, unchanged, with RXNB_URL naming a PostgreSQL store."""
    monkeypatch.setenv("RXNB_URL", url)
    execute(notebook, tmp_path)
    assert not (tmp_path / ".rxnb").exists()  # nothing went to a SQLite file instead


@pytest.mark.parametrize("notebook", COURSE, ids=[n.name for n in COURSE])
def test_course_notebook_is_a_lesson(notebook: Path) -> None:
    """Opens with what it teaches, has one exercise, one check and a solution."""
    nb = nbformat.read(notebook, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), first.source[:80]
    assert "You will learn" in first.source, "the first cell says what the notebook teaches"
    assert len(tagged(nb, "exercise")) == 1 and len(tagged(nb, "check")) == 1
    (exercise,) = tagged(nb, "exercise")
    assert nb.cells.index(exercise) < nb.cells.index(tagged(nb, "check")[0])
    assert (SOLUTIONS / f"{notebook.stem}.py").is_file()


def test_index_links_every_notebook() -> None:
    text = "".join(c.source for c in nbformat.read(EXAMPLES / "index.ipynb", as_version=4).cells)
    linked = set(re.findall(r"\]\(([^)#]+\.ipynb)\)", text))
    assert linked == {n.name for n in NOTEBOOKS if n.name != "index.ipynb"}


@pytest.mark.parametrize("notebook", COURSE, ids=[n.name for n in COURSE])
def test_exercise_solution_is_right(notebook: Path, tmp_path: Path) -> None:
    """The check cell passes the shipped solution (and, above, fails the blank exercise)."""
    nb = nbformat.read(notebook, as_version=4)
    (exercise,) = tagged(nb, "exercise")
    exercise.source = (SOLUTIONS / f"{notebook.stem}.py").read_text()
    nb = execute(notebook, tmp_path, nb)
    assert check_says(nb).startswith("right:"), check_says(nb)


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
