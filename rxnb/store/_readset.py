"""What a query read: tables, and where the predicate is simple, the keys or ranges.

`analyze_statement` turns one executed SQL statement into `TableRead`s. The rules, cited
in the code by number:

1. A statement rxnb cannot see into (text SQL, a textual select) reads *everything*.
2. Every table named anywhere in the statement is read.
3. Key-level precision applies only to a statement over exactly one table, with no
   alias, subquery or CTE (a table seen twice may be read through either copy).
4. Of its WHERE clause, only top-level conjuncts of the form ``column OP literal``
   narrow the read, for OP in ``=``, ``IN``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``.
   Any other conjunct is ignored, which only widens the read: a row must satisfy every
   conjunct to be seen, so dropping one never misses a row.
5. A conjunct narrows only if the column has a kind (`_values.column_kind`) and every
   literal has that same kind; otherwise SQL may coerce where Python would not.
6. A row image matches a read if, for every kept conjunct, its value is UNKNOWN or
   satisfies it. NULL satisfies no comparison.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import elements, operators, selectable, visitors

from rxnb.store._values import STRING, UNKNOWN, column_kind, value_kind


@dataclass(frozen=True)
class Equals:
    """``column = v`` or ``column IN (v, ...)``."""

    column: str
    values: frozenset[Hashable]

    def admits(self, value: object) -> bool:
        if value is UNKNOWN:
            return True
        if value is None:
            return False
        try:
            return value in self.values
        except TypeError:  # unhashable image value: cannot tell
            return True


@dataclass(frozen=True)
class Range:
    """``low <(=) column <(=) high``; either bound may be absent (None)."""

    column: str
    low: Any = None
    low_inclusive: bool = True
    high: Any = None
    high_inclusive: bool = True

    def admits(self, value: object) -> bool:
        if value is UNKNOWN:
            return True
        if value is None:
            return False
        try:
            if self.low is not None:
                below = value < self.low if self.low_inclusive else value <= self.low
                if below:
                    return False
            if self.high is not None:
                above = value > self.high if self.high_inclusive else value >= self.high
                if above:
                    return False
        except TypeError:
            return True
        return True


Constraint = Equals | Range


@dataclass(frozen=True)
class TableRead:
    """Rows of `table` that satisfy every constraint (none: the whole table)."""

    table: str
    constraints: tuple[Constraint, ...] = ()

    def admits(self, image: Mapping[str, object] | None) -> bool:
        """Rule 6: whether a row image could be among the rows read."""
        if image is None:
            return False
        return all(c.admits(image.get(c.column, UNKNOWN)) for c in self.constraints)


@dataclass
class ReadSet:
    """Everything one query run read; `everything` means any write may matter."""

    everything: bool = False
    reads: set[TableRead] = field(default_factory=set)

    def add(self, reads: Iterable[TableRead]) -> None:
        self.reads.update(reads)


def analyze_statement(
    statement: object,
    params: Mapping[str, Any],
    *,
    string_ranges: bool,
) -> list[TableRead] | None:
    """The reads of one statement, or None when it may read anything (rule 1)."""
    if not isinstance(statement, sa.ClauseElement):
        return None
    tables: set[str] = set()
    single_table_form = True
    for node in visitors.iterate(statement):
        if isinstance(node, elements.TextClause | selectable.TextualSelect):
            return None  # rule 1
        if isinstance(node, selectable.TableClause):
            tables.add(node.fullname)  # rule 2
        elif isinstance(node, elements.ColumnClause) and isinstance(
            node.table, selectable.TableClause
        ):
            tables.add(node.table.fullname)  # rule 2
        elif isinstance(
            node, selectable.Alias | selectable.Subquery | selectable.CTE | selectable.Join
        ):
            single_table_form = False  # rule 3
    if len(tables) != 1 or not single_table_form:
        return [TableRead(t) for t in sorted(tables)]
    (table,) = tables
    where = getattr(statement, "whereclause", None)
    constraints = _constraints(where, table, params, string_ranges) if where is not None else []
    return [TableRead(table, tuple(constraints))]


_FLIPPED = {
    operators.eq: operators.eq,
    operators.lt: operators.gt,
    operators.le: operators.ge,
    operators.gt: operators.lt,
    operators.ge: operators.le,
}


def _conjuncts(clause: Any) -> Iterable[Any]:
    while isinstance(clause, elements.Grouping):
        clause = clause.element
    if isinstance(clause, elements.BooleanClauseList) and clause.operator is operators.and_:
        for part in clause.clauses:
            yield from _conjuncts(part)
    else:
        yield clause


def _constraints(
    where: sa.ColumnElement[Any],
    table: str,
    params: Mapping[str, Any],
    string_ranges: bool,
) -> list[Constraint]:
    found: list[Constraint] = []
    for conjunct in _conjuncts(where):
        constraint = _constraint(conjunct, table, params, string_ranges)
        if constraint is not None:  # rule 4: anything else only widens the read
            found.append(constraint)
    return found


def _constraint(
    clause: sa.ColumnElement[Any],
    table: str,
    params: Mapping[str, Any],
    string_ranges: bool,
) -> Constraint | None:
    if not isinstance(clause, elements.BinaryExpression):
        return None
    left, right, op = clause.left, clause.right, clause.operator
    if isinstance(left, elements.BindParameter) and op in _FLIPPED:
        left, right, op = right, left, _FLIPPED[op]
    if not (isinstance(left, sa.Column) and isinstance(left.table, selectable.TableClause)):
        return None
    if left.table.fullname != table:
        return None
    kind = column_kind(left)
    if kind is None:  # rule 5
        return None
    if op is operators.between_op:
        return _between(left.name, right, params, kind, string_ranges)
    if not isinstance(right, elements.BindParameter):
        return None
    resolved, value = _bind_value(right, params)
    if not resolved:
        return None
    if op is operators.in_op:
        if not isinstance(value, list | tuple | set | frozenset):
            return None
        values = [v for v in value if v is not None]  # NULL in an IN list matches nothing
        if not all(value_kind(v) == kind for v in values):  # rule 5
            return None
        return Equals(left.name, frozenset(values))
    if value is None:  # `col = NULL` is never true
        return Equals(left.name, frozenset()) if op is operators.eq else None
    if value_kind(value) != kind:  # rule 5
        return None
    if op is operators.eq:
        return Equals(left.name, frozenset([value]))
    if kind == STRING and not string_ranges:
        return None
    if op in (operators.gt, operators.ge):
        return Range(left.name, low=value, low_inclusive=op is operators.ge)
    if op in (operators.lt, operators.le):
        return Range(left.name, high=value, high_inclusive=op is operators.le)
    return None


def _between(
    column: str,
    bounds: object,
    params: Mapping[str, Any],
    kind: str,
    string_ranges: bool,
) -> Constraint | None:
    if kind == STRING and not string_ranges:
        return None
    parts = getattr(bounds, "clauses", None)
    if parts is None or len(parts) != 2:
        return None
    values = []
    for part in parts:
        if not isinstance(part, elements.BindParameter):
            return None
        resolved, value = _bind_value(part, params)
        if not resolved or value_kind(value) != kind:  # rule 5
            return None
        values.append(value)
    return Range(column, low=values[0], high=values[1])


def _bind_value(bind: elements.BindParameter[Any], params: Mapping[str, Any]) -> tuple[bool, Any]:
    """The value a bound parameter had at execution, if it can be known."""
    if bind.key in params:
        return True, params[bind.key]
    if bind.callable is not None:
        return True, bind.effective_value
    if bind.value is None and bind.required:
        return False, None
    return True, bind.value
