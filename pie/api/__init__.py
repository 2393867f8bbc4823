"""The HTTP layer: the Api, its one error renderer, the OpenAPI document and the docs pages."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import flask_smorest
import peewee
from flask import Blueprint as FlaskBlueprint
from flask import Flask, current_app, g, redirect, request, send_from_directory, url_for
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    RequestEntityTooLarge,
)

from pie import contracts, jsonio
from pie.api.base import check_path_parameters
from pie.api.openapi import finish
from pie.errors import PieError, envelope, flatten_messages
from pie.schemas.common import ErrorSchema
from pie.schemas.handlers import (
    HANDLER_COMPONENT,
    component_names,
    handler_field_documenter,
    handler_object_schema,
    handler_union,
)
from pie.slow_clients import ClientTimeout

log = logging.getLogger(__name__)

DOCS_ASSETS_URL = "/docs/assets/"
SWAGGER_UI_FOLDER = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
# Swagger UI's own options. No online validator badge: it would send /openapi.json's URL to
# validator.swagger.io, and the page must not reach any host but PIE.
SWAGGER_UI_CONFIG = {"validatorUrl": None}


class Api(flask_smorest.Api):
    """flask-smorest's Api, whose blueprints are documented when the document is first asked
    for, not when the app starts: writing their pages (apispec resolving every schema) was
    over half of an app's start, and a `pie serve` worker may never serve /openapi.json."""

    ERROR_SCHEMA = ErrorSchema

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        self._undocumented: list[tuple[Any, str, Any]] = []
        self._documenting = threading.Lock()
        super().init_app(app, spec_kwargs=spec_kwargs)

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        """As flask-smorest's, the blueprint's documentation left for `document`."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def document(self) -> dict[str, Any]:
        """The OpenAPI document PIE serves (/openapi.json, `pie openapi`)."""
        with self._documenting:
            for blp, name, parameters in self._undocumented:
                blp.register_views_in_doc(
                    self, self._app, self.spec, name=name, parameters=parameters
                )
                self.spec.tag({"name": name, "description": blp.description})
            self._undocumented.clear()
            return finish(self.spec.to_dict())

    def _openapi_json(self) -> Any:
        return current_app.response_class(
            json.dumps(self.document(), indent=2, allow_nan=False), mimetype="application/json"
        )

    def handle_http_exception(self, error: HTTPException) -> tuple[dict[str, Any], int, dict]:
        """Render werkzeug/webargs errors (404, 405, 413, 400 from parsing) as the envelope."""
        if isinstance(error, ClientDisconnected) and isinstance(error.__context__, ClientTimeout):
            return (*handle_client_timeout(error.__context__), {})  # werkzeug wrapped it
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or data.get("errors")
        if messages:
            message = "; ".join(flatten_messages(messages))
        else:
            message = data.get("message") or error.description or error.name
        if isinstance(error, RequestEntityTooLarge) and request.max_content_length is not None:
            message = body_limit_message(request.max_content_length)
        headers = dict(data.get("headers") or {})
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return envelope(message), error.code or 500, headers


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, strict both ways: a response never holds NaN or Infinity (encoding one
    raises, a 500, rather than sending what strict clients cannot parse), and
    `request.get_json()` follows the request-body rules of pie.jsonio."""

    sort_keys = False  # the schemas' field order

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return jsonio.parse_body(s.encode("utf-8") if isinstance(s, str) else s)
        except PieError as exc:  # what Flask expects of a loads: get_json turns it into a 400
            raise ValueError(exc.message) from exc


def body_limit_message(limit: int) -> str:
    """A 413 names the limit, so the caller knows how far to shrink the body."""
    return f"request body is larger than the limit of {limit} bytes (PIE_MAX_BODY_BYTES)"


def handle_pie_error(error: PieError) -> tuple[dict[str, Any], int]:
    return envelope(error.message, **error.extra), error.status


def handle_client_timeout(error: ClientTimeout) -> tuple[dict[str, Any], int]:
    """The body did not arrive in time (`pie serve`, PIE_CLIENT_TIMEOUT_SECONDS): a 408, and
    the connection closes."""
    log.info("%s", error)
    return envelope(f"{error} (PIE_CLIENT_TIMEOUT_SECONDS); nothing was changed"), 408


def handle_database_error(error: peewee.PeeweeException) -> tuple[dict[str, Any], int]:
    log.warning("database unavailable: %s", error)
    return envelope("the database is unavailable; try again shortly"), 503


def handle_unexpected(error: Exception) -> tuple[dict[str, Any], int]:
    log.exception("unhandled error", exc_info=error)
    return envelope("internal server error"), 500


def open_schema_limits() -> None:
    """before_request: the request's JSON Schema budget and size limit (pie.contracts)."""
    g.schema_limits = stack = contextlib.ExitStack()
    stack.enter_context(contracts.limits_from(current_app.config))


def close_schema_limits(error: BaseException | None) -> None:
    stack = g.pop("schema_limits", None)
    if stack is not None:
        stack.close()


def docs_assets_blueprint() -> FlaskBlueprint:
    """Swagger UI's files, vendored in pie/static/swagger-ui (no internet needed)."""
    blueprint = FlaskBlueprint("docs_assets", __name__)

    @blueprint.route(f"{DOCS_ASSETS_URL}<path:filename>")
    def docs_asset(filename: str) -> Any:
        return send_from_directory(SWAGGER_UI_FOLDER, filename, max_age=86400)

    @blueprint.route("/docs/")
    def docs_with_a_slash() -> Any:  # as /ui goes to /ui/, the one spelling leads to the other
        query = request.query_string.decode("latin-1")
        target = url_for("api-docs.openapi_swagger_ui")
        return redirect(f"{target}?{query}" if query else target, 308)

    return blueprint


def init_app(app: Flask) -> Api:
    from pie.api import (
        assignments,
        clients,
        health,
        jobs,
        models,
        subscriptions,
        tenant_services,
        versions,
        webhooks,
    )

    app.config.update(
        API_TITLE="PIE",
        API_VERSION=app.config["PIE_VERSION"],
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS_URL,
        OPENAPI_SWAGGER_UI_CONFIG=SWAGGER_UI_CONFIG,
        API_SPEC_OPTIONS={
            "info": {
                "description": "PIE V2: model registry and job orchestrator.",
                "license": {"name": "MIT", "identifier": "MIT"},  # setup.cfg's
            },
            # Relative: the document describes the server that serves it, wherever that is.
            "servers": [{"url": "/"}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    )
    api = Api()
    api.init_app(app)
    types = app.extensions["pie"].handler_types
    names = component_names(types)
    for handler_type in types.values():
        schema = handler_object_schema(type(handler_type))
        api.spec.components.schema(names[handler_type.name], schema=schema)
    api.spec.components.schema(HANDLER_COMPONENT, handler_union(names))
    api.ma_plugin.converter.add_attribute_function(handler_field_documenter(types))
    for module in (
        health,
        models,
        versions,
        jobs,
        subscriptions,
        clients,
        tenant_services,
        assignments,
        webhooks,
    ):
        api.register_blueprint(module.blp)
    app.register_blueprint(docs_assets_blueprint())
    app.before_request(check_path_parameters)
    app.before_request(open_schema_limits)
    app.teardown_request(close_schema_limits)
    app.register_error_handler(PieError, handle_pie_error)
    app.register_error_handler(ClientTimeout, handle_client_timeout)
    app.register_error_handler(peewee.OperationalError, handle_database_error)
    app.register_error_handler(peewee.InterfaceError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
    return api
