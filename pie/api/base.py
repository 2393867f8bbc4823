"""The Blueprint every resource uses: 400 for bad input, auth checks, error documentation."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import replace
from functools import wraps
from typing import Any

import flask_smorest
from flask import current_app, g, request
from flask_smorest.pagination import PaginationParameters
from marshmallow import missing
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pie import auth, jsonio
from pie.errors import BadRequest, Forbidden, NotFound
from pie.runtime import Runtime
from pie.schemas.common import ID_PATTERN, ID_REGEX
from pie.scopes import SCOPE_PREFIX
from pie.services import jobs, tenants

SECURITY = [{"bearerAuth": []}]


class Parser(FlaskParser):
    """Validation errors are the contract's 400, not webargs' 422; bodies must be JSON."""

    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type, Any] = {}

    def _get_schema(self, argmap: Any, req: Any) -> Any:
        """One instance per schema class (webargs would build one per request: a deep copy
        of every field). Loading keeps no state on the instance, so threads may share it."""
        if isinstance(argmap, type):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)

    def get_default_request(self) -> Any:
        """The request itself rather than Flask's proxy for it: webargs reads it a dozen
        times per parse, and each read through the proxy is a context lookup."""
        return request._get_current_object()  # type: ignore[attr-defined]

    def _raw_load_json(self, req: Any) -> Any:
        """webargs' JSON loading (a JSON content type, else nothing) with PIE's rules: a
        body that is not JSON is a 400, and so is one that strict JSON parsers would read
        differently or not at all (pie.jsonio.parse_body)."""
        body = read_body(req)
        if not req.is_json:  # the test webargs makes (application/json or …+json)
            if body:
                raise BadRequest("the request body must be JSON (Content-Type: application/json)")
            return missing
        return jsonio.parse_body(body)


def read_body(req: Any) -> bytes:
    """The request body; 413 when it is larger than MAX_CONTENT_LENGTH, 400 when it cannot be
    read whole. werkzeug checks a declared Content-Length itself, but cuts a streamed
    (chunked) body at the limit without a word, so a body that fills the limit is over it
    when one more byte follows."""
    try:
        body = req.get_data(cache=True)
    except HTTPException:
        raise
    except Exception as exc:  # the server's input stream: a malformed chunk, a reset, …
        raise BadRequest(f"the request body could not be read: {exc}") from exc
    if req.content_length is None:
        limit = req.max_content_length
        # A body this long came through werkzeug's limited stream, which it only uses when
        # the server ends the input itself (wsgi.input_terminated): this read cannot hang.
        if body and limit is not None and len(body) >= limit and req.input_stream.read(1):
            raise RequestEntityTooLarge()
    elif len(body) < req.content_length:  # the client closed the connection early
        raise BadRequest(
            f"the request body ended after {len(body)} of the {req.content_length} bytes "
            "its Content-Length announced"
        )
    return body


def check_path_parameters() -> None:
    """before_request: every path parameter of a /v2 route is an id. A NUL is a 400 (Postgres
    cannot store it); anything else an id cannot be — a trailing newline, a space, a
    non-ASCII letter — names nothing that can exist, so it is a 404."""
    values = request.view_args or {}
    if any("\x00" in value for value in values.values() if isinstance(value, str)):
        raise BadRequest("path parameters may not contain NUL characters")
    rule = request.url_rule
    if rule is None or not rule.rule.startswith("/v2/"):
        return
    for name, value in values.items():
        if isinstance(value, str) and ID_REGEX.fullmatch(value) is None:
            raise NotFound(f"no {name} can be {ascii(value)[:80]}: ids match {ID_PATTERN}")


# Past this a page's offset would overflow the databases' 64-bit integers.
MAX_PAGE = 10**12


class PaginationParser(Parser):
    def parse(self, *args: Any, **kwargs: Any) -> Any:
        params = super().parse(*args, **kwargs)
        if isinstance(params, PaginationParameters) and params.page > MAX_PAGE:
            raise BadRequest(f"query.page: Must be less than or equal to {MAX_PAGE}.")
        return params


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    PAGINATION_ARGUMENTS_PARSER = PaginationParser()
    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 100, "max_page_size": 1000}


def page_of(params: Any, fetch: Callable[..., tuple[list, int]], *args: Any, **kwargs: Any) -> list:
    """One page from `fetch(*args, page, page_size, **kwargs) -> (items, total)`; the total
    goes to the X-Pagination header."""
    items, params.item_count = fetch(*args, params.page, params.page_size, **kwargs)
    return items


def checked_job(job_id: str) -> Any:
    """The job `requires_job` read for its tenant check, else read now (404 when none)."""
    job = g.pop("checked_job", None)
    return job if job is not None else jobs.get_job(job_id)


def runtime() -> Runtime:
    return current_app.extensions["pie"]


def current_principal() -> auth.Principal:
    """The verified caller of this request (verified once, then kept on `g`). A tenant's
    token whose clients are all suspended is refused here, on every route; one of several
    clients loses access to the suspended ones. Operators' and admins' tokens, and callback
    tokens, cost no lookup."""
    principal = g.get("principal")
    if principal is None:
        token = auth.bearer_token(request.headers.get("Authorization"))
        principal = g.principal = principal_for(token)
    return principal


def principal_for(token: str) -> auth.Principal:
    """The verified principal of a token, its suspended clients found (the console's session
    token goes through this too)."""
    principal = runtime().verifier.verify(token)
    if principal.tenants and principal.job_id is None and not principal.is_admin:
        principal = _unless_suspended(principal)
    return principal


def _unless_suspended(principal: auth.Principal) -> auth.Principal:
    suspended = runtime().suspended_clients.among(principal.tenants)
    if not suspended:
        return principal
    if suspended == principal.tenants:
        names = ", ".join(f"'{c}'" for c in sorted(suspended))
        raise Forbidden(f"this token's client {names} is suspended")
    return replace(principal, suspended=suspended)


def document(fn: Callable[..., Any], *codes: int, secured: bool = False) -> None:
    """Add error responses (and the bearer requirement) to a view's OpenAPI operation."""
    apidoc = fn._apidoc = deepcopy(getattr(fn, "_apidoc", {}))  # type: ignore[attr-defined]
    responses = apidoc.setdefault("response", {}).setdefault("responses", {})
    for code in codes:
        responses.setdefault(code, [_RESPONSE_NAMES[code]])
    if secured:
        apidoc.setdefault("manual_doc", {})["security"] = SECURITY


def requires(
    permission: str | tuple[str, ...], *errors: int, client_route: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Authenticate, then check the operation permission (any of a tuple) and, on routes with
    a `client_id`, tenant access — all before the body is parsed. Routes under a client
    (not the client resource itself, `client_route`) also need it to exist and be active.
    `errors` are the other statuses the operation answers, for the OpenAPI document."""
    wanted = permission if isinstance(permission, tuple) else (permission,)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal, client_id = current_principal(), kwargs.get("client_id")
            if client_id in principal.suspended:  # one of the token's clients, suspended
                raise Forbidden(f"client '{client_id}' is suspended")
            if not any(principal.has(p, client_id) for p in wanted):
                auth.require(principal, wanted[0], client_id)  # raises, naming the first
            auth.require_tenant(principal, client_id)
            if client_id is not None and not client_route:
                tenants.ensure_client_active(client_id)
            return fn(*args, **kwargs)

        document(wrapper, 401, 403, *errors, secured=True)
        return wrapper

    return decorator


def require_job_tenant(principal: auth.Principal, job: Any) -> None:
    """403 unless the caller may reach the job's client; the message does not name the
    client, so a job id does not tell another tenant whose job it is."""
    if not principal.can_access(job.client_id):
        raise Forbidden(f"this token has no access to the client of job '{job.job_id}'")


def require_client_access(principal: auth.Principal, client_id: str) -> None:
    """403 unless the caller may reach `client_id`, as `requires` checks a route's client:
    one of the token's clients that is suspended says so; any other it has no access to is
    refused alike whether it exists or not."""
    if client_id in principal.suspended:
        raise Forbidden(f"client '{client_id}' is suspended")
    auth.require_tenant(principal, client_id)


def require_global_change(principal: auth.Principal, client_id: str | None, refusal: str) -> None:
    """403 (`refusal`) when a tenant's token would change something of no client (a job, a
    subscription): it is every tenant's, so only an operator's token (one of no client) or
    an admin's changes it."""
    if not client_id and principal.is_tenant_bound:
        raise Forbidden(refusal)


def require_job_access(principal: auth.Principal, job: Any, changes: bool) -> None:
    """403 unless the caller may reach the job's client or, for a change to a job of no
    client, is not a tenant's token."""
    if job.client_id:
        require_job_tenant(principal, job)
    elif changes:
        require_global_change(
            principal,
            job.client_id,
            f"job '{job.job_id}' belongs to no client: a client's token cannot "
            "change it (its callback token, an operator's or an admin's can)",
        )


def requires_job(
    permission: str | Callable[[Any], str],
    *errors: int,
    changes: bool = False,
    callback: bool = True,
    any_of: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For routes on one job (`job_id` in the path): the job's own callback token passes
    (unless `callback` is False); any other token needs the permission and, when the job was
    launched for a client, access to that client; a route that `changes` a job of no client
    takes a token of no client — checked before the body is parsed. A callable `permission`
    names it for the job, one of `any_of`: a token that holds none of them, for any client,
    is refused before the job is read, so it cannot tell which job ids exist. The job read
    for the check is kept for the view (`checked_job`), so the check costs no second read."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal.job_id is None or not callback:
                job = None
                if callable(permission):
                    if not principal.group_clients and not any(map(principal.has, any_of)):
                        auth.require(principal, any_of[0])  # raises, naming the first
                    job = g.checked_job = jobs.find_job(kwargs["job_id"])
                    if job is None:
                        raise NotFound(f"job '{kwargs['job_id']}' not found")
                    # The job's client counts: a `client:X` user may cancel what X starts.
                    wanted = permission(job)
                    if not principal.has(wanted, job.client_id or None):
                        raise Forbidden(f"this token lacks the permission '{SCOPE_PREFIX}{wanted}'")
                else:
                    auth.require(principal, permission)
                if not principal.is_admin:  # admins reach every tenant: nothing to read
                    if job is None:
                        job = g.checked_job = jobs.find_job(kwargs["job_id"])
                    if job is not None:
                        require_job_access(principal, job, changes)
            elif principal.job_id != kwargs.get("job_id"):
                raise Forbidden("this callback token belongs to another job")
            return fn(*args, **kwargs)

        document(wrapper, 401, 403, *errors, secured=True)
        return wrapper

    return decorator


_RESPONSE_NAMES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "REQUEST_ENTITY_TOO_LARGE",
    422: "UNPROCESSABLE_ENTITY",
    503: "SERVICE_UNAVAILABLE",
}
