"""What a run stores of its arguments: JSON, checked before anything is written.

Runs keep their arguments in `rx_runs`, where every notebook and worker sharing the
store can read them: an argument named like a secret is refused, and a value JSON
cannot hold is refused with what to pass instead.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from rxnb.errors import ArgumentError, ResultError
from rxnb.reactive import to_jsonable

SECRET_ARGUMENT = re.compile(
    r"(^|_)((api|secret|private|access|openai|anthropic)_?key|secret|password|passwd|token"
    r"|access_token|credentials?|authorization)$",
    re.IGNORECASE,
)
"""Argument names a run refuses to store a (non-empty str) value for."""


def takes_context(fn: Callable[..., Any]) -> bool:
    """Whether `fn` takes a positional first parameter (its context); True when the
    signature cannot be read, so that the functions layer says what is wrong."""
    if not callable(fn):
        return True
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    return bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def encode_args(function: str, checked: Mapping[str, Any]) -> str:
    """The checked arguments of a run of `function` as the JSON it stores, or
    ArgumentError naming the one that cannot be stored."""
    encoded = {}
    for name, value in checked.items():
        if SECRET_ARGUMENT.search(name) and isinstance(value, str) and value:
            raise ArgumentError(
                f"action `{function}`: argument `{name}` looks like a secret, and a run "
                "stores its arguments in the store, where every notebook and worker can read "
                "them; read the secret inside the action instead (e.g. os.environ[...])"
            )
        try:
            encoded[name] = to_jsonable(value, where=name)
        except ResultError:
            raise ArgumentError(
                f"action `{function}`: argument `{name}` is a {type(value).__name__} "
                f"({value!r:.60}), which a run cannot store; runs keep their arguments as "
                "JSON: pass str, int, float, bool, None, lists, dicts or pydantic models "
                "(or an id to look the object up inside the action)"
            ) from None
    return json.dumps(encoded)
