"""A test app's new, empty database brought to the current version without running the
migrations again: on Postgres by replaying, in one transaction, the statements of the first
migration this process ran; on SQLite by copying the file that migration made.

Every test gets a new database, and migrating it (14 migrations, ~130 statements, each
migration its own transaction, on Postgres under an advisory lock) took a quarter of a
second or more of each Postgres test's set-up on the 2-core CI machine, some 8 of the
Postgres suite's 30 minutes. Only an empty database is migrated here (a Postgres schema
without tables, a SQLite file that does not exist yet), and only when the migrations are
PIE's whole list: a test that runs a prefix of them, to upgrade from an older schema, gets
the real upgrade. tests/test_upgrade.py checks that a replayed schema's catalog is the
migrated one's.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from pie import db as pie_db
from pie import migrations  # noqa: F401  (registers the numbered migrations)
from tests.helpers import peewee_statements

FULL = pie_db.MIGRATIONS  # the list itself: a test that swaps in a prefix swaps the object
RECORDED: list[tuple[str, Any]] = []  # Postgres: the statements of the first migration
TEMPLATE = os.path.join(tempfile.mkdtemp(prefix="pie-test-migrated-"), "template.sqlite")


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple):  # (sql, params)
            self.statements.append(record.msg)


def _empty(database: Any) -> bool:
    cursor = database.execute_sql(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
    )
    return cursor.fetchone()[0] == 0


def migrate(url: str) -> bool:
    """Migrate the database of `url` if it is empty and the migrations are the whole list
    (Postgres: the first time for real, recording the statements, then by replaying them).
    Returns whether it did; otherwise the app's own start upgrades it as usual."""
    if pie_db.MIGRATIONS is not FULL:
        return False
    if url.startswith("sqlite:"):
        return _copy_template(pie_db.sqlite_path(url))
    database = pie_db.open_database(url, max_connections=1)
    try:
        database.connect()
        if not _empty(database):
            return False
        if RECORDED:
            with database.atomic():
                for sql, params in RECORDED:
                    database.execute_sql(sql, params)
            return True
    finally:
        database.close_all()
    recorder = _Recorder()
    pie_db.database.initialize(pie_db.open_database(url, max_connections=1))
    try:
        with peewee_statements(recorder):
            pie_db.upgrade()
    finally:
        pie_db.close_all()
    # What changes the schema, in order; the reads (the version checks) and the advisory
    # lock, which only serialises concurrent upgraders, are left out.
    RECORDED[:] = [
        (sql, params)
        for sql, params in recorder.statements
        if not sql.lstrip().upper().startswith("SELECT")
    ]
    return True


def _copy_template(path: str) -> bool:
    """A SQLite file that does not exist yet becomes a copy of the migrated template (made
    the first time, then closed, which folds its write-ahead log in), owner-only as PIE
    creates it."""
    if not path or path == ":memory:" or os.path.exists(path):
        return False
    if not os.path.exists(TEMPLATE):
        pie_db.database.initialize(pie_db.open_database(f"sqlite:///{TEMPLATE}", 1))
        try:
            pie_db.upgrade()
        finally:
            pie_db.close_all()
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    with (
        open(TEMPLATE, "rb") as source,
        open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as copy,
    ):
        shutil.copyfileobj(source, copy)
    return True


def fingerprint(database: Any) -> list[tuple[Any, ...]]:
    """The current schema's catalog as rows: tables and their columns, indexes, constraints,
    triggers and functions, each by its definition; and the recorded schema versions."""
    queries = [
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname = current_schema() ORDER BY 1, 2",
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = "
        "a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON "
        "d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE n.nspname = current_schema() "
        "AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r' ORDER BY 1, 2",
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1",
        "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_namespace n "
        "ON n.oid = c.connamespace WHERE n.nspname = current_schema() ORDER BY 1, 2",
        "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid "
        "= t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
        "current_schema() AND NOT t.tgisinternal ORDER BY 1",
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = "
        "p.pronamespace WHERE n.nspname = current_schema() ORDER BY 1, 2",
        "SELECT version FROM pie_schema_version ORDER BY 1",
    ]
    rows: list[tuple[Any, ...]] = []
    for number, sql in enumerate(queries):
        rows += [(number, *row) for row in database.execute_sql(sql).fetchall()]
    return rows
