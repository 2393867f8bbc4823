"""The `in_process` handler type: named Python implementations run on a bounded worker pool."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import marshmallow as ma

from pie import DispatchDeferred, HandlerType, hookimpl, jsonio
from pie.errors import Conflict

log = logging.getLogger(__name__)


class InProcessHandlerSchema(ma.Schema):
    value = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=200),
        metadata={
            "description": "Name of an implementation registered by a plugin",
            "example": "echo",
        },
    )


class InProcessHandlerType(HandlerType):
    name = "in_process"
    schema = InProcessHandlerSchema
    description = "A Python callable registered with pie_register_in_process_handlers."
    starts_itself = True

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.workers = int(runtime.config.get("PIE_IN_PROCESS_WORKERS") or 4)
        self.lease = float(runtime.config.get("PIE_IN_PROCESS_LEASE_SECONDS") or 30)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._running: set[str] = set()  # queued or running here
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def _beat(self) -> None:
        """Renew the claims of queued and running jobs, so recovery knows this process is
        alive and leaves them alone."""
        while not self._stop.wait(self.lease / 3):
            with self._lock:
                running = list(self._running)
            try:
                self.runtime.renew_leases(running, self.lease)
            except Exception:
                log.exception("could not renew in-process job leases")

    def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        known = self.runtime.in_process_handlers
        if handler["value"] in known:
            return {}
        names = ", ".join(sorted(known)) or "none"
        return {
            "value": [
                f"Unknown in-process implementation {handler['value']!r} (registered: {names})."
            ]
        }

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> None:
        implementation = self.runtime.in_process_handlers.get(handler["value"])
        if implementation is None:
            raise LookupError(f"no in-process implementation named {handler['value']!r}")
        with self._lock:
            if self._closed:
                raise DispatchDeferred("the in-process worker pool is shutting down")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pie-in-process")
                self._heartbeat = threading.Thread(
                    target=self._beat, daemon=True, name="pie-in-process-heartbeat"
                )
                self._heartbeat.start()
            self._running.add(job.job_id)
            self._pool.submit(self.run, implementation, job.job_id, payload["input"])
        return None

    def run(
        self,
        implementation: Callable[[dict[str, Any]], Any],
        job_id: str,
        job_input: dict[str, Any],
    ) -> None:
        """Run one job and complete it through the same path as an HTTP callback."""
        try:
            if self._closed:  # shutting down before it started: left pending for recovery
                return
            if not self.runtime.mark_started(job_id, lease_seconds=self.lease):
                return  # a re-dispatched copy: the job already runs (or ran) elsewhere
            try:
                output = implementation(job_input)
                if not isinstance(output, dict):
                    raise TypeError(f"returned {type(output).__name__}, not a JSON object")
                jsonio.dumps(output)  # must be storable as JSON: no NaN or Infinity
            except Exception as exc:  # the job's failure, reported as its error
                self.runtime.complete_job(
                    job_id, "failure", error={"type": type(exc).__name__, "message": str(exc)}
                )
            else:
                self.runtime.complete_job(job_id, "success", output=output)
        except Conflict as exc:  # another run (its lease had lapsed) recorded its result first
            log.warning("in-process job %s: this run's result was not recorded: %s", job_id, exc)
        except Exception:
            log.exception("in-process job %s could not be recorded", job_id)
        finally:
            with self._lock:
                self._running.discard(job_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True)
        self._stop.set()


def echo(job_input: dict[str, Any]) -> dict[str, Any]:
    """Return the job input unchanged."""
    return job_input


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [InProcessHandlerType]


@hookimpl
def pie_register_in_process_handlers(app: Any) -> dict[str, Any]:
    return {"echo": echo}
