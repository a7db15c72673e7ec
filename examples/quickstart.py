"""rxnb quickstart: a live query that follows writes from a thread and another process.

Run with `scripts/demo`. It opens a store in a fresh temporary folder, subscribes to
one thread's messages, writes from a background thread and from a second Python
process, and prints each result the subscription delivers.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sqlmodel import Field, SQLModel, select

import rxnb as rx


class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str
    content: str = ""


@rx.query
def messages(db: rx.Reader, thread_id: str) -> list[Message]:
    return db.exec(select(Message).where(Message.thread_id == thread_id)).all()


@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str, role: str = "user") -> int:
    message = Message(thread_id=thread_id, role=role, content=text)
    db.add(message)
    db.flush()
    assert message.id is not None
    return message.id


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="rxnb-quickstart-"))
    url = f"sqlite:///{folder / 'rxnb.db'}"
    store = rx.open(url)
    print(f"opened {store.url}")

    everyone_spoke = threading.Event()

    def show(result: list[Message]) -> None:
        print(f"  live result: {[f'{m.role}: {m.content}' for m in result]}")
        if {m.role for m in result} >= {"user", "thread", "process"}:
            everyone_spoke.set()

    subscription = store.subscribe(messages, {"thread_id": "t1"}, show)
    send(thread_id="t1", text="hello from the main thread")
    send(thread_id="t2", text="another thread's message: t1's subscriber is not re-run")

    worker = threading.Thread(
        target=send, kwargs={"thread_id": "t1", "text": "hi from a thread", "role": "thread"}
    )
    worker.start()
    worker.join()

    other = (
        "import sys; sys.path.insert(0, sys.argv[2]); import rxnb as rx; "
        "from quickstart import send; rx.open(sys.argv[1]); "
        "send(thread_id='t1', text='hi from another process', role='process')"
    )
    subprocess.run([sys.executable, "-c", other, url, str(Path(__file__).parent)], check=True)
    if not everyone_spoke.wait(timeout=30):
        raise SystemExit("the subscription did not see every write")

    try:
        send(thread_id=42, text="bad")  # type: ignore[arg-type]
    except rx.ArgumentError as error:
        print(f"bad input is refused before anything runs: {error}")
    print(f"the subscription ran {subscription.runs} times; store closed.")
    store.close()


if __name__ == "__main__":
    main()
