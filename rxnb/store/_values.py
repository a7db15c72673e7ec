"""Column values as the invalidation index sees them.

Key-level invalidation compares values in Python that the database compares in SQL.
That is only sound where both agree, so every value is first given a *kind*, and a
column whose type has no kind, or a value whose kind differs from its column's, is
treated as unknown: it matches every predicate (rule "unknown never misses").
"""

from __future__ import annotations

import decimal
from typing import Any, Final

import sqlalchemy as sa


class _Unknown:
    """A value that could not be seen (not loaded, or of a kind SQL may coerce)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

NUMBER: Final = "number"
STRING: Final = "string"

# Longest string a change-log row image carries; longer values (LLM text) are left out
# of the image and read as UNKNOWN by other processes, which keeps log rows small.
MAX_LOGGED_STRING: Final = 256


def column_kind(column: sa.ColumnElement[Any]) -> str | None:
    """The kind of values `column` holds, or None if rxnb does not index it.

    Enums, JSON, dates and collated strings are left out: their SQL comparison does
    not follow Python's.
    """
    type_ = _plain_type(column.type)
    if type_ is None:
        return None
    if isinstance(type_, sa.Enum | sa.JSON | sa.ARRAY):
        return None
    if isinstance(type_, sa.Boolean | sa.Integer | sa.Float | sa.Numeric):
        return NUMBER
    if isinstance(type_, sa.String) and getattr(type_, "collation", None) is None:
        return STRING
    return None


def _plain_type(type_: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any] | None:
    """The type SQL compares, seen through decorators that do not change values."""
    while isinstance(type_, sa.types.TypeDecorator):
        cls = type(type_)
        if (
            cls.process_bind_param is not sa.types.TypeDecorator.process_bind_param
            or cls.bind_processor is not sa.types.TypeDecorator.bind_processor
        ):
            return None  # it rewrites values on the way in: Python and SQL may disagree
        type_ = type_.impl_instance
    return type_


def value_kind(value: object) -> str | None:
    """The kind of a Python value, or None for any other type."""
    if isinstance(value, bool | int | float | decimal.Decimal):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return None


def normalize(value: object, kind: str | None) -> object:
    """The value as the index compares it: itself, None for NULL, or UNKNOWN."""
    if value is None or value is UNKNOWN:
        return value
    if kind is None or value_kind(value) != kind:
        return UNKNOWN
    return value


def loggable(value: object) -> bool:
    """Whether a normalized value is small and plain enough for a change-log image."""
    if value is None:
        return True
    if isinstance(value, str):
        return len(value) <= MAX_LOGGED_STRING
    return isinstance(value, bool | int | float)
