"""Configuration defaults; PIE_* environment variables override them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# name -> (default, parser). Every key is stored in app.config with the PIE_ prefix.
_INT = int


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


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
    "MAX_TRIGGER_DEPTH": (8, _INT),
    "IN_PROCESS_WORKERS": (4, _INT),
    "EMBEDDED_WORKER": (True, _bool),
    "DISABLED_PLUGINS": ([], _csv),
    "DISPATCH_GRACE_SECONDS": (10, _INT),
    "CALLBACK_TOKEN_TTL_SECONDS": (604800, _INT),
    "MAX_BODY_BYTES": (1048576, _INT),
    "RECOVERY_INTERVAL_SECONDS": (2, float),
    "DISPATCH_LEASE_SECONDS": (60, float),
    "IN_PROCESS_LEASE_SECONDS": (30, float),
    "DB_MAX_CONNECTIONS": (32, _INT),
    # Operations (issue 8): plugin folders for the single binary, log format, shutdown grace.
    "PLUGINS_PATH": ([], _csv),
    "LOG_FORMAT": ("json", str),
    "LOG_LEVEL": ("INFO", str),
    "SHUTDOWN_GRACE_SECONDS": (30, float),
}


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the PIE_* settings: defaults overridden by the environment."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, parse) in SETTINGS.items():
        raw = environ.get(f"PIE_{name}")
        config[f"PIE_{name}"] = default if raw in (None, "") else parse(raw)
    return config
