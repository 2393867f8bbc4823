"""`pie services …` and `pie assignments …`."""

from __future__ import annotations

import functools
import sys

import click

from pie_client.cli.common import (
    EXIT_JOB_FAILED,
    api_command,
    body_call,
    client,
    json_object,
    read_document,
    split_version,
)
from pie_client.cli.jobs import finish, timeout
from pie_client.cli.output import emit
from pie_client.cli.progress import Progress
from pie_client.cli.registry import limit, page_size

features = click.option("--features", default=None, help="static_features: JSON, or @file.")
departure = click.option("--departure", default=None, help="departure_datetime (RFC 3339).")
service = click.option("--service", "service_id", default=None, help="A service's own scope.")


def where(function: click.decorators.FC) -> click.decorators.FC:
    """CLIENT_ID DOMAIN_ID, the first two arguments of every command here."""
    return click.argument("client_id")(click.argument("domain_id")(function))


@click.group("services")
def services() -> None:
    """A domain's services: list, get, init, update, delete, reinit."""


@services.command("list")
@where
@page_size
@limit
@api_command
def services_list(client_id: str, domain_id: str, page_size: int, limit: int | None) -> None:
    """A domain's services."""
    emit(client().services.list(client_id, domain_id, page_size=page_size).first(limit))


@services.command("get")
@where
@click.argument("service_id")
@api_command
def services_get(client_id: str, domain_id: str, service_id: str) -> None:
    """One service."""
    emit(client().services.get(client_id, domain_id, service_id))


@services.command("init")
@where
@click.argument("service_id")
@features
@departure
@click.option("--wait", is_flag=True, help="Wait for the init job, then show the service.")
@timeout
@api_command
def services_init(
    client_id: str,
    domain_id: str,
    service_id: str,
    features: str | None,
    departure: str | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Initialise a service: resolve its features, run the default assignment on them.

    With --wait: 0 once the init job succeeded (or there was none), 8 failed, 9 timed out."""
    api = client()
    found = json_object(features, "--features") if features else None
    started = api.services.init(
        client_id, domain_id, service_id, static_features=found, departure_datetime=departure
    )
    if not wait:
        return emit(started)
    job = (
        api.jobs.wait(started.job_id, timeout=timeout, on_update=Progress())
        if started.job_id
        else None
    )
    emit(api.services.get(client_id, domain_id, service_id))
    if job is not None and job.status == "failure":
        sys.exit(EXIT_JOB_FAILED)


@services.command("update")
@where
@click.argument("service_id")
@features
@departure
@api_command
def services_update(
    client_id: str, domain_id: str, service_id: str, features: str | None, departure: str | None
) -> None:
    """Change a service's features or departure (no job is started)."""
    found = json_object(features, "--features") if features else None
    emit(
        client().services.update(
            client_id, domain_id, service_id, static_features=found, departure_datetime=departure
        )
    )


@services.command("delete")
@where
@click.argument("service_id")
@api_command
def services_delete(client_id: str, domain_id: str, service_id: str) -> None:
    """Delete a service."""
    client().services.delete(client_id, domain_id, service_id)


@services.command("reinit")
@where
@api_command
def services_reinit(client_id: str, domain_id: str) -> None:
    """Re-initialise every service that has not departed."""
    emit(client().services.reinit_all(client_id, domain_id))


@click.group("assignments")
def assignments() -> None:
    """Assignments: list, get, set, revisions, run."""


@assignments.command("list")
@where
@service
@click.option("--all", "include_archived", is_flag=True, help="Archived revisions too.")
@page_size
@limit
@api_command
def assignments_list(
    client_id: str,
    domain_id: str,
    service_id: str | None,
    include_archived: bool,
    page_size: int,
    limit: int | None,
) -> None:
    """The active assignments of a domain (or of one service)."""
    pager = client().assignments.list(
        client_id,
        domain_id,
        service_id=service_id,
        include_archived=include_archived,
        page_size=page_size,
    )
    emit(pager.first(limit))


@assignments.command("get")
@where
@click.argument("key")
@service
@api_command
def assignments_get(client_id: str, domain_id: str, key: str, service_id: str | None) -> None:
    """A key's active revision."""
    emit(client().assignments.get(client_id, domain_id, key, service_id=service_id))


@assignments.command("set")
@where
@click.argument("key")
@click.argument("target", metavar="MODEL@VERSION")
@service
@click.option("--status", type=click.Choice(["active", "archived"]), default=None)
@click.option("--role", default=None)
@click.option("-f", "--file", "source", default=None, help="settings, metadata, service_updates.")
@api_command
def assignments_set(
    client_id: str,
    domain_id: str,
    key: str,
    target: str,
    service_id: str | None,
    status: str | None,
    role: str | None,
    source: str | None,
) -> None:
    """Point a key at a model version (a new revision; the previous one is archived)."""
    model_id, version = split_version(target)
    if not version:
        raise click.BadParameter("name the version: MODEL@VERSION", param_hint="target")
    options = read_document(source) if source else {}
    if isinstance(options, dict):
        options.update({k: v for k, v in {"status": status, "role": role}.items() if v})
    api = client()
    put = functools.partial(
        api.assignments.put, model_id=model_id, model_version=version, service_id=service_id
    )
    emit(body_call(put, client_id, domain_id, key, body=options, source=source or "the options"))


@assignments.command("revisions")
@where
@click.argument("key")
@service
@page_size
@limit
@api_command
def assignments_revisions(
    client_id: str,
    domain_id: str,
    key: str,
    service_id: str | None,
    page_size: int,
    limit: int | None,
) -> None:
    """Every revision of a key, newest first."""
    pager = client().assignments.revisions(
        client_id, domain_id, key, service_id=service_id, page_size=page_size
    )
    emit(pager.first(limit))


@assignments.command("run")
@where
@click.argument("key")
@click.option("--input", "input_", required=True, help="The input: JSON, or @file (@- stdin).")
@click.option("--type", "job_type", type=click.Choice(["inference", "training"]), default=None)
@click.option("--subscribe", is_flag=True)
@click.option("--wait", is_flag=True, help="Show progress and wait until the job ends.")
@service
@timeout
@api_command
def assignments_run(
    client_id: str,
    domain_id: str,
    key: str,
    input_: str,
    job_type: str | None,
    subscribe: bool,
    wait: bool,
    service_id: str | None,
    timeout: float | None,
) -> None:
    """Start a job on the version the key points at."""
    api = client()
    started = api.assignments.run_job(
        client_id,
        domain_id,
        key,
        json_object(input_),
        job_type=job_type or "inference",
        subscribe=subscribe,
        service_id=service_id,
    )
    if wait:
        finish(api.jobs.wait(started.job_id, timeout=timeout, on_update=Progress()))
    else:
        emit(api.jobs.get(started.job_id))
