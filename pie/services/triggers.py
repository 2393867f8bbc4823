"""Firing event subscriptions: one job per active subscription, inserted in the caller's
transaction, dispatched by the caller after commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pie.errors import PieError, Unprocessable
from pie.ids import uuid7
from pie.rows import find_all, insert_rows
from pie.services import registry
from pie.tables import Job, ModelVersion, Subscription, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

BATCH = 200
TENANT_FIELDS = ("client_id", "domain_id", "service_id")


def newest_active_version_query(model_id: str) -> Any:
    """(Indexed: model_versions_newest_by_status.)"""
    return (
        ModelVersion.select()
        .where((ModelVersion.model == model_id) & (ModelVersion.status == "active"))
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )


def newest_active_version(model_id: str) -> ModelVersion:
    version = newest_active_version_query(model_id).first()
    if version is None:
        raise Unprocessable(f"target model '{model_id}' has no active version")
    return version


class _Targets:
    """Resolves the version each fired subscription runs on, reading each target once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.active: dict[str, ModelVersion | PieError] = {}

    def version_for(self, sub: Subscription) -> ModelVersion:
        if sub.target_action == "training":
            model = registry.lock_model(sub.target_model_id)
            version = registry.add_version(model, None, status="training")
        else:
            if sub.target_model_id not in self.active:
                try:
                    self.active[sub.target_model_id] = newest_active_version(sub.target_model_id)
                except PieError as exc:
                    self.active[sub.target_model_id] = exc
            found = self.active[sub.target_model_id]
            if isinstance(found, PieError):
                raise found
            version = found
        handler_type = version.handlers[sub.target_action]["type"]
        if handler_type not in self.runtime.handler_types:
            raise Unprocessable(f"handler type '{handler_type}' is not loaded on this server")
        return version


def fire(
    runtime: Runtime,
    source_model_id: str,
    event: str,
    trigger_output: dict[str, Any],
    parent: Job | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Start one job per active subscription; returns (TriggeredEvents, job ids to dispatch).
    Call inside the transaction that records the triggering change."""
    subs = find_all(
        Subscription,
        order_by=("created_at", "id"),
        source_model_id=source_model_id,
        trigger_event=event,
        status="active",
    )
    if not subs:
        return [], []
    depth = ((parent.trigger or {}).get("depth", 0) if parent else 0) + 1
    max_depth = runtime.config["PIE_MAX_TRIGGER_DEPTH"]
    targets, events, rows, now = _Targets(runtime), [], [], utcnow()
    # A tenant's job passes its tenant on: what it triggers carries the tenant's data.
    tenant = {name: getattr(parent, name, None) for name in TENANT_FIELDS}
    for sub in subs:
        if depth > max_depth:
            events.append(
                {
                    "subscription_id": sub.id,
                    "error": f"trigger depth limit reached (PIE_MAX_TRIGGER_DEPTH={max_depth})",
                }
            )
            continue
        try:
            version = targets.version_for(sub)
        except PieError as exc:
            events.append({"subscription_id": sub.id, "error": exc.message})
            continue
        handler = version.handlers[sub.target_action]
        rows.append(
            {
                "job_id": uuid7(),
                "job_type": sub.target_action,
                "model_id": version.model_id,
                "model_version": version.version,
                "status": "pending",
                "input": sub.input if sub.input_source == "stored" else trigger_output,
                "warnings": [],
                "handler_type": handler["type"],
                "handler": handler,
                "trigger": {
                    "subscription_id": sub.id,
                    "parent_job_id": parent.job_id if parent else None,
                    "depth": depth,
                },
                "created_at": now,
                **tenant,
            }
        )
        events.append({"subscription_id": sub.id, "job_id": rows[-1]["job_id"]})
    for start in range(0, len(rows), BATCH):
        insert_rows(Job, rows[start : start + BATCH])
    return events, [row["job_id"] for row in rows]
