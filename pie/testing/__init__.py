"""A test kit for plugin authors (and PIE's own suite): an app on a throw-away database, a JSON
test client with tokens, and helpers that run a job through dispatch and callback.

The fixtures in `pie.testing.plugin` are a pytest plugin loaded whenever PIE is installed;
these helpers work without pytest too. See docs/plugins.md."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ENDED",
    "Jobs",
    "PieClient",
    "close_app",
    "new_app",
    "postgres_schema_url",
    "wait_for",
]

ENDED = ("success", "failure")
CLOSED = "PIE_TESTING_CLOSED"  # set in an app's config by close_app


def postgres_schema_url(url: str, schema: str) -> str:
    """Recreate `schema` (empty) in the Postgres database at `url`; return a URL whose
    connections use it, so parallel test processes never share tables."""
    _execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def drop_postgres_schema(url: str, schema: str) -> None:
    _execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _execute(url: str, *statements: str) -> None:
    from pie import db

    conn = db.open_database(url, max_connections=1)
    conn.connect()
    for sql in statements:
        conn.execute_sql(sql)
    conn.close_all()


def new_app(
    folder: str | os.PathLike[str],
    *,
    database_url: str | None = None,
    config: Mapping[str, Any] | None = None,
    plugins: Iterable[Any] = (),
) -> Any:
    """A PIE app keeping its files in `folder` (a SQLite database there unless `database_url`
    says otherwise), with a fresh signing secret, installed plugins loaded from the `pie`
    entry-point group, `plugins` registered after them, and no background recovery loop (call
    `Jobs.recover()`); `config` overrides any setting."""
    from pie import create_app

    folder = Path(folder)
    settings = {
        "TESTING": True,
        "PIE_DATABASE_URL": database_url or f"sqlite:///{folder}/pie.sqlite",
        "PIE_JWT_SECRET": secrets.token_urlsafe(48),
        "PIE_INSTANCE_PATH": str(folder / "instance"),
        "PIE_EMBEDDED_WORKER": False,
        "PIE_PUBLIC_URL": "http://pie.test",
        # A dispatch that never returns delays the end of a test by this much, not forever.
        "PIE_SHUTDOWN_GRACE_SECONDS": 5,
        **(config or {}),
    }
    return create_app(settings, plugins=plugins)


def close_app(app: Any) -> None:
    """Stop the app's dispatch threads and handler types (their `close`) and its connections."""
    from pie import db

    app.extensions["pie"].close()
    app.config[CLOSED] = True
    db.close_all()


class PieClient:
    """Flask's test client speaking JSON, with a bearer token on every request.

    `client.post(path, json=body)` returns Flask's response (`.status_code`, `.get_json()`);
    `token=None` sends none, `token="..."` another one for that request; `client.as_token(t)`
    is a client of the same app that always sends `t`."""

    _DEFAULT: Any = object()

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.app = app
        self.flask = app.test_client()
        self.token = token if token is not None else self.make_token("admin")

    def make_token(
        self,
        *scopes: str,
        client_id: str | None = None,
        ttl_seconds: int = 86400,
        **claims: Any,
    ) -> str:
        """A token signed with the app's secret: `make_token("read_models", "run_inference")`,
        `make_token("run_inference", client_id="acme")` for a tenant's machine token."""
        from pie.scopes import scope_name

        body: dict[str, Any] = {"sub": "pie-testing", **claims}
        if scopes:
            body["scope"] = " ".join(scope_name(scope) for scope in scopes)
        if client_id is not None:
            body["client_id"] = client_id
        return self.app.extensions["pie"].verifier.mint(body, ttl_seconds)

    def as_token(self, token: str | None) -> PieClient:
        other = PieClient(self.app, token="")
        other.token = token
        return other

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        token: Any = _DEFAULT,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.app.config.get(CLOSED):
            raise RuntimeError(
                "this PIE app was closed (pie_make_app closes the apps made before it: PIE "
                "binds one database per process); use a client of the newest app"
            )
        headers = dict(headers or {})
        token = self.token if token is self._DEFAULT else token
        if token:
            headers.setdefault("Authorization", f"Bearer {token}")
        if json is not None:
            kwargs["json"] = json
        return self.flask.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


class UnexpectedResponse(AssertionError):
    """A helper's request did not get the status it needs; the message has the body."""


def expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.path}: expected {status}, got "
            f"{response.status_code}: {response.get_data(as_text=True)[:500]}"
        )
    return response.get_json()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` returns something truthy and return it; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


class Jobs:
    """Run jobs through a handler type the way PIE does in production: register a model,
    start a job (PIE dispatches it to your type after the request commits), then complete it
    with the dispatch payload's callback URL and token, exactly as a backend would."""

    def __init__(self, client: PieClient) -> None:
        self.client = client

    def register_model(
        self,
        handler: Mapping[str, Any],
        model_id: str = "m1",
        *,
        training: Mapping[str, Any] | None = None,
        activate: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create model `model_id` whose inference handler is `handler` (training too, unless
        `training` is given); `fields` are other model fields (`job_policy`,
        `handler_contracts`, ...). With `activate`, version 1 is moved to `active` so
        inference can run. Returns the model as the API answers it."""
        body = {
            "id": model_id,
            "name": model_id,
            "description": f"{model_id}, registered by pie.testing",
            "handlers": {"training": dict(training or handler), "inference": dict(handler)},
            **fields,
        }
        model = expect(self.client.post("/v2/models", json=body), 201)
        if activate:
            for status in ("training", "active"):
                path = f"/v2/models/{model_id}/versions/1/new_status"
                expect(self.client.post(path, json={"status": status}), 200)
        return model

    def run_inference(self, model_id: str = "m1", job_input: Any = None, version: str = "1") -> str:
        """Start an inference job; returns its job id (dispatch follows in the background)."""
        return self._start(model_id, version, "inference", job_input)

    def run_training(self, model_id: str = "m1", job_input: Any = None, version: str = "1") -> str:
        return self._start(model_id, version, "training", job_input)

    def _start(self, model_id: str, version: str, kind: str, job_input: Any) -> str:
        path = f"/v2/models/{model_id}/versions/{version}/{kind}"
        body = {"input": {} if job_input is None else job_input}
        return expect(self.client.post(path, json=body), 202)[f"{kind}_job_id"]

    def get(self, job_id: str) -> dict[str, Any]:
        return expect(self.client.get(f"/v2/jobs/{job_id}"), 200)

    def wait(
        self,
        job_id: str,
        statuses: Iterable[str] = ENDED,
        timeout: float = 10.0,
        *,
        recover: bool = False,
    ) -> dict[str, Any]:
        """Poll the job until its status is one of `statuses` (by default: ended); return it.
        With `recover`, each poll first runs a recovery pass, as `pie serve` does every few
        seconds: retries are dispatched, timeouts and lapsed heartbeats end attempts. Fails at
        once when the job ends in a status not asked for, and after `timeout` seconds, with
        the job as it was."""
        wanted = tuple(statuses)
        deadline = time.monotonic() + timeout
        while True:
            if recover:
                self.recover()
            job = self.get(job_id)
            if job["status"] in wanted:
                return job
            ended = job["status"] in ENDED
            if ended or time.monotonic() > deadline:
                state = "ended as" if ended else f"still after {timeout}s is"
                raise AssertionError(
                    f"job {job_id} {state} {job['status']!r} (attempt {job.get('attempt')}, "
                    f"error {job.get('error')}) while waiting for {' or '.join(wanted)}"
                )
            time.sleep(0.02)

    def complete(
        self,
        payload: Mapping[str, Any],
        status: str = "success",
        output: Any = None,
        error: Any = None,
    ) -> Any:
        """POST the outcome to the payload's callback URL with its callback token, as your
        backend would; returns the response (200 when recorded, 409 when the job had ended)."""
        body: dict[str, Any] = {"status": status}
        if output is not None or status == "success":
            body["output"] = {} if output is None else output
        if error is not None:
            body["error"] = error
        return self._callback(payload, "url", body)

    def fail(self, payload: Mapping[str, Any], message: str, *, retryable: bool = False) -> Any:
        """Report a failure; `retryable` asks for another attempt while the policy allows."""
        error: dict[str, Any] = {"type": "Error", "message": message}
        if retryable:
            error["retryable"] = True
        return self.complete(payload, "failure", error=error)

    def heartbeat(
        self, payload: Mapping[str, Any], progress: float | None = None, message: str | None = None
    ) -> Any:
        """POST a heartbeat to the payload's heartbeat URL (200, or 409 once the job ended)."""
        body = {k: v for k, v in (("progress", progress), ("message", message)) if v is not None}
        return self._callback(payload, "heartbeat_url", body)

    def _callback(self, payload: Mapping[str, Any], which: str, body: dict[str, Any]) -> Any:
        callback = payload["callback"]
        return self.client.post(urlsplit(callback[which]).path, json=body, token=callback["token"])

    def cancel(self, job_id: str) -> dict[str, Any]:
        return expect(self.client.post(f"/v2/jobs/{job_id}/cancel"), 200)

    def recover(self) -> int:
        """One pass of the recovery loop `pie serve` runs every few seconds: overdue attempts
        (timeouts, lapsed heartbeats) end, retries due are dispatched, stalled jobs re-run."""
        return self.client.app.extensions["pie"].dispatcher.recover_once()
