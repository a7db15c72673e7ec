"""Results as plain JSON values: what subscribers compare and widgets receive."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from rxnb.errors import ResultError

JSONValue = Any
"""None, bool, int, float, str, list of JSONValue, or dict of str to JSONValue."""

_SCALARS = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
    enum.Enum,
    bytes,
)


def to_jsonable(value: object, *, where: str) -> JSONValue:
    """`value` as JSON values, or ResultError naming `where` and the fix."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v, where=where) for v in value]
    if isinstance(value, dict):
        out: dict[str, JSONValue] = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool):
                raise ResultError(
                    f"{where} returned a dict with a {type(k).__name__} key ({k!r}); use str keys"
                )
            out[str(k)] = to_jsonable(v, where=where)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # rx.Page
        return {
            f.name: to_jsonable(getattr(value, f.name), where=where)
            for f in dataclasses.fields(value)
        }
    if isinstance(value, sa.Row):
        return {k: to_jsonable(v, where=where) for k, v in value._mapping.items()}
    if isinstance(value, _SCALARS):
        return to_jsonable_python(value)
    if type(value).__module__.startswith("pandas") and hasattr(value, "to_dict"):
        return to_jsonable(to_jsonable_python(value.to_dict(orient="records")), where=where)
    text = repr(value)
    raise ResultError(
        f"{where} returned a {type(value).__name__} ({text[:60]}{'…' if len(text) > 60 else ''})"
        ", which rxnb cannot serialize; return SQLModel rows, pydantic models, or JSON values "
        "(str, int, float, bool, None, list, dict)"
    )
