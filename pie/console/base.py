"""The console's Blueprint: sign-in gate, CSRF check, security headers, HTML error pages."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import peewee
from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from pie.console import session
from pie.errors import BadRequest, PieError, Unauthorized, flatten_messages

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# Reachable without a session: the sign-in page and the console's own files.
PUBLIC = {"console.sign_in", "console.static"}
# Only the console's own files, no inline script or style: a value that slipped past
# escaping still runs nothing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
LIST_LIMIT = 200  # rows per list: the console pages by cursor where the API does


@bp.before_request
def gate() -> Any:
    """CSRF on every state-changing request, then a session on every page but sign-in."""
    if request.endpoint == "console.static":
        return None
    session.current()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        session.check_csrf()
    if request.endpoint in PUBLIC:
        return None
    if session.principal() is None:
        return to_sign_in()
    return None


def to_sign_in() -> Response:
    """The sign-in page, then back here; an htmx refresh sends the whole page there instead
    of swapping the form into a table."""
    target = url_for("console.sign_in", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        return Response(status=204, headers={"HX-Redirect": target})
    return redirect(target)


@bp.after_request
def headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"  # pages hold a tenant's data
    return session.remember(response)


def render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, principal=g.get("principal"), **context), status


def error_page(status: int, message: str) -> tuple[str, int]:
    title = HTTP_STATUS_CODES.get(status, "Error")
    return render("error.html", status, code=status, title=title, message=message)


def load(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """A form validated by the API's schema for the same request: its errors are the API's
    400 messages."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise BadRequest("; ".join(flatten_messages(exc.messages))) from exc


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith(f"{session.PATH}/"):
        return url_for("console.models")
    return target or url_for("console.models")


@bp.errorhandler(PieError)
def pie_error(error: PieError) -> Any:
    if isinstance(error, Unauthorized):  # the session's token expired or stopped verifying
        g.pop("principal", None)
        if request.headers.get("HX-Request"):
            return session.forget_token(to_sign_in())
        page, status = render("sign_in.html", 401, error=error.message, next=request.path)
        return session.forget_token(Response(page, status))
    return error_page(error.status, error.message)


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Any:
    return error_page(error.code or 500, error.description or error.name)


@bp.errorhandler(peewee.OperationalError)
@bp.errorhandler(peewee.InterfaceError)
def database_error(error: peewee.PeeweeException) -> Any:
    log.warning("database unavailable: %s", error)
    return error_page(503, "the database is unavailable; try again shortly")


@bp.errorhandler(Exception)
def unexpected(error: Exception) -> Any:
    log.exception("unhandled error", exc_info=error)
    return error_page(500, "internal server error")
