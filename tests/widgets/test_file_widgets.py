"""Files in a chat (`rx.chat(..., files=...)`): what the view may fetch, kernel side."""

from __future__ import annotations

import base64
import json
from typing import Any

from polling import until
from recording_comm import Comms
from sqlmodel import Field, SQLModel, col, select

import rxnb as rx
from rxnb.widgets import ChatWidget

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Note(SQLModel, table=True):
    __tablename__ = "test_file_parts_note"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str = "user"
    content: str = ""
    status: str = "done"
    attachment: str | None = Field(default=None, sa_type=rx.FileRef)


@rx.query
def notes(db: rx.Reader, thread_id: str) -> list[Note]:
    return list(db.exec(select(Note).where(Note.thread_id == thread_id).order_by(col(Note.id))))


@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str, attachment: str | None = None) -> int:
    note = Note(thread_id=thread_id, content=text, attachment=attachment)
    db.add(note)
    db.flush()
    assert note.id is not None
    return note.id


def call(comms: Comms, widget: ChatWidget, call_id: int, **args: Any) -> dict[str, Any]:
    comms.receive(widget, {"type": "call", "id": call_id, "fn": "file", "args": args})
    found: list[dict[str, Any]] = []

    def replied() -> bool:
        found[:] = [m for m in comms.custom() if m.get("type") == "reply" and m["id"] == call_id]
        return bool(found)

    until(replied)
    return found[0]


def test_a_chat_view_fetches_only_the_files_its_messages_name(
    store: rx.Store, comms: Comms
) -> None:
    image = rx.files.put(PNG, name="dot.png")
    pdf = rx.files.put(b"%PDF-1.4 ...", name="report.pdf")
    svg = rx.files.put(b"<svg onload='alert(1)'/>", name="x.svg")
    hidden = rx.files.put(b"secret", name="other.txt")
    widget = rx.chat("t", send=send, messages=notes, files="attachment")
    state = widget.get_state()
    assert "file" in state["functions"]
    assert state["payload"]["chat"]["files"] == {"column": "attachment", "fn": "file"}
    for file_id in (image, pdf, svg):
        send(thread_id="t", text="see", attachment=file_id)
    until(lambda: len(widget.get_state("payload")["payload"]["rows"]) == 3)

    shown = call(comms, widget, 1, id=image, download=False)["result"]
    assert (shown["image"], shown["content_type"], shown["name"]) == (True, "image/png", "dot.png")
    assert base64.b64decode(shown["data"]) == PNG
    link = call(comms, widget, 2, id=pdf, download=False)["result"]
    assert (link["image"], link["data"]) == (False, None)
    got = call(comms, widget, 3, id=pdf, download=True)["result"]
    assert base64.b64decode(got["data"]) == b"%PDF-1.4 ..."
    assert call(comms, widget, 4, id=svg, download=False)["result"]["image"] is False
    refused = call(comms, widget, 5, id=hidden, download=True)
    assert refused["ok"] is False and "not shown in this view" in refused["error"]["message"]
    assert call(comms, widget, 6, id=image, extra=1)["ok"] is False


@rx.query
def stored_files(db: rx.Reader) -> list[rx.File]:
    return list(db.exec(select(rx.File).order_by(col(rx.File.name))))


def test_a_live_table_of_files_or_of_rows_naming_them_shows_them(
    store: rx.Store, comms: Comms
) -> None:
    image = rx.files.put(PNG, name="dot.png")
    send(thread_id="t", text="see", attachment=image)
    widget = rx.widgets.live(stored_files, {})
    state = widget.get_state()
    assert state["functions"] == ["file"]
    assert state["payload"]["formats"] == {"id": "file"}
    assert call(comms, widget, 1, id=image, download=False)["result"]["image"] is True
    rows = rx.widgets.live(notes, {"thread_id": "t"})
    assert rows.get_state()["payload"]["formats"] == {"attachment": "file"}
    plain = rx.widgets.live(file_count, {})
    assert plain.get_state()["functions"] == []


@rx.query
def file_count(db: rx.Reader) -> int:
    return len(db.exec(select(rx.File.id)).all())


def test_an_agent_chat_fetches_the_files_its_messages_list(store: rx.Store, comms: Comms) -> None:
    """A user's file and a tool's are fetched through the agent chat's bound `file`
    call; a file of another thread is refused."""
    image = rx.files.put(PNG, name="dot.png")
    pdf = rx.files.put(b"%PDF-1.4 ...", name="report.pdf")
    elsewhere = rx.files.put(b"secret", name="other.txt")

    @rx.tool
    def chart() -> rx.File:
        """A chart."""
        return rx.files.get(rx.files.put(PNG, name="chart.png"))

    agent = rx.Agent(
        "file-chat",
        model="rxnb/scripted",
        tools=[chart],
        turns=[{"tool_calls": [{"name": "chart", "arguments": {}}]}, {"script": "Here."}],
    )
    other = rx.Agent("file-chat-other", model="rxnb/scripted", turns=[{"script": "ok"}])
    other.send("t-other", "mine", files=[elsewhere]).result(timeout=30)
    widget = agent.chat("t-files")
    state = widget.get_state()
    assert "file" in state["functions"]
    assert state["payload"]["chat"]["files"] == {"column": "files", "fn": "file"}
    agent.send("t-files", "see these", files=[image, pdf]).result(timeout=30)

    def listed() -> list[Any]:
        payload = widget.get_state("payload")["payload"]
        at = payload["columns"].index("files")
        return [row[at] for row in payload["rows"] if row[at]]

    until(lambda: len(listed()) == 2)
    user_files, tool_files = (json.loads(cell) for cell in listed())
    assert user_files == [image, pdf]
    shown = call(comms, widget, 1, id=image, download=False)["result"]
    assert (shown["image"], base64.b64decode(shown["data"])) == (True, PNG)
    link = call(comms, widget, 2, id=pdf, download=False)["result"]
    assert (link["image"], link["data"], link["name"]) == (False, None, "report.pdf")
    made = call(comms, widget, 3, id=tool_files[0], download=False)["result"]
    assert (made["name"], made["image"]) == ("chart.png", True)
    refused = call(comms, widget, 4, id=elsewhere, download=True)
    assert refused["ok"] is False and "not shown in this view" in refused["error"]["message"]
    widget.close()
