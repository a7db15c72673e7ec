"""`%%ai` cells in a real IPython kernel: a prompt over the notebook's variables,
answered persist-first; the same cell run again shows its reply instead of asking
again; cells on one thread are one conversation; `--live` asks again when (and only
when) a query the prompt reads changes its result."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from kernel_session import KernelSession

SETUP = """
%load_ext rxnb
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Fruit(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    color: str

@rx.query
def red(db: rx.Reader) -> list[str]:
    return [f.name for f in db.exec(select(Fruit).where(Fruit.color == "red").order_by(Fruit.id))]

@rx.mutation
def add(db: rx.Writer, name: str, color: str) -> None:
    db.add(Fruit(name=name, color=color))

store = rx.open()
topic = "rivers"
"""


def rows(cwd: Path, sql: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(cwd / ".rxnb" / "rxnb.db", timeout=10)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql).fetchall()]


def last_snapshot(kernel: KernelSession, display_id: str) -> str:
    """The latest HTML of the output with `display_id` (shown, then updated)."""
    shown = [
        m["content"]["data"].get("text/html", "")
        for m in kernel.snapshot()
        if m["msg_type"] in ("display_data", "update_display_data")
        and (m["content"].get("transient") or {}).get("display_id") == display_id
    ]
    return shown[-1] if shown else ""


def comparisons(cwd: Path) -> list[dict[str, Any]]:
    return rows(cwd, "SELECT id, messages FROM rx_comparisons ORDER BY created_at")


def test_a_prompt_over_variables_is_answered_and_bound(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.run(SETUP)
    outputs = kernel.run("%%ai rxnb/echo --into answer\nTell me about {topic}.", cell_id="c1")
    assert "rivers" in kernel.eval("answer")
    [snapshot_id] = [
        o["content"]["transient"]["display_id"]
        for o in outputs
        if "text/html" in o["content"].get("data", {}) and o["content"].get("transient")
    ]
    # What a notebook file keeps (nbclient applies the updates): the reply, as text.
    kernel.wait_for(lambda: "Tell me about rivers" in last_snapshot(kernel, snapshot_id))
    [asked] = comparisons(tmp_path)
    assert json.loads(asked["messages"]) == [{"role": "user", "content": "Tell me about rivers."}]
    # The same cell again: the reply it has, not a second request.
    kernel.run("%%ai rxnb/echo --into again\nTell me about {topic}.", cell_id="c1")
    assert kernel.eval("again") == kernel.eval("answer")
    assert len(comparisons(tmp_path)) == 1
    # A changed prompt in that cell is asked anew and takes the cell's place.
    kernel.run("topic = 'lakes'")
    kernel.run("%%ai rxnb/echo --into third\nTell me about {topic}.", cell_id="c1")
    assert "lakes" in kernel.eval("third")
    assert len(comparisons(tmp_path)) == 2
    assert [r["prompt"] for r in rows(tmp_path, "SELECT prompt FROM rx_ai_cells")] == [
        "Tell me about lakes."
    ]


def test_cells_on_a_thread_are_one_conversation(kernel: KernelSession, tmp_path: Path) -> None:
    kernel.run(SETUP)
    kernel.run("%%ai rxnb/echo --thread notes\nMy name is Ada.", cell_id="a")
    kernel.run("%%ai rxnb/echo --thread notes\nWhat is my name?", cell_id="b")
    kernel.run("%%ai rxnb/echo\nAn unrelated question.", cell_id="c")
    first, second, third = (json.loads(c["messages"]) for c in comparisons(tmp_path))
    assert [m["content"] for m in first] == ["My name is Ada."]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[0]["content"] == "My name is Ada." and second[2]["content"] == "What is my name?"
    assert second[1]["content"]  # the first cell's reply
    assert [m["content"] for m in third] == ["An unrelated question."]


def test_a_bad_template_or_line_is_refused_and_nothing_is_written(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.run(SETUP)
    msg_id = kernel.execute("%%ai rxnb/echo\nAbout {nothing_here}.", cell_id="x")
    kernel.reply(msg_id)
    kernel.wait_for(lambda: kernel.idle(msg_id))
    text = kernel.text(kernel.outputs(msg_id))
    assert "no variable `nothing_here` is defined" in text
    msg_id = kernel.execute("%%ai gpt4 --into 2x\nHi", cell_id="y")
    kernel.reply(msg_id)
    kernel.wait_for(lambda: kernel.idle(msg_id))
    text = kernel.text(kernel.outputs(msg_id))
    assert "not a litellm model name" in text or "not a Python variable name" in text
    assert rows(tmp_path, "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'rx_ai_cells'")[0][
        "n"
    ] in (0, 1)
    if rows(tmp_path, "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'rx_ai_cells'")[0]["n"]:
        assert rows(tmp_path, "SELECT * FROM rx_ai_cells") == []
    assert kernel.eval("1 + 1") == "2"  # the kernel goes on


def test_live_asks_again_once_for_a_row_it_reads_and_not_for_another(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.run(SETUP)
    kernel.run("add(name='apple', color='red')")
    kernel.run("%%ai rxnb/echo --live --debounce 0.3 --no-wait\nRed fruit: {red}", cell_id="live")
    kernel.wait_for(lambda: len(comparisons(tmp_path)) == 1)
    kernel.run("add(name='banana', color='yellow')")  # not read by `red`
    kernel.run("add(name='cherry', color='red')")
    kernel.wait_for(lambda: len(comparisons(tmp_path)) == 2, timeout=20)
    kernel.run("add(name='lemon', color='yellow')")
    # Quiet for five debounce periods: no third request.
    kernel.run("import time; time.sleep(1.5)")
    asked = comparisons(tmp_path)
    assert len(asked) == 2
    assert "cherry" in json.loads(asked[1]["messages"])[-1]["content"]
    assert "cherry" not in json.loads(asked[0]["messages"])[-1]["content"]


def test_compare_fans_a_cell_out_to_models_in_columns(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.run(SETUP)
    kernel.run(
        "%%ai --compare rxnb/echo,rxnb/scripted --param script=Hello. --into both\nAbout {topic}.",
        cell_id="cmp",
    )
    assert kernel.eval("both") == repr({"rxnb/echo": "About rivers.", "rxnb/scripted": "Hello."})
    columns = rows(tmp_path, "SELECT model, status FROM rx_comparison_columns ORDER BY position")
    assert columns == [
        {"model": "rxnb/echo", "status": "done"},
        {"model": "rxnb/scripted", "status": "done"},
    ]
