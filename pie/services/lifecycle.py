"""Model versions: create, read, list, and the status transitions of contract section 4."""

from __future__ import annotations

from typing import Any

from pie import contracts
from pie.db import database, transaction
from pie.errors import NotFound, Unprocessable
from pie.rows import get_by, get_with, update_row
from pie.services import outbox, registry
from pie.tables import ModelVersion, RegisteredModel, utcnow

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending": ("training", "active", "failed"),
    "training": ("active", "failed"),
    "failed": ("pending", "training"),
    "active": (),
}


def get_version(model_id: str, version: str) -> ModelVersion:
    row = get_by(ModelVersion, model=model_id, version=version)
    if row is None:
        registry.get_model(model_id)  # a missing model is the more useful 404
        raise NotFound(f"version '{version}' of model '{model_id}' not found")
    return row


def list_versions(model_id: str, page: int, page_size: int) -> tuple[list[ModelVersion], int]:
    registry.get_model(model_id)
    query = versions_query(model_id)
    return list(query.paginate(page, page_size)), query.count()


def versions_query(model_id: str) -> Any:
    """A model's versions, newest first."""
    return (
        ModelVersion.select()
        .where(ModelVersion.model == model_id)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    )


def create_version(model_id: str, data: dict[str, Any]) -> tuple[RegisteredModel, ModelVersion]:
    problems = contracts.feature_definition_problems(data.get("feature_schema"))
    if problems:
        raise Unprocessable("invalid feature_schema: " + "; ".join(problems))
    fields = {
        "description": data.get("description", ""),
        "metadata": data.get("metadata") or {},
        "feature_schema": data.get("feature_schema"),
    }
    with database.atomic():
        if data.get("version") is None:  # auto-numbered: one statement takes the number
            model = registry.next_version(model_id)
            version = registry.add_version(model, None, bumped=True, **fields)
        else:
            model = registry.lock_model(model_id)
            version = registry.add_version(model, data["version"], **fields)
    return model, version


def set_status(
    model_id: str, version: str, status: str
) -> tuple[RegisteredModel, ModelVersion, str | None]:
    """Move a version to `status`; returns (model, version, previous status or None for a
    no-op). The conditional update makes exactly one of several racing callers the mover.
    Moving to `active` does not activate the model: see `activate_model`."""
    while True:
        with transaction():
            found = get_with(ModelVersion, RegisteredModel, model=model_id, version=version)
            if found is None:
                get_version(model_id, version)  # raises the 404 naming what is missing
                continue  # created since the read: read again
            row, model = found
            if row.status == status:
                return model, row, None
            allowed = TRANSITIONS[row.status]
            if status not in allowed:
                targets = ", ".join(allowed) or "none: a new version is how a model changes"
                raise Unprocessable(
                    f"cannot move version '{version}' from '{row.status}' to '{status}'; "
                    f"allowed: {targets}"
                )
            previous, now = row.status, utcnow()
            moved = update_row(
                ModelVersion, {"status": status, "updated_at": now}, id=row.id, status=previous
            )
            if not moved:
                continue  # another caller moved it first: decide again from what it wrote
            row.status, row.updated_at = status, now
            outbox.version_status_changed(row, previous)
            return model, row, previous


def activate_model(model: RegisteredModel, now: Any) -> RegisteredModel:
    """Mark a model active once one of its versions is (a model never leaves active). The
    caller moves the version first and fires its subscriptions, then calls this: the model
    row is locked last, after any trigger chain's row, as every firing locks them."""
    if model.status == "active":
        return model
    if update_row(
        RegisteredModel, {"status": "active", "updated_at": now}, id=model.id, status=model.status
    ):
        model.status, model.updated_at = "active", now
        return model
    return registry.get_model(model.id)  # another transaction activated it since the read
