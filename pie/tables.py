"""peewee tables: one BaseModel, portable JSON columns that work on SQLite and Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import peewee

from pie.db import database


def utcnow() -> datetime:
    """Naive UTC, the form both backends store without conversion."""
    return datetime.now(UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """JSON stored as text: identical on SQLite and Postgres, no backend branches."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class RegisteredModel(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=128)
    name = peewee.TextField()
    description = peewee.TextField()
    handlers = JSONField()
    handler_contracts = JSONField(null=True)
    metadata = JSONField()
    status = peewee.CharField(max_length=16, default="pending")
    latest_version = peewee.CharField(max_length=128, null=True)
    # Largest integer-looking version string so far: the next auto-numbered version is this + 1.
    max_int_version = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "models"
        indexes = ((("created_at", "id"), False),)


class ModelVersion(BaseModel):
    model = peewee.ForeignKeyField(RegisteredModel, backref="versions", on_delete="CASCADE")
    version = peewee.CharField(max_length=128)
    description = peewee.TextField(default="")
    metadata = JSONField()
    status = peewee.CharField(max_length=16, default="pending")
    handlers = JSONField()
    handler_contracts = JSONField(null=True)
    feature_schema = JSONField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "model_versions"
        indexes = ((("model", "version"), True),)


REGISTRY_TABLES = [RegisteredModel, ModelVersion]
