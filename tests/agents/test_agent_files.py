"""Files in agent threads: sent with a user's message (`agent.send(..., files=)`),
returned by a tool (`rx.File`), listed in `rx_messages.files` so that the collector
keeps them, told to the model by name and id; a store made before the column existed
gains it on open."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import select

import rxnb as rx
from rxnb.agents import Message
from rxnb.agents._threads import model_input
from rxnb.errors import RxnbError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@rx.action
def render(ctx: rx.ActionContext, title: str) -> rx.File:
    """Render a chart (a child run of the turn)."""
    return rx.files.get(rx.files.put(PNG, name=f"{title}.png"))


def thread(thread_id: str) -> list[Message]:
    return rx.agents.messages(thread_id)


def stored(file_id: str) -> bool:
    return rx.current_store().database.read(lambda db: db.get(rx.File, file_id))[0] is not None


def test_a_message_carries_files_the_collector_keeps_and_the_model_is_told_of(
    store: rx.Store,
) -> None:
    photo = rx.files.put(PNG, name="cat_1.png")  # `_` in names and ids is no wildcard
    report = rx.files.put(b"%PDF-1.4 ...", name="report.pdf")
    loose = rx.files.put(b"nobody lists me", name="loose.txt")
    agent = rx.Agent("filer", model="rxnb/scripted", turns=[{"script": "Got them."}])
    run = agent.send("t-files", "Here are two files.", files=[photo, rx.files.get(report)])
    assert run.result(timeout=30) == "Got them."
    user = thread("t-files")[0]
    assert (user.role, user.file_ids, json.loads(user.files or "")) == (
        "user",
        [photo, report],
        [photo, report],
    )
    assert user.parts == [
        {"type": "text", "text": "Here are two files."},
        {"type": "file", "id": photo},
        {"type": "file", "id": report},
    ]
    reply = thread("t-files")[1]
    sent = store.database.read(
        lambda db: model_input(
            db, "t-files", instructions="", history=100, context=None, until=reply.id or 0
        )[1]
    )[0]
    assert sent == [
        {
            "role": "user",
            "content": "Here are two files.\n"
            f"[attached file 'cat_1.png' (image/png, {len(PNG)} bytes), id {photo}]\n"
            f"[attached file 'report.pdf' (application/pdf, 12 bytes), id {report}]",
        }
    ]

    assert rx.files.collect(grace_seconds=0) == 1  # only the file no message lists
    assert (stored(photo), stored(report), stored(loose)) == (True, True, False)

    def unlist(db: rx.Writer) -> None:
        row = db.get(Message, user.id)
        assert row is not None
        row.files = json.dumps([report])

    store.database.write(unlist)
    assert rx.files.collect(grace_seconds=0) == 1
    assert (stored(photo), stored(report)) == (False, True)


def test_a_message_of_files_alone_is_sent_and_a_missing_file_is_refused(
    store: rx.Store,
) -> None:
    agent = rx.Agent("filer2", model="rxnb/scripted", turns=[{"script": "ok"}])
    with pytest.raises(RxnbError, match=r"no stored file has id 'nope'.*rx\.files\.put"):
        agent.send("t-missing", "see attached", files=["nope"])
    with pytest.raises(RxnbError, match=r"files= is a list of file ids"):
        agent.send("t-missing", "see attached", files="nope")  # type: ignore[arg-type]
    with pytest.raises(RxnbError, match=r"the message is empty; send some text or files"):
        agent.send("t-missing", "  ", files=[])
    assert thread("t-missing") == []  # nothing of a refused send is stored

    only = rx.files.put(PNG, name="only.png")
    assert agent.send("t-alone", "", files=[only]).result(timeout=30) == "ok"
    first = thread("t-alone")[0]
    assert (first.text, first.file_ids, first.parts) == ("", [only], [{"type": "file", "id": only}])


def test_a_tool_returning_a_stored_file_puts_it_in_its_message(store: rx.Store) -> None:
    @rx.tool
    def chart(title: str) -> rx.File:
        """Draw a chart."""
        return rx.files.get(rx.files.put(PNG, name=f"{title}.png"))

    @rx.tool
    def both() -> list[rx.File]:
        """Two files."""
        return [
            rx.files.get(rx.files.put(PNG, name="a.png")),
            rx.files.get(rx.files.put(b"x", name="b.csv")),
        ]

    agent = rx.Agent(
        "drawer",
        model="rxnb/scripted",
        tools=[chart, both, rx.tool(render)],
        turns=[
            {
                "tool_calls": [
                    {"name": "chart", "arguments": {"title": "sales"}},
                    {"name": "both", "arguments": {}},
                    {"name": "render", "arguments": {"title": "costs"}},
                ]
            },
            {"script": "Drawn."},
        ],
    )
    assert agent.send("t-tool", "Draw sales").result(timeout=30) == "Drawn."
    calls = {m.tool_name: m for m in thread("t-tool") if m.role == "tool"}
    one, two, child = calls["chart"], calls["both"], calls["render"]
    assert (one.tool_name, one.status, len(one.file_ids)) == ("chart", "done", 1)
    (file_id,) = one.file_ids
    assert json.loads(one.text) == {
        "file_id": file_id,
        "name": "sales.png",
        "content_type": "image/png",
        "size": len(PNG),
    }
    assert [p["type"] for p in one.parts] == ["tool-call", "tool-result", "file"]
    assert [f["name"] for f in json.loads(two.text)] == ["a.png", "b.csv"]
    assert len(two.file_ids) == 2
    assert (child.status, json.loads(child.text)["name"], len(child.file_ids)) == (
        "done",
        "costs.png",
        1,
    )
    assert rx.files.collect(grace_seconds=0) == 0  # every file is listed by a message
    assert all(stored(f) for f in one.file_ids + two.file_ids + child.file_ids)


def test_a_store_made_before_messages_had_files_gains_the_column(url: str) -> None:
    """rx_messages is one of rxnb's own tables: its new nullable column is added on
    open, without migrate=True, and the rows it had read with no files."""
    engine = sa.create_engine(url)
    old = sa.MetaData()
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in Message.__table__.columns  # type: ignore[attr-defined]
        if c.name != "files"
    ]
    table = sa.Table("rx_messages", old, *columns)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            table.insert().values(
                thread_id="t-old",
                role="user",
                status="done",
                text="from before",
                step=0,
                arguments="",
                created_at=1.0,
            )
        )
    engine.dispose()
    store = rx.open(url)
    try:
        (row,) = store.database.read(
            lambda db: db.exec(select(Message).where(Message.thread_id == "t-old")).all()
        )[0]
        assert (row.text, row.files, row.file_ids, row.parts) == (
            "from before",
            None,
            [],
            [{"type": "text", "text": "from before"}],
        )
        photo = rx.files.put(PNG, name="new.png", store=store)
        agent = rx.Agent("upgraded", model="rxnb/scripted", turns=[{"script": "ok"}])
        assert agent.send("t-old", "now", files=[photo], store=store).result(timeout=30) == "ok"
        assert rx.files.collect(grace_seconds=0, store=store) == 0
    finally:
        store.close()


def test_a_listed_id_matches_only_itself_not_as_a_like_pattern(store: rx.Store) -> None:
    """An id's `_` is no wildcard: a list naming "abc1x" keeps that file, not "ab_1x"
    (whose `_` would match the "c" unescaped)."""
    files = rx.File.__table__  # type: ignore[attr-defined]
    rows = [
        {"id": i, "name": i, "size": 0, "sha256": "", "chunks_count": 0, "created_at": 1.0}
        for i in ("ab_1x", "ab_1y", "abc1x")
    ]
    store.database.write(lambda db: db.execute(files.insert(), rows))

    def listing(db: rx.Writer) -> None:
        db.add(Message(thread_id="t-like", role="user", text="x", files=json.dumps(["abc1x"])))

    store.database.write(listing)
    assert rx.files.collect(grace_seconds=0) == 2
    assert (stored("abc1x"), stored("ab_1x"), stored("ab_1y")) == (True, False, False)
