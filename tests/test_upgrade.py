"""`pie db upgrade` (and every process's start) on a database that is already up to date
reads its version once and changes nothing: no transaction, no lock per migration."""

from __future__ import annotations

import pytest

from pie import db as pie_db
from pie.db import SchemaVersion, connection
from pie.testing import drop_postgres_schema, postgres_schema_url
from tests import migrated
from tests.conftest import POSTGRES_URL, TEST_SCHEMA


def test_an_up_to_date_database_is_read_once_and_left_alone(app, statements):
    with connection():
        before = list(SchemaVersion.select().order_by(SchemaVersion.version).tuples())
    statements.clear()

    assert pie_db.upgrade() == []

    # the table's existence (create_table's check) and its newest version: one statement each
    assert len(statements) <= 2, statements
    assert not any("advisory" in sql or sql.startswith("BEGIN") for sql in statements)
    with connection():
        after = list(SchemaVersion.select().order_by(SchemaVersion.version).tuples())
    assert after == before
    assert [row[0] for row in after] == list(range(1, len(pie_db.MIGRATIONS) + 1))


def test_a_pending_migration_still_runs_once(app, monkeypatch):
    ran = []

    def newer(db):
        ran.append(db)

    monkeypatch.setattr(pie_db, "MIGRATIONS", [*pie_db.MIGRATIONS, newer])
    assert pie_db.upgrade() == [len(pie_db.MIGRATIONS)]
    assert pie_db.upgrade() == []
    assert len(ran) == 1


@pytest.mark.skipif(not POSTGRES_URL, reason="Postgres: the test runs' schema replay")
def test_a_replayed_test_schema_is_the_migrated_one() -> None:
    """tests/migrated.py gives each Postgres test's app a schema migrated by replaying
    the statements of a real migration: its catalog must be a real migration's."""

    def catalog(schema: str, replay: bool) -> list[tuple]:
        url = postgres_schema_url(POSTGRES_URL, schema)
        if replay:
            migrated.migrate(url)  # records first if nothing is recorded yet
            migrated.RECORDED or pytest.fail("nothing recorded")
            drop_postgres_schema(POSTGRES_URL, schema)
            url = postgres_schema_url(POSTGRES_URL, schema)
            assert migrated.migrate(url)  # now by replay
        else:
            pie_db.database.initialize(pie_db.open_database(url, 1))
            pie_db.upgrade()
            pie_db.close_all()
        database = pie_db.open_database(url, 1)
        try:
            rows = migrated.fingerprint(database)
        finally:
            database.close_all()
            drop_postgres_schema(POSTGRES_URL, schema)
        return [tuple(str(v).replace(schema, "<schema>") for v in row) for row in rows]

    real = catalog(f"{TEST_SCHEMA}_real", replay=False)
    replayed = catalog(f"{TEST_SCHEMA}_replay", replay=True)
    assert len(real) > 100 and any(row[0] == "4" for row in real)  # triggers too
    assert replayed == real


def test_the_replay_leaves_a_schema_with_tables_or_a_prefix_of_the_migrations_alone(
    monkeypatch,
) -> None:
    if not POSTGRES_URL:
        pytest.skip("Postgres: the test runs' schema replay")
    url = postgres_schema_url(POSTGRES_URL, f"{TEST_SCHEMA}_alone")
    try:
        monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[:3])
        assert migrated.migrate(url) is False  # an upgrade test's older schema
        monkeypatch.undo()
        pie_db.database.initialize(pie_db.open_database(url, 1))
        SchemaVersion.create_table()
        pie_db.close_all()
        assert migrated.migrate(url) is False  # not empty: the app upgrades it
    finally:
        drop_postgres_schema(POSTGRES_URL, f"{TEST_SCHEMA}_alone")


def test_a_copied_sqlite_test_database_is_the_migrated_one(tmp_path) -> None:
    """tests/migrated.py gives each SQLite test's app a copy of a migrated file: the same
    schema and versions as a migration makes, owner-only as PIE creates its files."""

    def schema(path) -> list[tuple]:
        database = pie_db.open_database(f"sqlite:///{path}", 1)
        try:
            return [
                *database.execute_sql("SELECT type, name, sql FROM sqlite_master ORDER BY 2"),
                *database.execute_sql("SELECT version FROM pie_schema_version ORDER BY 1"),
            ]
        finally:
            database.close_all()

    real = tmp_path / "real" / "pie.sqlite"
    pie_db.database.initialize(pie_db.open_database(f"sqlite:///{real}", 1))
    pie_db.upgrade()
    pie_db.close_all()
    copied = tmp_path / "copied" / "pie.sqlite"
    assert migrated.migrate(f"sqlite:///{copied}")
    assert not migrated.migrate(f"sqlite:///{copied}")  # exists now: left alone
    assert copied.stat().st_mode & 0o777 == 0o600
    assert len(schema(real)) > 50 and schema(copied) == schema(real)
