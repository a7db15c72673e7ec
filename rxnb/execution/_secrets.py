"""Secrets kept out of the store when an error message quotes them.

A run's error, a journaled step's error and a generation's error are stored, and shown
in every window's runs view, chat and timeline. An exception may quote a secret: a
provider that refuses a key quotes it back ("Incorrect API key provided: sk-..."), and
litellm puts that text in its exception; a tool call's HTTP error may quote a URL with
a key in it. So every secret the process knows of is replaced by `[redacted]` before
an error is stored: the values of secret-looking environment variables
(`OPENAI_API_KEY`, where litellm reads keys from), and for a completion, those of its
secret-looking arguments (`api_key=`, `extra_headers={"Authorization": ...}`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any

from rxnb.errors import RxnbError

SECRET_NAME = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
"""Names (of environment variables, arguments, headers) whose values are kept hidden."""
MIN_LENGTH = 8
"""Shorter values (`"1"`, `"true"`) are settings, not keys, and would blank out words."""
REDACTED = "[redacted]"


def secrets_of(kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """The secret values a completion with `kwargs` may send, longest first (so that
    a key containing another is replaced whole)."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str):
            found.update(p for p in (value, *value.split()) if len(p) >= MIN_LENGTH)

    for name, value in (kwargs or {}).items():
        if isinstance(value, Mapping):  # extra_headers=, headers=
            for key, item in value.items():
                if isinstance(key, str) and SECRET_NAME.search(key):
                    add(item)
        elif SECRET_NAME.search(name):
            add(value)
    for name, value in os.environ.items():
        if SECRET_NAME.search(name):
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
        item.args = tuple(mask(a, secrets) for a in item.args)
        for name in ("message", "litellm_debug_info"):
            value = getattr(item, name, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(item, name, mask(value, secrets))
        wrapped = getattr(item, "original_exception", None)
        todo += [item.__cause__, item.__context__]
        if isinstance(wrapped, BaseException):
            todo.append(wrapped)
    if any(s in _text(exc) for s in secrets):
        return RxnbError(mask(_text(exc), secrets))
    return exc


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc} {exc!r}"


def mask(value: Any, secrets: list[str]) -> Any:
    """`value` with each of `secrets` replaced, if it is a str."""
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, REDACTED)
    return value


def scrub(text: str) -> str:
    """`text` (an error about to be stored) with the environment's secrets replaced."""
    secrets = secrets_of()
    return mask(text, secrets) if any(s in text for s in secrets) else text
