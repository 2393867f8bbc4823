"""Numbered schema migrations; each runs once, in its own transaction, recorded by number."""

from __future__ import annotations

import peewee

from pie import counts, tables
from pie.db import migration


@migration
def create_registry(db: peewee.Database) -> None:
    db.create_tables(tables.REGISTRY_TABLES, safe=True)


@migration
def create_jobs(db: peewee.Database) -> None:
    db.create_tables(tables.JOB_TABLES, safe=True)


@migration
def create_subscriptions(db: peewee.Database) -> None:
    db.create_tables(tables.SUBSCRIPTION_TABLES, safe=True)


@migration
def create_tenancy(db: peewee.Database) -> None:
    db.create_tables(tables.TENANCY_TABLES, safe=True)
    # One active revision per key and scope, enforced by the database itself.
    db.execute_sql(
        'CREATE UNIQUE INDEX IF NOT EXISTS "assignments_one_active" ON "assignments" '
        '("client_id", "domain_id", "scope", "assignment_key") WHERE "status" = \'active\''
    )


@migration
def count_rows(db: peewee.Database) -> None:
    # List totals from trigger-kept counters instead of COUNT(*) over the whole table.
    counts.install(db)
