"""Configuration defaults; PIE_* environment variables override them."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import click


class ConfigurationError(click.ClickException):
    """A setting PIE cannot start with: the `pie` command prints the message and exits with
    status 1; a WSGI server sees the exception."""


# name -> (default, parser). Every key is stored in app.config with the PIE_ prefix.
_INT = int


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _positive(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a number of seconds above 0")
    return number


def _bounded(value: str, low: float, high: float, whole: bool = False) -> float:
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high or (whole and number % 1):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"must be {kind} from {low:g} to {high:g}")
    return number


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


SETTINGS: dict[str, tuple[Any, Any]] = {
    "DATABASE_URL": (None, str),
    "INSTANCE_PATH": (None, str),
    "JWT_SECRET": (None, str),
    "JWKS_URL": (None, str),
    "JWT_ISSUER": (None, str),
    "JWT_AUDIENCE": (None, str),
    "PUBLIC_URL": (None, str),
    "AWS_REGION": (None, str),
    "AWS_ENDPOINT_URL": (None, str),
    "ECS_LAUNCH_TYPE": ("FARGATE", str),
    "ECS_SUBNETS": ([], _csv),
    "ECS_SECURITY_GROUPS": ([], _csv),
    "ECS_CONTAINER": (None, str),
    # The `celery` handler type's broker: redis://… or amqp://… (unset: the type refuses).
    "CELERY_BROKER_URL": (None, str),
    "MAX_TRIGGER_DEPTH": (8, _INT),
    # Jobs one root event may cause across its whole chain of subscriptions (issue 14).
    "MAX_TRIGGERED_JOBS": (1000, _INT),
    # Subscriptions one client may own on one model (`subscribe: true` replays and its own).
    "MAX_CLIENT_SUBSCRIPTIONS": (1000, _INT),
    "IN_PROCESS_WORKERS": (4, _INT),
    "EMBEDDED_WORKER": (True, _bool),
    "DISABLED_PLUGINS": ([], _csv),
    "DISPATCH_GRACE_SECONDS": (10, _INT),
    "CALLBACK_TOKEN_TTL_SECONDS": (604800, _INT),
    "MAX_BODY_BYTES": (1048576, _INT),
    "RECOVERY_INTERVAL_SECONDS": (2, float),
    # Every process that claims jobs renews its row this often; one whose row is older than
    # the timeout is taken for dead and its claims are voided (pie/services/processes.py).
    "PROCESS_HEARTBEAT_SECONDS": (3.0, _positive),
    "PROCESS_TIMEOUT_SECONDS": (10.0, _positive),
    "DISPATCH_LEASE_SECONDS": (60, float),
    "IN_PROCESS_LEASE_SECONDS": (30, float),
    "DB_MAX_CONNECTIONS": (32, _INT),
    # Operations (issue 8): plugin folders for the single binary, log format, shutdown grace.
    "PLUGINS_PATH": ([], _csv),
    "LOG_FORMAT": (None, str),  # None: text on a terminal, else JSON (logs.default_format)
    "LOG_LEVEL": ("INFO", str),
    "SHUTDOWN_GRACE_SECONDS": (30, float),
    # `pie serve`: how long a client may take to send one request (headers and body), and to
    # take each response write, plus 1 s per 100 kB of it (pie.slow_clients).
    "CLIENT_TIMEOUT_SECONDS": (10.0, _positive),
    # JSON Schemas (issue 14): CPU seconds one request may spend checking and applying user
    # schemas, and the largest schema (compact JSON bytes) a model, version or domain accepts.
    "SCHEMA_BUDGET_SECONDS": (2.0, float),
    "SCHEMA_MAX_BYTES": (65536, _INT),
    # Job control (issue 15): the defaults of a model's job_policy. A started job fails with
    # a Timeout after JOB_TIMEOUT_SECONDS; a job is tried at most JOB_MAX_ATTEMPTS times, the
    # n-th retry after about JOB_RETRY_BACKOFF_SECONDS * 2**(n-1).
    "JOB_TIMEOUT_SECONDS": (86400, lambda v: _bounded(v, 1, 31_536_000)),
    "JOB_MAX_ATTEMPTS": (1, lambda v: int(_bounded(v, 1, 100, whole=True))),
    "JOB_RETRY_BACKOFF_SECONDS": (10.0, lambda v: _bounded(v, 0, 86400)),
    # Outbound requests (the `http` handler type): Standard Webhooks signing secrets (the
    # first signs, every one is sent; unset: one generated beside the database), the
    # destinations the guard lets through besides public addresses, and the bounds of a
    # request: looking its host up, connecting, a whole callback-mode and sync-mode
    # exchange, parallel requests.
    "OUTBOUND_SIGNING_SECRETS": ([], lambda v: _signing_secrets(_csv(v))),
    "OUTBOUND_ALLOWED_HOSTS": ([], lambda v: _allowed_hosts(_csv(v))),
    "OUTBOUND_DNS_TIMEOUT_SECONDS": (5.0, lambda v: _bounded(v, 0.1, 60)),
    "HTTP_CONNECT_TIMEOUT_SECONDS": (5.0, lambda v: _bounded(v, 0.1, 60)),
    "HTTP_CALLBACK_TIMEOUT_SECONDS": (10.0, lambda v: _bounded(v, 0.1, 300)),
    "HTTP_SYNC_TIMEOUT_SECONDS": (30.0, lambda v: _bounded(v, 0.1, 3600)),
    "HTTP_WORKERS": (8, lambda v: int(_bounded(v, 1, 256, whole=True))),
    # Webhooks (issue 17): the key that encrypts endpoints' secrets at rest (unset: one
    # generated beside the database), the retry schedule (seconds before each attempt after
    # the first), one attempt's bound, how long an endpoint may fail before it is disabled,
    # requests sent at once per process and to one endpoint at once.
    "WEBHOOK_SECRET_KEY": (None, lambda v: _secret_key(v)),
    "WEBHOOK_RETRY_SCHEDULE": (
        [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        lambda v: _schedule(_csv(v)),
    ),
    "WEBHOOK_TIMEOUT_SECONDS": (10.0, lambda v: _bounded(v, 0.1, 60)),
    "WEBHOOK_DISABLE_AFTER_SECONDS": (432000.0, lambda v: _bounded(v, 1, 31_536_000)),
    "WEBHOOK_WORKERS": (8, lambda v: int(_bounded(v, 1, 256, whole=True))),
    "WEBHOOK_ENDPOINT_CONCURRENCY": (2, lambda v: int(_bounded(v, 1, 64, whole=True))),
}


def _secret_key(value: str) -> str:
    from pie.outbound.secretbox import parse_key

    parse_key(value)
    return value


def _schedule(values: list[str]) -> list[float]:
    """The retry schedule: 1 to 20 delays of 0 to 86,400 seconds each."""
    if not 1 <= len(values) <= 20:
        raise ValueError("must list 1 to 20 delays in seconds, comma-separated")
    return [_bounded(value, 0, 86400) for value in values]


def _signing_secrets(values: list[str]) -> list[str]:
    from pie.outbound.signing import parse_secrets

    return parse_secrets(values)


def _allowed_hosts(values: list[str]) -> list[str]:
    from pie.outbound.guard import Allowed

    Allowed.parse(values)
    return values


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the PIE_* settings: defaults overridden by the environment. Other PIE_*
    variables are plugins' settings: they are passed on as the strings they are."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {
        key: value
        for key, value in environ.items()
        if key.startswith("PIE_") and key[len("PIE_") :] not in SETTINGS
    }
    for name, (default, parse) in SETTINGS.items():
        raw = environ.get(f"PIE_{name}")
        config[f"PIE_{name}"] = default if raw in (None, "") else _parse(name, parse, raw)
    check(config)
    return config


def coerce(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Settings given to create_app: a string for one of PIE's own is parsed (and checked)
    as its environment variable would be, so `{"PIE_DISABLED_PLUGINS": "a,b"}` means what
    PIE_DISABLED_PLUGINS=a,b does."""
    coerced = dict(overrides)
    for key, value in overrides.items():
        name = key[len("PIE_") :] if key.startswith("PIE_") else None
        if name in SETTINGS and isinstance(value, str) and value != "":
            coerced[key] = _parse(name, SETTINGS[name][1], value)
    return coerced


def _parse(name: str, parse: Any, raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"PIE_{name} is {raw!r}, which PIE cannot use: {exc}") from exc


def check(config: Mapping[str, Any]) -> None:
    """Settings that must agree with one another."""
    beat, timeout = config["PIE_PROCESS_HEARTBEAT_SECONDS"], config["PIE_PROCESS_TIMEOUT_SECONDS"]
    if beat >= timeout:
        raise ConfigurationError(
            f"PIE_PROCESS_HEARTBEAT_SECONDS ({beat:g}) must be less than "
            f"PIE_PROCESS_TIMEOUT_SECONDS ({timeout:g}), or live processes are taken for dead"
        )


def recovery_bound(config: Mapping[str, Any]) -> float:
    """Seconds after a process is killed outright (SIGKILL, a lost machine) within which
    another process's recovery loop dispatches again the jobs it left behind, plus the
    duration of that recovery pass: the jobs it had claimed once its heartbeat is older than
    the timeout, the jobs it had committed but not yet claimed once they are older than the
    grace period; either is seen by the next pass."""
    return (
        max(config["PIE_PROCESS_TIMEOUT_SECONDS"], config["PIE_DISPATCH_GRACE_SECONDS"])
        + config["PIE_RECOVERY_INTERVAL_SECONDS"]
    )


# --- where an instance keeps its files (no Flask needed, nothing created) -----------------

SECRET_FILE = "pie-jwt-secret"
SIGNING_SECRET_FILE = "pie-outbound-signing-secret"
WEBHOOK_KEY_FILE = "pie-webhook-secret-key"


def default_instance_path() -> str:
    """Flask's default instance folder for the `pie` package, found without building an app:
    `instance/` beside a source tree, `<prefix>/var/pie-instance` for an installed package,
    and for the single binary `instance/` in the current directory (not PyInstaller's
    temporary extraction folder)."""
    if getattr(sys, "frozen", False):
        return os.path.abspath("instance")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prefix = os.path.abspath(sys.prefix)
    if PurePath(package_parent).is_relative_to(prefix):
        return os.path.join(prefix, "var", "pie-instance")
    site_parent, site_folder = os.path.split(package_parent)
    if site_folder.lower() == "site-packages":  # a virtual environment elsewhere
        parent, folder = os.path.split(site_parent)
        if folder.lower() == "lib":
            return os.path.join(parent, "var", "pie-instance")
        if os.path.basename(parent).lower() == "lib":
            return os.path.join(os.path.dirname(parent), "var", "pie-instance")
        return os.path.join(site_parent, "var", "pie-instance")
    return os.path.join(package_parent, "instance")


def instance_path(config: Mapping[str, Any]) -> str:
    return os.path.abspath(config.get("PIE_INSTANCE_PATH") or default_instance_path())


def database_url(config: Mapping[str, Any]) -> str:
    """PIE_DATABASE_URL, else the SQLite file in the instance folder."""
    return config.get("PIE_DATABASE_URL") or f"sqlite:///{instance_path(config)}/pie.sqlite"


def sqlite_path(url: str) -> str:
    """The file (or `:memory:`) a `sqlite:///…` URL names; "" for any other URL."""
    return unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""


def secret_path(config: Mapping[str, Any], name: str = SECRET_FILE) -> str:
    """Where a generated secret (by default the HS256 one) lives: beside the SQLite file; in
    the instance folder for Postgres or an in-memory database, which have no folder of their
    own."""
    path = sqlite_path(database_url(config))
    if path and path != ":memory:":
        return os.path.join(os.path.dirname(os.path.abspath(path)), name)
    return os.path.join(instance_path(config), name)


def redacted_url(url: str) -> str:
    """A database URL fit to print: any password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
