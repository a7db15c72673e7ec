"""Actions that end in unusual ways (tests/execution/test_run_edges.py)."""

from __future__ import annotations

import os
import threading
from typing import Any

import rxnb as rx

release = threading.Event()


@rx.action
def ends_oddly(ctx: rx.ActionContext, kind: str) -> Any:
    if kind == "keyboard":
        raise KeyboardInterrupt("stop")
    if kind == "exit":
        raise SystemExit(3)
    if kind == "bytes":
        return b"\xff\xfe"
    if kind == "nan":
        return float("nan")
    if kind == "circular":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    return "fine"


@rx.action(timeout=0.2)
def never_checks(ctx: rx.ActionContext) -> str:
    release.wait(10)
    return "late"


@rx.action
def first(ctx: rx.ActionContext) -> str:
    return "first"


@rx.action
def second(ctx: rx.ActionContext) -> str:
    return "second"


@rx.action
def uses_key(
    ctx: rx.ActionContext,
    api_key: str = "",
    openai_key: str = "",
    secret_key: str = "",
    private_key: str = "",
    authorization: str = "",
    max_tokens: str = "",
) -> None:
    return None


@rx.action
def quotes_the_environment(ctx: rx.ActionContext, name: str) -> None:
    raise PermissionError(f"401 for https://api.example.com/v1?key={os.environ[name]}")
