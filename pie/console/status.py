"""The status page: health for everyone signed in; worker processes, recovery-loop activity
and queue depths (the whole deployment's) for admins."""

from __future__ import annotations

from typing import Any

from flask import current_app, g

from pie import metrics
from pie.api.health import database_reachable
from pie.console.base import LIST_LIMIT, bp, render
from pie.services import processes
from pie.tables import utcnow


@bp.route("/status")
def status() -> Any:
    config = current_app.config
    health = {"database_ok": database_reachable(), "version": config["PIE_VERSION"]}
    if not g.principal.is_admin:
        return render("status.html", **health, operator=False)
    return render(
        "status.html",
        **health,
        operator=True,
        processes=processes.registered(LIST_LIMIT),
        recovery=metrics.recovery_samples(),
        queues=metrics.open_jobs(),
        now=utcnow(),
        timeout=config["PIE_PROCESS_TIMEOUT_SECONDS"],
    )
