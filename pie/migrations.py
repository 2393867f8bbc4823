"""Numbered schema migrations; each runs once, in its own transaction, recorded by number."""

from __future__ import annotations

import peewee

from pie import tables
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
