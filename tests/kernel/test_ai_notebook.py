"""A notebook of five `%%ai` cells run by nbclient (as CI or `jupyter execute` runs it)
against a loopback OpenAI-compatible server that counts requests, through litellm's
real HTTP path: run again, it sends no request and saves the same outputs; with one
prompt changed, it sends exactly one."""

from __future__ import annotations

import gc
import json
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_openai import FakeOpenAI, Ok

PROMPTS = [f"Name {n} rivers of {{continent}}." for n in range(1, 6)]
IDS = re.compile(
    r"[0-9a-f]{32}|rxnb-snapshot-[0-9a-f]+|snapshot of [0-9-]+ [0-9:]+ UTC"
    r'|data-version=\\"\d+\\"'
)
"""What differs between two runs however equal their outputs: widget model ids,
display ids, when the static snapshot was taken, and how many updates the widget had
sent by then (the first run streamed, the second found the reply done)."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Ok(["The ", "Nile, ", "the ", "Amazon."])])
    # The provider's usual variables, as a user would set them: the kernels inherit them.
    monkeypatch.setenv("OPENAI_API_BASE", fake.api_base)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.api_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-not-a-secret")
    monkeypatch.delenv("RXNB_URL", raising=False)
    yield fake
    fake.close()


def notebook(prompts: list[str]) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_code_cell(
            "%load_ext rxnb\nimport rxnb as rx\nstore = rx.open()\ncontinent = 'Africa'"
        )
    ]
    cells += [nbformat.v4.new_code_cell(f"%%ai openai/gpt-4o-mini\n{p}") for p in prompts]
    cells.append(nbformat.v4.new_code_cell("rx.widgets.settle()"))
    return nbformat.v4.new_notebook(cells=cells)


def run(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.km = client.create_kernel_manager()
    client.km.kernel_spec.argv[0] = sys.executable
    try:
        client.execute()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    return nb


def saved(nb: nbformat.NotebookNode) -> list[str]:
    """Each AI cell's outputs as the notebook file keeps them, ids blanked."""
    return [IDS.sub("…", json.dumps(c.outputs, sort_keys=True)) for c in nb.cells[1:6]]


def test_a_rerun_notebook_asks_nothing_and_saves_the_same(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    first = run(notebook(PROMPTS), tmp_path)
    assert server.requests == 5
    shown = saved(first)
    assert all("Nile" in cell and "Amazon" in cell for cell in shown), shown[0]
    assert all("rivers of Africa" in b["messages"][0]["content"] for b in server.bodies)

    second = run(notebook(PROMPTS), tmp_path)
    assert server.requests == 5  # nothing asked again
    assert saved(second) == shown

    changed = [*PROMPTS[:2], "Name 3 lakes of {continent}.", *PROMPTS[3:]]
    third = run(notebook(changed), tmp_path)
    assert server.requests == 6  # the changed prompt only
    assert server.bodies[-1]["messages"][-1]["content"] == "Name 3 lakes of Africa."
    assert saved(third)[:2] == shown[:2] and saved(third)[3:] == shown[3:]
