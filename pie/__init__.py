"""PIE: create_app and the public names plugins import."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from typing import Any

from flask import Flask

from pie.handler_types import DispatchDeferred, HandlerType
from pie.hookspecs import hookimpl

__all__ = ["DispatchDeferred", "HandlerType", "hookimpl", "create_app", "__version__"]

try:
    __version__ = _package_version("pie-registry")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

SECRET_FILE = "pie-jwt-secret"


def _resolve_storage(app: Flask) -> None:
    """Default the database to a SQLite file in the instance folder, the secret beside it."""
    from pie.auth import load_or_create_secret
    from pie.db import sqlite_path

    if not app.config.get("PIE_DATABASE_URL"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["PIE_DATABASE_URL"] = f"sqlite:///{app.instance_path}/pie.sqlite"
    if not app.config.get("PIE_JWT_SECRET"):
        path = sqlite_path(app.config["PIE_DATABASE_URL"])
        if path and path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
        else:  # Postgres, or an in-memory SQLite database: no folder of its own
            folder = app.instance_path
            os.makedirs(folder, exist_ok=True)
        app.config["PIE_JWT_SECRET"] = load_or_create_secret(os.path.join(folder, SECRET_FILE))


def create_app(test_config: Mapping[str, Any] | None = None, plugins: Iterable[Any] = ()) -> Flask:
    """Build a PIE app: settings, database, plugins, API. `plugins` are registered after the
    built-ins, exactly like entry-point plugins."""
    from pie import api, cli, config, db, logs, metrics
    from pie.auth import TokenVerifier
    from pie.plugin_manager import (
        build_plugin_manager,
        collect_handler_types,
        collect_in_process_handlers,
    )
    from pie.runtime import Runtime

    settings = {
        **config.load(),
        "PIE_AUTO_MIGRATE": True,
        "PIE_LOAD_ENTRY_POINTS": True,
        "PIE_VERSION": __version__,
        **(test_config or {}),
    }
    # Frozen (the single binary): ./instance, not PyInstaller's temporary extraction folder.
    default_instance = os.path.abspath("instance") if getattr(sys, "frozen", False) else None
    instance_path = settings.get("PIE_INSTANCE_PATH") or default_instance
    app = Flask("pie", instance_path=instance_path, static_folder=None)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = app.config["PIE_MAX_BODY_BYTES"]
    app.json.sort_keys = False
    logs.init_app(app)
    _resolve_storage(app)
    db.init_app(app)
    if app.config["PIE_AUTO_MIGRATE"]:
        db.upgrade()
    verifier = TokenVerifier(
        app.config["PIE_JWT_SECRET"],
        app.config["PIE_JWKS_URL"],
        app.config["PIE_JWT_ISSUER"],
        app.config["PIE_JWT_AUDIENCE"],
    )
    pm = build_plugin_manager(
        plugins,
        app.config["PIE_DISABLED_PLUGINS"],
        entry_points=app.config["PIE_LOAD_ENTRY_POINTS"],
        plugins_path=app.config["PIE_PLUGINS_PATH"],
    )
    runtime = app.extensions["pie"] = Runtime(app.config, pm, verifier)
    runtime.install(collect_handler_types(pm, app), collect_in_process_handlers(pm, app))
    metrics.init_app(app)
    api.init_app(app)
    cli.init_app(app)
    return app
