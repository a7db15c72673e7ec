"""Writes from other processes reach this process's subscriptions; counters stay exact."""

from __future__ import annotations

import threading
import time

from models import Counter, counter, messages
from procs import finish, python

import rxnb as rx


def test_mutation_in_subprocess_reaches_subscription(store: rx.Store, url: str) -> None:
    arrived = threading.Event()
    contents: list[list[str]] = []

    def on_result(result: list[object]) -> None:
        contents.append([m.content for m in result])  # type: ignore[attr-defined]
        if contents[-1] == ["from another process"]:
            arrived.set()

    sub = store.subscribe(messages, {"thread_id": "x"}, on_result)
    unrelated = store.subscribe(messages, {"thread_id": "y"})
    proc = python(
        """
        import sys, rxnb as rx
        from models import send
        rx.open(sys.argv[1])
        send(thread_id="x", text="from another process")
        """,
        url,
    )
    finish(proc)
    assert arrived.wait(10), f"never delivered; saw {contents}"
    assert sub.runs == 2
    assert store.wait_idle(5)
    assert unrelated.runs == 1  # precise across processes too


def test_counter_exact_under_8_threads_in_2_processes(store: rx.Store, url: str) -> None:
    """8 threads x 2 processes x 200 increments through a mutation: exactly 3,200."""
    code = """
        import sys, threading, rxnb as rx
        from models import increment
        rx.open(sys.argv[1])
        go = threading.Barrier(8)
        def work():
            go.wait()
            for _ in range(200):
                increment(counter_id=7)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("done")
    """
    seen = threading.Event()
    sub = store.subscribe(counter, {"counter_id": 7}, lambda v: seen.set() if v == 3200 else None)
    procs = [python(code, url) for _ in range(2)]
    for proc in procs:
        assert finish(proc, timeout=180).strip() == "done"
    assert counter(counter_id=7) == 3200
    with rx.open(url).database._write_engine.connect() as conn:
        assert (
            conn.exec_driver_sql(f"SELECT value FROM {Counter.__tablename__} WHERE id = 7").scalar()
            == 3200
        )
    assert seen.wait(10), f"subscriber saw {sub.result}, not 3200"


def test_subscriber_in_subprocess_sees_this_process(url: str, store: rx.Store) -> None:
    proc = python(
        """
        import sys, threading, rxnb as rx
        from models import messages
        store = rx.open(sys.argv[1])
        done = threading.Event()
        store.subscribe(messages, {"thread_id": "z"},
                        lambda r: done.set() if [m.content for m in r] == ["hi"] else None)
        print("ready", flush=True)
        assert done.wait(20), "not delivered"
        print("seen", flush=True)
        """,
        url,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = proc.stdout.readline()
    assert line.strip() == "ready" and time.monotonic() < deadline
    from models import send

    send(thread_id="z", text="hi")
    assert "seen" in finish(proc)
