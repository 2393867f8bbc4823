"""The `in_process` handler type: named Python implementations run on a bounded worker pool."""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import marshmallow as ma

from pie import DispatchDeferred, HandlerType, hookimpl, jsonio
from pie.errors import Conflict

log = logging.getLogger(__name__)

# A worker `start_lease` reserves is free again if its job is not dispatched within this
# long (an insert that failed): a dispatch follows its insert's commit at once.
RESERVATION_SECONDS = 1.0


class InProcessHandlerSchema(ma.Schema):
    value = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=200),
        metadata={
            "description": "Name of an implementation registered by a plugin",
            "example": "echo",
        },
    )


class JobContext:
    """The second argument of an implementation that takes two: `def train(job_input, job)`.
    `job.cancelled` is set once PIE has ended the job (cancelled, timed out); `heartbeat`
    reports progress and returns False once the job has ended. A cancelled job's result is
    not recorded, so an implementation that sees `cancelled` may stop at once."""

    def __init__(self, runtime: Any, job_id: str, attempt: int) -> None:
        self._runtime = runtime
        self.job_id = job_id
        self.attempt = attempt
        self.cancelled = threading.Event()
        # Its insert started it (start_lease), yet it found every worker busy: it waits.
        self._waits = False

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> bool:
        try:
            self._runtime.heartbeat(self.job_id, self.attempt, progress=progress, message=message)
        except Conflict:
            self.cancelled.set()
            return False
        return True


def takes_context(implementation: Callable[..., Any]) -> bool:
    """`wants_context`, asked once per implementation (inspecting a signature costs more
    than running a small one)."""
    try:
        return _TAKES_CONTEXT[implementation]
    except KeyError:
        answer = _TAKES_CONTEXT[implementation] = wants_context(implementation)
        return answer
    except TypeError:  # not hashable
        return wants_context(implementation)


_TAKES_CONTEXT: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def wants_context(implementation: Callable[..., Any]) -> bool:
    """Whether an implementation wants a second positional argument (the JobContext): it
    has two without a default, or takes *args. `f(job_input, threshold=0.5)` does not."""
    try:
        parameters = inspect.signature(implementation).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the input only
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    required = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 2


class InProcessHandlerType(HandlerType):
    name = "in_process"
    schema = InProcessHandlerSchema
    description = "A Python callable registered with pie_register_in_process_handlers."
    starts_itself = True
    dispatches_inline = True
    needs_callback_token = False

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.workers = int(runtime.config.get("PIE_IN_PROCESS_WORKERS") or 4)
        self.lease = float(runtime.config.get("PIE_IN_PROCESS_LEASE_SECONDS") or 30)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._running: dict[str, JobContext] = {}  # queued or running here
        self._reserved: deque[float] = deque()  # start_lease's workers, not yet dispatched
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def _beat(self) -> None:
        """Renew the claims of queued and running jobs, so recovery knows this process is
        alive and leaves them alone."""
        while not self._stop.wait(self.lease / 3):
            with self._lock:
                running = dict(self._running)
            try:
                # An attempt that has ended (cancelled, timed out — here or in another
                # process) is told, and its lease no longer renewed.
                attempts = {job_id: context.attempt for job_id, context in running.items()}
                for job_id in self.runtime.ended_attempts(attempts):
                    running[job_id].cancelled.set()
                    del attempts[job_id]
                self.runtime.renew_leases(attempts, self.lease)
            except Exception:
                log.exception("could not renew in-process job leases")

    def start_lease(self) -> float | None:
        """A worker is free: fewer jobs queued or running here, or reserved by this call for
        jobs being inserted, than workers. It is reserved for the job whose insert asks
        (until that job's dispatch, at most RESERVATION_SECONDS), which may start it."""
        with self._lock:
            now = time.monotonic()
            while self._reserved and self._reserved[0] < now - RESERVATION_SECONDS:
                self._reserved.popleft()
            if self._closed or len(self._running) + len(self._reserved) >= self.workers:
                return None
            self._reserved.append(now)
            return self.lease

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
            context = JobContext(self.runtime, job.job_id, job.attempt)
            if job.status == "started":  # its insert started it, on a reserved worker
                if self._reserved:
                    self._reserved.popleft()
                context._waits = len(self._running) >= self.workers  # a reservation lapsed
            self._running[job.job_id] = context
            self._pool.submit(self.run, implementation, job, payload["input"], context)
        return None

    def cancel(
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        """Tell the job's run here, if it runs here (another process's learns at its next
        lease renewal, or heartbeat)."""
        with self._lock:
            context = self._running.get(job.job_id)
        if context is not None:
            context.cancelled.set()

    def run(
        self,
        implementation: Callable[..., Any],
        job: Any,
        job_input: dict[str, Any],
        context: JobContext,
    ) -> None:
        """Run one job and complete it through the same path as an HTTP callback."""
        job_id, attempt = job.job_id, job.attempt
        try:
            if job.status != "started":
                if self._closed:  # shutting down before it started: left pending for recovery
                    return
                if not self.runtime.mark_started(job_id, lease_seconds=self.lease, job=job):
                    return  # a re-dispatched copy: the job already runs (or ran) elsewhere
            elif context.cancelled.is_set():
                return  # its insert started it, and it ended (cancelled) before it ran
            elif context._waits and (
                self._closed
                or not self.runtime.mark_started(
                    job_id, lease_seconds=self.lease, job=job, restart=True
                )
            ):
                return  # it waited, and is no longer this process's to run (or we stop)
            try:
                if takes_context(implementation):
                    output = implementation(job_input, context)
                else:
                    output = implementation(job_input)
                if not isinstance(output, dict):
                    raise TypeError(f"returned {type(output).__name__}, not a JSON object")
                jsonio.dumps(output)  # must be storable as JSON: no NaN or Infinity
            except Exception as exc:  # the job's failure, reported as its error
                error = {"type": type(exc).__name__, "message": str(exc)}
                if getattr(exc, "retryable", False) is True:
                    error["retryable"] = True
                self.runtime.complete_job(job_id, "failure", error=error, attempt=attempt)
            else:
                self.runtime.complete_job(job_id, "success", output=output, attempt=attempt)
        except Conflict as exc:  # ended meanwhile: cancelled, timed out, or another run's
            log.warning("in-process job %s: this run's result was not recorded: %s", job_id, exc)
        except Exception:
            log.exception("in-process job %s could not be recorded", job_id)
        finally:
            with self._lock:
                if self._running.get(job_id) is context:  # not a later attempt's, run here
                    del self._running[job_id]

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
