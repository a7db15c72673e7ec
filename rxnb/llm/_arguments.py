"""The arguments of `rx.llm.stream` and `stream_into`, checked before anything is
asked of a provider, each refusal naming what to pass instead."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from rxnb.errors import ArgumentError, RxnbError


def check_messages(messages: Any) -> None:
    """A list of messages (dicts with a role, or litellm's Message objects), or an
    ArgumentError that shows the shape."""
    if not isinstance(messages, list) or not all(
        isinstance(m, Mapping) or hasattr(m, "role") for m in messages
    ):
        raise ArgumentError(
            f"rx.llm: messages={messages!r:.80} is not a list of messages; pass e.g. "
            "[{'role': 'user', 'content': 'Hello'}]"
        )


def check_target(model_class: Any, field: str) -> None:
    """A table class with a text field `field`, or an error that says what to pass."""
    mapper = sa.inspect(model_class, raiseerr=False)
    columns = getattr(model_class, "model_fields", None)
    if not isinstance(mapper, sa.orm.Mapper) or not isinstance(columns, dict):
        raise RxnbError(
            f"stream_into: {model_class!r} is not a table; pass a SQLModel class declared "
            "with table=True"
        )
    if field not in columns:
        raise RxnbError(
            f"stream_into: {model_class.__name__} has no field {field!r}; pass field= "
            f"one of {', '.join(columns)}"
        )
    if field == "status":
        raise RxnbError(
            f"stream_into: {model_class.__name__}.status holds the row's status "
            "(streaming, done, ...), which would overwrite the text; stream into another "
            "field, e.g. field='content'"
        )
    hint = columns[field].annotation
    options = typing.get_args(hint) or (hint,)
    if not any(t is Any or (isinstance(t, type) and issubclass(t, str)) for t in options):
        text_fields = [
            n
            for n, f in columns.items()
            if any(t is str for t in (typing.get_args(f.annotation) or (f.annotation,)))
        ]
        raise RxnbError(
            f"stream_into: {model_class.__name__}.{field} holds {getattr(hint, '__name__', hint)}, "
            f"not text; stream into a str field ({', '.join(text_fields) or 'add one'})"
        )


def check_row_id(model_class: Any, row_id: Any) -> Any:
    """`row_id` as the type of `model_class`'s primary key (`"5"` as 5 for an int key),
    or an ArgumentError naming that type (PostgreSQL would only say "invalid input
    syntax")."""
    mapper = sa.inspect(model_class)
    if len(mapper.primary_key) != 1:
        return row_id  # a composite key: the lookup says what is wrong
    name = mapper.get_property_by_column(mapper.primary_key[0]).key
    hint = model_class.model_fields[name].annotation if name in model_class.model_fields else Any
    try:
        adapter = TypeAdapter(hint)
    except Exception:  # a key type pydantic cannot check: the lookup says what is wrong
        return row_id
    try:
        value = adapter.validate_python(row_id)
    except ValidationError:
        value = None
    if value is None:
        types = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
        shown = " | ".join(getattr(t, "__name__", None) or str(t) for t in types)
        raise ArgumentError(
            f"stream_into: {row_id!r} is not a {model_class.__name__} id ({name}: {shown}); "
            f"pass the {name} of the row to stream into"
        )
    return value


def check_throttle(throttle_ms: Any) -> None:
    if (
        isinstance(throttle_ms, bool)
        or not isinstance(throttle_ms, int | float)
        or not math.isfinite(throttle_ms)
        or throttle_ms < 0
    ):
        raise ArgumentError(
            f"stream_into: throttle_ms={throttle_ms!r}; pass milliseconds between writes, "
            "a number >= 0 (0: write at every chunk boundary)"
        )
