"""Firing event subscriptions: one job per active subscription, inserted in the caller's
transaction, dispatched by the caller after commit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pie.errors import PieError, Unprocessable
from pie.ids import uuid7
from pie.rows import find_all, insert_rows
from pie.services import chains, jobs, outbox, policy, registry
from pie.tables import TENANT_FIELDS, Client, Job, ModelVersion, Subscription, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)
BATCH = 200
MAX_JOBS = "PIE_MAX_TRIGGERED_JOBS"


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
    Call inside the transaction that records the triggering change.

    Each event also names, under `client_id`, the tenant its job runs for (absent for none),
    so a response can leave out what the caller may not see (`visible_events`)."""
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
    tenants = {sub.id: tenant_of(sub, parent) for sub in subs}
    if depth > max_depth:
        reason = f"trigger depth limit reached (PIE_MAX_TRIGGER_DEPTH={max_depth})"
        refused = [_event(sub, tenants[sub.id], error=reason) for sub in subs]
        announce(subs, refused, event)
        return refused, []
    budget = chains.Budget(parent.trigger if parent else None, runtime.config[MAX_JOBS])
    refusals = _refusals(subs, parent, tenants)
    budget.hold(owner_of(sub) for sub in subs if refusals[sub.id] is None)
    targets, events, rows = _Targets(runtime), [], []
    for sub in subs:
        refusal = refusals[sub.id]
        if refusal is None and not budget.take(owner_of(sub)):
            refusal = _volume_refusal(sub, budget.limit)
        tenant = tenants[sub.id]
        if refusal is not None:
            events.append(_event(sub, tenant, error=refusal))
            continue
        try:
            version = targets.version_for(sub)
        except PieError as exc:
            budget.give_back(owner_of(sub))
            events.append(_event(sub, tenant, error=exc.message))
            continue
        rows.append(_job_row(sub, tenant, version, parent, depth, trigger_output))
        events.append(_event(sub, tenant, job_id=rows[-1]["job_id"]))
    budget.stamp([row["trigger"] for row in rows])
    budget.save()
    for start in range(0, len(rows), BATCH):
        insert_rows(Job, rows[start : start + BATCH])
    _log_refusals(source_model_id, event, parent, budget)
    announce(subs, events, event)
    return events, [row["job_id"] for row in rows]


def announce(subs: list[Subscription], events: list[dict[str, Any]], event: str) -> None:
    """subscription.fired for each subscription: its TriggeredEvent (a job, or why not), to
    the client the job runs for (else the subscription's) and to global endpoints."""
    fired = [
        (sub, found.get("client_id") or sub.client_id, {"event": event, **found})
        for sub, found in zip(subs, events, strict=True)
    ]
    outbox.subscriptions_event("subscription.fired", fired)


def owner_of(sub: Subscription) -> str:
    """Whose budget a subscription's jobs spend in a chain: its client's, or the global one."""
    return sub.client_id or chains.GLOBAL


def _volume_refusal(sub: Subscription, limit: int) -> str:
    whose = "its client's" if sub.client_id else "global"
    return (
        f"trigger volume limit reached: this chain has started {limit} jobs of {whose} "
        f"subscriptions ({MAX_JOBS}={limit})"
    )


def tenant_of(sub: Subscription, parent: Job | None) -> dict[str, Any]:
    """The tenant a subscription's job runs for: the subscription's own when it belongs to a
    tenant; for a global one, the triggering job's when the job's input is that job's output
    (the tenant's data), else none (a stored input is the operator's, nobody's data: no
    tenant can make a job run in another tenant's name with an input of its choosing)."""
    if sub.client_id:
        owner = sub
    elif sub.input_source == "trigger_output":
        owner = parent
    else:
        return dict.fromkeys(TENANT_FIELDS)
    return {name: getattr(owner, name, None) for name in TENANT_FIELDS}


def foreign_output(sub: Subscription, parent: Job | None) -> bool:
    """Whether a tenant's subscription would pass on the output of a job that is not that
    tenant's: another tenant's (its data), or one of no client (which anyone may start on
    the direct routes, with an input of their choosing)."""
    return bool(sub.client_id and sub.input_source == "trigger_output" and parent is not None) and (
        parent.client_id != sub.client_id
    )


def parent_named(tenant: dict[str, Any], parent: Job | None) -> str | None:
    """The parent job a triggered job names: none when the parent is a tenant's job and the
    new one runs for another tenant or for none (readable by every tenant)."""
    if parent is None or (parent.client_id and parent.client_id != tenant["client_id"]):
        return None
    return parent.job_id


FOREIGN = (
    "the job that fired it is not its client's: a client's subscription passes on only the "
    "output of its own client's jobs"
)


def _refusals(
    subs: list[Subscription], parent: Job | None, tenants: dict[str, dict[str, Any]]
) -> dict[str, str | None]:
    """{subscription id: why it starts nothing, or None} before any budget is spent: no
    output but a tenant's own becomes the input of its job, and no job starts in the name of
    a client that is not active (suspended). The reason names no client: the event is shown
    to the client the job would run for, and to admins."""
    tenant = {sub.id: tenants[sub.id]["client_id"] for sub in subs}
    refusals = {sub.id: FOREIGN if foreign_output(sub, parent) else None for sub in subs}
    statuses = _statuses({tenant[sub.id] for sub in subs if refusals[sub.id] is None})
    for sub in subs:
        status = statuses.get(tenant[sub.id], "missing")
        if refusals[sub.id] is None and tenant[sub.id] and status != "active":
            state = "does not exist" if status == "missing" else f"is {status}"
            refusals[sub.id] = f"not started: the client this job would run for {state}"
    return refusals


def _statuses(client_ids: set[str | None]) -> dict[str, str]:
    """{client id: status} of the clients named (one query; none when no client is)."""
    named = sorted(c for c in client_ids if c)
    if not named:
        return {}
    query = Client.select(Client.client_id, Client.status).where(Client.client_id.in_(named))
    return dict(query.tuples())


def _job_row(
    sub: Subscription,
    tenant: dict[str, Any],
    version: ModelVersion,
    parent: Job | None,
    depth: int,
    trigger_output: dict[str, Any],
) -> dict[str, Any]:
    handler = version.handlers[sub.target_action]
    trigger = {
        "subscription_id": sub.id,
        "parent_job_id": parent_named(tenant, parent),
        "depth": depth,
    }
    return {
        "job_id": uuid7(),
        # Read with the id, not once per firing: GET /v2/jobs finds jobs by creation time
        # through their (time-ordered) ids, which a firing that waited on locks would skew.
        "created_at": utcnow(),
        "job_type": sub.target_action,
        "model_id": version.model_id,
        "model_version": version.version,
        "status": "pending",
        "input": sub.input if sub.input_source == "stored" else trigger_output,
        "warnings": [],
        "handler_type": handler["type"],
        "handler": handler,
        "policy": policy.of_type(version.job_policy, sub.target_action),
        "trigger": trigger,
        **jobs.trigger_columns(trigger),
        **tenant,
    }


def _event(sub: Subscription, tenant: dict[str, Any], **outcome: str) -> dict[str, Any]:
    """A TriggeredEvent (a job started, or why not), naming the tenant its job runs for."""
    event = {"subscription_id": sub.id, **outcome}
    if tenant["client_id"]:
        event["client_id"] = tenant["client_id"]
    return event


def _log_refusals(
    source_model_id: str, event: str, parent: Job | None, budget: chains.Budget
) -> None:
    """One warning when a chain's budget of an owner is first found spent; the firings that
    find it spent afterwards are counted in its row (`refused`), not logged again."""
    spent = budget.first_refusals()
    if spent:
        owners = sorted(owner or "global" for owner in spent)
        log.warning(
            "trigger volume limit reached: %s of model %s left %d subscription(s) unstarted; "
            "chain %s has started %d jobs of the subscriptions of %s (%s=%d); later refusals "
            "in this chain are not logged",
            event,
            source_model_id,
            sum(spent.values()),
            budget.chain_id,
            budget.limit,
            ", ".join(owners),
            MAX_JOBS,
            budget.limit,
            extra={
                "model_id": source_model_id,
                "event": event,
                "parent_job_id": parent.job_id if parent else None,
                "chain_id": budget.chain_id,
                "owners": owners,
                "refused": sum(spent.values()),
            },
        )


def visible_events(
    events: list[dict[str, Any]], clients: frozenset[str] | None
) -> list[dict[str, Any]]:
    """The TriggeredEvents a caller who sees `clients` (None: every tenant) may be shown:
    those whose job runs for no tenant or for one of them."""
    if clients is None:
        return events
    return [e for e in events if not e.get("client_id") or e["client_id"] in clients]
