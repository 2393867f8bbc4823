"""Jobs: start inference and training, read and list jobs, and the completion callback."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import request
from flask.views import MethodView

from pie.api.base import (
    Blueprint,
    checked_job,
    current_principal,
    page_of,
    require_client_access,
    requires,
    requires_job,
    runtime,
)
from pie.schemas.jobs import (
    CompletionResultSchema,
    CompletionSchema,
    HeartbeatResultSchema,
    HeartbeatSchema,
    InferenceRequestSchema,
    InferenceStartedSchema,
    JobFilterSchema,
    JobPageSchema,
    JobSchema,
    JobSearchSchema,
    TrainingRequestSchema,
    TrainingStartedSchema,
)
from pie.services import control, job_search, jobs, orchestration, subscriptions, triggers


def run_permission(job: Any) -> str:
    """Cancelling takes the permission that starts a job of its type."""
    return "run_training" if job.job_type == "training" else "run_inference"


blp = Blueprint("jobs", __name__, url_prefix="/v2", description="Training and inference jobs")
VERSION = "/models/<model_id>/versions/<model_version>"


@blp.route(f"{VERSION}/inference")
class Inference(MethodView):
    @requires("run_inference", 404, 413, 422)
    @blp.arguments(InferenceRequestSchema)
    @blp.response(202, InferenceStartedSchema)
    def post(self, data: dict[str, Any], model_id: str, model_version: str) -> Any:
        """Start an inference job on an active version"""
        subscriber = current_principal().subscription_owner() if data["subscribe"] else None
        job = orchestration.start_inference(
            runtime(),
            model_id,
            model_version,
            data["input"],
            subscribe=data["subscribe"],
            subscriber=subscriber,
            max_owned=runtime().config[subscriptions.MAX_OWNED],
        )
        return {"inference_job_id": job.job_id}


@blp.route(f"{VERSION}/training")
class Training(MethodView):
    @requires("run_training", 404, 413, 422)
    @blp.arguments(TrainingRequestSchema)
    @blp.response(202, TrainingStartedSchema)
    def post(self, data: dict[str, Any], model_id: str, model_version: str) -> Any:
        """Start a training job (the version moves to training)"""
        job = orchestration.start_training(runtime(), model_id, model_version, data["input"])
        return {"training_job_id": job.job_id}


@blp.route("/jobs/<job_id>")
class JobById(MethodView):
    @requires_job("read_models", 404)
    @blp.response(200, JobSchema)
    def get(self, job_id: str) -> Any:
        """Read a job (a job launched for a client needs access to that client)"""
        return checked_job(job_id)


PAGE_HEADERS = {
    "X-Pagination": {
        "description": "The page size and the cursor of the next page (`next_after`, null "
        "on the last page); no total",
        "schema": JobPageSchema,
    },
    "Link": {
        "description": 'The next page: `</v2/jobs?…&after=…>; rel="next"`, absent on the last page',
        "schema": {"type": "string"},
    },
}


@blp.route("/jobs")
class Jobs(MethodView):
    @requires("read_models")
    @blp.arguments(JobSearchSchema, location="query")
    @blp.response(200, JobSchema(many=True), headers=PAGE_HEADERS)
    def get(self, args: dict[str, Any]) -> Any:
        """Find jobs of any model, newest first (a PIE extension)

        Not part of the hosted contract: a route PIE adds. Filters narrow the list (a job
        matches every one given; `created_after` and `created_before` exclude that very
        time). As in a version's job list, jobs of no client are listed to every token with
        read_models and a client's jobs to tokens with access to that client; naming a
        client the token cannot reach is a 403. Pages by cursor: each response's
        `X-Pagination` header carries `next_after`, the `after` of the next page (and `Link`
        its URL), null on the last page; jobs created meanwhile are newer than the cursor,
        so later pages neither repeat nor skip a job, and a deep page costs what the first
        does. There is no total and no page count: counting the matches of any combination
        of filters would cost what reading them all does."""
        principal = current_principal()
        if args.get("client_id") is not None:
            require_client_access(principal, args["client_id"])
        found, next_after = job_search.find_jobs(
            args, args["page_size"], visible_clients=principal.accessible_clients()
        )
        return found, page_headers(args["page_size"], next_after)


def page_headers(page_size: int, next_after: str | None) -> dict[str, str]:
    """X-Pagination, and Link to the next page: this request's query with the next cursor."""
    headers = {"X-Pagination": json.dumps({"page_size": page_size, "next_after": next_after})}
    if next_after is not None:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "after"]
        url = f"{request.script_root}{request.path}?{urlencode([*query, ('after', next_after)])}"
        headers["Link"] = f'<{url}>; rel="next"'
    return headers


@blp.route(f"{VERSION}/jobs")
class VersionJobs(MethodView):
    @requires("read_models", 404)
    @blp.arguments(JobFilterSchema, location="query")
    @blp.response(200, JobSchema(many=True))
    @blp.paginate()
    def get(
        self, filters: dict[str, Any], model_id: str, model_version: str, pagination_parameters: Any
    ) -> Any:
        """List a version's jobs, newest first"""
        return page_of(
            pagination_parameters,
            jobs.list_jobs,
            model_id,
            model_version,
            filters,
            visible_clients=current_principal().accessible_clients(),
        )


@blp.route(f"{VERSION}/jobs/<job_id>/complete")
class Complete(MethodView):
    @requires_job("complete_jobs", 404, 409, 413, changes=True)
    @blp.arguments(CompletionSchema)
    @blp.response(200, CompletionResultSchema)
    @blp.alt_response(
        207,
        schema=CompletionResultSchema,
        success=True,
        description="Completed; at least one triggered subscription failed to start",
    )
    def post(self, data: dict[str, Any], model_id: str, model_version: str, job_id: str) -> Any:
        """Complete a job (handlers call this with their callback token)"""
        principal = current_principal()
        result = orchestration.complete_job(
            runtime(),
            job_id,
            data["status"],
            output=data.get("output"),
            error=data.get("error"),
            model_id=model_id,
            model_version=model_version,
            attempt=principal.attempt if principal.job_id is not None else None,
        )
        assert result is not None  # no `when`: always an outcome
        if principal.job_id is not None:  # the job's handler sees what runs for its tenant
            clients = frozenset([result["client_id"]] if result["client_id"] else [])
        else:
            clients = principal.accessible_clients()
        events = triggers.visible_events(result["triggered_events"], clients)
        failed = any("error" in event for event in events)
        return {**result, "triggered_events": events}, 207 if failed else 200


@blp.route(f"{VERSION}/jobs/<job_id>/heartbeat")
class Heartbeat(MethodView):
    @requires_job("complete_jobs", 404, 409, 413, changes=True)
    @blp.arguments(HeartbeatSchema)
    @blp.response(200, HeartbeatResultSchema)
    def post(self, data: dict[str, Any], model_id: str, model_version: str, job_id: str) -> Any:
        """Report that a running job is alive, and how far it is (a PIE extension). 409 once
        the job has ended (cancelled, timed out, completed): the handler should stop."""
        principal = current_principal()
        return control.heartbeat(
            runtime().config,
            job_id,
            principal.attempt if principal.job_id is not None else None,
            progress=data.get("progress"),
            message=data.get("message"),
            model_id=model_id,
            model_version=model_version,
        )


@blp.route("/jobs/<job_id>/cancel")
class Cancel(MethodView):
    @requires_job(
        run_permission,
        404,
        409,
        changes=True,
        callback=False,
        any_of=("run_inference", "run_training"),
    )
    @blp.response(200, JobSchema)
    def post(self, job_id: str) -> Any:
        """Cancel a pending or started job (a PIE extension): it fails with error type
        `Cancelled`, is never dispatched again, and its backend is told to stop where it
        can. Needs run_inference or run_training, by the job's type. 409 once it has ended."""
        return control.cancel(runtime(), job_id)
