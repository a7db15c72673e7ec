"""Scorers: plain functions `(output, expected) -> float | bool`, and `judge(rubric,
model=...)`, an LLM that reads the rubric, the input, the output and the expected
answer and gives a score.

A judge asks its model to end with a line `SCORE: <number from 0 to 1>` (and a line
`REASON: ...` before it); the last such line is the score, clamped to 0..1. A reply
without one scores null, the reply's start kept as the reason, so a grid shows why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rxnb.errors import ArgumentError
from rxnb.execution import ActionContext, error_line
from rxnb.llm import Usage, stream

Scorer = Callable[[Any, Any], "float | bool | None"]

_SCORE = re.compile(r"^\s*\**\s*score\s*\**\s*[:=]\s*\**\s*(-?[0-9]*\.?[0-9]+)", re.I | re.M)
_REASON = re.compile(r"^\s*\**\s*reason\s*\**\s*[:=]\s*(.+)$", re.I | re.M)

PROMPT = """You grade an answer against a rubric.

Rubric:
{rubric}

Input:
{input}

Expected answer:
{expected}

Answer to grade:
{output}

Reply with one line `REASON: <why, one sentence>` and then one line
`SCORE: <a number from 0 to 1>`."""


@dataclass(frozen=True)
class Judge:
    """An LLM judge (`rx.evals.judge`): its rubric, model, name and litellm parameters."""

    rubric: str
    model: str
    name: str = "judge"
    parameters: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "judge",
            "rubric": self.rubric,
            "model": self.model,
            "parameters": self.parameters,
        }


def judge(rubric: str, *, model: str, name: str = "judge", **litellm_kwargs: Any) -> Judge:
    """A scorer that asks `model` to grade each output by `rubric` (0 to 1).

    `litellm_kwargs` (temperature, api_base, ...) are stored with the eval, keys
    excepted: give those through the provider's environment variable.
    """
    if not isinstance(rubric, str) or not rubric.strip():  # type: ignore[redundant-expr]
        raise ArgumentError(f"rx.evals.judge: rubric={rubric!r}; say what a good answer is")
    if not isinstance(model, str) or not model.strip():  # type: ignore[redundant-expr]
        raise ArgumentError(f"rx.evals.judge: model={model!r}; name the judge's model")
    return Judge(rubric, model, name, dict(litellm_kwargs))


def scorer_name(scorer: Any) -> str:
    if isinstance(scorer, Judge):
        return scorer.name
    name = getattr(scorer, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ArgumentError(
            f"rx.evals: the scorer {scorer!r} has no name for the grid's column; "
            "define it with def, or give it a __name__"
        )
    return name


def parse_score(reply: str) -> tuple[float | None, str]:
    """A judge's reply as (score clamped to 0..1, or None; its reason)."""
    scores = _SCORE.findall(reply)
    reasons = _REASON.findall(reply)
    reason = reasons[-1].strip() if reasons else reply.strip()[:200]
    if not scores:
        return None, f"no SCORE line in the judge's reply: {reply.strip()[:160]!r}"
    return max(0.0, min(1.0, float(scores[-1]))), reason


def as_number(value: Any, name: str) -> float | None:
    """A scorer's value as a number (a bool as 1 or 0); ArgumentError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise ArgumentError(
        f"scorer {name} returned {value!r}; return a number or a bool (None: not scored)"
    )


def run_judge(
    ctx: ActionContext,
    described: dict[str, Any],
    case_input: Any,
    output: str,
    expected: Any,
    cache: bool | None,
) -> tuple[float | None, str]:
    """Ask the judge `described` (as stored in `Eval.scorers`) to grade one output."""
    prompt = PROMPT.format(
        rubric=described["rubric"],
        input=_shown(case_input),
        expected="(none given)" if expected is None else _shown(expected),
        output=output,
    )
    usage = Usage()
    text = "".join(
        stream(
            ctx,
            model=described["model"],
            messages=[{"role": "user", "content": prompt}],
            usage=usage,
            **described.get("parameters", {}),
            cache=cache,
        )
    )
    return parse_score(text)


def run_scorer(scorer: Scorer, output: Any, expected: Any, name: str) -> tuple[float | None, str]:
    """A function scorer's number, or None and its error as one line."""
    try:
        return as_number(scorer(output, expected), name), ""
    except Exception as exc:
        return None, error_line(exc, where=False)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
