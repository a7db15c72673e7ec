"""The schema check: drift is refused, migrate=True adds columns, late classes, check_data.

Scenarios that change a table class run in subprocesses: SQLModel table classes register
globally, so each process defines exactly the version of a class it needs.
"""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Field, SQLModel, select

import rxnb as rx

# -- running scenarios in other processes --------------------------------------------

PRELUDE = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from typing import Any, Optional

    import sqlalchemy as sa
    from sqlmodel import Field, SQLModel, select

    import rxnb as rx

    URL = sys.argv[1]
    ARGS = sys.argv[2:]

    def report(**kw):
        print("RESULT " + json.dumps(kw, default=str), flush=True)

    def report_error(exc):
        report(
            error=type(exc).__name__,
            message=str(exc),
            differences=getattr(exc, "differences", None),
        )

    def open_store(**kw):
        try:
            return rx.open(URL, **kw)
        except rx.RxnbError as exc:
            report_error(exc)
            sys.exit(0)

    def models():
        return {
            m.__tablename__: m
            for m in SQLModel.__subclasses__()
            if isinstance(getattr(m, "__table__", None), sa.Table)
            and not m.__tablename__.startswith("rx_")  # rxnb's own tables
        }

    @rx.mutation
    def seed(db: rx.Writer, rows: dict) -> None:
        found = models()
        for table, items in rows.items():
            for item in items:
                db.add(found[table](**item))

    @rx.query
    def dump(db: rx.Reader) -> dict:
        return {
            name: [r.model_dump(mode="json") for r in db.exec(select(m).order_by(m.id)).all()]
            for name, m in models().items()
        }
    """
)


def run(db: Path, code: str, *args: str) -> dict[str, Any]:
    """Run PRELUDE + `code` in a new interpreter on `db`; return what it `report`ed."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), f"sqlite:///{db}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=db.parent,
        env={k: v for k, v in os.environ.items() if k != "RXNB_URL"},
        check=False,
    )
    assert proc.returncode == 0, f"scenario failed ({proc.returncode}):\n{proc.stderr}"
    results = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(results) == 1, f"expected one RESULT line:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(results[0])  # type: ignore[no-any-return]


def model(table: str, *fields: str) -> str:
    """Source of a table class named after `table`, with an `id` key and `fields`."""
    name = "".join(part.title() for part in table.split("_"))
    lines = [
        f"class {name}(SQLModel, table=True):",
        f"    __tablename__ = {table!r}",
        "    id: Optional[int] = Field(default=None, primary_key=True)",
        *(f"    {f}" for f in fields),
    ]
    return "\n".join(lines) + "\n"


def create(db: Path, models_src: str, rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Process 1: define `models_src`, open the store, add `rows`, close."""
    result = run(
        db,
        models_src
        + f"store = open_store()\nseed(rows={rows or {}!r})\nstore.close()\nreport(ok=True)\n",
    )
    assert result == {"ok": True}, result
    settle(db)


def reopen(db: Path, models_src: str, *, migrate: bool = False) -> dict[str, Any]:
    """Process 2: define `models_src` and open; report the error or every table's rows."""
    return run(
        db,
        models_src
        + f"store = open_store(migrate={migrate})\n"
        + "rows = dump()\nstore.close()\nreport(ok=True, rows=rows)\n",
    )


def settle(db: Path) -> None:
    """Fold a leftover WAL (if any) into the main file, so its bytes are the whole store."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
    settle(db)


def query(db: Path, statement: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def columns(db: Path, table: str) -> dict[str, tuple[str, bool, Any]]:
    """name -> (declared type, NOT NULL, default) as SQLite reports them."""
    rows = query(db, f"PRAGMA table_info({table})")
    return {r[1]: (r[2], bool(r[3]), r[4]) for r in rows}


class Snapshot:
    """The store file's bytes and logical content, to prove nothing was written."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.data = db.read_bytes()
        self.dump = self._dump()

    def _dump(self) -> list[str]:
        conn = sqlite3.connect(self.db)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    def assert_unchanged(self) -> None:
        # Bytes first: reading the dump could checkpoint a WAL into the file.
        assert self.db.read_bytes() == self.data, "the store file's bytes changed"
        assert self._dump() == self.dump, "the store's content changed"


def assert_ok(result: dict[str, Any]) -> None:
    """The scenario opened the store without error."""
    assert result.get("ok"), "\n".join(
        [f"{result.get('error')}:", *(result.get("differences") or [result.get("message")])]
    )


def assert_mismatch(
    result: dict[str, Any], *expected: tuple[str, str], tables: tuple[str, ...] = ()
) -> None:
    """A SchemaMismatchError listing exactly one difference per expected (table, column),
    plus one per missing table in `tables`, and nothing else."""
    assert result.get("error") == "SchemaMismatchError", result
    differences: list[str] = result["differences"]
    for table, column in expected:
        assert table in result["message"], result["message"]
        assert column in result["message"], result["message"]
        naming = [d for d in differences if f"`{table}`" in d and f"`{column}`" in d]
        assert naming, f"no difference names {table}.{column}: {differences}"
    for table in tables:
        assert table in result["message"], result["message"]
        assert any(table in d for d in differences), f"no difference names {table}: {differences}"
    assert len(differences) == len(expected) + len(tables), (
        f"expected {len(expected) + len(tables)} difference(s), got {differences}"
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    (tmp_path / "store").mkdir()
    return tmp_path / "store" / "rx.db"


ITEM = "drift_item"
ITEM_V1 = model(ITEM, "title: str", "colour: Optional[str] = None")
ITEM_ROWS = {ITEM: [{"title": "first", "colour": "red"}, {"title": "second"}]}


# -- no drift, no error ---------------------------------------------------------------

EVERY_KIND = model(
    "every_kind",
    "text: str",
    "maybe_text: Optional[str] = None",
    "short: str = Field(max_length=3)",
    "number: int",
    "maybe_number: Optional[int] = None",
    "ratio: float",
    "flag: bool",
    "when: datetime.datetime",
    "day: datetime.date",
    "amount: decimal.Decimal",
    "blob: bytes",
    "uid: uuid.UUID",
    "tags: list = Field(sa_type=sa.JSON)",
    "counted: int = 0",
)
EVERY_KIND_IMPORTS = "import datetime, decimal, uuid\n"
EVERY_KIND_ROW = (
    "{'every_kind': [dict(text='t', short='abc', number=1, ratio=0.5, flag=True,"
    " when=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), day=datetime.date(2024, 1, 2),"
    " amount=decimal.Decimal('1.5'), blob=b'x', uid=uuid.UUID(int=1), tags=['a'])]}"
)


def test_reopening_with_unchanged_classes_works(db: Path) -> None:
    created = run(
        db,
        EVERY_KIND_IMPORTS
        + EVERY_KIND
        + "store = open_store()\n"
        + f"seed(rows={EVERY_KIND_ROW})\n"
        + "store.close()\nreport(ok=True)\n",
    )
    assert created == {"ok": True}, created
    settle(db)
    before = Snapshot(db)
    result = reopen(db, EVERY_KIND_IMPORTS + EVERY_KIND)
    assert_ok(result)
    assert len(result["rows"]["every_kind"]) == 1
    before.assert_unchanged()


def test_reopening_with_unchanged_classes_and_migrate_changes_nothing(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, ITEM_V1, migrate=True)
    assert_ok(result)
    before.assert_unchanged()


# -- drift is refused, nothing written -----------------------------------------------


def test_a_column_added_to_the_class(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, "title: str", "colour: Optional[str] = None", "weight: int"))
    assert_mismatch(result, (ITEM, "weight"))
    before.assert_unchanged()


def test_an_optional_column_added_to_the_class_needs_migrate(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    v2 = model(ITEM, "title: str", "colour: Optional[str] = None", "weight: Optional[int] = None")
    result = reopen(db, v2)
    assert_mismatch(result, (ITEM, "weight"))
    assert "migrate=True" in result["message"]
    before.assert_unchanged()


def test_a_column_type_changed(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, "title: int", "colour: Optional[str] = None"))
    assert_mismatch(result, (ITEM, "title"))
    before.assert_unchanged()


def test_a_table_rxnb_created_was_dropped(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    sql(db, f"DROP TABLE {ITEM}")
    before = Snapshot(db)
    result = reopen(db, ITEM_V1)
    assert_mismatch(result, tables=(ITEM,))
    before.assert_unchanged()


def test_a_column_in_the_database_that_the_class_lacks(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, "title: str"))
    assert_mismatch(result, (ITEM, "colour"))
    before.assert_unchanged()


def test_a_column_added_to_the_database_by_hand(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    sql(db, f"ALTER TABLE {ITEM} ADD COLUMN handmade INTEGER")
    before = Snapshot(db)
    result = reopen(db, ITEM_V1)
    assert_mismatch(result, (ITEM, "handmade"))
    before.assert_unchanged()


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        (("title: Optional[str] = None", "colour: Optional[str] = None"), "title"),
        (("title: str", "colour: str = 'blue'"), "colour"),
    ],
    ids=["required-became-optional", "optional-became-required"],
)
def test_nullability_changed(db: Path, fields: tuple[str, ...], column: str) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, *fields))
    assert_mismatch(result, (ITEM, column))
    before.assert_unchanged()


def test_every_difference_is_listed(db: Path) -> None:
    v1 = (
        model("multi_item", "title: str", "colour: Optional[str] = None", "size: int")
        + model("multi_gone", "label: str")
        + model("multi_third", "note: str")
    )
    create(db, v1, {"multi_item": [{"title": "a", "size": 1}], "multi_third": [{"note": "n"}]})
    sql(db, "DROP TABLE multi_gone")
    before = Snapshot(db)
    v2 = (
        model(
            "multi_item",
            "title: int",  # type changed
            # colour removed: an extra column in the database
            "size: Optional[int] = None",  # nullability changed
            "weight: float",  # added
        )
        + model("multi_gone", "label: str")  # dropped from the database
        + model("multi_third", "note: str")  # unchanged
        + model("multi_brand_new", "what: str")  # new: would be created, but is not
    )
    result = reopen(db, v2)
    assert_mismatch(
        result,
        ("multi_item", "title"),
        ("multi_item", "colour"),
        ("multi_item", "size"),
        ("multi_item", "weight"),
        tables=("multi_gone",),
    )
    assert not any("multi_third" in d for d in result["differences"]), result["differences"]
    before.assert_unchanged()
    assert "multi_brand_new" not in {r[0] for r in query(db, "SELECT name FROM sqlite_master")}


# -- migrate=True --------------------------------------------------------------------


def test_migrate_adds_a_nullable_column(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    v2 = model(ITEM, "title: str", "colour: Optional[str] = None", "weight: Optional[int] = None")
    result = reopen(db, v2, migrate=True)
    assert_ok(result)
    assert [r["weight"] for r in result["rows"][ITEM]] == [None, None]
    assert [r["title"] for r in result["rows"][ITEM]] == ["first", "second"]
    assert "weight" in columns(db, ITEM)
    assert not columns(db, ITEM)["weight"][1]
    # The migrated table now matches the class: opening without migrate works.
    again = reopen(db, v2)
    assert_ok(again)


@pytest.mark.parametrize(
    ("field", "column", "value"),
    [
        ("score: int = 7", "score", 7),
        ("label: str = 'none yet'", "label", "none yet"),
        ("ratio: float = 0.5", "ratio", 0.5),
        ("flag: bool = True", "flag", True),
        ("maybe: Optional[int] = 3", "maybe", 3),
    ],
)
def test_migrate_adds_a_column_with_a_default(
    db: Path, field: str, column: str, value: object
) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    v2 = model(ITEM, "title: str", "colour: Optional[str] = None", field)
    result = reopen(db, v2, migrate=True)
    assert_ok(result)
    assert [r[column] for r in result["rows"][ITEM]] == [value, value]
    stored = [r[0] for r in query(db, f"SELECT {column} FROM {ITEM} ORDER BY id")]
    assert stored == [value, value]
    again = reopen(db, v2)
    assert_ok(again)
    # New rows still get the default too.
    added = run(
        db,
        v2 + "store = open_store()\n"
        f"seed(rows={{'{ITEM}': [{{'title': 'third'}}]}})\n"
        "rows = dump()\nstore.close()\nreport(rows=rows)\n",
    )
    assert [r[column] for r in added["rows"][ITEM]] == [value, value, value]


def test_migrate_refuses_a_required_column_without_default(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(
        db, model(ITEM, "title: str", "colour: Optional[str] = None", "rank: int"), migrate=True
    )
    assert_mismatch(result, (ITEM, "rank"))
    line = next(d for d in result["differences"] if "rank" in d)
    assert "default" in line, line
    before.assert_unchanged()


def test_migrate_refuses_a_type_change(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, "title: int", "colour: Optional[str] = None"), migrate=True)
    assert_mismatch(result, (ITEM, "title"))
    before.assert_unchanged()


def test_migrate_refuses_to_drop_a_column(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = reopen(db, model(ITEM, "title: str"), migrate=True)
    assert_mismatch(result, (ITEM, "colour"))
    before.assert_unchanged()
    assert "colour" in columns(db, ITEM)


def test_migrate_refuses_everything_if_one_change_is_refused(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    v2 = model(
        ITEM, "title: str", "colour: Optional[str] = None", "fine: Optional[int] = None", "bad: int"
    )
    result = reopen(db, v2, migrate=True)
    assert_mismatch(result, (ITEM, "bad"))
    before.assert_unchanged()
    assert "fine" not in columns(db, ITEM)


def test_migrate_recreates_a_dropped_table_empty(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    sql(db, f"DROP TABLE {ITEM}")
    result = reopen(db, ITEM_V1, migrate=True)
    assert_ok(result)
    assert result["rows"][ITEM] == []
    assert set(columns(db, ITEM)) == {"id", "title", "colour"}
    again = reopen(db, ITEM_V1)
    assert_ok(again)


# -- classes defined after rx.open() -------------------------------------------------


def table_names(db: Path) -> set[str]:
    return {r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}


def test_a_class_defined_after_open_is_created_on_first_mutation(
    db: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    store = rx.open(f"sqlite:///{db}")
    try:

        class LateNote(SQLModel, table=True):
            __tablename__ = "late_note"
            id: int | None = Field(default=None, primary_key=True)
            text: str

        forget_table(LateNote.__table__)

        @rx.mutation
        def add_note(db: rx.Writer, text: str) -> None:
            db.add(LateNote(text=text))

        @rx.query
        def notes(db: rx.Reader) -> list[str]:
            return [n.text for n in db.exec(select(LateNote).order_by(LateNote.id))]

        add_note(text="hello")
        assert notes() == ["hello"]
        assert query(db, "SELECT text FROM late_note") == [("hello",)]
    finally:
        store.close()


def test_a_class_defined_after_open_is_created_on_first_query(
    db: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    store = rx.open(f"sqlite:///{db}")
    try:

        class LateRead(SQLModel, table=True):
            __tablename__ = "late_read"
            id: int | None = Field(default=None, primary_key=True)
            text: str

        forget_table(LateRead.__table__)

        @rx.query
        def texts(db: rx.Reader) -> list[str]:
            return [n.text for n in db.exec(select(LateRead))]

        assert texts() == []
        assert "late_read" in table_names(db)
    finally:
        store.close()


def test_drift_of_a_class_defined_after_open_is_refused_on_first_use(db: Path) -> None:
    create(db, ITEM_V1, ITEM_ROWS)
    before = Snapshot(db)
    result = run(
        db,
        "store = open_store()\n"
        + model(ITEM, "title: int", "colour: Optional[str] = None")
        + textwrap.dedent(
            f"""
            try:
                seed(rows={{'{ITEM}': [{{'title': 3}}]}})
            except rx.RxnbError as exc:
                report_error(exc)
            else:
                report(ok=True)
            store.close()
            """
        ),
    )
    assert_mismatch(result, (ITEM, "title"))
    before.assert_unchanged()


_BARRIER = textwrap.dedent(
    """
    root, me = Path(ARGS[0]), ARGS[1]

    def barrier():
        (root / f"ready-{me}").touch()
        deadline = time.monotonic() + 60
        while not (root / "go").exists():
            if time.monotonic() > deadline:
                sys.exit("no go")
            time.sleep(0.002)
    """
)
_SHARED = model("shared_rows", "who: str", "n: int")
_FILL = textwrap.dedent(
    """
    for n in range(20):
        seed(rows={"shared_rows": [{"who": me, "n": n}]})
    store.close()
    report(ok=True)
    """
)
CONCURRENT = {
    # Both create the file, rxnb's tables and shared_rows at once.
    "fresh": _BARRIER + _SHARED + "barrier()\nstore = open_store()\n" + _FILL,
    # The store exists; the class is defined after open, both create its table at once.
    "existing": _BARRIER + "store = open_store()\n" + _SHARED + "barrier()\n" + _FILL,
}


@pytest.mark.parametrize("mode", ["fresh", "existing"])
def test_two_processes_create_the_same_new_table_at_once(db: Path, mode: str) -> None:
    if mode == "existing":
        assert run(db, "open_store().close()\nreport(ok=True)\n") == {"ok": True}
        assert "shared_rows" not in table_names(db)
    code = PRELUDE + CONCURRENT[mode]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"sqlite:///{db}", str(db.parent), who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=db.parent,
            env={k: v for k, v in os.environ.items() if k != "RXNB_URL"},
        )
        for who in ("p1", "p2")
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((db.parent / f"ready-{w}").exists() for w in ("p1", "p2")):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            assert not failed, failed[0].communicate()[1]
            assert time.monotonic() < deadline, "the processes did not get ready"
            time.sleep(0.005)
        (db.parent / "go").touch()
        outputs = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert 'RESULT {"ok": true}' in out, out + err
    counts = dict(query(db, "SELECT who, count(*) FROM shared_rows GROUP BY who"))
    assert counts == {"p1": 20, "p2": 20}
    assert query(db, "SELECT count(*) FROM rx_tables WHERE name = 'shared_rows'") == [(1,)]


# -- store.check_data() --------------------------------------------------------------


def test_check_data_reports_rows_that_do_not_validate(
    db: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    class CheckedItem(SQLModel, table=True):
        __tablename__ = "checked_item"
        id: int = Field(primary_key=True)
        count: int
        code: str = Field(max_length=3)
        qty: int = Field(ge=0)

    forget_table(CheckedItem.__table__)
    store = rx.open(f"sqlite:///{db}")
    try:
        sql(db, "INSERT INTO checked_item (id, count, code, qty) VALUES (1, 5, 'abc', 0)")
        assert store.check_data() == []

        sql(
            db,
            "INSERT INTO checked_item (id, count, code, qty) VALUES (2, 'abc', 'xy', 1)",
            "INSERT INTO checked_item (id, count, code, qty) VALUES (3, 1, 'abcd', 1)",
            "INSERT INTO checked_item (id, count, code, qty) VALUES (4, 1, 'ok', -1)",
        )
        problems = store.check_data()
        by_key = {p.key: p for p in problems}
        assert set(by_key) == {(2,), (3,), (4,)}, problems
        assert all(isinstance(p, rx.DataProblem) for p in problems)
        assert all(p.table == "checked_item" for p in problems)
        assert "count" in by_key[(2,)].message
        assert "code" in by_key[(3,)].message
        assert "qty" in by_key[(4,)].message

        assert len(store.check_data(limit=1)) == 1
    finally:
        store.close()


def test_check_data_of_valid_rows_written_through_rxnb_is_empty(
    db: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    class CheckedGood(SQLModel, table=True):
        __tablename__ = "checked_good"
        id: int | None = Field(default=None, primary_key=True)
        code: str = Field(max_length=3)
        qty: int = Field(ge=0)

    forget_table(CheckedGood.__table__)
    store = rx.open(f"sqlite:///{db}")
    try:

        @rx.mutation
        def add(db: rx.Writer, code: str, qty: int) -> None:
            db.add(CheckedGood(code=code, qty=qty))

        add(code="abc", qty=0)
        add(code="x", qty=10)
        assert store.check_data() == []
    finally:
        store.close()
