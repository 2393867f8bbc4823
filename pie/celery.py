"""Worker-side helper for the `celery` handler type: `pie_task` turns a plain function into a
Celery task that takes PIE's dispatch payload, runs the function, heartbeats while it runs and
POSTs the outcome to the job's callback URL.

    from celery import Celery
    from pie.celery import pie_task, Retryable

    app = Celery("models", broker="redis://127.0.0.1:6379/0")

    @pie_task(app, name="models.predict", heartbeat_seconds=30)
    def predict(features, job):          # or predict(features) without the context
        job.heartbeat(0.5, "half way")   # False once PIE has ended the job
        return {"score": 0.9}

This module uses only the standard library (urllib for HTTP) and imports nothing of PIE's
server (no Flask, no peewee, not even celery itself: `app` is the worker's own Celery app)."""

from __future__ import annotations

import http.client
import inspect
import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pie.celery")

HTTP_TIMEOUT = 10.0  # seconds for one callback or heartbeat request
COMPLETION_ATTEMPTS = 4  # a completion is sent again on connection errors and 5xx answers
MAX_MESSAGE = 1000  # the heartbeat route's limit for `message`


class Retryable(Exception):
    """Raise it (or any exception with `retryable = True`) to fail the attempt as retryable:
    PIE tries the job again while its policy has attempts left."""

    retryable = True


class JobContext:
    """What a task function with a second parameter gets: the job's id and attempt, the
    payload, `cancelled` (set once a heartbeat answered 409: PIE ended the job) and
    `heartbeat(progress, message)`, which sends one now and returns False once it has ended."""

    def __init__(self, payload: dict[str, Any], timeout: float = HTTP_TIMEOUT) -> None:
        self.payload = payload
        self.job_id: str = payload["job_id"]
        self.attempt: int = payload.get("attempt", 1)
        self.cancelled = threading.Event()
        self.progress: float | None = None
        self.message: str | None = None
        self.timeout = timeout
        callback = payload.get("callback") or {}
        self._heartbeat_url: str | None = callback.get("heartbeat_url")
        self._token: str = callback.get("token", "")

    def heartbeat(self, progress: float | None = None, message: str | None = None) -> bool:
        """Report progress (0–1) and a message; False once PIE has ended the job (409)."""
        if progress is not None:
            if not 0 <= progress <= 1:
                raise ValueError(f"progress must be from 0 to 1, not {progress!r}")
            self.progress = float(progress)
        if message is not None:
            if len(message) > MAX_MESSAGE:
                raise ValueError(f"message is longer than {MAX_MESSAGE} characters")
            self.message = message
        return self.beat()

    def beat(self) -> bool:
        """Send one heartbeat with the latest progress; network trouble is logged, not fatal."""
        if self.cancelled.is_set():
            return False
        if not self._heartbeat_url:
            return True
        body: dict[str, Any] = {}
        if self.progress is not None:
            body["progress"] = self.progress
        if self.message is not None:
            body["message"] = self.message
        try:
            post(self._heartbeat_url, self._token, body, self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # cancelled, timed out, completed, or a later attempt runs
                self.cancelled.set()
                return False
            log.warning("job %s: heartbeat answered %s", self.job_id, exc.code)
        except OSError as exc:
            log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
        return True


def post(url: str, token: str, body: dict[str, Any], timeout: float) -> Any:
    """POST `body` as JSON and return the parsed answer; an error status raises
    urllib.error.HTTPError, a network problem OSError. Over a connection kept per thread and
    server (a task's heartbeats and completion, and the next task's, reuse it), or through
    urllib where the environment configures a proxy for the URL."""
    data = json.dumps(body).encode("utf-8")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or _proxied(url):
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    key = (os.getpid(), parts.scheme, parts.netloc, timeout)
    connections = _connections()
    for fresh in (key not in connections, True):
        connection = connections.pop(key, None) or _connect(parts, timeout)
        try:
            connection.request("POST", target, data, headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if fresh or not isinstance(exc, STALE):
                raise exc if isinstance(exc, OSError) else urllib.error.URLError(exc) from exc
            continue  # a kept connection the server had closed meanwhile: once on a new one
        if not response.will_close:
            connections[key] = connection
        else:
            connection.close()
        if not 200 <= response.status < 300:  # redirects too: a callback is not moved
            raise urllib.error.HTTPError(
                url, response.status, response.reason, response.headers, io.BytesIO(answer)
            )
        return json.loads(answer)
    raise AssertionError("unreachable")


# What a kept connection that the server closed while it idled fails with (and only that
# is sent again on a new one: a timeout is not, it may have been received).
STALE = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
_local = threading.local()
_PROXIES: dict[str, str] | None = None


def _connections() -> dict[tuple[Any, ...], http.client.HTTPConnection]:
    if not hasattr(_local, "connections"):
        _local.connections = {}
    return _local.connections


def _connect(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.netloc, timeout=timeout)
    return http.client.HTTPConnection(parts.netloc, timeout=timeout)


def _proxied(url: str) -> bool:
    """Whether the environment (http_proxy and the like, read once) sends `url` through a
    proxy, as urllib would."""
    global _PROXIES
    if _PROXIES is None:
        _PROXIES = urllib.request.getproxies()
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _PROXIES:
        return False
    host = urllib.parse.urlsplit(url).hostname or ""
    return not urllib.request.proxy_bypass(host)


def takes_context(fn: Callable[..., Any]) -> bool:
    """Whether `fn` wants the JobContext: two positional parameters without a default, or
    *args (as for in-process implementations)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    required = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 2


def failure(exc: BaseException) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:10000]}
    if getattr(exc, "retryable", False) is True:
        error["retryable"] = True
    return {"status": "failure", "error": error}


def complete(job: JobContext, body: dict[str, Any]) -> dict[str, Any] | None:
    """POST the outcome to callback.url; again on connection errors and 5xx (bounded).
    A 409 (the job ended meanwhile, or a later attempt runs) is logged and dropped."""
    url = job.payload["callback"]["url"]
    token = job.payload["callback"]["token"]
    for attempt in range(COMPLETION_ATTEMPTS):
        try:
            return post(url, token, body, job.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                log.info("job %s: completion refused (409): the job had ended", job.job_id)
                return None
            if exc.code < 500 or attempt == COMPLETION_ATTEMPTS - 1:
                raise
        except OSError:
            if attempt == COMPLETION_ATTEMPTS - 1:
                raise
        time.sleep(0.5 * 2**attempt)
    return None


def run_job(
    fn: Callable[..., Any],
    payload: dict[str, Any],
    heartbeat_seconds: float | None,
    with_context: bool,
) -> dict[str, Any] | None:
    """Run `fn` on the payload's input with heartbeats; report its outcome unless PIE ended
    the job meanwhile (a heartbeat answered 409). Returns the completion's answer."""
    job = JobContext(payload)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat_seconds):
            if not job.beat():
                return

    if heartbeat_seconds:
        threading.Thread(target=beat, name=f"pie-heartbeat-{job.job_id}", daemon=True).start()
    try:
        args = (payload.get("input"), job) if with_context else (payload.get("input"),)
        try:
            output = fn(*args)
        except Exception as exc:
            body = failure(exc)
        else:
            body = {"status": "success", "output": output}
    finally:
        done.set()
    if job.cancelled.is_set():
        log.info("job %s: ended by PIE while it ran; no completion sent", job.job_id)
        return None
    return complete(job, body)


def pie_task(
    app: Any,
    name: str | None = None,
    heartbeat_seconds: float | None = 30.0,
    **task_options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: `f(input) -> dict` or `f(input, job)` becomes a Celery task of `app` named
    `name` (default `<module>.<function>`) that takes the payload. `heartbeat_seconds` (None:
    no automatic heartbeats) must be well under the model's heartbeat_timeout_seconds.
    Other keyword arguments go to `app.task` (results are ignored unless you say otherwise)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        with_context = takes_context(fn)

        def run(payload: dict[str, Any]) -> dict[str, Any] | None:
            return run_job(fn, payload, heartbeat_seconds, with_context)

        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__module__ = fn.__module__
        run.__doc__ = fn.__doc__
        options = {"ignore_result": True, **task_options}
        return app.task(name=name or f"{fn.__module__}.{fn.__name__}", **options)(run)

    return decorate
