"""The schema check: do the database's tables match the SQLModel classes?

`plan_schema` compares without writing; `apply_plan` writes only a plan with no
problems. A table is *missing* when it was never created (it is created) or *dropped*
when `rx_tables` says rxnb created it before (a mismatch: its data is gone).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import SQLModel

from rxnb.store._changelog import tables_table
from rxnb.store._vector import Vector

OWN = "rxnb"
"""`Table.info` key of rxnb's own tables (`rx_runs`, ...): columns a newer rxnb adds to
them (nullable or with a default) are added on open, without `migrate=True`, so that
upgrading rxnb needs nothing of the user. Set it with `__table_args__ = own_table()`."""


def own_table() -> dict[str, Any]:
    """The `__table_args__` of one of rxnb's own tables (see `OWN`)."""
    return {"info": {OWN: True}}


@dataclass
class SchemaPlan:
    """What opening a store would change, and what stops it."""

    create: list[sa.Table] = field(default_factory=list)
    add_columns: list[tuple[sa.Table, sa.Column[Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataProblem:
    """A stored row that does not validate against its model."""

    table: str
    key: tuple[Any, ...]
    message: str


_FAMILIES: Sequence[tuple[type[sa.types.TypeEngine[Any]], str]] = (
    (sa.Boolean, "BOOLEAN"),
    (sa.Integer, "INTEGER"),
    (sa.Float, "FLOAT"),
    (sa.Numeric, "NUMERIC"),
    (sa.DateTime, "DATETIME"),
    (sa.Date, "DATE"),
    (sa.Time, "TIME"),
    (sa.Interval, "INTERVAL"),
    (sa.LargeBinary, "BLOB"),
    (sa.JSON, "JSON"),
    (sa.Uuid, "UUID"),
    (sa.Enum, "STRING"),
    (sa.String, "STRING"),
)


def type_family(type_: sa.types.TypeEngine[Any]) -> str:
    """A dialect-independent name for a column type, for comparison."""
    while isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance
    for cls, family in _FAMILIES:
        if isinstance(type_, cls):
            return family
    return type(type_).__name__.upper()


def _stored_family(column: sa.Column[Any], dialect: sa.Dialect) -> str | None:
    """The family the database reports for `column`'s type as this dialect stores it.

    Some types have no native form (SQLite keeps a UUID as CHAR(32)); reflection then
    reports the stored type, which is no drift.
    """
    rendered = _sql_type(column, dialect).split("(")[0].strip().upper()
    stored = getattr(dialect, "ischema_names", {}).get(rendered)
    return type_family(stored()) if isinstance(stored, type) else None


def _sql_type(column: sa.Column[Any], dialect: sa.Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot render; the family still names it
        return type_family(column.type)


def _diff_table(
    table: sa.Table, columns: Sequence[Any], pk: Iterable[str], dialect: sa.Dialect
) -> tuple[list[str], list[sa.Column[Any]]]:
    """Differences between `table` (the class) and its reflected `columns`."""
    problems: list[str] = []
    addable: list[sa.Column[Any]] = []
    reflected = {c["name"]: c for c in columns}
    cls = table.name
    for column in table.columns:
        found = reflected.get(column.name)
        if found is None:
            addable.append(column)
            continue
        want, have = type_family(column.type), type_family(found["type"])
        if isinstance(column.type, Vector) and column.type.native_schema(dialect) is not None:
            pass  # a pgvector column (settled before the plan; reflection cannot name it)
        elif have not in (want, _stored_family(column, dialect)):
            problems.append(
                f"Table `{cls}` column `{column.name}` is {have} in the database but "
                f"{want} in the class; change the field's type back, or copy the data to a "
                "new column (rxnb never changes a column's type)"
            )
        if not column.primary_key and bool(found.get("nullable", True)) != column.nullable:
            problems.append(
                f"Table `{cls}` column `{column.name}` is "
                f"{'NULL' if found.get('nullable', True) else 'NOT NULL'} in the database but "
                f"{'Optional' if column.nullable else 'required'} in the class; make the field "
                f"{'Optional' if found.get('nullable', True) else 'required'} to match"
            )
    for name, found in reflected.items():
        if name not in table.columns:
            problems.append(
                f"Table `{cls}` has column `{name}` ({found['type']}) that the class lacks; "
                "add the field back (rxnb never drops a column: drop it yourself if the data "
                "may go)"
            )
    want_pk, have_pk = [c.name for c in table.primary_key.columns], list(pk)
    if sorted(want_pk) != sorted(have_pk):
        problems.append(
            f"Table `{cls}` has primary key ({', '.join(have_pk) or 'none'}) in the database but "
            f"({', '.join(want_pk)}) in the class; rxnb cannot change a primary key"
        )
    return problems, addable


def _addable_problem(table: sa.Table, column: sa.Column[Any], dialect: sa.Dialect) -> str | None:
    default = column.default
    scalar_default = default is not None and getattr(default, "is_scalar", False)
    if column.nullable or column.server_default is not None or scalar_default:
        return None
    return (
        f"Table `{table.name}` column `{column.name}` ({_sql_type(column, dialect)}) is required "
        "and has no default, so existing rows cannot get it; make it Optional or give it a "
        "default"
    )


def plan_schema(conn: sa.Connection, tables: Sequence[sa.Table], *, migrate: bool) -> SchemaPlan:
    """Compare `tables` with the database on `conn`; write nothing."""
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    created_before: set[str] = set()
    if tables_table.name in existing:
        created_before = {r[0] for r in conn.execute(sa.select(tables_table.c.name))}
    plan = SchemaPlan()
    for table in tables:
        if table.name not in existing:
            if table.name in created_before and not migrate:
                plan.problems.append(
                    f"Table `{table.name}` was created by rxnb but is missing from the database "
                    "(dropped, or the file was replaced); its rows are gone. Restore the file, or "
                    "call rx.open(..., migrate=True) to create it again, empty"
                )
            else:
                plan.create.append(table)
            continue
        pk = inspector.get_pk_constraint(table.name).get("constrained_columns", [])
        with warnings.catch_warnings():  # pgvector's type, unknown to SQLAlchemy
            warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
            reflected = inspector.get_columns(table.name)
        problems, addable = _diff_table(table, reflected, pk, conn.dialect)
        plan.problems.extend(problems)
        for column in addable:
            if not migrate and not table.info.get(OWN):
                plan.problems.append(
                    f"Table `{table.name}` lacks column `{column.name}` "
                    f"({_sql_type(column, conn.dialect)}) that class field `{column.key}` "
                    "declares; call rx.open(..., migrate=True) to add it, or remove the field"
                )
                continue
            refusal = _addable_problem(table, column, conn.dialect)
            if refusal is not None:
                plan.problems.append(refusal)
            else:
                plan.add_columns.append((table, column))
    return plan


def apply_plan(conn: sa.Connection, plan: SchemaPlan) -> None:
    """Carry out a plan with no problems inside the caller's transaction."""
    assert not plan.problems, "apply_plan takes only a plan without problems"
    if plan.create:
        SQLModel.metadata.create_all(conn, tables=plan.create, checkfirst=True)
        now = time.time()
        for table in plan.create:
            if table.name != tables_table.name:
                conn.execute(sa.delete(tables_table).where(tables_table.c.name == table.name))
                conn.execute(sa.insert(tables_table).values(name=table.name, created_at=now))
    preparer = conn.dialect.identifier_preparer
    for table, column in plan.add_columns:
        ddl = f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
        ddl += f"{preparer.format_column(column)} {_sql_type(column, conn.dialect)}"
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            literal = sa.literal(getattr(default, "arg", None), type_=column.type)
            rendered = literal.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            ddl += f" DEFAULT {rendered}"
        elif column.server_default is not None:
            arg = getattr(column.server_default, "arg", None)
            text = arg.text if isinstance(arg, sa.TextClause) else str(arg)
            ddl += f" DEFAULT {text}"
        if not column.nullable:
            ddl += " NOT NULL"
        conn.exec_driver_sql(ddl)


def models_by_table() -> dict[str, type[SQLModel]]:
    """The SQLModel table classes defined so far, by table name (the latest wins)."""
    found: dict[str, type[SQLModel]] = {}
    for mapper in SQLModel._sa_registry.mappers:
        cls = mapper.class_
        table = getattr(cls, "__table__", None)
        if isinstance(table, sa.Table) and issubclass(cls, SQLModel):
            found[table.name] = cls
    return found


def check_rows(conn: sa.Connection, limit: int | None = None) -> list[DataProblem]:
    """Validate every stored row of every table class against its model."""
    problems: list[DataProblem] = []
    existing = set(sa.inspect(conn).get_table_names())
    for name, model in sorted(models_by_table().items()):
        if name not in existing:
            continue
        table = getattr(model, "__table__", None)
        assert isinstance(table, sa.Table)
        pk = [c.name for c in table.primary_key.columns]
        for row in conn.execute(sa.select(table)).mappings():
            data = {table.columns[k].key: v for k, v in row.items()}
            try:
                model.model_validate(data)
            except ValidationError as exc:
                errors = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()
                )
                problems.append(DataProblem(name, tuple(row[k] for k in pk), errors))
                if limit is not None and len(problems) >= limit:
                    return problems
    return problems
