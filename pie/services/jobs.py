"""Jobs: read and list them, build new rows, payloads and completion results."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import peewee

from pie import contracts, counts
from pie.db import database
from pie.errors import Conflict, NotFound, Unprocessable
from pie.ids import uuid7
from pie.rows import get_by, insert_row, lock_with_columns, update_row
from pie.services import lifecycle, outbox, policy
from pie.tables import TRIGGER_COLUMNS, Job, ModelVersion, Subscription, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)

TERMINAL = ("success", "failure")


def find_job(job_id: str) -> Job | None:
    return get_by(Job, job_id=job_id)


def get_job(job_id: str) -> Job:
    job = find_job(job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return job


def list_jobs(
    model_id: str,
    model_version: str,
    filters: dict[str, str],
    page: int,
    page_size: int,
    visible_clients: frozenset[str] | None = None,
) -> tuple[list[Job], int]:
    """A version's jobs, newest first; jobs launched for a tenant only when `visible_clients`
    (None: all) includes it."""
    lifecycle.get_version(model_id, model_version)
    query = Job.select().where((Job.model_id == model_id) & (Job.model_version == model_version))
    if visible_clients is not None:  # no tenant (NULL, or "" written by hand) or a visible one
        query = query.where(Job.client_id.is_null() | Job.client_id.in_(["", *visible_clients]))
    for name in ("status", "job_type"):
        if filters.get(name):
            query = query.where(getattr(Job, name) == filters[name])
    total = counts.job_total(
        model_id,
        model_version,
        status=filters.get("status"),
        job_type=filters.get("job_type"),
        clients=visible_clients,
    )
    return list(query.order_by(Job.job_id.desc()).paginate(page, page_size)), total


def check_input(holder: Any, job_type: str, job_input: dict[str, Any]) -> None:
    """422 listing every violation of the (model's or version's) input contract."""
    check_input_against(
        contracts.contract_schema(holder, job_type, "input_schema"), job_type, job_input
    )


def check_input_against(schema: Any, job_type: str, job_input: dict[str, Any]) -> None:
    problems = contracts.violations(schema, job_input) if schema is not None else []
    if problems:
        raise Unprocessable(
            f"input does not match the {job_type} input_schema: " + "; ".join(problems)
        )


def new_job(
    version: ModelVersion,
    job_type: str,
    job_input: dict[str, Any],
    claim: dict[str, Any] | None = None,
    **context: Any,
) -> Job:
    """Insert a pending job for `version` (the caller owns the transaction); `claim`: the
    dispatch claim it starts with (Dispatcher.claim_columns), if any, which may also start it
    (then its job.started event is written with it)."""
    handler = version.handlers[job_type]
    row = {
        "job_id": uuid7(),
        "job_type": job_type,
        "model_id": version.model_id,
        "model_version": version.version,
        "status": "pending",
        "input": job_input,
        "warnings": [],
        "handler_type": handler["type"],
        "handler": handler,
        "policy": policy.of_type(version.job_policy, job_type),
        "created_at": (claim or {}).get("started_at") or utcnow(),
        **trigger_columns(context.get("trigger")),
        **(claim or {}),
        **context,
    }
    if row["status"] != "started" or not outbox.has_receivers("job.started"):
        return insert_row(Job, row)
    with database.atomic():  # the event commits with the row
        job = insert_row(Job, row)
        outbox.emit("job.started", *outbox.job_event(job))
    return job


def trigger_columns(trigger: dict[str, Any] | None) -> dict[str, Any]:
    """The columns GET /v2/jobs searches a job's `trigger` by: what it names (its
    `parent_job_id` is the public one, null when the parent is another tenant's)."""
    trigger = trigger or {}
    return {name: trigger.get(name) for name in TRIGGER_COLUMNS}


TRIGGER_FIELDS = ("subscription_id", "parent_job_id", "depth")


def public_trigger(trigger: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job's `trigger` as the contract shows it, without the chain bookkeeping it keeps."""
    return None if trigger is None else {name: trigger.get(name) for name in TRIGGER_FIELDS}


def callback_url(public_url: str, job: Job, action: str = "complete") -> str:
    return (
        f"{public_url.rstrip('/')}/v2/models/{quote(job.model_id, safe='')}/versions/"
        f"{quote(job.model_version, safe='')}/jobs/{job.job_id}/{action}"
    )


def payload(runtime: Runtime, job: Job, token: bool = True) -> dict[str, Any]:
    """What every backend receives (contract 6.4), with a fresh callback token for this
    attempt of the job (`token` False: none, for a type that never calls back over HTTP);
    `attempt` and the heartbeat URL are PIE extensions."""
    callback = {
        "url": callback_url(runtime.public_url, job),
        "heartbeat_url": callback_url(runtime.public_url, job, "heartbeat"),
    }
    if token:
        callback["token"] = runtime.callback_token(job.job_id, job.attempt)
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "model_id": job.model_id,
        "model_version": job.model_version,
        "attempt": job.attempt,
        "input": job.input,
        "context": {
            "client_id": job.client_id,
            "domain_id": job.domain_id,
            "service_id": job.service_id,
            "assignment_id": job.assignment_id,
            "trigger": public_trigger(job.trigger),
        },
        "callback": callback,
    }


def output_schema(job: Job, output: Any, handler_contracts: Any) -> Any:
    """The output_schema a completion's `output` is checked against (None: nothing to check),
    from the `handler_contracts` of the job's version (read with the job: lock_for_completion)."""
    if output is None:
        return None
    return contracts.schema_in(handler_contracts, job.job_type, "output_schema")


# Whether the job's model has an active inference_complete subscription: read with the job
# (on SQLite), so that a completion without one (most) sends no query for them.
_SUBSCRIBED = peewee.fn.EXISTS(
    Subscription.select(peewee.SQL("1")).where(
        (Subscription.source_model_id == Job.model_id)
        & (Subscription.trigger_event == "inference_complete")
        & (Subscription.status == "active")
    )
)


def lock_for_completion(job_id: str) -> tuple[Job | None, Any, bool]:
    """The job's row, locked (`lock_by`), its version's handler_contracts (None: no version,
    or none declared) and whether the subscriptions to its model's inference_complete must
    be read: in one statement on SQLite, whose transactions take the writer first, so the
    statement sees every subscription committed before. On Postgres the statement may wait
    for the job's row lock and reads as of its start (READ COMMITTED): a subscription
    committed meanwhile would be missed, so there they are always read after the lock."""
    waits = bool(database.for_update)
    columns = (ModelVersion.handler_contracts,) + (() if waits else (_SUBSCRIBED,))
    found = lock_with_columns(
        Job,
        columns,
        {"model": "model_id", "version": "model_version"},
        job_id=job_id,
    )
    if found is None:
        return None, None, False
    job, values = found
    return job, values[0], waits or bool(values[1])


def output_warnings(job_id: str, schema: Any, output: Any) -> list[str]:
    """How `output` violates `schema` (call outside any transaction: it applies a user's
    schema)."""
    found = contracts.violations(schema, output, "output")
    if found:
        # The messages quote the tenant's output: only at DEBUG. The caller gets them as
        # `warnings`; the operator's WARNING line says that it happened and where.
        log.warning(
            "job %s output violates its output_schema (%d problem(s), listed in the "
            "job's `warnings`)",
            job_id,
            len(found),
            extra={"job_id": job_id, "violations": len(found)},
        )
        log.debug("job %s output_schema violations: %s", job_id, "; ".join(found))
    return found


def completion_result(job: Job) -> dict[str, Any]:
    """The completion response; `client_id` is not part of it, it tells the view whose
    TriggeredEvents the job's own callback token may be shown."""
    result = {
        "client_id": job.client_id,
        "job_id": job.job_id,
        "model_id": job.model_id,
        "model_version": job.model_version,
        "status": job.status,
        "triggered_events": job.triggered_events or [],
    }
    if job.warnings:
        result["warnings"] = job.warnings
    return result


def recorded_error(status: str, error: Any) -> Any:
    """The `error` a completion records: a success keeps none."""
    return error if status == "failure" else None


def check_repeat(job: Job, status: str, output: Any, error: Any) -> None:
    """A completion of a job that has ended must repeat what was recorded: its status, its
    `output` and, for a failure, its `error` (omitted is null). Anything else is a 409, so a
    handler never believes a second, different outcome was kept."""
    if job.status != status:
        raise Conflict(f"job '{job.job_id}' already ended with '{job.status}'")
    for name, sent in (("output", output), ("error", recorded_error(status, error))):
        if not same_json(getattr(job, name), sent):
            raise Conflict(
                f"job '{job.job_id}' already ended with '{status}' and a different {name}; "
                f"a repeated completion must send the same {name}"
            )


def same_json(first: Any, second: Any) -> bool:
    """Whether two parsed JSON values are the same JSON: objects whatever their key order,
    arrays in order, numbers by value (1 equals 1.0, as in JSON Schema's `const`), but never
    a boolean and a number (Python's True == 1 is not JSON's) nor a string and a number.
    Iterative, so no nesting can overflow the stack."""
    pairs = [(first, second)]
    while pairs:
        a, b = pairs.pop()
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            pairs.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            pairs.extend(zip(a, b, strict=True))
        elif not same_scalar(a, b):
            return False
    return True


def same_scalar(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if type(a) in numbers and type(b) in numbers:  # not bool: its type is not int
        return a == b or (a != a and b != b)  # NaN, which Python's json reads and writes
    return type(a) is type(b) and a == b


def record_outcome(job: Job, status: str, output: Any, error: Any, warnings: list[str]) -> None:
    """Set a job's terminal fields (the caller saves it)."""
    now = utcnow()
    job.status, job.output, job.completed_at = status, output, now
    job.error = recorded_error(status, error)
    job.started_at = job.started_at or now
    job.warnings = warnings
    job.triggered_events = []
    job.claimed_by = None  # an ended job is nobody's claim


OUTCOME_FIELDS = (
    "status",
    "output",
    "completed_at",
    "error",
    "started_at",
    "warnings",
    "triggered_events",
    "claimed_by",
)


def save_outcome(job: Job) -> None:
    update_row(Job, {name: getattr(job, name) for name in OUTCOME_FIELDS}, job_id=job.job_id)
