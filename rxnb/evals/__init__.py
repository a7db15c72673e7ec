"""The evals layer: cases x a task x scorers x models, run as background runs into
rxnb's own tables (`rx_evals`, `rx_eval_results`), shown as a live grid with a summary
row per model; re-runs answered from the LLM cache cost nothing.

    report = rx.evals.run(cases, "Answer briefly: {input}", scorers=[exact, judge],
                          models=["openai/gpt-4o-mini", "rxnb/echo"])

It comes after the widgets layer (its report displays as a grid widget) and is
imported on first use (`rx.evals`).
"""

from rxnb.evals._grid import eval_grid, grid, summarize
from rxnb.evals._model import Eval, EvalResult
from rxnb.evals._run import QUEUE, Report, eval_case, run
from rxnb.evals._scorers import Judge, judge, parse_score

__all__ = [
    "QUEUE",
    "Eval",
    "EvalResult",
    "Judge",
    "Report",
    "eval_case",
    "eval_grid",
    "grid",
    "judge",
    "parse_score",
    "run",
    "summarize",
]
