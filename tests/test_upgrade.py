"""`pie db upgrade` (and every process's start) on a database that is already up to date
reads its version once and changes nothing: no transaction, no lock per migration."""

from __future__ import annotations

from pie import db as pie_db
from pie.db import SchemaVersion, connection


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
