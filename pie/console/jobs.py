"""Jobs: the GET /v2/jobs filters as a form with live statuses, one job's page, and cancel."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, request, url_for

from pie import auth
from pie.api.base import (
    checked_job,
    require_client_access,
    require_job_access,
    requires,
    requires_job,
    runtime,
)
from pie.api.jobs import run_permission
from pie.console.base import bp, load, render
from pie.errors import Forbidden
from pie.schemas.jobs import JOB_STATUSES, JOB_TYPES, JobSearchSchema
from pie.services import control, job_search, jobs

FILTERS = (
    "status",
    "job_type",
    "model_id",
    "model_version",
    "client_id",
    "parent_job_id",
    "subscription_id",
    "created_after",
    "created_before",
)
PAGE_SIZE = 50
POLL = "every 3s"  # htmx: how often open pages refresh a job's status


def search_args() -> dict[str, Any]:
    """The form's filters, validated by the API's own schema (empty fields are no filter)."""
    sent = {k: v for k, v in request.args.items() if k in (*FILTERS, "after") and v.strip()}
    return load(JobSearchSchema(), {**sent, "page_size": PAGE_SIZE})


def found_jobs() -> tuple[list[Any], str | None]:
    """One statement: the page of jobs GET /v2/jobs would answer with these filters."""
    args = search_args()
    if args.get("client_id") is not None:
        require_client_access(g.principal, args["client_id"])
    clients = g.principal.accessible_clients()
    return job_search.find_jobs(args, PAGE_SIZE, visible_clients=clients)


@bp.route("/jobs", endpoint="jobs")
@requires("read_models")
def jobs_page() -> Any:
    found, next_after = found_jobs()
    query = {k: v for k, v in request.args.items() if k in FILTERS and v}
    return render(
        "jobs.html",
        jobs=found,
        next_url=url_for("console.jobs", **query, after=next_after) if next_after else None,
        filters={name: request.args.get(name, "") for name in FILTERS},
        statuses=JOB_STATUSES,
        types=JOB_TYPES,
        poll=POLL,
    )


@bp.route("/jobs/rows")
@requires("read_models")
def job_rows() -> Any:
    """The list's rows alone, for htmx to swap in."""
    found, _ = found_jobs()
    return render("_job_rows.html", jobs=found, poll=POLL)


def may_cancel(principal: auth.Principal, job: Any) -> bool:
    """What POST …/cancel would allow (the API's checks), for showing the button."""
    if job.status in jobs.TERMINAL or not principal.has(run_permission(job), job.client_id or None):
        return False
    try:
        require_job_access(principal, job, changes=True)
    except Forbidden:
        return False
    return True


@bp.route("/jobs/<job_id>")
@requires_job("read_models")
def job(job_id: str) -> Any:
    found = checked_job(job_id)
    return render("job.html", job=found, can_cancel=may_cancel(g.principal, found), poll=POLL)


@bp.route("/jobs/<job_id>/live")
@requires_job("read_models")
def job_live(job_id: str) -> Any:
    """The job page's changing part, for htmx to swap in."""
    found = checked_job(job_id)
    return render("_job_live.html", job=found, can_cancel=may_cancel(g.principal, found), poll=POLL)


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@requires_job(
    run_permission, changes=True, callback=False, any_of=("run_inference", "run_training")
)
def job_cancel(job_id: str) -> Any:
    """Cancel as POST /v2/jobs/{job_id}/cancel does, with the same checks."""
    control.cancel(runtime(), job_id)
    return redirect(url_for("console.job", job_id=job_id), code=303)
