"""`pie jobs …`: run, train, get, list, cancel, watch."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from pie_client.cli.common import (
    EXIT_JOB_FAILED,
    api_command,
    client,
    json_object,
    split_version,
)
from pie_client.cli.output import emit
from pie_client.cli.progress import Progress
from pie_client.cli.registry import page_size

if TYPE_CHECKING:
    from pie_client.types import Job

timeout = click.option("--timeout", type=float, default=None, help="Give up after this many s.")


def finish(job: Job) -> None:
    emit(job)
    if job.status == "failure":
        sys.exit(EXIT_JOB_FAILED)


@click.group("jobs")
def jobs() -> None:
    """Jobs: run, train, get, list, cancel, watch."""


@jobs.command("run")
@click.argument("target", metavar="MODEL[@VERSION]")
@click.option("--input", "input_", required=True, help="The input: JSON, or @file (@- stdin).")
@click.option("--subscribe", is_flag=True, help="Replay this input after each retrain.")
@click.option("--wait", is_flag=True, help="Show progress and wait until the job ends.")
@timeout
@api_command
def jobs_run(target: str, input_: str, subscribe: bool, wait: bool, timeout: float | None) -> None:
    """Start an inference (on the newest active version unless one is named).

    With --wait the exit code says how it ended: 0 success, 8 failure, 9 timed out."""
    model_id, version = split_version(target)
    api = client()
    job = api.jobs.run(
        model_id,
        json_object(input_),
        version=version,
        subscribe=subscribe,
        wait=wait,
        timeout=timeout,
        on_update=Progress() if wait else None,
    )
    if wait:
        finish(job)
    else:
        emit(job)


@jobs.command("train")
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--input", "input_", required=True, help="The input: JSON, or @file (@- stdin).")
@api_command
def jobs_train(target: str, input_: str) -> None:
    """Start a training job on a pending or failed version."""
    model_id, version = split_version(target)
    if not version:
        raise click.BadParameter("name the version: MODEL@VERSION", param_hint="target")
    api = client()
    emit(api.jobs.get(api.jobs.train(model_id, version, json_object(input_)).training_job_id))


@jobs.command("get")
@click.argument("job_id")
@api_command
def jobs_get(job_id: str) -> None:
    """One job."""
    emit(client().jobs.get(job_id))


@jobs.command("list")
@click.option("--model", "model_id", default=None, help="MODEL or MODEL@VERSION.")
@click.option("--status", type=click.Choice(["pending", "started", "success", "failure"]))
@click.option("--type", "job_type", type=click.Choice(["inference", "training"]))
@click.option("--client", "client_id", default=None)
@click.option("--parent", "parent_job_id", default=None, help="Jobs this job's completion started.")
@click.option("--subscription", "subscription_id", default=None)
@click.option("--after", "created_after", default=None, help="Created after (RFC 3339).")
@click.option("--before", "created_before", default=None, help="Created before (RFC 3339).")
@page_size
@click.option(
    "--limit", default=100, show_default=True, help="Stop after this many jobs; 0: every one."
)
@api_command
def jobs_list(model_id: str | None, page_size: int, limit: int, **filters: str) -> None:
    """Jobs of every model, newest first (GET /v2/jobs): the newest 100 unless --limit says.

    The history of every job can be long: it is read to the end only with --limit 0."""
    model, version = split_version(model_id) if model_id else (None, None)
    pager = client().jobs.list(
        model_id=model, model_version=version, page_size=page_size, **filters
    )
    emit(pager.first(limit or None))


@jobs.command("cancel")
@click.argument("job_id")
@api_command
def jobs_cancel(job_id: str) -> None:
    """Cancel a job that has not ended."""
    emit(client().jobs.cancel(job_id))


@jobs.command("watch")
@click.argument("job_id")
@timeout
@api_command
def jobs_watch(job_id: str, timeout: float | None) -> None:
    """Show a job's progress until it ends (exit 0 success, 8 failure, 9 timed out)."""
    finish(client().jobs.wait(job_id, timeout=timeout, on_update=Progress()))
