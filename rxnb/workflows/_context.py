"""`WorkflowContext`: what a workflow receives; every call on it is journaled.

Replay rules (each call takes the next sequence number `seq`):

1. A journal entry at `seq` with the same kind and name: return its output (or raise
   its error) without running anything.
2. An entry at `seq` of another kind or name: `NonDeterminismError`, naming the
   recorded and the expected step and what to do.
3. No entry at `seq`: run it now and journal it, one commit per completed step (a
   mutation's entry commits in the mutation's own transaction).
4. `sleep` and `wait_for_event` park the run (no thread is held) until due; the
   executor that claims it then replays the journal up to there and goes on.
5. `patched(name)`: true where the run goes fresh (a new run, or an old one past
   the end of its journal), and journaled so; false where the journal has something
   else at `seq` (an old run replaying), and `seq` is not consumed (Temporal's
   patching: `if ctx.patched("x"): new steps` leaves old runs' replays intact).
"""

from __future__ import annotations

import datetime
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from rxnb.errors import NonDeterminismError, ResultError, StepError, WorkflowError
from rxnb.execution import (
    TERMINAL,
    Action,
    ActionContext,
    Failure,
    Parked,
    Run,
    RunStatus,
    one_line,
)
from rxnb.execution import clock as _clock
from rxnb.reactive import to_jsonable
from rxnb.store import Writer, insert_row
from rxnb.workflows import _checks
from rxnb.workflows._model import (
    ChildLink,
    Event,
    JournalEntry,
    Recorded,
    as_row,
    read_journal,
)
from rxnb.workflows.hooks import STEP_RUNNING, stepping

if TYPE_CHECKING:
    from rxnb.reactive import Store

JOURNAL: Any = JournalEntry.__table__  # type: ignore[attr-defined]

_SCALARS = (int, float, str, bool, type(None))

FOREVER = 1e15
"""The wake time of a wait without a timeout (the year ~33,000)."""


def clock() -> float:
    """The time workflows use: the runs layer's due-time clock."""
    return _clock.now()


class WorkflowContext(ActionContext):
    """The first argument of every @rx.workflow (see the module docstring for replay).

    - `ctx.step(fn, *args, retries=0, backoff=1.0, name=None, **kwargs)`, and
      `ctx.parallel([(fn, *args), ...])` for steps that run at once;
    - `ctx.child(workflow, **args)`: a child workflow's result (its own run);
    - `ctx.query(fn, **args)` and `ctx.mutation(fn, **args)`, journaled;
    - `ctx.now()`, `ctx.random()`, `ctx.uuid()`: recorded, the same on replay;
    - `ctx.sleep(timedelta)`, `ctx.sleep_until(datetime)`: durable, holding no thread;
    - `ctx.wait_for_event(name, timeout=None)`: the payload `rx.send_event` sent, or
      None once `timeout` has passed;
    - `ctx.patched(name)`: for changing a workflow while runs are in flight.

    Call it from the workflow's own thread, one call at a time (steps are numbered in
    the order they are reached); `ctx.parallel` runs steps at once.
    """

    def __init__(
        self,
        store: Store,
        run_id: str | None,
        attempt: int = 1,
        *,
        workflow: str,
        version: str | None = None,
    ) -> None:
        super().__init__(store, run_id, attempt)
        self.workflow = workflow
        self.version = version
        """The workflow's `version=` label, named in divergence errors."""
        self._seq = 0
        self._journal: dict[int, Recorded] = {}
        self._steps = threading.local()
        """The step running on this thread (`current`), and its entry once `end_step`
        committed it (`ended`)."""
        self._halted: BaseException | None = None
        """A divergence or a parking the code swallowed (`except Exception` around a
        step, `except BaseException`): raised again by every later call on this context
        and when the function returns (`Workflow`), so nothing runs past it."""
        if run_id is not None and attempt > 1:  # a run's first start has no journal yet
            self._journal = store.database.read(lambda db: read_journal(db, run_id))[0]

    @property
    def replaying(self) -> bool:
        """True while the code is still before the last journaled step."""
        return self._seq <= max(self._journal, default=-1)

    def wait_while_paused(self) -> bool:
        """A paused workflow parks (`paused`, holding no thread) at its next step, or
        wherever it checks, until `rx.resume`: it then replays its journal."""
        if self.paused and self.run_id is not None:
            raise self._halt(Parked("paused", FOREVER))
        return False

    # -- steps -----------------------------------------------------------------------

    def step(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` once for this run, journaling its (JSON) result.

        On failure it is tried `retries` more times (backoff `backoff`, 2·`backoff`, …
        seconds); after the last, the error is journaled and `rx.StepError` raised (on
        replay too, at the same point).
        """
        _checks.function(fn, "ctx.step")
        _checks.retry_policy(retries, backoff, "ctx.step")
        if name is not None:
            _checks.name(name, "ctx.step(name=...)")
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        seq, entry = self._next("step", label)
        if entry is not None:
            return self._replayed(entry)
        return self._run_step(seq, label, fn, args, kwargs, retries, backoff)

    def _run_step(
        self,
        seq: int,
        label: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int,
        backoff: float,
    ) -> Any:
        """Run a step now, with retries, and journal its result or its last error."""
        started, attempt = clock(), 0
        steps = self._steps
        steps.ended = None
        while True:
            attempt += 1
            self.check_cancelled()
            steps.current = (seq, label, started, attempt)
            try:
                if STEP_RUNNING:  # the tracing layer's hooks: empty unless tracing is on
                    value = stepping(self, seq, label, attempt, fn, args, kwargs)
                else:
                    value = fn(*args, **kwargs)
                break
            except Exception as exc:
                if steps.ended is not None:  # its result committed: the step is done
                    break
                if attempt > retries:
                    failure = Failure.of(exc)
                    self._record(
                        seq, "step", label, None, failure.line, started, attempt, failure.details
                    )
                    raise StepError(f"step {seq} `{label}` failed: {failure.line}") from exc
                if self.wait(backoff * 2 ** (attempt - 1)):
                    self.check_cancelled()
            finally:
                steps.current = None
        ended: Recorded | None = steps.ended
        if ended is not None:
            self._journal[seq] = ended
            return json.loads(ended.output or "null")
        output = self._encode(seq, label, value)
        self._record(seq, "step", label, output, None, started, attempt)
        # What a replay would return: the value read back from its JSON (a scalar is).
        return value if type(value) in _SCALARS else json.loads(output)

    def end_step(self, db: Writer, value: Any) -> None:
        """Journal the running step's result `value` in `db`'s transaction (a write the
        step makes last): the result is then journaled exactly when that write commits,
        in one commit instead of two, and the step returns it (as its JSON reads back)
        without journaling again. Outside a step of this context, it does nothing.

        For a step whose last write is its result, as an agent's model call: its reply
        ends `done` and its step is journaled together."""
        current = getattr(self._steps, "current", None)
        if current is None or self.run_id is None:
            return
        seq, label, started, attempt = current
        output = self._encode(seq, label, value)
        entry = self._entry(seq, "step", label, output, None, started, attempt)
        insert_row(db, JOURNAL, as_row(entry))
        steps = self._steps
        db.after_commit(lambda: setattr(steps, "ended", entry))

    def parallel(
        self, calls: Sequence[Callable[[], Any] | tuple[Any, ...]], *, retries: int = 0
    ) -> list[Any]:
        """Run several steps at once (threads), each journaled when it completes; their
        results in order. Each call is `fn` or `(fn, *args)`. On replay the finished
        ones return their journaled results and only the others run again."""
        _checks.retry_policy(retries, 1.0, "ctx.parallel")
        split = [call if isinstance(call, tuple) and call else (call,) for call in calls]
        for fn, *_ in split:
            _checks.function(fn, "ctx.parallel", "ctx.parallel([(fetch, url), ...])")
        planned: list[tuple[int, str, Callable[..., Any], tuple[Any, ...]]] = []
        for fn, *args in split:
            label = getattr(fn, "__qualname__", None) or repr(fn)
            seq, _ = self._next("step", label)
            planned.append((seq, label, fn, tuple(args)))
        pending = [p for p in planned if p[0] not in self._journal]
        errors: list[BaseException | None] = []
        if len(pending) == 1 and getattr(self._steps, "current", None) is None:  # no thread for one
            only = pending[0]
            try:
                self._run_step(*only, {}, retries, 1.0)
                errors.append(None)
            except Exception as exc:  # journaled by the step, as in a thread
                errors.append(exc)
        elif pending:
            with ThreadPoolExecutor(min(8, len(pending)), thread_name_prefix="rxnb-step") as pool:
                futures = [
                    pool.submit(self._run_step, seq, label, fn, args, {}, retries, 1.0)
                    for seq, label, fn, args in pending
                ]
                errors = [future.exception() for future in futures]  # each journals itself
        if pending:
            for (seq, *_), error in zip(pending, errors, strict=True):
                if seq not in self._journal and error is not None:
                    raise error  # not journaled: cancelled, or an output JSON cannot hold
        return [self._replayed(self._journal[seq]) for seq, *_ in planned]

    def child(self, workflow: Any, /, **args: Any) -> Any:
        """Start `workflow(**args)` as a child run (once) and return its result.

        The parent is parked (`waiting`, no thread) until the child ends; a child that
        fails or is cancelled raises `rx.StepError` here, on replay too.
        """
        from rxnb.execution import encode_args, executor_for, insert_run

        _checks.declared(workflow, (Action,), "ctx.child", "@rx.workflow")
        if self.run_id is None:  # called inline: so is the child
            return workflow.call_on(self.store, **args)
        seq, entry = self._next("child", workflow.name)
        if entry is not None and entry.finished_at is not None:
            return self._replayed(entry)
        run_id = self.run_id
        if entry is None:
            encoded = encode_args(workflow.name, workflow.arguments.bind((), args))
            pending = self._entry(seq, "child", workflow.name, None, None, clock(), done=False)

            def start(db: Writer) -> str:
                child_id = insert_run(db, workflow, encoded, clock(), None)
                db.add(JournalEntry(**as_row(pending)))
                db.add(ChildLink(child_id=child_id, parent_id=run_id, seq=seq))
                return child_id

            self.store.database.write(start)
            executor_for(self.store).register(workflow)
            self._journal[seq] = pending

        def take(db: Writer) -> tuple[bool, str | None, str | None]:
            link = db.exec(
                select(ChildLink).where(ChildLink.parent_id == run_id, ChildLink.seq == seq)
            ).first()
            child = db.get(Run, link.child_id) if link is not None else None
            if child is None:
                return True, None, f"the child run of step {seq} is gone"
            if RunStatus(child.status) not in TERMINAL:
                return False, None, None
            error = None
            if child.status != RunStatus.SUCCEEDED.value:
                error = one_line(f"child run {child.id} {child.status}: {child.error or ''}")
                error = error.rstrip(": ")
            output = child.result if error is None else None
            row = db.get(JournalEntry, (run_id, seq))
            if row is not None:
                row.output, row.error, row.finished_at = output, error, clock()
            return True, output, error

        done, output, error = self.store.database.write(take)
        if not done:
            raise self._halt(Parked("waiting", FOREVER))  # woken when the child ends (rule 4)
        finished = self._journal[seq]
        finished.output, finished.error, finished.finished_at = output, error, clock()
        return self._replayed(finished)

    def query(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a query once for this run; its JSON result is journaled."""
        from rxnb.functions import Query

        _checks.declared(fn, (Query,), "ctx.query", "@rx.query")
        seq, entry = self._next("query", fn.name)
        if entry is not None:
            return self._replayed(entry)
        started = clock()
        output = self._encode(seq, fn.name, self.store.call(fn, *args, **kwargs))
        self._record(seq, "query", fn.name, output, None, started)
        return json.loads(output)

    def mutation(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a mutation once for this run: its journal entry commits with it."""
        from rxnb.functions import Mutation, registry

        _checks.declared(fn, (Mutation,), "ctx.mutation", "@rx.mutation")
        seq, entry = self._next("mutation", fn.name)
        if entry is not None:
            return self._replayed(entry)
        started = clock()
        checked = fn.arguments.bind(args, kwargs)
        latest = registry.latest(fn)

        def body(db: Writer) -> Recorded:
            output = self._encode(seq, fn.name, latest.fn(db, **checked))
            done = self._entry(seq, "mutation", fn.name, output, None, started)
            if self.run_id is not None:
                insert_row(db, JOURNAL, as_row(done))
            return done

        done = self._journal[seq] = self.store.database.write(body)
        return json.loads(done.output or "null")

    # -- recorded values ---------------------------------------------------------------

    def now(self) -> datetime.datetime:
        """The current time (UTC), recorded: the same on every replay."""
        value = self._value("now", clock)
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)

    def random(self) -> float:
        """A random float in [0, 1), recorded."""
        return float(self._value("random", random.random))

    def uuid(self) -> str:
        """A random UUID (as text), recorded."""
        return str(self._value("uuid", lambda: str(uuid.uuid4())))

    def _value(self, name: str, make: Callable[[], Any]) -> Any:
        seq, entry = self._next("value", name)
        if entry is not None:
            return self._replayed(entry)
        started = clock()
        value = make()
        self._record(seq, "value", name, json.dumps(value), None, started)
        return value

    # -- durable sleep and events --------------------------------------------------------

    def sleep(self, duration: datetime.timedelta | float) -> None:
        """Sleep durably for `duration` (a timedelta or seconds): the run is parked
        (`sleeping`, holding no thread) and resumed by any executor when due."""
        seconds = _checks.seconds(
            duration,
            f"ctx.sleep({duration!r:.40})",
            forever="to wait until something happens use ctx.wait_for_event(name)",
        )
        self._sleep("sleep", lambda: clock() + seconds)

    def sleep_until(self, when: datetime.datetime) -> None:
        """Sleep durably until `when` (a datetime; a naive one is local time, as for
        `rx.run_at`)."""
        due = _checks.instant(when, "ctx.sleep_until")
        self._sleep("sleep_until", lambda: due)

    def _sleep(self, name: str, wake_at: Callable[[], float]) -> None:
        seq, entry = self._next("sleep", name)
        if entry is None:
            started = clock()
            due = wake_at()
            self._record(seq, "sleep", name, json.dumps(due), None, started)
        else:
            due = float(json.loads(entry.output or "0"))
        if self.run_id is None:  # called inline, not as a run: just sleep
            time.sleep(max(0.0, due - clock()))
        elif clock() < due:
            raise self._halt(Parked("sleeping", due))  # rule 4

    def wait_for_event(self, name: str, timeout: datetime.timedelta | float | None = None) -> Any:
        """The payload of the next event `name` sent to this run (`rx.send_event`), or
        None once `timeout` has passed. An event sent before this wait is kept for it.
        While waiting the run is parked (`waiting`), holding no thread."""
        if self.run_id is None:
            raise WorkflowError(
                f"wait_for_event({name!r}) needs a run to send the event to: start the "
                "workflow with .start(...) instead of calling it"
            )
        _checks.name(name, "ctx.wait_for_event")
        seconds = None
        if timeout is not None and timeout != float("inf"):
            seconds = _checks.seconds(
                timeout, f"ctx.wait_for_event({name!r}, timeout={timeout!r:.40})", forever=""
            )
        seq, entry = self._next("event", name)
        if entry is not None and entry.finished_at is not None:
            return self._replayed(entry)
        if entry is None:
            started = clock()
            deadline = FOREVER if seconds is None else started + seconds
            output = json.dumps({"deadline": deadline})
            entry = self._entry(seq, "event", name, output, None, started, done=False)
            row = as_row(entry)
            self.store.database.write(lambda db: db.add(JournalEntry(**row)))
            self._journal[seq] = entry
        deadline = float(json.loads(entry.output or "{}").get("deadline", FOREVER))
        run_id = self.run_id

        def take(db: Writer) -> tuple[bool, str | None]:
            """Consume the oldest unread event `name`, or time out, or neither."""
            event = db.exec(
                select(Event)
                .where(Event.run_id == run_id, Event.name == name, Event.consumed == False)  # noqa: E712
                .order_by(Event.id)  # type: ignore[arg-type]
            ).first()
            if event is None and clock() < deadline:
                return False, None
            payload = "null" if event is None else event.payload
            if event is not None:
                event.consumed = True
            row = db.get(JournalEntry, (run_id, seq))
            if row is not None:
                row.output, row.finished_at = payload, clock()
                row.error = None if event is not None else "timed out"
            return True, payload

        done, payload = self.store.database.write(take)
        if not done:
            raise self._halt(Parked("waiting", deadline))  # rule 4
        entry.output, entry.finished_at = payload, clock()
        return None if payload is None else json.loads(payload)

    def patched(self, name: str) -> bool:
        """True where new code runs; False for runs journaled before the patch (rule 5)."""
        _checks.name(name, "ctx.patched")
        if self._halted is not None:
            raise self._halted
        entry = self._journal.get(self._seq)
        if entry is not None and not (entry.kind == "patch" and entry.name == name):
            return False
        seq, entry = self._next("patch", name)
        if entry is None:
            self._record(seq, "patch", name, "true", None, clock())
        return True

    # -- the journal ---------------------------------------------------------------------

    def _next(self, kind: str, name: str) -> tuple[int, Recorded | None]:
        """The next sequence number and its journal entry, checked (rules 1-3)."""
        if self._halted is not None:
            raise self._halted
        seq = self._seq
        self._seq += 1
        entry = self._journal.get(seq)
        if entry is not None and (entry.kind, entry.name) != (kind, name):
            raise self._halt(
                NonDeterminismError(
                    f"step {seq} is journaled as {entry.kind} `{entry.name}`, but the code"
                    f"{'' if self.version is None else f' (version {self.version})'} now reaches "
                    f"{kind} `{name}` (it changed mid-run): keep its done steps in order, new "
                    "ones behind `if ctx.patched(...)`, or start over: "
                    f"rx.restart({self.run_id!r}, from_step={seq})"
                )
            )
        return seq, entry

    def _halt(self, exc: BaseException) -> BaseException:
        """Remember `exc` to raise again if the workflow's code swallows it."""
        self._halted = exc
        return exc

    def _replayed(self, entry: Recorded) -> Any:
        if entry.kind in ("step", "child") and entry.error is not None:
            raise StepError(f"step {entry.seq} `{entry.name}` failed: {entry.error}")
        return None if entry.output is None else json.loads(entry.output)

    def _encode(self, seq: int, name: str, value: Any) -> str:
        try:
            return json.dumps(to_jsonable(value, where=f"step {seq} `{name}`"), allow_nan=False)
        except (ResultError, TypeError, ValueError) as exc:
            raise ResultError(
                f"step {seq} `{name}` returned {type(value).__name__}, which cannot be "
                "journaled: return JSON values (dict, list, str, number, bool, None), "
                f"SQLModel rows or pydantic models ({exc})"
            ) from None

    def _entry(
        self,
        seq: int,
        kind: str,
        name: str,
        output: str | None,
        error: str | None,
        started: float,
        attempts: int = 1,
        *,
        done: bool = True,
    ) -> Recorded:
        return Recorded(
            run_id=self.run_id or "",
            seq=seq,
            name=name,
            kind=kind,
            output=output,
            error=error,
            started_at=started,
            finished_at=clock() if done else None,
            attempts=attempts,
        )

    def _record(
        self,
        seq: int,
        kind: str,
        name: str,
        output: str | None,
        error: str | None,
        started: float,
        attempts: int = 1,
        details: str | None = None,
    ) -> None:
        """Journal a completed step: one commit, through the store's Core path (rule 3);
        `details` is the traceback of `error`."""
        entry = self._entry(seq, kind, name, output, error, started, attempts)
        if self.run_id is not None:
            row = as_row(entry)
            row["traceback"] = details
            self.store.database.insert_rows(JOURNAL, [row])
        self._journal[seq] = entry

    def __repr__(self) -> str:
        return f"<rx.WorkflowContext {self.workflow} run {self.run_id} at step {self._seq}>"
