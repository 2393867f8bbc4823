"""Test helpers: tokens and a test client that authenticates by default."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt

from pie import hookimpl
from pie.testing import wait_for  # noqa: F401  (tests import it from here)
from tests.openapi_check import check_exchange

SECRET = "test-secret-for-pie-tests-0123456789abcdef"


def make_token(
    *,
    scope: str | list[str] | None = None,
    client_id: str | None = None,
    groups: list[str] | None = None,
    ttl: int = 7 * 86400,  # module-level tokens outlive a slow run of the whole suite
    secret: str = SECRET,
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "sub": "tester",
        "iat": int(time.time()),
        "exp": int(time.time()) + ttl,
        **claims,
    }
    if scope is not None:
        body["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    if client_id is not None:
        body["client_id"] = client_id
    if groups is not None:
        body["cognito:groups"] = groups
    return jwt.encode(body, secret, algorithm="HS256")


ADMIN = make_token(scope="streamline/admin", ttl=86400)


def scoped(*names: str, **kwargs: Any) -> str:
    return make_token(scope=" ".join(f"streamline/{n}" for n in names), **kwargs)


class Client:
    """Flask test client wrapper: JSON in, admin token unless told otherwise; every exchange
    is checked against the app's OpenAPI document (tests/openapi_check.py)."""

    def __init__(self, flask_client: Any, token: str | None = ADMIN) -> None:
        self.raw = flask_client
        self.token = token

    def request(
        self, method: str, path: str, json: Any = None, token: Any = "default", **kwargs: Any
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        token = self.token if token == "default" else token
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        if json is not None:
            kwargs["json"] = json
        response = self.raw.open(path, method=method, headers=headers, **kwargs)
        check_exchange(self.raw.application, response)
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def model_body(model_id: str | None = "m1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Model one",
        "description": "a test model",
        "handlers": {
            "training": {"type": "in_process", "value": "echo"},
            "inference": {"type": "in_process", "value": "echo"},
        },
    }
    if model_id is not None:
        body["id"] = model_id
    body.update(overrides)
    return body


def assert_envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError(f"repeated key in {pairs!r}")
    return dict(pairs)


_STRICT = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique)


def strict_json(text: str | bytes) -> Any:
    """Parse JSON as a strict client does (RFC 8259 I-JSON): no NaN or Infinity, no repeated
    keys, UTF-8, no lone surrogate; raises ValueError otherwise."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    value = _STRICT.decode(text)
    for item in _strings(value):
        item.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
    return value


def _strings(value: Any) -> list[str]:
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def wait_for_job(
    client: Client,
    job_id: str,
    statuses: tuple[str, ...] = ("success", "failure"),
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll GET /v2/jobs/{job_id} until the job reaches one of `statuses`; return it."""

    def done() -> Any:
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job and job.get("status") in statuses else None

    return wait_for(done, timeout)


def add_tenant(
    client: Client, client_id: str, domain_id: str | None = None, **assignments: str
) -> None:
    """An admin creates client `client_id`; with `domain_id`, a domain of it, and for each
    `key=model_id` an assignment of that key to version 1 of the model."""
    r = client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
    assert r.status_code == 201, r.get_json()
    if domain_id is None:
        return
    r = client.post(f"/v2/clients/{client_id}/domains", json={"domain_id": domain_id})
    assert r.status_code == 201, r.get_json()
    for key, model_id in assignments.items():
        r = client.put(
            f"/v2/clients/{client_id}/domains/{domain_id}/assignments/{key}",
            json={"model_id": model_id, "model_version": "1"},
        )
        assert r.status_code == 201, r.get_json()


def activate(client: Client, model_id: str, version: str = "1") -> None:
    """Move a pending version to active through training (so training_complete can fire)."""
    for status in ("training", "active"):
        r = client.post(
            f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status}
        )
        assert r.status_code == 200, r.get_json()


def register_active(client: Client, model_id: str, handler: dict[str, Any]) -> None:
    """A new model with `handler` for both job types, its version 1 moved straight to active."""
    body = model_body(model_id, handlers={"training": handler, "inference": handler})
    assert client.post("/v2/models", json=body).status_code == 201
    r = client.post(f"/v2/models/{model_id}/versions/1/new_status", json={"status": "active"})
    assert r.status_code == 200, r.get_json()


class Implementations:
    """In-process implementations for tests, registered as a plugin besides `echo`: `hold`
    stays `started` until `release` is set (so a test completes the job by callback), `fail`
    raises, `other` returns a fixed output."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def hold(self, job_input: dict[str, Any]) -> dict[str, Any]:
        self.release.wait(60)
        return {}

    @staticmethod
    def fail(job_input: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    @staticmethod
    def other(job_input: dict[str, Any]) -> dict[str, Any]:
        return {"other": True}

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        return {"hold": self.hold, "fail": self.fail, "other": self.other}


# The contract's field names (API.md sections 3 and 4).
MODEL_FIELDS = {
    "id",
    "name",
    "description",
    "handlers",
    "handler_contracts",
    "metadata",
    "status",
    "latest_version",
    "created_at",
    "updated_at",
    "job_policy",  # a PIE extension (issue 15)
}
VERSION_FIELDS = {
    "model_id",
    "version",
    "description",
    "metadata",
    "status",
    "handlers",
    "handler_contracts",
    "feature_schema",
    "created_at",
    "updated_at",
}


@contextlib.contextmanager
def peewee_statements(handler: logging.Handler) -> Iterator[None]:
    """`handler` receives every statement peewee sends (its debug log) while inside."""
    logger = logging.getLogger("peewee")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
