"""The HandlerType base class that handler plugins subclass."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import marshmallow as ma

if TYPE_CHECKING:
    from pie.runtime import Runtime


class DispatchDeferred(Exception):
    """Raised by `dispatch` when the backend cannot take the job now (shutting down, full):
    the job stays pending and the recovery loop dispatches it later."""


class HandlerType(abc.ABC):
    """A kind of backend that runs jobs: its `type` name, its handler fields, its dispatch.

    `schema` describes the handler object's fields other than `type`. `dispatch` starts the
    job and returns the backend's id for it (or None); raising fails the job with the message.
    """

    name: ClassVar[str]
    schema: ClassVar[type[ma.Schema]]
    description: ClassVar[str] = ""
    # True when `dispatch` only queues the job here and the type itself marks it started
    # (with a lease, through `runtime.mark_started`) once it really runs.
    starts_itself: ClassVar[bool] = False
    # True when `dispatch` returns at once without I/O (it hands the job to a queue of this
    # process): PIE then calls it on the thread that committed the job, after the commit,
    # instead of passing the job to a dispatch thread first.
    dispatches_inline: ClassVar[bool] = False
    # False when the type completes its jobs through the runtime (`runtime.complete_job`),
    # never over HTTP: its payload's `callback` then carries no token (none is signed).
    needs_callback_token: ClassVar[bool] = True
    # True when `dispatch_many` hands the backend several jobs for less than a `dispatch`
    # each (one round trip): the jobs of this process that queue up while one batch is out
    # then go in the next, on one dispatch thread, with one claim write and one start write
    # for the whole batch; one job alone still goes at once.
    dispatches_in_batches: ClassVar[bool] = False

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        """Malformed input the schema cannot see (an unknown implementation name, a URL that
        is not one), by field: a 400, like the schema's own problems."""
        return {}

    def refusals(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        """Semantic problems of a well-formed handler, by field: values this server will not
        use (a destination the outbound guard refuses whatever DNS says). Called once `check`
        passed, before a model's handlers are stored; any answer is a 422 naming the field."""
        return {}

    def start_lease(self) -> float | None:
        """For a type that `starts_itself`: the lease (seconds) a job dispatched now would
        start with, when a worker of this process is free to run it at once; None when it
        would have to wait (the default: never). PIE then inserts the job already started
        (status `started`, this process's lease, the attempt's deadline from now), and
        `dispatch` is handed that row: the type runs it without `runtime.mark_started`."""
        return None

    @abc.abstractmethod
    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str | None:
        """Start the job on the backend; return the backend's id for it, or None."""

    def dispatch_many(
        self, items: list[tuple[dict[str, Any], Any, dict[str, Any]]]
    ) -> list[str | None | Exception]:
        """Start several jobs, each given as (handler, job, payload): for each, in order,
        what `dispatch` would return for it, or the exception it would raise. Raising
        instead means none of them was handed over: PIE then dispatches each alone. The
        default calls `dispatch` for one after the other."""
        outcomes: list[str | None | Exception] = []
        for handler, job, payload in items:
            try:
                outcomes.append(self.dispatch(handler, job, payload))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def cancel(  # noqa: B027  (optional hook: a backend that cannot stop work ignores it)
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        """Stop the job's attempt on the backend (`external_id`: what `dispatch` returned
        for it): PIE has cancelled it or it timed out (`reason`: Cancelled, Timeout or
        HeartbeatTimeout). Its outcome is already recorded."""

    def close(self) -> None:  # noqa: B027  (optional hook: most types hold nothing)
        """Release resources (threads, clients) when the app shuts down."""
