"""PIE: create_app and the public names plugins import."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from pie.handler_types import DispatchDeferred, HandlerType
    from pie.hookspecs import hookimpl

__all__ = ["DispatchDeferred", "HandlerType", "hookimpl", "create_app", "__version__"]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pie-registry")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


# The public names, loaded on first use: `pie --help` and `pie token` import this package
# without paying for Flask, marshmallow, pluggy or importlib.metadata.
_LAZY = {
    "DispatchDeferred": "pie.handler_types",
    "HandlerType": "pie.handler_types",
    "hookimpl": "pie.hookspecs",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'pie' has no attribute {name!r}")
    globals()[name] = value
    return value


def _resolve_storage(app: Flask) -> None:
    """Default the database to a SQLite file in the instance folder, the secret beside it
    (each folder is created when its file is)."""
    from pie import config
    from pie.auth import check_secret
    from pie.secret_files import load_or_create_secret

    app.config["PIE_DATABASE_URL"] = config.database_url(app.config)
    source = "PIE_JWT_SECRET"
    if not app.config.get("PIE_JWT_SECRET"):
        source = config.secret_path(app.config)
        app.config["PIE_JWT_SECRET"] = load_or_create_secret(source)
    check_secret(app.config["PIE_JWT_SECRET"], source)


def create_app(test_config: Mapping[str, Any] | None = None, plugins: Iterable[Any] = ()) -> Flask:
    """Build a PIE app: settings, database, plugins, API. `plugins` are registered after the
    built-ins, exactly like entry-point plugins."""
    from pie import api, config, console, db, logs, metrics
    from pie.auth import TokenVerifier
    from pie.flask_app import PieFlask
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
        "PIE_VERSION": _installed_version(),
        "PIE_PROCESS_KIND": "app",  # how this process appears in pie_processes
        **config.coerce(test_config or {}),
    }
    config.check(settings)
    app = PieFlask("pie", instance_path=config.instance_path(settings), static_folder=None)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = app.config["PIE_MAX_BODY_BYTES"]
    app.json = api.JSONProvider(app)
    # "/v2//models" is a 404 like any unknown path, not a redirect with an HTML body.
    app.url_map.merge_slashes = False
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
    console.init_app(app)
    return app
