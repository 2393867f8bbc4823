"""The `pie` command: serve | worker | token | db | plugins | openapi, and the client verbs
(login, models, versions, jobs, …) when pie-client is installed.

Each command imports what it needs when it runs: `pie --help`, `pie --version` and `pie token`
build no app, open no database and create no file."""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import click

from pie import scopes

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


def build_app(**overrides: Any) -> Flask:
    """The app, for the commands that need one; it applies no migrations unless asked."""
    from pie import create_app

    return create_app({"PIE_AUTO_MIGRATE": False, "PIE_EMBEDDED_WORKER": False, **overrides})


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        import pie

        click.echo(f"pie {pie.__version__}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, no_args_is_help=True)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version and exit.",
)
def main() -> None:
    """PIE: a self-hosted model registry and job orchestrator.

    Settings come from PIE_* environment variables (see the README's Configuration).
    """


def default_workers() -> int:
    """`pie serve`'s worker processes unless told: one per CPU core, plus one. Each process
    runs Python under one interpreter lock, its request threads beside its dispatch and
    in-process job threads; one more process than cores keeps every core busy while a
    process waits for that lock or SQLite's writer (bench.throughput, issue 20)."""
    return (os.cpu_count() or 1) + 1


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(min=1, max=65535),
    help="Port to bind.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes [default: one per CPU core, plus one].",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads per worker process.",
)
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Run the API on a production WSGI server (gunicorn)."""
    from pie import config
    from pie.server import check_bindable, metrics_directory, run

    problem = check_bindable(host, port)
    if problem:
        raise click.ClickException(problem)
    public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    os.environ.setdefault("PIE_PUBLIC_URL", f"http://{public_host}:{port}")
    settings = config.load()
    with metrics_directory():  # before the app imports prometheus_client, and the fork
        from pie.db import close_all

        app = build_app(PIE_AUTO_MIGRATE=True)  # applies migrations once, before the fork
        close_all()  # no connection may be shared with the forked workers
        run(
            f"{host}:{port}",
            workers or default_workers(),
            threads,
            settings["PIE_SHUTDOWN_GRACE_SECONDS"],
            public_url=f"http://{public_host}:{port}",
            database=config.redacted_url(app.config["PIE_DATABASE_URL"]),
            client_timeout=settings["PIE_CLIENT_TIMEOUT_SECONDS"],
        )


@main.command("worker")
@click.option(
    "--interval",
    default=None,
    type=float,
    help="Seconds between recovery passes [default: PIE_RECOVERY_INTERVAL_SECONDS].",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(min=1, max=65535),
    help="Serve Prometheus metrics at /metrics on this port [default: none].",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
def worker(interval: float | None, metrics_port: int | None, metrics_host: str) -> None:
    """Run the recovery loop on its own.

    It re-dispatches jobs a crash left behind; safe beside other workers and servers."""
    import signal

    from pie import metrics

    app = build_app(PIE_AUTO_MIGRATE=True, PIE_PROCESS_KIND="worker")
    runtime = app.extensions["pie"]
    grace = app.config["PIE_SHUTDOWN_GRACE_SECONDS"]

    def stop(signum: int, frame: object) -> None:
        log.info("pie worker: %s; stopping", signal.Signals(signum).name)
        runtime.dispatcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if metrics_port:
        metrics.serve_standalone(metrics_port, metrics_host)
    log.info("pie worker: recovery loop running")
    runtime.deliverer.start()
    runtime.dispatcher.run_recovery(interval)
    if not close_within(runtime, grace):
        log.warning(
            "pie worker: jobs still running after %ss (PIE_SHUTDOWN_GRACE_SECONDS); "
            "leaving them to the recovery loop of another process",
            grace,
        )
        logging.shutdown()
        os._exit(0)  # the pool's threads would otherwise hold the interpreter open
    log.info("pie worker: stopped")


def close_within(runtime: Any, seconds: float) -> bool:
    """Close the runtime (running in-process jobs finish, queued ones stay pending); False
    when that takes longer than `seconds`."""
    closer = threading.Thread(target=runtime.close, name="pie-close", daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


class Scope(click.ParamType):
    """A scope PIE knows, with or without its `streamline/` prefix."""

    name = "scope"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return scopes.scope_name(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SCOPES_EPILOG = "\b\nScopes (--scope):\n" + "\n".join(
    f"  {name:<15} {grants}" for name, grants in scopes.GRANTS.items()
)


@main.command("token", epilog=SCOPES_EPILOG)
@click.option("--admin", is_flag=True, help="Grant every permission on every tenant.")
@click.option("--client-id", default=None, help="The tenant a machine token belongs to.")
@click.option(
    "--scope",
    "granted",
    multiple=True,
    type=Scope(),
    help="A scope to grant, listed below (repeatable; the streamline/ prefix is optional).",
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Lifetime in seconds.",
)
@click.option("--subject", default="pie-cli", show_default=True, help="The token's `sub`.")
def token(
    admin: bool, client_id: str | None, granted: tuple[str, ...], ttl: int, subject: str
) -> None:
    """Print a signed HS256 token.

    It is signed with the server's secret: run it where `pie serve` runs, or with the same
    PIE_JWT_SECRET."""
    from pie import config
    from pie.auth import TokenVerifier, check_secret
    from pie.secret_files import read_secret

    names = [*granted, scopes.ADMIN_SCOPE] if admin else list(granted)
    if not names:
        raise click.UsageError("give --admin or at least one --scope")
    settings = config.load()
    secret, source = settings["PIE_JWT_SECRET"], "PIE_JWT_SECRET"
    if not secret:
        source = config.secret_path(settings)
        secret = read_secret(source)
        if not secret:
            raise click.ClickException(
                f"no token secret at {source}: start `pie serve` (or run `pie db upgrade`) "
                "with the same settings first, which creates it, or set PIE_JWT_SECRET"
            )
    check_secret(secret, source)
    claims: dict[str, object] = {"sub": subject, "scope": " ".join(dict.fromkeys(names))}
    if client_id:
        claims["client_id"] = client_id
    verifier = TokenVerifier(secret, None, settings["PIE_JWT_ISSUER"], settings["PIE_JWT_AUDIENCE"])
    click.echo(verifier.mint(claims, ttl))


@main.group("db")
def db_group() -> None:
    """Database migrations and counters.

    The database is PIE_DATABASE_URL (SQLite in the instance folder by default)."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    from pie import db

    build_app()
    applied = db.upgrade()
    click.echo(f"applied migrations: {applied}" if applied else "database is up to date")


@db_group.command("version")
def db_version() -> None:
    """Print the schema version."""
    from pie import db

    build_app()
    with db.database.connection_context():
        click.echo(str(db.current_version()))


@db_group.command("recount")
def db_recount() -> None:
    """Rebuild the row counters behind list totals from the tables themselves."""
    from pie import counts, db

    build_app()
    with db.database.connection_context(), db.database.atomic():
        counts.recount(db.database.obj)
    click.echo("counters rebuilt")


@main.command("plugins")
def plugins() -> None:
    """List plugins, handler types and in-process handlers."""
    from pie.plugin_manager import describe

    runtime = build_app().extensions["pie"]
    click.echo(
        json.dumps(
            {
                "plugins": [{"name": n, "module": m} for n, m in describe(runtime.pm)],
                "handler_types": sorted(runtime.handler_types),
                "in_process_handlers": sorted(runtime.in_process_handlers),
                # Plugins loaded without their type: an optional extra is not installed.
                "unavailable": {
                    runtime.pm.get_name(p): p.UNAVAILABLE
                    for p in runtime.pm.get_plugins()
                    if isinstance(getattr(p, "UNAVAILABLE", None), str)
                },
            },
            indent=2,
        )
    )


@main.group("openapi")
def openapi() -> None:
    """Print or write the OpenAPI document (/openapi.json)."""


def openapi_document() -> str:
    app = build_app()
    (api,) = (entry["ext_obj"] for entry in app.extensions["flask-smorest"]["apis"].values())
    return json.dumps(api.document(), indent=2, allow_nan=False)


@openapi.command("print")
def openapi_print() -> None:
    """Print the OpenAPI document (JSON)."""
    click.echo(openapi_document())


@openapi.command("write")
@click.argument("output", type=click.File("w"))
def openapi_write(output: Any) -> None:
    """Write the OpenAPI document (JSON) to OUTPUT."""
    click.echo(openapi_document(), file=output)


def add_client_verbs(group: click.Group) -> None:
    """The client verbs (login, models, jobs, …) of the pie-client distribution, when it is
    installed beside the server: one `pie` command for both (see the README)."""
    try:
        from pie_client.cli import register
    except ImportError:
        return
    register(group)


add_client_verbs(main)
