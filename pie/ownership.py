"""Migration 7's repair: give `subscribe: true` replays made before subscriptions had owners
back to their tenant, and move the jobs they started into that tenant's context.

Before, a replay made through an assignment was stored as a global subscription, and its
jobs took the tenant of whichever job fired them. Its owner is the job that made it: an
inference on the same model, with the same input, committed in the same transaction just
before it (the nearest such job within OWNER_WINDOW). A replay whose job had no tenant stays
global. Each replay job of an owned replay, and every job descending from one through global
subscriptions, then takes the owner's tenant; a replay job no longer names a parent that
belongs to another tenant. Jobs change through UPDATEs, so the row counters' triggers keep
the list totals right."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from pie.tables import TENANT_FIELDS, Job, Subscription

log = logging.getLogger(__name__)

OWNER_WINDOW = timedelta(seconds=60)
# The job columns read here, and no others: a database upgraded from before migration 7 has
# only the columns jobs had then until a later migration adds its own (migration 12).
TENANT_COLUMNS = [getattr(Job, name) for name in TENANT_FIELDS]


def own_replays() -> None:
    owners = _replay_owners()
    if owners:
        moved = _move_jobs(owners)
        log.info(
            "gave %d subscribe replay(s) to their tenants; moved %d job(s) with them",
            len(owners),
            moved,
            extra={"subscriptions": len(owners), "jobs": moved},
        )


def _replay_owners() -> dict[str, dict[str, Any]]:
    """{subscription id: tenant} for the replays an assignment's inference made."""
    replays = Subscription.select().where(
        (Subscription.label == "subscribe")
        & (Subscription.trigger_event == "training_complete")
        & (Subscription.target_action == "inference")
        & (Subscription.input_source == "stored")
        & (Subscription.source_model_id == Subscription.target_model_id)
        & Subscription.client_id.is_null()
    )
    owners = {}
    for sub in replays:
        maker = (
            Job.select(*TENANT_COLUMNS)
            .where(
                (Job.model_id == sub.source_model_id)
                & (Job.job_type == "inference")
                & (Job.created_at <= sub.created_at)
                & (Job.created_at >= sub.created_at - OWNER_WINDOW)
                & (Job.input == sub.input)  # the same JSON text: both came from one dict
            )
            .order_by(Job.created_at.desc(), Job.job_id.desc())
            .first()
        )
        if maker is not None and maker.client_id:
            owners[sub.id] = {name: getattr(maker, name) for name in TENANT_FIELDS}
            Subscription.update(**owners[sub.id]).where(Subscription.id == sub.id).execute()
    return owners


def _move_jobs(owners: dict[str, dict[str, Any]]) -> int:
    """Move each owned replay's jobs, and their descendants, into the owner's tenant."""
    children: dict[str, list[Job]] = defaultdict(list)
    replayed: list[Job] = []
    triggered = Job.select(Job.job_id, Job.trigger, *TENANT_COLUMNS)
    for job in triggered.where(Job.trigger.is_null(False)).iterator():
        if job.trigger.get("subscription_id") in owners:
            replayed.append(job)
        elif job.trigger.get("parent_job_id"):
            children[job.trigger["parent_job_id"]].append(job)
    moved = 0
    for job in replayed:
        tenant = owners[job.trigger["subscription_id"]]
        trigger = dict(job.trigger)
        parent = Job.select(Job.client_id).where(Job.job_id == trigger.get("parent_job_id")).first()
        if parent is not None and parent.client_id and parent.client_id != tenant["client_id"]:
            trigger["parent_job_id"] = None
        moved += _move(job, tenant, trigger, children)
    return moved


def _move(
    job: Job, tenant: dict[str, Any], trigger: dict[str, Any], children: dict[str, list[Job]]
) -> int:
    """Move a job and what it fired through global subscriptions (iteratively)."""
    moved, stack = 0, [(job, trigger)]
    while stack:
        current, current_trigger = stack.pop()
        Job.update(trigger=current_trigger, **tenant).where(Job.job_id == current.job_id).execute()
        moved += 1
        stack.extend((child, child.trigger) for child in children.pop(current.job_id, []))
    return moved
