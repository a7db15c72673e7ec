"""Keys kept out of the store when a provider's error quotes them.

A provider that refuses a key may quote it back ("Incorrect API key provided:
sk-..."), and litellm puts that text in its exception. The exception's message is
stored on the run and the generation, and shown in every window's chat and runs
view, so before it leaves `rx.llm` every secret the completion could have sent is
replaced in it: the values of secret-looking litellm arguments (`api_key=`,
`extra_headers={"Authorization": ...}`) and of secret-looking environment variables
(`OPENAI_API_KEY`, where litellm reads keys from).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any

from rxnb.errors import RxnbError

_SECRET_NAME = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
MIN_LENGTH = 8
"""Shorter values (`"1"`, `"true"`) are settings, not keys, and would blank out words."""
REDACTED = "[redacted]"


def secrets_of(kwargs: Mapping[str, Any]) -> list[str]:
    """The secret values a completion with `kwargs` may send, longest first (so that
    a key containing another is replaced whole)."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str):
            found.update(p for p in (value, *value.split()) if len(p) >= MIN_LENGTH)

    for name, value in kwargs.items():
        if isinstance(value, Mapping):  # extra_headers=, headers=
            for key, item in value.items():
                if isinstance(key, str) and _SECRET_NAME.search(key):
                    add(item)
        elif _SECRET_NAME.search(name):
            add(value)
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name):
            add(value)
    return sorted(found, key=len, reverse=True)


def redact(exc: Exception, secrets: list[str]) -> Exception:
    """`exc` with every secret in its message replaced by `REDACTED`.

    In place, so that its type stays (a caller may catch `litellm.RateLimitError`),
    along with the exceptions it wraps; a RxnbError with the replaced message if its
    text still holds a secret after that.
    """
    if not any(s in _text(exc) for s in secrets):
        return exc
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        item.args = tuple(_mask(a, secrets) for a in item.args)
        for name in ("message", "litellm_debug_info"):
            value = getattr(item, name, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(item, name, _mask(value, secrets))
        wrapped = getattr(item, "original_exception", None)
        todo += [item.__cause__, item.__context__]
        if isinstance(wrapped, BaseException):
            todo.append(wrapped)
    if any(s in _text(exc) for s in secrets):
        return RxnbError(_mask(_text(exc), secrets))
    return exc


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc} {exc!r}"


def _mask(value: Any, secrets: list[str]) -> Any:
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, REDACTED)
    return value
