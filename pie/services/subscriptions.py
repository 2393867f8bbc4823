"""Event subscriptions: create, read, update, delete, and their compatibility warnings."""

from __future__ import annotations

from typing import Any

from pie import contracts
from pie.db import database
from pie.errors import BadRequest, Forbidden, NotFound, Unprocessable
from pie.ids import uuid7
from pie.rows import lock_by
from pie.services import outbox
from pie.tables import TENANT_FIELDS, Client, RegisteredModel, Subscription, utcnow

MAX_OWNED = "PIE_MAX_CLIENT_SUBSCRIPTIONS"
# The handler whose output a trigger event carries.
EVENT_SOURCE = {"training_complete": "training", "inference_complete": "inference"}


def output_compatibility(source_schema: Any, target_schema: Any) -> list[str]:
    """Properties the target requires that the source's output does not declare, or declares
    with another `type`."""
    if not isinstance(target_schema, dict):
        return []
    declared = (
        (source_schema or {}).get("properties", {}) if isinstance(source_schema, dict) else {}
    )
    wanted = target_schema.get("properties", {})
    warnings = []
    for name in target_schema.get("required", []):
        if name not in declared:
            warnings.append(
                f"the target requires '{name}', which the source's output_schema does not declare"
            )
        elif (
            "type" in wanted.get(name, {})
            and "type" in declared[name]
            and wanted[name]["type"] != declared[name]["type"]
        ):
            warnings.append(
                f"'{name}' is {declared[name]['type']!r} in the source's output "
                f"but the target expects {wanted[name]['type']!r}"
            )
    return warnings


def compute_warnings(sub: Subscription) -> list[str]:
    target = RegisteredModel.get_or_none(RegisteredModel.id == sub.target_model_id)
    target_input = contracts.contract_schema(target, sub.target_action, "input_schema")
    if sub.input_source == "stored":
        if target_input is None:
            return []
        return contracts.violations(target_input, sub.input)
    source = RegisteredModel.get_or_none(RegisteredModel.id == sub.source_model_id)
    source_output = contracts.contract_schema(
        source, EVENT_SOURCE[sub.trigger_event], "output_schema"
    )
    return output_compatibility(source_output, target_input)


def _check_input_rule(input_source: str, has_input: bool) -> None:
    if input_source == "stored" and not has_input:
        raise BadRequest("json.input: required when input_source is 'stored'")
    if input_source == "trigger_output" and has_input:
        raise BadRequest("json.input: not allowed when input_source is 'trigger_output'")


def create(
    source_model_id: str,
    data: dict[str, Any],
    tenant: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
    max_owned: int | None = None,
) -> Subscription:
    """A new active subscription; `tenant` (client_id, domain_id, service_id) makes it that
    tenant's own, else it is global. `warnings` already computed (outside the caller's
    transaction) or, when None, computed here. A tenant owns at most `max_owned`
    subscriptions of one model (None: no bound)."""
    _check_input_rule(data["input_source"], data.get("input") is not None)
    if not RegisteredModel.select().where(RegisteredModel.id == source_model_id).exists():
        raise NotFound(f"model '{source_model_id}' not found")
    if not RegisteredModel.select().where(RegisteredModel.id == data["target_model_id"]).exists():
        raise Unprocessable(f"target model '{data['target_model_id']}' does not exist")
    if warnings is None:  # applies the target's schema: before any transaction
        warnings = compute_warnings(_new(source_model_id, data, None))
    if tenant and tenant.get("client_id"):
        with database.atomic():  # the count and the insert under the client's row lock
            check_owner(tenant["client_id"], source_model_id, max_owned)
            return _insert(source_model_id, data, tenant, warnings)
    return _insert(source_model_id, data, None, warnings)


def check_owner(client_id: str, source_model_id: str, max_owned: int | None) -> None:
    """A subscription may belong to an active client that owns fewer than `max_owned` of
    the model's subscriptions. Holds the client's row (Postgres) until the caller's
    transaction ends, so racing requests of one client count one after the other."""
    client = lock_by(Client, client_id=client_id)
    if client is None:
        raise Unprocessable(f"client '{client_id}' does not exist: no subscription belongs to it")
    if client.status != "active":
        raise Forbidden(f"client '{client_id}' is {client.status}")
    if max_owned is None:
        return
    owned = (
        Subscription.select()
        .where(
            (Subscription.client_id == client_id)
            & (Subscription.source_model_id == source_model_id)
        )
        .count()
    )
    if owned >= max_owned:
        raise Unprocessable(
            f"client '{client_id}' already has {owned} subscriptions on model "
            f"'{source_model_id}' ({MAX_OWNED}={max_owned}); delete some first"
        )


def _insert(
    source_model_id: str, data: dict[str, Any], tenant: dict[str, Any] | None, warnings: list[str]
) -> Subscription:
    sub = _new(source_model_id, data, tenant)
    sub.warnings = warnings
    sub.save(force_insert=True)
    return sub


def _new(source_model_id: str, data: dict[str, Any], tenant: dict[str, Any] | None) -> Subscription:
    now = utcnow()
    return Subscription(
        id=str(data.get("id") or uuid7()),
        source_model_id=source_model_id,
        trigger_event=data["trigger_event"],
        target_model_id=data["target_model_id"],
        target_action=data["target_action"],
        input_source=data["input_source"],
        input=data.get("input"),
        label=data.get("label"),
        status="active",
        created_at=now,
        updated_at=now,
        **{name: (tenant or {}).get(name) for name in TENANT_FIELDS},
    )


def get(
    source_model_id: str, subscription_id: str, clients: frozenset[str] | None = None
) -> Subscription:
    """A subscription of the model; `clients` (None: every tenant) are the tenants the caller
    sees: another tenant's subscription is a 403, as another tenant's job is."""
    sub = Subscription.get_or_none(
        (Subscription.id == subscription_id) & (Subscription.source_model_id == source_model_id)
    )
    if sub is None:
        if not RegisteredModel.select().where(RegisteredModel.id == source_model_id).exists():
            raise NotFound(f"model '{source_model_id}' not found")
        raise NotFound(f"subscription '{subscription_id}' not found on model '{source_model_id}'")
    if sub.client_id and clients is not None and sub.client_id not in clients:
        raise Forbidden(f"this token has no access to the client of subscription '{sub.id}'")
    return sub


def list_for(
    source_model_id: str, page: int, page_size: int, clients: frozenset[str] | None = None
) -> tuple[list[Subscription], int]:
    """The model's subscriptions: global ones, and tenants' own for the tenants in
    `clients` (None: every tenant)."""
    if not RegisteredModel.select().where(RegisteredModel.id == source_model_id).exists():
        raise NotFound(f"model '{source_model_id}' not found")
    query = visible(Subscription.source_model_id == source_model_id, clients)
    return list(query.paginate(page, page_size)), query.count()


def of_model(model_id: str, clients: frozenset[str] | None, limit: int) -> list[Subscription]:
    """The subscriptions from and to a model that callers who see `clients` see."""
    condition = (Subscription.source_model_id == model_id) | (
        Subscription.target_model_id == model_id
    )
    return list(visible(condition, clients).limit(limit))


def visible(condition: Any, clients: frozenset[str] | None) -> Any:
    """The subscriptions that meet `condition` (None: all) and that callers who see `clients`
    (None: every tenant) see: global ones and those tenants' own, oldest first."""
    query = Subscription.select()
    if condition is not None:
        query = query.where(condition)
    if clients is not None:
        query = query.where(
            Subscription.client_id.is_null() | Subscription.client_id.in_(["", *clients])
        )
    return query.order_by(Subscription.created_at, Subscription.id)


def update(
    source_model_id: str,
    subscription_id: str,
    data: dict[str, Any],
    clients: frozenset[str] | None = None,
) -> Subscription:
    sub = get(source_model_id, subscription_id, clients)
    if "input" in data:
        _check_input_rule(sub.input_source, data["input"] is not None)
        sub.input = data["input"]
    for name in ("label", "status"):
        if name in data:
            setattr(sub, name, data[name])
    sub.warnings = compute_warnings(sub)
    sub.updated_at = utcnow()
    sub.save()
    return sub


def delete(
    source_model_id: str, subscription_id: str, clients: frozenset[str] | None = None
) -> None:
    get(source_model_id, subscription_id, clients).delete_instance()


def replay_schema(model_id: str) -> Any:
    """The schema a `subscribe: true` replay subscription's warnings come from."""
    model = RegisteredModel.get_or_none(RegisteredModel.id == model_id)
    return contracts.contract_schema(model, "inference", "input_schema")


def replay_warnings(schema: Any, job_input: dict[str, Any]) -> list[str]:
    return contracts.violations(schema, job_input) if schema is not None else []


def subscribe_replay(
    model_id: str,
    job_input: dict[str, Any],
    tenant: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
    max_owned: int | None = None,
) -> Subscription:
    """`subscribe: true`: replay this inference input after the model's next retrain, for
    the tenant the inference ran for (if any), with `warnings` from `replay_warnings` when
    called inside a transaction."""
    return create(
        model_id,
        {
            "trigger_event": "training_complete",
            "target_model_id": model_id,
            "target_action": "inference",
            "input_source": "stored",
            "input": job_input,
            "label": "subscribe",
        },
        tenant,
        warnings,
        max_owned,
    )


def _changed_sides(old: RegisteredModel, new: RegisteredModel) -> tuple[set[str], set[str]]:
    """Which handler kinds changed on their input side and on their output side (5.3)."""
    inputs: set[str] = set()
    outputs: set[str] = set()
    for kind in EVENT_SOURCE.values():
        if old.handler_contracts or new.handler_contracts:
            if contracts.contract_schema(old, kind, "input_schema") != contracts.contract_schema(
                new, kind, "input_schema"
            ):
                inputs.add(kind)
            if contracts.contract_schema(old, kind, "output_schema") != contracts.contract_schema(
                new, kind, "output_schema"
            ):
                outputs.add(kind)
        elif (old.handlers or {}).get(kind) != (new.handlers or {}).get(kind):
            inputs.add(kind)
            outputs.add(kind)
    return inputs, outputs


def mark_stale(old: RegisteredModel, new: RegisteredModel) -> int:
    """Stale the subscriptions that depend on what a model update changed."""
    inputs, outputs = _changed_sides(old, new)
    events = {kind: event for event, kind in EVENT_SOURCE.items()}
    conditions = [
        (Subscription.target_model_id == new.id) & (Subscription.target_action == kind)
        for kind in inputs
    ] + [
        (Subscription.source_model_id == new.id)
        & (Subscription.input_source == "trigger_output")
        & (Subscription.trigger_event == events[kind])
        for kind in outputs
    ]
    if not conditions:
        return 0
    where = conditions[0]
    for condition in conditions[1:]:
        where |= condition
    where &= Subscription.status != "stale"
    watched = outbox.has_receivers("subscription.stale")
    staled = list(Subscription.select().where(where)) if watched else []
    now = utcnow()
    count = Subscription.update(status="stale", updated_at=now).where(where).execute()
    items = []
    for sub in staled:
        previous, sub.status, sub.updated_at = sub.status, "stale", now
        items.append((sub, sub.client_id, {"previous_status": previous, "model_id": new.id}))
    outbox.subscriptions_event("subscription.stale", items)
    return count


def delete_for_model(model_id: str) -> None:
    Subscription.delete().where(
        (Subscription.source_model_id == model_id) | (Subscription.target_model_id == model_id)
    ).execute()
