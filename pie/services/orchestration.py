"""Starting and finishing work: direct jobs, status transitions that fire subscriptions, and
job completion. Each commits its rows first and dispatches after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pie import contracts, metrics
from pie.db import database
from pie.errors import Conflict, NotFound, Unprocessable
from pie.services import control, jobs, lifecycle, outbox, registry, subscriptions, triggers
from pie.tables import TENANT_FIELDS, Job, ModelVersion, RegisteredModel, Service
from pie.writer_lock import admitted_work

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)

TRAINABLE = ("pending", "failed")


def start_inference(
    runtime: Runtime,
    model_id: str,
    model_version: str,
    job_input: dict[str, Any],
    subscribe: bool = False,
    subscriber: str | None = None,
    max_owned: int | None = None,
    **context: Any,
) -> Job:
    """An inference job (in `context`'s tenant, if any). With `subscribe`, its input is also
    stored as a replay subscription, which belongs to the job's tenant or, for a job of no
    tenant, to `subscriber` (the client of the token that asked; None: global), who may own
    at most `max_owned` subscriptions of the model."""
    version = inference_version(model_id, model_version)
    jobs.check_input(version, "inference", job_input)
    tenant = {name: context.get(name) for name in TENANT_FIELDS}
    if not tenant["client_id"]:
        tenant = {"client_id": subscriber}
    if not subscribe:  # one INSERT, atomic by itself: no transaction around it
        job = jobs.new_job(
            version,
            "inference",
            job_input,
            runtime.dispatcher.claim_columns(version, "inference"),
            **context,
        )
        runtime.dispatcher.submit([job])
        return job
    while True:
        # A replay subscription's warnings apply the model's input_schema: outside the
        # transaction, which starts over if that schema changed meanwhile.
        schema = subscriptions.replay_schema(model_id)
        warnings = subscriptions.replay_warnings(schema, job_input)
        with database.atomic():
            if not jobs.same_json(subscriptions.replay_schema(model_id), schema):
                continue
            job = jobs.new_job(
                version,
                "inference",
                job_input,
                runtime.dispatcher.claim_columns(version, "inference"),
                **context,
            )
            subscriptions.subscribe_replay(model_id, job_input, tenant, warnings, max_owned)
        break
    runtime.dispatcher.submit([job])
    return job


def inference_version(model_id: str, model_version: str) -> ModelVersion:
    """The version an inference runs on: it must be active (whose contracts never change)."""
    version = lifecycle.get_version(model_id, model_version)
    if version.status != "active":
        raise Unprocessable(
            f"version '{model_version}' of model '{model_id}' is "
            f"'{version.status}'; inference needs an active version"
        )
    return version


def add_checked_inference(
    runtime: Runtime, version: ModelVersion, job_input: dict[str, Any], **context: Any
) -> Job:
    """An inference job, in the caller's transaction, whose input the caller has checked
    against `version` before that transaction began; dispatched once it commits."""
    job = jobs.new_job(
        version,
        "inference",
        job_input,
        runtime.dispatcher.claim_columns(version, "inference"),
        **context,
    )
    runtime.dispatcher.submit([job])
    return job


def start_training(
    runtime: Runtime, model_id: str, model_version: str, job_input: dict[str, Any], **context: Any
) -> Job:
    version = lifecycle.get_version(model_id, model_version)
    if version.status not in TRAINABLE:
        raise Unprocessable(
            f"version '{model_version}' is '{version.status}'; "
            "training starts from pending or failed"
        )
    jobs.check_input(version, "training", job_input)
    with database.atomic():
        _model, version, previous = lifecycle.set_status(model_id, model_version, "training")
        if previous not in TRAINABLE:  # a racing request moved it first
            raise Unprocessable(f"version '{model_version}' is already training")
        job = jobs.new_job(
            version,
            "training",
            job_input,
            runtime.dispatcher.claim_columns(version, "training"),
            **context,
        )
    runtime.dispatcher.submit([job])
    return job


def train_new_version(
    runtime: Runtime, model_id: str, job_input: dict[str, Any], **context: Any
) -> Job:
    """Training through an assignment: a new version of the model (snapshotting its current
    handlers), moved to training, with a training job on it."""
    while True:
        # The input is checked against the model's contract outside the transaction, which
        # starts over if that contract changed meanwhile (the new version snapshots it).
        schema = contracts.contract_schema(registry.get_model(model_id), "training", "input_schema")
        jobs.check_input_against(schema, "training", job_input)
        with database.atomic():
            model = registry.lock_model(model_id)
            if not jobs.same_json(
                contracts.contract_schema(model, "training", "input_schema"), schema
            ):
                continue
            version = registry.add_version(model, None, status="training")
            job = jobs.new_job(
                version,
                "training",
                job_input,
                runtime.dispatcher.claim_columns(version, "training"),
                **context,
            )
        break
    runtime.dispatcher.submit([job])
    return job


def last_successful_training(version: ModelVersion) -> Job | None:
    return (
        Job.select()
        .where(
            (Job.model_id == version.model_id)
            & (Job.model_version == version.version)
            & (Job.job_type == "training")
            & (Job.status == "success")
        )
        .order_by(Job.completed_at.desc(), Job.job_id.desc())
        .first()
    )


def change_status(
    runtime: Runtime, model_id: str, model_version: str, status: str
) -> tuple[RegisteredModel, ModelVersion, list[dict[str, Any]]]:
    """Apply a status transition; `training → active` fires `training_complete` in the same
    transaction, so the change and its triggered jobs commit together or not at all."""
    fired: list[str] = []
    events: list[dict[str, Any]] = []
    with database.atomic():
        model, version, previous = lifecycle.set_status(model_id, model_version, status)
        if previous == "training" and status == "active":
            parent = last_successful_training(version)
            events, fired = triggers.fire(
                runtime,
                model_id,
                "training_complete",
                (parent.output or {}) if parent else {},
                parent=parent,
            )
        if previous is not None and status == "active":
            model = lifecycle.activate_model(model, version.updated_at)
    if events:
        log.info(
            "version %s of model %s is active; training_complete started %d job(s)",
            model_version,
            model_id,
            len(fired),
            extra={"model_id": model_id, "model_version": model_version, "triggered": len(fired)},
        )
        metrics.fanned_out("training_complete", len(fired))
    runtime.dispatcher.submit(fired)
    return model, version, events


@admitted_work
def complete_job(
    runtime: Runtime,
    job_id: str,
    status: str,
    output: Any = None,
    error: Any = None,
    model_id: str | None = None,
    model_version: str | None = None,
    attempt: int | None = None,
    retryable: bool | None = None,
    fresh: bool = False,
    when: Callable[[Job], bool] | None = None,
) -> dict[str, Any] | None:
    """Record a job's outcome once; a repeat of the same outcome returns the stored result,
    a different one (status, output or error) is a 409. A successful inference fires
    `inference_complete`. A failure that may be retried (control.retries) sends the job
    back to pending for its next attempt instead, and fires nothing.

    `attempt`: the caller's attempt (a callback token's), 409 when the job is past it.
    `fresh`: a job that has ended is a 409 even for the same outcome. `when`: a check of the
    locked row; when it fails, nothing is recorded and None is returned. A job PIE ended
    (cancelled, timed out) takes no completion: 409.

    The output is checked against its output_schema outside the transaction: when the
    transaction finds a schema it has no warnings for, it leaves (having written nothing),
    the schema is applied, and the transaction runs again with them."""
    applied: Any = None  # the output_schema the output was checked against so far
    warnings: list[str] = []
    retried: float | None = None
    while True:
        with database.atomic():
            job, handler_contracts, subscribed = jobs.lock_for_completion(job_id)
            if job is None or (
                model_id is not None
                and (job.model_id, job.model_version) != (model_id, model_version)
            ):
                raise NotFound(f"job '{job_id}' not found for that model version")
            if when is not None and not when(job):
                return None
            if job.status in jobs.TERMINAL:
                if fresh or control.ended_by_pie(job):
                    raise Conflict(control.ended_message(job))
                control.check_attempt(job, attempt)
                jobs.check_repeat(job, status, output, error)
                return jobs.completion_result(job)
            control.check_attempt(job, attempt)
            if attempt is None and control.repeats_last_failure(job, status, error):
                return jobs.completion_result(job)  # a resent failure must not spend an attempt
            if status == "failure" and control.retries(job, error, retryable, runtime.config):
                failed_attempt = job.attempt
                retried = control.retry(job, error, runtime.config)
                fired: list[str] = []
                break
            schema = jobs.output_schema(job, output, handler_contracts)
            if jobs.same_json(schema, applied):
                fired = _record_outcome(runtime, job, status, output, error, warnings, subscribed)
                break
            applied = schema  # leave the transaction (nothing written) to apply it outside
        warnings = jobs.output_warnings(job_id, applied, output)
    if retried is not None:
        log.info(
            "job %s attempt %d failed; attempt %d in %.1f s",
            job_id,
            failed_attempt,
            job.attempt,
            retried,
            extra={"job_id": job_id, "attempt": job.attempt, "backoff_seconds": retried},
        )
        metrics.attempt_ended(job.job_type, "retry")
        return jobs.completion_result(job)
    log.info(
        "job %s completed: %s",
        job_id,
        status,
        extra={
            "job_id": job_id,
            "job_type": job.job_type,
            "handler_type": job.handler_type,
            "status": status,
            "triggered": len(fired),
        },
    )
    metrics.completed(job.job_type, status, job.handler_type)
    if job.triggered_events:
        metrics.fanned_out("inference_complete", len(fired))
    runtime.dispatcher.submit(fired)
    return jobs.completion_result(job)


def _record_outcome(
    runtime: Runtime,
    job: Job,
    status: str,
    output: Any,
    error: Any,
    warnings: list[str],
    subscribed: bool,
) -> list[str]:
    """Store a completion (in the caller's transaction); the ids of the jobs it fired.
    `subscribed`: whether an active inference_complete subscription of the job's model
    exists (read in the same transaction); without one there is nothing to fire."""
    fired: list[str] = []
    jobs.record_outcome(job, status, output, error, warnings)
    if job.service_id is not None:  # a service's status follows its init job
        follow_init_job(job, "available" if status == "success" else "failed")
    if status == "success" and job.job_type == "inference":
        job.triggered_events, fired = (
            triggers.fire(runtime, job.model_id, "inference_complete", output or {}, parent=job)
            if subscribed
            else ([], [])
        )
    jobs.save_outcome(job)
    outbox.job_ended(job)
    return fired


def follow_init_job(job: Job, status: str) -> None:
    """The status of the services whose init job this is (and their events)."""
    watched = outbox.has_receivers("service.status_changed")
    before = list(Service.select().where(Service.init_job_id == job.job_id)) if watched else []
    Service.update(status=status, updated_at=job.completed_at).where(
        Service.init_job_id == job.job_id
    ).execute()
    for service in before:
        if service.status != status:
            previous, service.status, service.updated_at = service.status, status, job.completed_at
            outbox.service_status_changed(service, previous)
