"""Models: create, read, list, replace and delete registered models."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

import peewee

from pie import contracts, counts
from pie.db import database
from pie.errors import Conflict, NotFound, Unprocessable, flatten_messages
from pie.handler_types import HandlerType
from pie.ids import uuid7
from pie.rows import get_by, insert_row, lock_by, row_instance, update_row
from pie.services import outbox, subscriptions
from pie.tables import Assignment, ModelVersion, RegisteredModel, utcnow

INT_VERSION = re.compile(r"[0-9]{1,18}")  # fullmatch: a "7\n" is no integer


def get_model(model_id: str) -> RegisteredModel:
    model = get_by(RegisteredModel, id=model_id)
    if model is None:
        raise NotFound(f"model '{model_id}' not found")
    return model


def list_models(page: int, page_size: int) -> tuple[list[RegisteredModel], int]:
    query = RegisteredModel.select().order_by(RegisteredModel.created_at, RegisteredModel.id)
    return list(query.paginate(page, page_size)), counts.model_total()


def find_models(text: str, limit: int) -> list[RegisteredModel]:
    """Models whose id, name or description contains `text` (any case), oldest first."""
    query = RegisteredModel.select().order_by(RegisteredModel.created_at, RegisteredModel.id)
    if text:
        query = query.where(
            RegisteredModel.id.contains(text)
            | RegisteredModel.name.contains(text)
            | RegisteredModel.description.contains(text)
        )
    return list(query.limit(limit))


def check_contracts(handler_contracts: dict[str, Any] | None) -> None:
    problems = contracts.contract_problems(handler_contracts)
    if problems:
        raise Unprocessable("invalid handler_contracts: " + "; ".join(problems))


def check_handlers(handler_types: Mapping[str, HandlerType], handlers: dict[str, Any]) -> None:
    """Unprocessable naming each handler field its type refuses (`HandlerType.refusals`),
    e.g. `handlers.inference.url: ...`, several joined with "; "."""
    refused = {kind: handler_types[h["type"]].refusals(h) for kind, h in handlers.items()}
    problems = flatten_messages({"handlers": {kind: r for kind, r in refused.items() if r}})
    if problems:
        raise Unprocessable("; ".join(problems))


def check_model(data: dict[str, Any], handler_types: Mapping[str, HandlerType]) -> None:
    """The 422s of a model body, before anything is stored."""
    check_contracts(data.get("handler_contracts"))
    check_handlers(handler_types, data["handlers"])


def create_model(data: dict[str, Any], handler_types: Mapping[str, HandlerType]) -> RegisteredModel:
    """Store a model and its version "1" (pending)."""
    check_model(data, handler_types)
    model_id = data.get("id") or uuid7()
    now = utcnow()
    try:
        with database.atomic():
            model = RegisteredModel.create(
                id=model_id,
                name=data["name"],
                description=data["description"],
                handlers=data["handlers"],
                handler_contracts=data.get("handler_contracts"),
                metadata=data.get("metadata") or {},
                status="pending",
                latest_version="1",
                max_int_version=1,
                job_policy=data.get("job_policy") or None,
                created_at=now,
                updated_at=now,
            )
            ModelVersion.create(
                model=model,
                version="1",
                metadata={},
                handlers=model.handlers,
                handler_contracts=model.handler_contracts,
                job_policy=model.job_policy,
                created_at=now,
                updated_at=now,
            )
            outbox.model_changed("model.created", model)
    except peewee.IntegrityError as exc:
        raise Conflict(f"model '{model_id}' already exists") from exc
    return model


def add_version(
    model: RegisteredModel, version: str | None, bumped: bool = False, **fields: Any
) -> ModelVersion:
    """Insert a pending version snapshotting the model's handlers; call inside a transaction
    holding the model row (see `lock_model`), or with `bumped` the row `next_version` returned
    (its number already taken, the model row already updated)."""
    explicit = version is not None and not bumped
    if bumped:
        version, now = model.latest_version, model.updated_at
    else:
        version, now = version or str(model.max_int_version + 1), utcnow()
    try:
        # An explicit version may collide, and a savepoint keeps the caller's transaction
        # usable (Postgres); an auto-numbered one cannot while the model row is held.
        with database.atomic() if explicit else contextlib.nullcontext():
            row = insert_row(
                ModelVersion,
                {
                    "model": model.id,
                    "version": version,
                    "handlers": model.handlers,
                    "handler_contracts": model.handler_contracts,
                    "job_policy": model.job_policy,
                    "created_at": now,
                    "updated_at": now,
                    "metadata": {},
                    **fields,
                },
            )
    except peewee.IntegrityError as exc:
        raise Conflict(f"version '{version}' of model '{model.id}' already exists") from exc
    if bumped:
        return row
    model.latest_version = version
    if INT_VERSION.fullmatch(version):
        model.max_int_version = max(model.max_int_version, int(version))
    model.updated_at = now
    update_row(
        RegisteredModel,
        {"latest_version": version, "updated_at": now, "max_int_version": model.max_int_version},
        id=model.id,
    )
    return row


_NEXT_VERSION_SQL: dict[type, str] = {}


def next_version(model_id: str) -> RegisteredModel:
    """Take the next auto-numbered version of a model in one statement: bump its counter,
    latest version and update time, and return the row (held until the transaction ends on
    Postgres, as `lock_model` holds it). Both SET expressions read the row before the update.
    (UPDATE … RETURNING: SQLite 3.35 or newer, which `pie.db` requires.)"""
    sql = _NEXT_VERSION_SQL.get(type(database.obj))
    if sql is None:
        param = database.obj.param
        columns = ", ".join(f'"{f.column_name}"' for f in RegisteredModel._meta.sorted_fields)
        sql = _NEXT_VERSION_SQL[type(database.obj)] = (
            'UPDATE "models" SET "max_int_version" = "max_int_version" + 1, '
            '"latest_version" = CAST("max_int_version" + 1 AS TEXT), '
            f'"updated_at" = {param} WHERE "id" = {param} RETURNING {columns}'
        )
    now = RegisteredModel.updated_at.db_value(utcnow())
    found = database.execute_sql(sql, [now, model_id]).fetchall()
    if not found:
        raise NotFound(f"model '{model_id}' not found")
    return row_instance(RegisteredModel, found[0])


def lock_model(model_id: str) -> RegisteredModel:
    """Read a model and, on backends with row locks, hold it until the transaction ends."""
    model = lock_by(RegisteredModel, id=model_id)
    if model is None:
        raise NotFound(f"model '{model_id}' not found")
    return model


def update_model(
    model_id: str, data: dict[str, Any], handler_types: Mapping[str, HandlerType]
) -> RegisteredModel:
    """Replace a model's fields: in place while pending, as a new version once active."""
    check_model(data, handler_types)
    with database.atomic():
        model = lock_model(model_id)
        before = RegisteredModel(handlers=model.handlers, handler_contracts=model.handler_contracts)
        model.name, model.description = data["name"], data["description"]
        model.handlers, model.handler_contracts = data["handlers"], data.get("handler_contracts")
        model.metadata = data.get("metadata") or {}
        model.updated_at = utcnow()
        if "job_policy" in data:  # left out: kept (a client that predates it keeps it)
            _copy_policy(model, data["job_policy"] or None)
        model.save()
        subscriptions.mark_stale(before, model)
        if model.status == "active":
            add_version(model, None)
        else:
            ModelVersion.update(
                handlers=model.handlers,
                handler_contracts=model.handler_contracts,
                updated_at=model.updated_at,
            ).where((ModelVersion.model == model) & (ModelVersion.status == "pending")).execute()
        outbox.model_changed("model.updated", model)
    return model


def set_job_policy(model_id: str, job_policy: dict[str, Any] | None) -> RegisteredModel:
    """Replace a model's job_policy (None: the settings' defaults). Jobs created from now on
    follow it; it creates no version and makes no subscription stale."""
    with database.atomic():
        model = lock_model(model_id)
        model.updated_at = utcnow()
        _copy_policy(model, job_policy)
        update_row(
            RegisteredModel, {"job_policy": job_policy, "updated_at": model.updated_at}, id=model.id
        )
    return model


def _copy_policy(model: RegisteredModel, job_policy: dict[str, Any] | None) -> None:
    """Set the model's policy and every version's copy (which new jobs read)."""
    model.job_policy = job_policy
    ModelVersion.update(job_policy=job_policy).where(ModelVersion.model == model.id).execute()


def assignments_point_at(model_id: str) -> bool:
    return (
        Assignment.select()
        .where((Assignment.model_id == model_id) & (Assignment.status == "active"))
        .exists()
    )


def delete_model(model_id: str) -> None:
    """Delete a model and its versions; its jobs stay as history."""
    with database.atomic():
        model = lock_model(model_id)
        if assignments_point_at(model_id):
            raise Unprocessable(
                f"model '{model_id}' has versions in active assignments; "
                "re-assign or archive those keys first"
            )
        ModelVersion.delete().where(ModelVersion.model == model).execute()
        subscriptions.delete_for_model(model_id)
        model.delete_instance()
        outbox.model_changed("model.deleted", model)
