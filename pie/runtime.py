"""What one PIE app holds at run time: settings, plugins, handler types, dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from pie import contracts, db
from pie.auth import ATTEMPT_CLAIM, CALLBACK_CLAIM, TokenVerifier
from pie.handler_types import HandlerType

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class Runtime:
    """Per-app state that services and plugins use; views find it at `app.extensions["pie"]`."""

    def __init__(
        self, config: dict[str, Any], pm: pluggy.PluginManager, verifier: TokenVerifier
    ) -> None:
        from pie.heartbeat import Registration
        from pie.services.deliverer import Deliverer
        from pie.services.dispatch import Dispatcher
        from pie.services.tenants import SuspendedClients

        self.config = config
        self.pm = pm
        self.verifier = verifier
        self.handler_types: dict[str, HandlerType] = {}
        self.in_process_handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        # This process in the process registry, registered at its first claim.
        self.registration = Registration(
            config.get("PIE_PROCESS_KIND", "app"), config["PIE_PROCESS_HEARTBEAT_SECONDS"]
        )
        self.dispatcher = Dispatcher(self)
        self.deliverer = Deliverer(self)  # webhook deliveries (issue 17)
        self.suspended_clients = SuspendedClients()  # what tenants' tokens are checked against
        self._background_started = False

    def install(
        self,
        handler_types: dict[str, type[HandlerType]],
        in_process: dict[str, Callable[[dict[str, Any]], Any]],
    ) -> None:
        from pie.plugin_manager import PluginError

        self.in_process_handlers = in_process
        for name, cls in handler_types.items():
            try:
                self.handler_types[name] = cls(self)
            except Exception as exc:
                raise PluginError(
                    f"handler type {name!r} ({cls.__module__}.{cls.__qualname__}) failed to "
                    f"start: {type(exc).__name__}: {exc} (a type should reach its backend "
                    "when it first dispatches, not when PIE starts)"
                ) from exc

    def start_background(self) -> None:
        """Start the embedded recovery loop once (PIE_EMBEDDED_WORKER); the loop registers
        this process first."""
        if not self._background_started:
            self._background_started = True
            self.dispatcher.start_recovery()
            self.deliverer.start()

    @property
    def public_url(self) -> str:
        return self.config.get("PIE_PUBLIC_URL") or DEFAULT_PUBLIC_URL

    def callback_token(self, job_id: str, attempt: int = 1) -> str:
        """A token that may read one job, and send its heartbeats and completion for one
        attempt of it, and nothing else."""
        claims = {
            "sub": f"job:{job_id}",
            CALLBACK_CLAIM: job_id,
            ATTEMPT_CLAIM: attempt,
            "scope": "streamline/complete_jobs",
        }
        return self.verifier.mint(claims, self.config["PIE_CALLBACK_TOKEN_TTL_SECONDS"])

    # --- for handler plugins: the same completion path the HTTP callback takes -----------

    def mark_started(
        self,
        job_id: str,
        external_id: str | None = None,
        lease_seconds: float | None = None,
        job: Any = None,
        restart: bool = False,
    ) -> bool:
        """Take a pending job to run it here; False when it is not pending any more (another
        process runs it, or it ended). With a lease, renew it while the job runs: the job
        must still be claimed by this process (not voided because it was taken for dead).
        The attempt gets its deadline; pass the `job` row (as dispatched) to save a read and
        to start only that attempt. `restart`: the job's insert started it
        (`HandlerType.start_lease`) but it waited for a worker: start its clocks again now,
        and False when it is no longer this process's started attempt (cancelled, timed out,
        taken over): do not run it."""
        from pie.services.claims import mark_started

        with db.connection():
            return mark_started(
                job_id,
                external_id,
                lease_seconds,
                self.registration.id,
                job=job,
                config=self.config,
                restart=restart,
            )

    def heartbeat(
        self, job_id: str, attempt: int, progress: float | None = None, message: str | None = None
    ) -> dict[str, Any]:
        """An in-process job's heartbeat, as the HTTP route records it; raises Conflict
        (pie.errors) once the job has ended (cancelled, timed out)."""
        from pie.services.control import heartbeat

        with db.connection():
            return heartbeat(self.config, job_id, attempt, progress=progress, message=message)

    def ended_attempts(self, attempts: dict[str, int]) -> set[str]:
        """Of these jobs (id: the attempt running here), those whose attempt is over."""
        from pie.services.claims import ended_attempts

        with db.connection():
            return ended_attempts(attempts)

    def renew_leases(self, attempts: dict[str, int], lease_seconds: float) -> None:
        """Renew the leases of these jobs, those this process still holds."""
        from pie.services.claims import renew_leases

        with db.connection():
            renew_leases(attempts, lease_seconds, self.registration.id)

    def complete_job(
        self,
        job_id: str,
        status: str,
        output: Any = None,
        error: Any = None,
        attempt: int | None = None,
        retryable: bool | None = None,
    ) -> dict[str, Any]:
        from pie.services.orchestration import complete_job

        with db.connection(), contracts.limits_from(self.config):
            result = complete_job(
                self,
                job_id,
                status,
                output=output,
                error=error,
                attempt=attempt,
                retryable=retryable,
            )
        assert result is not None  # no `when`: always an outcome
        return result

    def close(self) -> None:
        """Stop background work: the recovery loop, then dispatches, then handler pools; then
        leave the process registry."""
        self.dispatcher.close()
        self.deliverer.close()
        for handler_type in self.handler_types.values():
            handler_type.close()
        self.registration.close()
