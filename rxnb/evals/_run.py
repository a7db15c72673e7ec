"""`rx.evals.run`: cases x a task x scorers x models, as runs filling a stored grid.

    def exact(output, expected):
        return output.strip() == expected

    report = rx.evals.run(
        [{"input": "2+2", "expected": "4"}, ("3+3", "6")],
        "Answer with the number only: {input}",
        scorers=[exact, rx.evals.judge("Is the answer right?", model="openai/gpt-4o-mini")],
        models=["openai/gpt-4o-mini", "rxnb/echo"],
    )
    report                 # a live grid: a row per case, a column per model, a summary row
    report.summary(60)     # per model: mean scores, cost, failures

Rules:

1. `run` writes, in one transaction, the eval (`rx_evals`: task, scorers, models,
   parameters), one `rx_eval_results` row per case x model (status `pending`), and one
   run per row (`eval_case`), in the queue `rxnb.evals` (at most `concurrency` at once,
   in all processes). Persist first: the grid is there before any model answers.
2. A task is a prompt template (a str: `{input}`, or a dict input's keys), whose
   answer streams into the row's `output` (`rx.llm.stream_into`); a function
   `(input, model) -> output` (or with a `ctx` parameter, the run's ActionContext, for
   functions that call `rx.llm.stream(ctx, ...)`); or an `rx.Agent`, sent each input in
   a thread of its own, its reply the output (an agent answers with its own model).
3. Then each scorer grades the output: a function `(output, expected) -> float | bool`
   (an error is that score's null, the reason kept in `notes`), or a judge
   (`rx.evals.judge`). The row's cost and tokens are its run's: the task's
   generations and the judges', 0 for answers from the LLM cache.
4. A failing task fails its row (the error as one line) and its run only; the other
   rows go on.
5. `cache=True` (the default: re-running an eval is the point) lets the task's and the
   judges' generations be answered from rxnb's LLM cache, so a re-run with the same
   cases, prompt and models costs nothing and sends no request.
6. A template task and judges are stored whole: any process with `rxnb.evals`
   imported can run them. Functions, function scorers and agents live in the process
   that called `run`; a run of such an eval picked up by another process (after a
   kernel restart) fails, saying to call `rx.evals.run` again (cached calls cost
   nothing).
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rxnb.agents import Agent
from rxnb.errors import ArgumentError, Cancelled, RxnbError
from rxnb.evals._model import Eval, EvalResult
from rxnb.evals._scorers import Judge, run_judge, run_scorer, scorer_name
from rxnb.execution import ActionContext, Queue, Run, RunHandle, action, error_line
from rxnb.llm import Usage, check_parameters, stream_into
from rxnb.reactive import Store, current_store

QUEUE = "rxnb.evals"
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class _Plan:
    """What of an eval lives in this process only (rule 6)."""

    task: Any
    scorers: dict[str, Any]


_PLANS: dict[str, _Plan] = {}
_PLANS_LOCK = threading.Lock()


@action(queue=Queue(QUEUE, concurrency=DEFAULT_CONCURRENCY))  # type: ignore[untyped-decorator]
def eval_case(ctx: ActionContext, result_id: int) -> None:
    """Answer and score one case for one model (rules 2-4)."""
    row, ev = ctx.store.database.read(lambda db: _row_and_eval(db, result_id))[0]
    if row is None or ev is None:
        raise RxnbError(f"rx.evals: no eval result {result_id}; it was deleted")
    plan = _PLANS.get(ev.id)
    scorers: list[dict[str, Any]] = json.loads(ev.scorers)
    if plan is None and (ev.template is None or any(s["kind"] != "judge" for s in scorers)):
        raise RxnbError(  # rule 6
            f"rx.evals: eval {ev.name!r} has a function or an agent that lived in the process "
            "that started it, which is gone; call rx.evals.run again (cached calls cost nothing)"
        )
    _update(ctx, result_id, started_at=time.time(), finished_at=None, error=None)
    case_input, expected = json.loads(row.input), _loads(row.expected)
    try:
        output = _answer(ctx, ev, row, plan, case_input)
    except Cancelled:
        _finish(ctx, result_id, status="cancelled")
        raise
    except Exception as exc:  # rule 4
        _finish(ctx, result_id, status="failed", error=error_line(exc, where=False))
        raise
    _update(ctx, result_id, status="scoring")
    scores: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for described in scorers:
        name = described["name"]
        if described["kind"] == "judge":
            try:
                scores[name], why = run_judge(
                    ctx, described, case_input, _text(output), expected, ev.cache
                )
            except Cancelled:
                _finish(ctx, result_id, status="cancelled")
                raise
            except Exception as exc:
                scores[name], why = None, error_line(exc, where=False)
        else:
            assert plan is not None
            scores[name], why = run_scorer(plan.scorers[name], output, expected, name)
        if why:
            notes[name] = why
    _finish(ctx, result_id, status="done", scores=json.dumps(scores), notes=json.dumps(notes))


def _answer(
    ctx: ActionContext, ev: Eval, row: EvalResult, plan: _Plan | None, case_input: Any
) -> Any:
    """The task's output for one case (rule 2)."""
    if ev.template is not None:
        assert row.model is not None
        return stream_into(
            ctx,
            EvalResult,
            row.id,
            "output",
            model=row.model,
            messages=[{"role": "user", "content": _fill(ev.template, case_input)}],
            usage=Usage(),
            **json.loads(ev.parameters),
            cache=ev.cache,
        )
    assert plan is not None
    task = plan.task
    if isinstance(task, Agent):
        thread = f"rx.evals:{ev.id}:{row.case_index}"
        text = case_input if isinstance(case_input, str) else json.dumps(case_input)
        output = task.send(thread, text, store=ctx.store).result()
    else:
        takes_ctx = "ctx" in inspect.signature(task).parameters
        output = task(case_input, row.model, ctx=ctx) if takes_ctx else task(case_input, row.model)
    assert row.id is not None
    _update(ctx, row.id, output=_text(output))
    return output


def _fill(template: str, case_input: Any) -> str:
    try:
        if isinstance(case_input, dict):
            return template.format(**case_input, input=case_input)
        return template.format(input=case_input)
    except (KeyError, IndexError, ValueError) as exc:
        raise ArgumentError(
            f"rx.evals: the task's template {template[:60]!r} cannot be filled from the "
            f"input {case_input!r} ({type(exc).__name__}: {exc}); name the input's keys, "
            "or {input}, and double {{ }} literal braces"
        ) from None


def _text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _row_and_eval(db: Any, result_id: int) -> tuple[Any, Any]:
    row = db.get(EvalResult, result_id)
    return row, None if row is None else db.get(Eval, row.eval_id)


def _update(ctx: ActionContext, result_id: int, **values: Any) -> None:
    def body(db: Any) -> None:
        row = db.get(EvalResult, result_id)
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)

    ctx.store.database.write(body)


def _finish(ctx: ActionContext, result_id: int, **values: Any) -> None:
    """The row's end, with its run's usage and cost so far (rule 3)."""

    def body(db: Any) -> None:
        row = db.get(EvalResult, result_id)
        run = db.get(Run, ctx.run_id) if ctx.run_id is not None else None
        if row is None:
            return
        for name, value in values.items():
            setattr(row, name, value)
        row.finished_at = time.time()
        if run is not None:
            row.cost = run.cost
            usage = json.loads(run.usage) if run.usage else {}
            row.tokens = usage.get("total_tokens")

    ctx.store.database.write(body)


def _cases(cases: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Cases as (input, expected): dicts with `input` (and `expected`), or pairs."""
    if isinstance(cases, str | bytes) or not isinstance(cases, Sequence) or not cases:  # type: ignore[redundant-expr]
        raise ArgumentError(
            f"rx.evals.run: cases={cases!r}; pass a list of {{'input': ..., 'expected': ...}} "
            "dicts or (input, expected) pairs"
        )
    out = []
    for i, case in enumerate(cases):
        if isinstance(case, dict) and "input" in case:
            out.append((case["input"], case.get("expected")))
        elif isinstance(case, tuple | list) and len(case) == 2:
            out.append((case[0], case[1]))
        else:
            raise ArgumentError(
                f"rx.evals.run: case {i} is {case!r}; give it as {{'input': ..., "
                "'expected': ...}} or an (input, expected) pair"
            )
        try:
            json.dumps(out[-1])
        except TypeError:
            raise ArgumentError(
                f"rx.evals.run: case {i} is not JSON ({case!r}); cases are stored as JSON"
            ) from None
    return out


def _describe_task(task: Any, models: list[str | None]) -> str:
    if isinstance(task, str):
        if None in models:
            raise ArgumentError("rx.evals.run: a prompt template needs models=[...] to ask")
        return f"template: {task[:80]}"
    if isinstance(task, Agent):
        if models not in ([None], [task.model]):
            raise ArgumentError(
                f"rx.evals.run: the agent {task.name!r} answers with its own model "
                f"({task.model}); leave models= out, or wrap it in a function per model"
            )
        return f"agent: {task.name}"
    if callable(task):
        return f"function: {getattr(task, '__module__', '?')}.{getattr(task, '__qualname__', task)}"
    raise ArgumentError(
        f"rx.evals.run: task={task!r}; pass a prompt template (str), a function "
        "(input, model) -> output, or an rx.Agent"
    )


class Report:
    """An eval that shows itself as its live grid (a row per case, a column per model,
    a summary row per model); `results()`, `summary()` and `wait()` read the store."""

    def __init__(
        self, eval_id: str, store: Store, rerun: Callable[[], Report] | None = None
    ) -> None:
        self.id = eval_id
        self.store = store
        self._rerun = rerun

    def __repr__(self) -> str:
        return f"<rx.evals.Report {self.id}: {self.summary()}>"

    def results(self) -> list[EvalResult]:
        """The grid's rows as stored now, by case then model."""
        from sqlmodel import select

        def read(db: Any) -> list[EvalResult]:
            statement = (
                select(EvalResult)
                .where(EvalResult.eval_id == self.id)
                .order_by(EvalResult.case_index, EvalResult.id)  # type: ignore[arg-type]
            )
            return list(db.exec(statement).all())

        return self.store.database.read(read)[0]

    def wait(self, timeout: float | None = None) -> list[EvalResult]:
        """Wait until every row's run has ended; the rows then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for row in self.results():
            if row.run_id is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                RunHandle(row.run_id, self.store).wait(left)
        return self.results()

    def summary(self, timeout: float | None = 0) -> dict[str | None, dict[str, Any]]:
        """Per model: cases done, failures, mean of each score, total cost (after
        waiting up to `timeout` seconds for the rows still going; 0: as they are)."""
        from rxnb.evals._grid import summarize

        rows = self.wait(timeout) if timeout else self.results()
        return summarize(rows)

    def rerun(self) -> Report:
        """The same eval run again, as a new eval (rule 5: cached calls cost nothing)."""
        if self._rerun is None:
            raise RxnbError("rx.evals: this report was not made by rx.evals.run in this process")
        return self._rerun()

    def widget(self) -> Any:
        from rxnb.evals._grid import grid

        return grid(self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())  # type: ignore[no-untyped-call]


def run(
    cases: Sequence[Any],
    task: Any,
    *,
    scorers: Sequence[Any] = (),
    models: Sequence[str] | None = None,
    name: str | None = None,
    cache: bool | None = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    store: Store | None = None,
    **litellm_kwargs: Any,
) -> Report:
    """Run every case through `task` with every model, score each output; a `Report`
    at once, which displays as the live grid (rules 1-6 of this module).

    `litellm_kwargs` go to a template task's generations, stored with the eval (keys
    excepted). `concurrency`: at most this many cases at once, in all processes.
    """
    pairs = _cases(cases)
    names: list[str | None] = [None] if models is None else list(models)
    if models is not None and (
        isinstance(models, str) or not names or len(set(names)) != len(names)
    ):
        raise ArgumentError(f"rx.evals.run: models={models!r}; pass a list of distinct model names")
    described = _describe_task(task, names)
    if isinstance(task, Agent) and names == [None]:
        names = [task.model]
    if cache is not None and not isinstance(cache, bool):
        raise ArgumentError(f"rx.evals.run: cache={cache!r}; pass True, False or None")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:  # type: ignore[redundant-expr]
        raise ArgumentError(f"rx.evals.run: concurrency={concurrency!r}; pass a whole number >= 1")
    by_name: dict[str, Any] = {}
    for scorer in scorers:
        if not isinstance(scorer, Judge) and not callable(scorer):
            raise ArgumentError(f"rx.evals.run: scorer {scorer!r} is not a function or a judge")
        key = scorer_name(scorer)
        if key in by_name:
            raise ArgumentError(f"rx.evals.run: two scorers are named {key!r}; name them apart")
        by_name[key] = scorer
    parameters = check_parameters(litellm_kwargs, "rx.evals.run")
    for scorer in by_name.values():
        if isinstance(scorer, Judge):
            check_parameters(scorer.parameters, "rx.evals.judge")
    store = store if store is not None else current_store()
    Queue(QUEUE, concurrency=concurrency)
    eval_id = uuid.uuid4().hex
    with _PLANS_LOCK:
        _PLANS[eval_id] = _Plan(None if isinstance(task, str) else task, by_name)

    def body(db: Any) -> None:
        db.add(
            Eval(
                id=eval_id,
                name=name or described,
                task=described,
                template=task if isinstance(task, str) else None,
                scorers=json.dumps(
                    [
                        s.describe() if isinstance(s, Judge) else {"name": n, "kind": "function"}
                        for n, s in by_name.items()
                    ]
                ),
                models=json.dumps(names),
                parameters=parameters,
                cache=cache,
                created_at=time.time(),
            )
        )
        for index, (case_input, expected) in enumerate(pairs):
            for model in names:
                row = EvalResult(
                    eval_id=eval_id,
                    case_index=index,
                    model=model,
                    input=json.dumps(case_input),
                    expected=None if expected is None else json.dumps(expected),
                )
                db.add(row)
                db.flush()
                row.run_id = db.schedule(eval_case, result_id=row.id)

    store.database.write(body)

    def again() -> Report:
        return run(
            cases,
            task,
            scorers=scorers,
            models=models,
            name=name,
            cache=cache,
            concurrency=concurrency,
            store=store,
            **litellm_kwargs,
        )

    return Report(eval_id, store, again)
