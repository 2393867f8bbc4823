"""Every error class from a real `pie serve` (status, the envelope's message, the request id
the server echoed), and the retry rules: GET is retried on 503 and connection errors with
backoff, POST never."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pie_client import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    JobTimeout,
    NotFoundError,
    PermissionDeniedError,
    PieConnectionError,
    ServerError,
    UnprocessableError,
)

from tests.client.conftest import ECHO, SLOW, active_model, unique
from tests.helpers import scoped
from tests.server import ServerProcess, free_port


def raised(kind: type[ApiError], call: Any) -> ApiError:
    with pytest.raises(kind) as info:
        call()
    error = info.value
    assert type(error) is kind
    assert error.message and error.message in str(error)
    assert error.request_id and len(error.request_id) == 32  # the id the client sent, echoed
    return error


def test_each_status_is_its_own_exception(api: Client, server: ServerProcess) -> None:
    model_id = active_model(api)
    handlers = {"training": ECHO, "inference": ECHO}
    bad = raised(
        BadRequestError,
        lambda: api.models.create(
            name="x", description="", handlers={"training": ECHO, "inference": {"type": "nope"}}
        ),
    )
    assert bad.status == 400 and "handlers.inference" in bad.message
    big = raised(BadRequestError, lambda: api.jobs.infer(model_id, "1", {"x": "y" * 1_100_000}))
    assert big.status == 413
    anonymous = Client(server.url, "not-a-token")
    assert raised(AuthenticationError, anonymous.models.list().first).status == 401
    reader = Client(server.url, scoped("read_models"))
    denied = raised(
        PermissionDeniedError,
        lambda: reader.models.create(id=unique("m"), name="x", description="", handlers=handlers),
    )
    assert denied.status == 403
    missing = raised(NotFoundError, lambda: api.models.get("absent"))
    assert missing.status == 404 and "absent" in missing.message
    assert (
        raised(
            ConflictError,
            lambda: api.models.create(id=model_id, name="x", description="", handlers=handlers),
        ).status
        == 409
    )
    illegal = raised(UnprocessableError, lambda: api.versions.set_status(model_id, "1", "pending"))
    assert illegal.status == 422 and illegal.body["success"] is False


def test_wait_gives_up_with_job_timeout(api: Client) -> None:
    model_id = active_model(api, SLOW)
    job_id = api.jobs.infer(model_id, "1", {"seconds": 5}).inference_job_id
    started = time.monotonic()
    with pytest.raises(JobTimeout) as info:
        api.jobs.wait(job_id, timeout=0.5)
    assert info.value.job_id == job_id and time.monotonic() - started < 3
    api.jobs.cancel(job_id)


class Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then 200 with a health body."""

    failures = 2
    seen: list[str] = []

    def answer(self) -> None:
        Flaky.seen.append(self.command)
        failing = len(Flaky.seen) <= Flaky.failures
        body = (
            b'{"success": false, "message": "busy"}'
            if failing
            else (b'{"status": "ok", "database": "ok", "version": "x"}')
        )
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    Flaky.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_is_retried_on_503(flaky: str) -> None:
    client = Client(flaky, "t", backoff=0.01)
    assert client.health().status == "ok"
    assert Flaky.seen == ["GET", "GET", "GET"]


def test_get_gives_up_after_its_retries(flaky: str) -> None:
    Flaky.failures = 10
    try:
        with pytest.raises(ServerError) as info:
            Client(flaky, "t", retries=2, backoff=0.01).health()
    finally:
        Flaky.failures = 2
    assert info.value.status == 503 and info.value.message == "busy"
    assert len(Flaky.seen) == 3


def test_post_is_never_retried(flaky: str) -> None:
    with pytest.raises(ServerError):
        Client(flaky, "t", backoff=0.01).jobs.cancel("j")
    assert Flaky.seen == ["POST"]


def test_connection_errors_retry_safe_methods_with_backoff() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = Client(url, "t", retries=3, backoff=0.1)
    started = time.monotonic()
    with pytest.raises(PieConnectionError):
        client.models.get("m")
    # three pauses of half to all of 0.1, 0.2 and 0.4 s
    assert 0.35 <= time.monotonic() - started < 3
    started = time.monotonic()
    with pytest.raises(PieConnectionError):
        client.jobs.cancel("j")
    assert time.monotonic() - started < 0.3  # a POST is not tried again
