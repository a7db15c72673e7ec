"""The tables of evals: `rx_evals` (one eval: its task, scorers, models, cases) and
`rx_eval_results` (one case answered by one model, scored: a cell of the grid)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from rxnb.store import own_table


class Eval(SQLModel, table=True):
    """One `rx.evals.run`: what was asked of which models, and how it is scored."""

    __tablename__ = "rx_evals"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    name: str
    task: str
    """What answers each case, in words: `template: ...`, `function: module.name`,
    `agent: name`."""
    template: str | None = None
    """A prompt template's text (`{input}`, or a dict input's keys): such an eval can be
    run again from the store alone."""
    scorers: str
    """JSON list: `{"name", "kind": "function"}` or `{"name", "kind": "judge",
    "rubric", "model", "parameters"}`."""
    models: str
    """JSON list of model names (`[null]`: a function task that picks its own)."""
    parameters: str = "{}"
    """JSON: litellm parameters for the task's generations (no keys)."""
    cache: bool | None = True
    """Whether generations may be answered from rxnb's LLM cache (None: as configured)."""
    created_at: float


class EvalResult(SQLModel, table=True):
    """One case answered by one model, and its scores: a cell of the grid."""

    __tablename__ = "rx_eval_results"
    __table_args__ = own_table()

    id: int | None = Field(default=None, primary_key=True)
    eval_id: str = Field(index=True)
    case_index: int
    model: str | None = None
    input: str
    """JSON: the case's input."""
    expected: str | None = None
    """JSON: the case's expected output, if it has one."""
    output: str = ""
    """The task's answer as text (a template's streams in)."""
    status: str = "pending"
    """pending | waiting | streaming | scoring | done | failed | cancelled."""
    scores: str | None = None
    """JSON `{scorer: number or null}` (null: the scorer failed; see `notes`)."""
    notes: str | None = None
    """JSON `{scorer: why}`: a judge's reason, a scorer's error."""
    tokens: int | None = None
    cost: float | None = None
    """What the task and the judges cost for this cell (0 when answered from the cache)."""
    error: str | None = None
    """Why the task failed: one line."""
    run_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
