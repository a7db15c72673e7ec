"""`LiveWidget`: a query's result in the notebook, following every change."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from rxnb.errors import ArgumentError, RxnbError, StoreClosedError
from rxnb.execution import SECRET_NAME, process_stopping
from rxnb.reactive import JSONValue, Store, Subscribable, current_store, to_jsonable
from rxnb.widgets._cells import owners
from rxnb.widgets._dispatcher import Dispatcher
from rxnb.widgets._files import FILE, answer_shown, declared_file_columns, with_file_formats
from rxnb.widgets._payload import Message, Payload, current, empty, encode, full, message
from rxnb.widgets._snapshot import plain_text, snapshot_html

log = logging.getLogger("rxnb.widgets")

STATIC = Path(__file__).resolve().parent.parent / "static"

FRAME_SECONDS = 0.033
"""Least time between two updates of one widget: a burst of writes becomes one update."""

SNAPSHOT_SECONDS = 1.0
"""Least time between two refreshes of an output's static HTML snapshot."""


_dispatchers: weakref.WeakKeyDictionary[Store, Dispatcher] = weakref.WeakKeyDictionary()
_dispatchers_lock = threading.Lock()
_widgets: weakref.WeakSet[LiveWidget] = weakref.WeakSet()


def dispatcher_for(store: Store) -> Dispatcher:
    """The store's one dispatcher, started on first use and stopped with the store."""
    with _dispatchers_lock:
        dispatcher = _dispatchers.get(store)
        if dispatcher is None:
            dispatcher = _dispatchers[store] = Dispatcher()
            store.add_close_callback(lambda: _store_closed(store, dispatcher))
        return dispatcher


def _store_closed(store: Store, dispatcher: Dispatcher) -> None:
    """Tell the store's widgets they stopped following (unless the whole process is
    stopping: the front end shows its views disconnected then), then stop the
    dispatcher."""
    closed = StoreClosedError(
        f"the store {store.url} was closed; this widget no longer follows it. "
        "Open the store again (rx.open()) and re-run the cell"
    )
    for widget in live_widgets():
        if widget._store is store and process_stopping() is None:
            widget._on_error(closed)
    dispatcher.stop()


def live_widgets() -> list[LiveWidget]:
    """The live widgets of this process that are not closed."""
    return [w for w in list(_widgets) if not w.closed]


def settle(timeout: float = 5.0) -> bool:
    """Wait until every live widget has sent its latest result and snapshot.

    For the end of a notebook run by a tool (nbclient, CI): the saved outputs then
    hold the final snapshots. False if something was still pending at `timeout`.
    """
    deadline = time.monotonic() + timeout
    widgets = live_widgets()
    for widget in widgets:
        widget._push_state()
    while time.monotonic() < deadline:
        if all(w._due() is None for w in widgets):
            return True
        time.sleep(0.02)
    return False


def title(query: Subscribable, args: Mapping[str, Any]) -> str:
    """`name(arg=value, …)`, with values of secret-looking arguments hidden."""
    short = query.name.rsplit(".", 1)[-1]
    shown = ", ".join(
        f"{k}=•••" if SECRET_NAME.search(k) else f"{k}={v!r}" for k, v in args.items()
    )
    return f"{short}({shown})"


class LiveWidget(anywidget.AnyWidget):
    """A live view of one query: current result at once, then every change.

    Responsibilities: subscribe to the query; turn each result into a payload (on the
    reactor thread) and hand it to the store's dispatcher, which sends the smallest
    message (`docs/widget-protocol.md`) at most once per frame, as the cell that made the
    widget, and refreshes the output's static snapshot; answer the browser's `resync` and
    `call` messages and drop anything else; close its subscription when closed, when the
    cell that made it runs again, or when garbage-collected.
    """

    # The bundle as text traits rather than file paths: anywidget watches a path with
    # a process-wide signal that would hold every widget alive.
    _esm = traitlets.Unicode().tag(sync=True)
    _css = traitlets.Unicode().tag(sync=True)
    payload = traitlets.Dict().tag(sync=True)
    functions = traitlets.List(traitlets.Unicode()).tag(sync=True)
    snapshot_id = traitlets.Unicode().tag(sync=True)
    """The class (and display id) of this widget's snapshot output, which views hide."""

    # Until __init__ has subscribed, the widget is closed (ipywidgets' __del__ may
    # call close() on a widget whose construction failed).
    _closed = True
    _subscription: Any = None
    _sent: Payload = empty("")
    _local_calls: tuple[str, ...] = ()
    """Names the browser may call that the widget answers itself (`_call_local`), such
    as a chat's `earlier`: they change what the widget follows, not the store."""
    _file_columns: tuple[str, ...] = ()
    """The result's columns that name files (`rxnb.widgets._files`)."""

    def __init__(
        self,
        query: Subscribable,
        args: Mapping[str, Any] | None = None,
        *,
        store: Store | None = None,
        bind: Mapping[str, Callable[..., Any]] | None = None,
        view: Mapping[str, JSONValue] | None = None,
        frame_seconds: float = FRAME_SECONDS,
        heading: str | None = None,
    ) -> None:
        """`heading`: the title shown above the result, instead of the query's call."""
        # Taken first, on the thread of the cell that makes the widget (see `_flush`).
        self._origin = contextvars.copy_context()
        esm, css = _bundle()
        bound = _check_bound(bind or {})
        store = store if store is not None else current_store()
        args = dict(args or {})
        self._lock = threading.Lock()
        self._store = store
        self._bound = bound
        self._title = heading if heading is not None else title(query, args)
        self._view = tuple(sorted((view or {}).items()))
        self._frame = frame_seconds
        self._pending: Payload | None = None
        self._sent: Payload = empty(self._title)
        self._version = 0
        self._resync = False
        self._resync_held: int | None = None
        """The version every `resync` since the last flush said the page holds, or None
        (a page that holds the current version is told so, not sent a full)."""
        self._state_stale = False
        self._outbox: list[Message] = []
        self._last_send = -1e9
        self._display_ids: set[str] = set()
        self._snap_version = 0
        self._last_snap = -1e9
        self._ready = False
        self._dispatcher = dispatcher_for(store)
        self.messages_sent = 0
        """How many update messages this widget has sent (for tests and benchmarks)."""

        self._file_columns = declared_file_columns(query)
        if self._file_columns and FILE not in self._local_calls:
            self._local_calls = (*self._local_calls, FILE)
        this = weakref.ref(self)
        self._subscription = store.subscribe(
            query,
            args,
            lambda result, data: _call_weak(this, "_on_result", result, data),
            on_error=lambda error: _call_weak(this, "_on_error", error),
            with_payload=True,
            min_interval=frame_seconds,  # no point re-running faster than we send
        )
        self._closed = False
        with self._lock:  # the first result is in: it becomes the initial state
            if self._pending is not None:
                self._sent, self._pending = self._pending, None
            self._version = 1
        super().__init__(
            functions=sorted({*self._bound, *self._local_calls}),
            snapshot_id=f"rxnb-snapshot-{uuid.uuid4().hex}",
            _esm=esm,
            _css=css,
        )
        weakref.finalize(self, self._subscription.close)
        self.on_msg(self._on_browser_message)
        if self.comm is not None:  # the front end closed the model: nothing shows it
            self.comm.on_close(lambda _msg: _call_weak(this, "close"))
        _widgets.add(self)
        owners.adopt(self)
        with self._lock:
            self._ready = True
            news = self._pending is not None
        if news:
            self._dispatcher.post(self)

    # -- what users see ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def subscription(self) -> Any:
        return self._subscription

    @property
    def version(self) -> int:
        """The version of the last payload sent to the browser."""
        with self._lock:
            return self._version

    @property
    def data(self) -> JSONValue:
        """The last payload sent to the browser, as the protocol spells it."""
        with self._lock:
            return self._sent.to_json(self._version)

    def close(self) -> None:
        """Stop following the query and remove the widget from every page."""
        if not self._closed:
            with self._lock:
                self._closed = True
            self._subscription.close()
        super().close()

    def __repr__(self) -> str:
        return plain_text(self._sent)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle: tuple[dict[str, Any], dict[str, Any]] | None = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle[0]["text/plain"] = plain_text(self._sent)
        return bundle

    def snapshot(self) -> str:
        """The static HTML of the latest result sent (what readers without a kernel see)."""
        with self._lock:
            return snapshot_html(self._sent, self._version, self.snapshot_id)

    def _ipython_display_(self) -> None:
        """Show the snapshot, then the widget.

        The snapshot is an output of its own (with a display id, so it can be kept
        current), not a fallback inside the widget's bundle: JupyterLab renders a
        trusted widget output as "model not found" once its kernel is gone, and never
        falls back. The live view hides the snapshot next to it while it runs.
        """
        from IPython.display import display

        if self._closed:
            display({"text/plain": f"{self!r} (closed)"}, raw=True)  # type: ignore[no-untyped-call]
            return
        with self._lock:
            self._display_ids.add(self.snapshot_id)
            self._snap_version, self._last_snap = self._version, time.monotonic()
            snapshot = {"text/html": snapshot_html(self._sent, self._version, self.snapshot_id)}
        display(snapshot, raw=True, display_id=self.snapshot_id)  # type: ignore[no-untyped-call]
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            display(bundle[0], raw=True, metadata=bundle[1])  # type: ignore[no-untyped-call]

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """Traits as ipywidgets sends them, with `payload` the one last sent.

        The `payload` trait itself is never assigned after creation: updates travel as
        messages, and a page that (re)connects asks for the state and gets this.
        """
        state: dict[str, Any] = super().get_state(key, drop_defaults)
        keys = [key] if isinstance(key, str) else key
        if keys is None or "payload" in keys:
            with self._lock:
                state["payload"] = self._sent.to_json(self._version)
        return state

    # -- called on the reactor thread --------------------------------------------

    def _on_result(self, result: Any, data: JSONValue) -> None:
        payload = encode(self._title, result, data)
        if self._view and payload.kind == "table":
            payload = dataclasses.replace(payload, view=self._view)
        if self._file_columns:
            payload = with_file_formats(payload, self._file_columns)
        self._offer(payload)

    def _on_error(self, error: BaseException) -> None:
        with self._lock:
            base = self._pending or self._sent
        self._offer(base.with_error(error))

    def _offer(self, payload: Payload) -> None:
        with self._lock:
            self._pending = payload
            ready = self._ready and not self._closed
        if ready:
            self._dispatcher.post(self)

    # -- called on the dispatcher thread -------------------------------------------

    def _frame_for(self, pending: Payload) -> float:
        """Seconds after the last send that `pending` may go (the lock is held)."""
        return self._frame

    def _due(self) -> float | None:
        with self._lock:
            if self._closed:
                return None
            if self._outbox or self._resync or self._state_stale:
                return 0.0
            at: float | None = None
            if self._pending is not None:
                at = self._last_send + self._frame_for(self._pending)
            if self._display_ids and self._snap_version != self._version:
                snap_at = self._last_snap + SNAPSHOT_SECONDS
                at = snap_at if at is None else min(at, snap_at)
            return at

    def _flush(self, now: float) -> None:
        with self._lock:
            outbox, self._outbox = self._outbox, []
            update: Message | None = None
            if self._resync and self._pending is None and self._resync_held == self._version:
                update = current(self._version)  # a page that (re)connected is up to date
                self._resync = False
            elif self._resync or (
                self._pending is not None
                and now >= self._last_send + self._frame_for(self._pending)
            ):
                new = self._pending if self._pending is not None else self._sent
                version = self._version + 1
                update = full(new, version) if self._resync else message(self._sent, new, version)
                self._sent, self._version = new, version
                self._pending, self._resync, self._last_send = None, False, now
            push_state, self._state_stale = self._state_stale, False
            snapshot: dict[str, Any] | None = None
            if (
                self._display_ids
                and self._snap_version != self._version
                and now >= self._last_snap + SNAPSHOT_SECONDS
            ):
                snapshot = {"text/html": snapshot_html(self._sent, self._version, self.snapshot_id)}
                self._snap_version, self._last_snap = self._version, now
                display_ids = sorted(self._display_ids)
        # The protocol's messages go out as the cell that made the widget would send
        # them. ipykernel tags what this thread publishes with the request it handled
        # last on any thread, and (>= 7.4) routes the browser's next message to this comm
        # to that request's subshell. After a page reload that was often the subshell
        # JupyterLab opens for the widget-control comm and deletes as soon as that comm
        # closes: the kernel then dropped every resync and call of the new page
        # ("Unknown subshell_id"), and its view waited for a full forever. The cell's
        # subshell (the main shell, for a notebook cell) lives as long as the kernel.
        self._origin.copy().run(self._send_messages, outbox, update)
        # The state and the snapshot go out as the request being handled: a tool such as
        # nbclient records only what comes under the cell it is running. (A state push,
        # from `settle()` only, points the routing there until the next update; a resync
        # lost meanwhile is asked for again by the browser.)
        if push_state:
            self.send_state("payload")
        if snapshot is not None:
            self._refresh_snapshot(snapshot, display_ids)

    def _send_messages(self, outbox: list[Message], update: Message | None) -> None:
        for reply in outbox:
            self.send(reply)
        if update is not None:
            self.send(update)
            self.messages_sent += 1

    def _push_state(self) -> None:
        """Send the `payload` trait once (as it is by then), from the dispatcher."""
        with self._lock:
            self._state_stale = not self._closed
            post = self._state_stale
        if post:
            self._dispatcher.post(self)

    def _refresh_snapshot(self, snapshot: dict[str, Any], display_ids: list[str]) -> None:
        from IPython.display import update_display

        for display_id in display_ids:
            update_display(snapshot, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]

    # -- called on the kernel's shell (or comm subshell) thread ----------------------

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """The trust boundary: only `resync` and calls of bound functions get through."""
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "resync":
            held = content.get("version")
            held = held if isinstance(held, int) and not isinstance(held, bool) else None
            with self._lock:
                if not self._resync:
                    self._resync, self._resync_held = True, held
                elif self._resync_held != held:
                    self._resync_held = None  # pages that hold different versions: a full
            self._dispatcher.post(self)
        elif kind == "call" and self._valid_call(content):
            self._answer(content)
        else:
            log.warning(
                "rxnb: live widget %s dropped a message its view does not define: %s",
                self._title,
                _brief(content),
            )

    def _valid_call(self, content: dict[str, Any]) -> bool:
        return (
            isinstance(content.get("id"), int)
            and (content.get("fn") in self._bound or content.get("fn") in self._local_calls)
            and isinstance(content.get("args", {}), dict)
        )

    def _call_local(self, name: str, args: dict[str, Any]) -> Any:
        """Answer a call of one of `_local_calls`: `file`, for a view showing files."""
        if name == FILE and self._file_columns:
            return answer_shown(self._store, self._sent, self._file_columns, args)
        raise ArgumentError(f"{name} is not a function of this widget")

    def _answer(self, content: dict[str, Any]) -> None:
        fn = self._bound.get(content["fn"])
        reply: Message = {"type": "reply", "id": content["id"]}
        try:
            if fn is None:
                result = self._call_local(content["fn"], content.get("args", {}))
            else:
                result = self._store.call(fn, **content.get("args", {}))
            reply.update(ok=True, result=to_jsonable(result, where=content["fn"]))
        except (RxnbError, ArgumentError) as exc:
            reply.update(ok=False, error={"type": type(exc).__name__, "message": str(exc)})
        except Exception as exc:
            log.exception("rxnb: %s called from the browser raised", content["fn"])
            reply.update(ok=False, error={"type": type(exc).__name__, "message": str(exc)})
        with self._lock:
            self._outbox.append(reply)
        self._dispatcher.post(self)


@functools.cache
def _bundle() -> tuple[str, str]:
    """The front end's JS and CSS, built from `js/` into `rxnb/static/`."""
    try:
        return (STATIC / "widget.js").read_text("utf-8"), (STATIC / "widget.css").read_text("utf-8")
    except FileNotFoundError:
        raise RxnbError(
            f"rxnb's widget bundle is missing from {STATIC}; install rxnb from a wheel, or "
            "build it in the source tree with `npm install && npm run build`"
        ) from None


def _check_bound(bind: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    from rxnb.functions import Mutation, Query

    for name, fn in bind.items():
        if not isinstance(fn, Query | Mutation):
            raise RxnbError(
                f"bind={{{name!r}: {fn!r}}}: a widget can call only @rx.query and "
                "@rx.mutation functions; decorate it, or call it from a cell"
            )
    return dict(bind)


def _call_weak(ref: weakref.ref[LiveWidget], method: str, *args: Any) -> None:
    widget = ref()
    if widget is not None:
        getattr(widget, method)(*args)


def _brief(content: Any) -> str:
    text = repr(content)
    return text if len(text) <= 200 else text[:200] + "…"


def live(
    query: Subscribable,
    args: Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    bind: Mapping[str, Callable[..., Any]] | None = None,
    view: Mapping[str, JSONValue] | None = None,
) -> LiveWidget:
    """A live widget of `query(**args)` (what `query.live(...)` returns).

    `bind` names the functions the browser may call; `view` adds table view fields
    (`actions`, `formats`; docs/widget-protocol.md).
    """
    return LiveWidget(query, args, store=store, bind=bind, view=view)
