"""The `celery` handler type: a Celery task per job, sent by name to the broker in
PIE_CELERY_BROKER_URL (Redis or RabbitMQ) with the dispatch payload as its one argument.

Celery is an optional extra (`pip install 'pie-registry[celery]'`): without it this plugin
registers no type and `pie plugins` says why. Workers use `pie.celery.pie_task`."""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import uuid4

import marshmallow as ma

from pie import HandlerType, hookimpl

try:
    import celery
except ImportError:  # the optional extra is not installed
    celery = None

log = logging.getLogger(__name__)

# What `pie plugins` shows under "unavailable" when the extra is missing.
UNAVAILABLE = None if celery is not None else "not available - install pie-registry[celery]"
NOT_CONFIGURED = "PIE_CELERY_BROKER_URL is not set: the celery handler type has no broker"
# Publishing is bounded: a broker that is down or unreachable fails the dispatch (a retryable
# DispatchError under the job's policy) within seconds instead of holding a dispatch claim.
CONNECT_TIMEOUT = 3.0
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}

# kombu flushes a publish batch early once it holds this many Redis commands: never, here.
UNFLUSHED = 1 << 30


class CeleryHandlerSchema(ma.Schema):
    task = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "Celery task name", "example": "models.sentiment.predict"},
    )
    queue = ma.fields.String(
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "Queue to send it to (default: Celery's default queue)"},
    )


class CeleryHandlerType(HandlerType):
    name = "celery"
    schema = CeleryHandlerSchema
    description = "A Celery task (send_task) with the payload as its argument."
    dispatches_in_batches = True

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.broker_url = runtime.config.get("PIE_CELERY_BROKER_URL")
        self._app: Any = None
        self._lock = threading.Lock()

    def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        if not self.broker_url:
            return {"type": [NOT_CONFIGURED]}
        return {}

    def app(self) -> Any:
        """The process's one Celery app, created on first use."""
        if not self.broker_url:
            raise RuntimeError(NOT_CONFIGURED)
        with self._lock:
            if self._app is None:
                app = celery.Celery("pie", broker=self.broker_url, set_as_current=False)
                app.conf.update(
                    broker_connection_timeout=CONNECT_TIMEOUT,
                    broker_connection_retry=False,
                    broker_connection_max_retries=1,
                    broker_transport_options={
                        # redis: socket timeouts; amqp: ignored keys are harmless
                        "socket_connect_timeout": CONNECT_TIMEOUT,
                        "socket_timeout": 5,
                        "max_retries": 2,
                        "interval_start": 0,
                        "interval_step": 0.5,
                        "interval_max": 1,
                    },
                    task_publish_retry_policy=PUBLISH_RETRY_POLICY,
                    task_ignore_result=True,
                    worker_hijack_root_logger=False,
                )
                self._app = app
            return self._app

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        """send_task with the payload as the one argument; the task id is the external id.
        The message's argsrepr names the job instead of repeating the payload: Celery's events,
        `celery inspect` and monitors such as Flower show argsrepr, and the payload holds the
        callback token (which completes the job) and the tenant's input. Skipping Celery's
        repr of the payload also saves about a sixth of a publish's CPU."""
        return self._send(handler, job, payload, None, None)

    def dispatch_many(
        self, items: list[tuple[dict[str, Any], Any, dict[str, Any]]]
    ) -> list[str | None | Exception]:
        """The tasks of several jobs through one producer, in one of kombu's publish batches:
        on Redis one pipelined round trip (kombu also builds one Redis client for it instead
        of one per message), on transports without batches one publish after the other.
        The batch is never flushed in parts. If anything fails before or while it goes out,
        each task is sent again alone, with the publish retries and the task id it had in
        the batch: a message Redis took before the connection broke then arrives twice
        under one id (a revoke stops both; the second run's completion of the same outcome
        is taken as a repeat, a different one refused with 409)."""
        app = self.app()
        task_ids = [str(uuid4()) for _ in items]
        try:
            with app.producer_or_acquire() as producer, producer.batch(max_size=UNFLUSHED):
                for (handler, job, payload), task_id in zip(items, task_ids, strict=True):
                    self._send(handler, job, payload, task_id, producer)
            return list(task_ids)
        except Exception:  # the batch did not (surely) go out: each alone
            log.warning(
                "a batch of %d task(s) failed; sending each alone", len(items), exc_info=True
            )
        outcomes: list[str | None | Exception] = []
        for (handler, job, payload), task_id in zip(items, task_ids, strict=True):
            try:
                outcomes.append(self._send(handler, job, payload, task_id, None))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _send(
        self,
        handler: dict[str, Any],
        job: Any,
        payload: dict[str, Any],
        task_id: str | None,
        producer: Any,
    ) -> str:
        options: dict[str, Any] = {
            "retry": True,
            "retry_policy": PUBLISH_RETRY_POLICY,
            "argsrepr": f"(<PIE job {job.job_id}, attempt {job.attempt}>,)",
            "kwargsrepr": "{}",
        }
        if handler.get("queue"):
            options["queue"] = handler["queue"]
        if task_id is not None:
            options["task_id"] = task_id
        if producer is not None:
            options["producer"] = producer
        result = self.app().send_task(handler["task"], args=[payload], **options)
        return result.id

    def cancel(
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        """Revoke the attempt's task: dropped if still queued, SIGTERM to the worker child
        running it (a prefork pool; other pools learn it from the heartbeat's 409)."""
        if not external_id or not self.broker_url:
            return
        self.app().control.revoke(external_id, terminate=True, signal="SIGTERM")

    def close(self) -> None:
        with self._lock:
            app, self._app = self._app, None
        if app is not None:
            app.close()


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [] if celery is None else [CeleryHandlerType]
