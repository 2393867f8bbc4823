"""The `http` handler type against real HTTP servers on loopback: Standard Webhooks
signatures checked by the `standardwebhooks` library, callback and sync modes, failing,
slow and redirecting receivers, secret rotation, and the destination guard at registration
and at dispatch."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pie.outbound import signing
from tests.helpers import Client, activate, assert_envelope, model_body, wait_for, wait_for_job

SECRET_A = signing.generate_secret()
SECRET_B = signing.generate_secret()
LOOPBACK = {"PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"], "PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A]}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def verify(self, secret: str) -> Any:
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1: `answer(received)` returns (status, headers, body)
    for each POST; every request is kept in `received`."""

    answer: Callable[[Received], tuple[int, dict[str, str], bytes]]
    received: list[Received] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?x=1"


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(answer: Callable[[Received], tuple[int, dict[str, str], bytes]]) -> Receiver:
        recv = Receiver(answer)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                item = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                recv.received.append(item)
                status, headers, body = recv.answer(item)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # PIE gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        recv.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        recv.server.daemon_threads = True
        threading.Thread(target=recv.server.serve_forever, daemon=True).start()
        started.append(recv)
        return recv

    yield start
    for recv in started:
        recv.server.shutdown()
        recv.server.server_close()


def ok(received: Received) -> tuple[int, dict[str, str], bytes]:
    return 202, {}, b""


def json_answer(status: int, value: Any) -> Callable[[Received], tuple[int, dict, bytes]]:
    return lambda received: (
        status,
        {"Content-Type": "application/json"},
        json.dumps(value).encode(),
    )


def http_client(make_app: Callable[..., Any], config: dict[str, Any] | None = None) -> Client:
    return Client(make_app({**LOOPBACK, **(config or {})}).test_client())


def create_model(
    client: Client, handler: dict[str, Any], model_id: str = "m1", **extra: Any
) -> None:
    body = model_body(model_id, handlers={"training": handler, "inference": handler}, **extra)
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def start_inference(client: Client, job_input: dict[str, Any], model_id: str = "m1") -> str:
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": job_input})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def run(client: Client, url: str, mode: str, job_input: Any = None, **extra: Any) -> dict:
    create_model(client, {"type": "http", "url": url, "mode": mode}, **extra)
    job_id = start_inference(client, job_input or {"text": "héllo ☃"})
    # A sync job is started while its request runs: wait for its outcome.
    ended = ("success", "failure") if mode == "sync" else ("started", "success", "failure")
    return wait_for_job(client, job_id, ended)


# --- callback mode ---------------------------------------------------------------------


def test_callback_mode_posts_the_signed_payload_and_the_receiver_completes_by_callback(
    make_app, receiver
):
    recv = receiver(ok)
    client = http_client(make_app)
    job = run(client, recv.url, "callback")
    assert job["status"] == "started", job
    (got,) = recv.received
    assert got.path == "/hook?x=1"
    payload = got.verify(SECRET_A)  # raises unless the signature is right
    assert got.headers["webhook-id"] == f"{job['job_id']}.1"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.headers["Content-Type"] == "application/json"
    assert payload["job_id"] == job["job_id"] and payload["input"] == {"text": "héllo ☃"}
    assert payload["attempt"] == 1
    # The receiver plays its part: complete through the callback URL with the job's token.
    callback = urlsplit(payload["callback"]["url"]).path
    heartbeat = urlsplit(payload["callback"]["heartbeat_url"]).path
    token = payload["callback"]["token"]
    r = client.post(heartbeat, json={"progress": 0.5}, token=token)
    assert r.status_code == 200, r.get_json()
    r = client.post(callback, json={"status": "success", "output": {"y": 1}}, token=token)
    assert r.status_code == 200, r.get_json()
    job = client.get(f"/v2/jobs/{job['job_id']}").get_json()
    assert job["status"] == "success" and job["output"] == {"y": 1}


def test_a_tampered_body_or_another_secret_does_not_verify(make_app, receiver):
    recv = receiver(ok)
    run(http_client(make_app), recv.url, "callback")
    (got,) = recv.received
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_B).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(got.body.replace(b"1", b"2"), got.headers)


def test_rotation_sends_a_signature_per_secret(make_app, receiver):
    recv = receiver(ok)
    client = http_client(make_app, {"PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A, SECRET_B]})
    run(client, recv.url, "callback")
    (got,) = recv.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    got.verify(SECRET_B)  # a receiver that has only the new secret
    got.verify(SECRET_A)  # and one that still has the old


def test_without_a_setting_a_secret_is_generated_beside_the_database(
    make_app, receiver, database_url, tmp_path
):
    recv = receiver(ok)
    client = http_client(make_app, {"PIE_OUTBOUND_SIGNING_SECRETS": []})
    run(client, recv.url, "callback")
    path = (
        tmp_path / "pie-outbound-signing-secret"
        if database_url.startswith("sqlite")
        else tmp_path / "instance" / "pie-outbound-signing-secret"
    )
    secret = path.read_text().strip()
    assert secret.startswith("whsec_")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    recv.received[0].verify(secret)


def test_callback_mode_fails_on_a_non_2xx_answer_with_status_and_excerpt(make_app, receiver):
    recv = receiver(lambda r: (500, {}, b"boom " * 100))
    job = run(http_client(make_app), recv.url, "callback")
    assert job["status"] == "failure", job
    assert job["error"]["type"] == "DispatchError"
    message = job["error"]["message"]
    assert "answered 500" in message and "boom boom" in message
    assert "boom " * 41 not in message and len(message) < 500  # a bounded excerpt


# --- sync mode -------------------------------------------------------------------------


def test_sync_mode_records_the_answer_as_the_output(make_app, receiver):
    recv = receiver(json_answer(200, {"score": 0.75, "label": "ok"}))
    job = run(http_client(make_app), recv.url, "sync")
    assert job["status"] == "success", job
    assert job["output"] == {"score": 0.75, "label": "ok"}
    recv.received[0].verify(SECRET_A)


def test_sync_mode_fails_on_a_500_with_status_and_excerpt(make_app, receiver):
    recv = receiver(lambda r: (500, {}, b"x" * 5000))
    job = run(http_client(make_app), recv.url, "sync")
    assert job["status"] == "failure", job
    message = job["error"]["message"]
    assert job["error"]["type"] == "DispatchError"
    assert "answered 500 Internal Server Error" in message
    assert "x" * 200 + "..." in message and "x" * 201 not in message


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"<html>ok</html>", "not JSON"),
        (b"[1, 2]", "JSON that is not an object"),
        (b"", "not JSON"),
    ],
)
def test_sync_mode_fails_on_a_2xx_that_is_not_a_json_object(make_app, receiver, body, expected):
    recv = receiver(lambda r: (200, {"Content-Type": "text/html"}, body))
    job = run(http_client(make_app), recv.url, "sync")
    assert job["status"] == "failure", job
    assert expected in job["error"]["message"]
    assert "answered 200" in job["error"]["message"]


def test_a_slow_receiver_times_out(make_app, receiver):
    def slow(received: Received) -> tuple[int, dict, bytes]:
        time.sleep(3)
        return 200, {}, b"{}"

    recv = receiver(slow)
    client = http_client(make_app, {"PIE_HTTP_SYNC_TIMEOUT_SECONDS": 0.5})
    started = time.monotonic()
    job = run(client, recv.url, "sync")
    assert job["status"] == "failure", job
    assert time.monotonic() - started < 3
    assert "no answer from 127.0.0.1 within 0.5 s" in job["error"]["message"]


def test_a_redirect_is_not_followed(make_app, receiver):
    target = receiver(json_answer(200, {"followed": True}))
    recv = receiver(lambda r: (302, {"Location": target.url}, b""))
    job = run(http_client(make_app), recv.url, "sync")
    assert job["status"] == "failure", job
    assert "answered 302" in job["error"]["message"]
    assert "redirects are not followed" in job["error"]["message"]
    assert target.received == []


def resolving(monkeypatch: Any, answers: dict[str, Callable[[], str]]) -> None:
    """getaddrinfo answers for the host names in `answers`: each call returns the address
    its function gives (or raises what it raises); other names resolve as usual."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            address = answers[host]()
            family, sockaddr = (
                (socket.AF_INET6, (address, port, 0, 0))
                if ":" in address
                else (socket.AF_INET, (address, port))
            )
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def recovered_until_ended(client: Client, job_id: str) -> dict[str, Any]:
    """The job once it ended, the recovery loop (which dispatches retries) run meanwhile."""
    app = client.raw.application

    def ended() -> Any:
        app.extensions["pie"].dispatcher.recover_once()
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job["status"] in ("success", "failure") else None

    return wait_for(ended, timeout=20)


def test_a_failed_attempt_is_retried_by_the_job_policy(make_app, receiver):
    answers = iter([(503, {}, b"busy"), (200, {}, b'{"second": true}')])
    recv = receiver(lambda r: next(answers))
    client = http_client(make_app)
    policy = {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}}
    create_model(client, {"type": "http", "url": recv.url, "mode": "sync"}, job_policy=policy)
    job_id = start_inference(client, {"a": 1})
    job = recovered_until_ended(client, job_id)
    assert job["status"] == "success", job
    assert job["output"] == {"second": True} and job["attempt"] == 2
    assert [r.headers["webhook-id"] for r in recv.received] == [f"{job_id}.1", f"{job_id}.2"]
    assert "answered 503" in job["attempts"][0]["error"]["message"]


# --- the destination guard -------------------------------------------------------------


def both(handler: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"training": handler, "inference": handler}


@pytest.mark.parametrize(
    "url, expected",
    [
        ("ftp://example.com/x", "scheme must be http or https"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com:99999/", "port is not valid"),
        ("http:///nohost", "names no host"),
        ("http://[::1/", "cannot be read"),
        ("http://example.com/ünïcode", "printable ASCII"),
    ],
)
def test_registration_refuses_malformed_urls_with_a_400(make_app, url, expected):
    client = Client(make_app().test_client())
    r = client.post("/v2/models", json=model_body(handlers=both({"type": "http", "url": url})))
    # Malformed input, like an unknown in-process implementation: a 400.
    message = assert_envelope(r, 400)["message"]
    assert message.startswith("json.handlers.") and ".url: " in message
    assert expected in message, message


REFUSED_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://10.0.0.1/", "private address"),
    ("http://192.168.1.20:8080/", "private address"),
    ("http://127.0.0.1:9/", "loopback address"),
    ("http://[::1]/", "loopback address"),
    ("http://[::ffff:10.0.0.1]/", "private address"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://240.0.0.1/", "private address"),
    ("http://2130706433/", "loopback address"),
    ("http://localhost/", "names this machine or a metadata service"),
    ("http://metadata.google.internal/", "names this machine or a metadata service"),
]


@pytest.mark.parametrize("url, expected", REFUSED_URLS)
def test_registration_refuses_urls_that_can_never_be_sent_to_with_a_422(make_app, url, expected):
    client = Client(make_app().test_client())
    ok_handler = {"type": "http", "url": "https://models.example.com/jobs"}
    body = model_body(handlers={"training": ok_handler, "inference": {"type": "http", "url": url}})
    r = client.post("/v2/models", json=body)
    # Well-formed, semantically refused: a 422 naming the field.
    message = assert_envelope(r, 422)["message"]
    assert message.startswith("handlers.inference.url: "), message
    assert expected in message and "PIE_OUTBOUND_ALLOWED_HOSTS" in message, message
    assert "training" not in message
    assert client.get("/v2/models/m1").status_code == 404  # nothing was stored


def test_a_422_names_every_refused_field_in_one_message(make_app):
    client = Client(make_app().test_client())
    handlers = {
        "training": {"type": "http", "url": "http://10.0.0.1/"},
        "inference": {"type": "http", "url": "http://localhost/"},
    }
    r = client.post("/v2/models", json=model_body(handlers=handlers))
    assert assert_envelope(r, 422)["message"] == (
        "handlers.training.url: 10.0.0.1 is a private address; PIE does not send requests "
        "there unless PIE_OUTBOUND_ALLOWED_HOSTS allows it.; "
        "handlers.inference.url: localhost names this machine or a metadata service; PIE does "
        "not send requests there unless PIE_OUTBOUND_ALLOWED_HOSTS allows it."
    )


def test_replacing_a_model_with_a_refused_url_is_a_422_and_changes_nothing(make_app):
    client = Client(make_app().test_client())
    public = {"type": "http", "url": "https://models.example.com/jobs"}
    assert client.post("/v2/models", json=model_body(handlers=both(public))).status_code == 201
    for status in ("pending", "active"):  # replaced in place, then as a new version
        if status == "active":
            activate(client, "m1")
        before = client.get("/v2/models/m1").get_json()
        body = model_body(
            None, name="renamed", handlers=both({"type": "http", "url": "http://[::1]/"})
        )
        r = client.put("/v2/models/m1", json=body)
        message = assert_envelope(r, 422)["message"]
        assert "handlers.training.url: ::1 is a loopback address" in message, message
        assert client.get("/v2/models/m1").get_json() == before
        versions = client.get("/v2/models/m1/versions").get_json()
        assert [v["version"] for v in versions] == ["1"], versions
        assert versions[0]["handlers"] == both({**public, "mode": "callback"})


def test_registration_accepts_what_the_setting_allows_but_never_metadata_by_a_range(make_app):
    client = Client(
        make_app(
            {"PIE_OUTBOUND_ALLOWED_HOSTS": ["10.0.0.0/8", "169.254.0.0/16", "localhost"]}
        ).test_client()
    )
    for model_id, url, status in [
        ("a", "http://10.0.0.1/", 201),
        ("b", "http://localhost:8080/", 201),
        ("c", "https://models.example.com/jobs", 201),
        ("d", "http://169.254.169.254/", 422),
        ("e", "http://192.168.0.1/", 422),
    ]:
        handler = {"type": "http", "url": url, "mode": "sync"}
        body = model_body(model_id, handlers={"training": handler, "inference": handler})
        assert client.post("/v2/models", json=body).status_code == status, url


def test_registration_refuses_an_unknown_mode(make_app):
    client = Client(make_app().test_client())
    handler = {"type": "http", "url": "https://example.com/", "mode": "async"}
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": handler, "inference": handler})
    )
    assert "json.handlers.training.mode" in assert_envelope(r, 400)["message"]


def test_loopback_is_refused_at_dispatch_when_not_allowed(make_app, receiver):
    recv = receiver(ok)
    allowing = Client(make_app(LOOPBACK).test_client())
    policy = {"inference": {"max_attempts": 3, "retry_backoff_seconds": 0}}
    create_model(allowing, {"type": "http", "url": recv.url}, job_policy=policy)
    # The same database, served without the setting (an operator removed it).
    strict = Client(make_app({"PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A]}).test_client())
    job_id = start_inference(strict, {"a": 1})
    job = wait_for_job(strict, job_id)
    # Refused: the job fails at once, attempts left or not (no retry would change it).
    assert job["status"] == "failure", job
    assert job["error"]["type"] == "DestinationRefused"
    assert job["error"]["message"].startswith("dispatch to 'http' refused: 127.0.0.1 is a loopback")
    assert "PIE_OUTBOUND_ALLOWED_HOSTS" in job["error"]["message"]
    assert job["attempt"] == 1 and not job["attempts"], job
    strict.raw.application.extensions["pie"].dispatcher.recover_once()
    assert strict.get(f"/v2/jobs/{job_id}").get_json() == job
    assert recv.received == []


def this_machine_name() -> str:
    name = socket.gethostname()
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if not found or not all(a.startswith("127.") or a == "::1" for a in found):
        pytest.skip(f"{name} does not resolve to loopback here ({found})")
    return name


def test_a_name_that_resolves_to_loopback_is_refused_at_dispatch(make_app, receiver):
    name = this_machine_name()  # a real resolution, through /etc/hosts
    recv = receiver(ok)
    client = Client(make_app({"PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A]}).test_client())
    url = recv.url.replace("127.0.0.1", name)
    job = run(client, url, "callback")  # registration does not resolve it: accepted
    assert job["status"] == "failure", job
    assert f"{name} resolves to 127." in job["error"]["message"]
    assert "loopback address" in job["error"]["message"]
    assert recv.received == []


def test_an_allowed_name_is_sent_to(make_app, receiver):
    recv = receiver(json_answer(200, {"ok": True}))
    client = Client(
        make_app(
            {
                "PIE_OUTBOUND_ALLOWED_HOSTS": ["localhost"],
                "PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A],
            }
        ).test_client()
    )
    job = run(client, recv.url.replace("127.0.0.1", "localhost"), "sync")
    assert job["status"] == "success", job
    assert recv.received[0].headers["Host"].startswith("localhost:")


@pytest.mark.parametrize(
    "address, expected",
    [
        ("169.254.169.254", "cloud metadata address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.9", "private address"),
        ("fe80::1", "link-local address"),
    ],
)
def test_a_name_resolving_to_an_internal_address_is_refused(
    make_app, receiver, monkeypatch, address, expected
):
    resolving(monkeypatch, {"internal.example.com": lambda: address})
    client = http_client(make_app)  # 127.0.0.1 allowed: irrelevant to these addresses
    policy = {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}}
    job = run(client, "http://internal.example.com/hook", "sync", job_policy=policy)
    assert job["status"] == "failure", job
    assert job["error"]["type"] == "DestinationRefused" and job["attempt"] == 1, job
    assert (
        f"internal.example.com resolves to {address}, which is a {expected}"
        in job["error"]["message"]
    )


def test_a_dns_failure_is_retried_by_the_job_policy(make_app, receiver, monkeypatch):
    recv = receiver(json_answer(200, {"resolved": True}))
    lookups = iter(
        [socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "127.0.0.1"]
    )

    def flaky() -> str:
        answer = next(lookups)
        if isinstance(answer, Exception):
            raise answer
        return answer

    resolving(monkeypatch, {"flaky.example.com": flaky})
    client = http_client(make_app)  # 127.0.0.1 allowed
    policy = {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}}
    url = recv.url.replace("127.0.0.1", "flaky.example.com")
    create_model(client, {"type": "http", "url": url, "mode": "sync"}, job_policy=policy)
    job = recovered_until_ended(client, start_inference(client, {"a": 1}))
    assert job["status"] == "success" and job["attempt"] == 2, job
    assert job["output"] == {"resolved": True}
    first = job["attempts"][0]["error"]
    assert first["type"] == "DispatchError", first
    assert "cannot resolve flaky.example.com: " in first["message"]
    assert "Temporary failure in name resolution" in first["message"]
    assert len(recv.received) == 1 and recv.received[0].headers["Host"].startswith("flaky.")


def test_a_dns_lookup_that_hangs_fails_the_attempt_after_the_dns_timeout(
    make_app, receiver, monkeypatch
):
    recv = receiver(ok)
    release = threading.Event()

    def hangs() -> str:
        release.wait(30)
        return "127.0.0.1"

    resolving(monkeypatch, {"slow.example.com": hangs})
    client = http_client(make_app, {"PIE_OUTBOUND_DNS_TIMEOUT_SECONDS": 0.5})
    try:
        started = time.monotonic()
        job = run(client, recv.url.replace("127.0.0.1", "slow.example.com"), "callback")
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert job["status"] == "failure", job
    assert job["error"] == {
        "type": "DispatchError",
        "message": "dispatch to 'http' failed: LookupFailed: DNS lookup of slow.example.com "
        "timed out after 0.5 s",
    }
    assert elapsed < 8, elapsed  # not the 30 s the lookup hangs
    assert recv.received == []


def test_sync_mode_fails_on_an_answer_over_a_mebibyte(make_app, receiver):
    big = json.dumps({"x": "a" * (1024 * 1024)}).encode()
    recv = receiver(lambda r: (200, {"Content-Type": "application/json"}, big))
    job = run(http_client(make_app), recv.url, "sync")
    assert job["status"] == "failure", job
    assert "larger than 1048576 bytes" in job["error"]["message"]


def test_a_job_cancelled_during_its_sync_request_keeps_its_cancellation(make_app, receiver):
    release = threading.Event()

    def held(received: Received) -> tuple[int, dict, bytes]:
        release.wait(10)
        return 200, {}, b'{"late": true}'

    recv = receiver(held)
    client = http_client(make_app)
    create_model(client, {"type": "http", "url": recv.url, "mode": "sync"})
    job_id = start_inference(client, {"a": 1})
    wait_for(lambda: recv.received)
    assert wait_for_job(client, job_id, ("started",))["external_id"] == f"{job_id}.1"
    r = client.post(f"/v2/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.get_json()
    release.set()
    time.sleep(0.5)  # the late answer arrives and is not recorded
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "Cancelled", job
    assert job["output"] is None


# --- https: the pinned connection still verifies the certificate against the host name ---


def make_certificates(folder: Any) -> tuple[str, str, str]:
    """A CA and a server certificate for DNS:localhost signed by it: (ca, cert, key) files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PIE test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = [str(folder / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    pem = serialization.Encoding.PEM
    with open(paths[0], "wb") as fh:
        fh.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as fh:
        fh.write(cert.public_bytes(pem))
    with open(paths[2], "wb") as fh:
        fh.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return paths[0], paths[1], paths[2]


@pytest.fixture
def tls_receiver(receiver, tmp_path, monkeypatch):
    """A receiver speaking TLS with a certificate for `localhost`; PIE trusts its CA only
    when `trust()` is called (the system store does not know it)."""
    import ssl

    ca, cert, key = make_certificates(tmp_path)
    recv = receiver(json_answer(200, {"tls": True}))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    recv.server.socket = server_context.wrap_socket(recv.server.socket, server_side=True)

    def trust() -> None:
        original = ssl.create_default_context

        def with_test_ca(*args: Any, **kwargs: Any) -> ssl.SSLContext:
            context = original(*args, **kwargs)
            context.load_verify_locations(ca)
            return context

        monkeypatch.setattr(ssl, "create_default_context", with_test_ca)

    recv.trust = trust  # type: ignore[attr-defined]
    return recv


def https_client(make_app: Callable[..., Any]) -> Client:
    config = {
        "PIE_OUTBOUND_ALLOWED_HOSTS": ["localhost", "127.0.0.1"],
        "PIE_OUTBOUND_SIGNING_SECRETS": [SECRET_A],
    }
    return Client(make_app(config).test_client())


def test_https_to_the_certificate_s_name_succeeds(make_app, tls_receiver):
    tls_receiver.trust()
    port = tls_receiver.server.server_address[1]
    job = run(https_client(make_app), f"https://localhost:{port}/hook", "sync")
    assert job["status"] == "success", job
    assert job["output"] == {"tls": True}
    tls_receiver.received[0].verify(SECRET_A)


def test_https_checks_the_certificate_against_the_url_s_host(make_app, tls_receiver):
    tls_receiver.trust()
    port = tls_receiver.server.server_address[1]
    # The same server by address: its certificate names localhost, not 127.0.0.1.
    job = run(https_client(make_app), f"https://127.0.0.1:{port}/hook", "sync")
    assert job["status"] == "failure", job
    assert (
        "CERTIFICATE_VERIFY_FAILED" in job["error"]["message"] or "match" in job["error"]["message"]
    ), job
    assert tls_receiver.received == []


def test_https_refuses_an_unknown_certificate_authority(make_app, tls_receiver):
    port = tls_receiver.server.server_address[1]
    job = run(https_client(make_app), f"https://localhost:{port}/hook", "sync")
    assert job["status"] == "failure", job
    assert "CERTIFICATE_VERIFY_FAILED" in job["error"]["message"], job
    assert tls_receiver.received == []


# --- a real `pie serve`: the receiver calls back over HTTP --------------------------------


def test_callback_mode_end_to_end_with_pie_serve(receiver, database_url, tmp_path):
    import requests

    from tests.helpers import SECRET
    from tests.server import ServerProcess

    completions: list[int] = []

    def answer_then_call_back(received: Received) -> tuple[int, dict, bytes]:
        payload = received.verify(SECRET_A)

        def call_back() -> None:
            time.sleep(0.2)  # after the 202: PIE has marked the job started meanwhile
            r = requests.post(
                payload["callback"]["url"],
                json={"status": "success", "output": {"echo": payload["input"]}},
                headers={"Authorization": f"Bearer {payload['callback']['token']}"},
                timeout=10,
            )
            completions.append(r.status_code)

        threading.Thread(target=call_back, daemon=True).start()
        return 202, {}, b""

    recv = receiver(answer_then_call_back)
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "PIE_OUTBOUND_SIGNING_SECRETS": SECRET_A,
    }
    server = ServerProcess(env, log_path=str(tmp_path / "server.log"))
    server.env["PIE_PUBLIC_URL"] = server.url
    try:
        server.start()
        handler = {"type": "http", "url": recv.url}
        body = model_body("m1", handlers={"training": handler, "inference": handler})
        assert server.request("POST", "/v2/models", json=body).status_code == 201
        r = server.request("POST", "/v2/models/m1/versions/1/new_status", json={"status": "active"})
        assert r.status_code == 200, r.text
        r = server.request("POST", "/v2/models/m1/versions/1/inference", json={"input": {"q": 1}})
        assert r.status_code == 202, r.text
        job_id = r.json()["inference_job_id"]

        def done() -> Any:
            job = server.request("GET", f"/v2/jobs/{job_id}").json()
            return job if job["status"] in ("success", "failure") else None

        job = wait_for(done, timeout=20)
        assert job["status"] == "success", job
        assert job["output"] == {"echo": {"q": 1}}
        assert job["external_id"] == f"{job_id}.1"
        assert completions == [200]
    finally:
        server.stop()
