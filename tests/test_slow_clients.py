"""Slow and stalled clients against a real `pie serve` (one worker, two threads,
PIE_CLIENT_TIMEOUT_SECONDS=2), through raw sockets: more slowloris connections than the
server has threads (headers one byte at a time; a body that trickles; a client that never
reads a large response) neither hold its threads nor keep others waiting for longer than the
deadline; a body that does not arrive in time is a 408 in the envelope; a client that is
merely slow but within the deadline is served."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import ADMIN, SECRET, model_body
from tests.server import ServerProcess

TIMEOUT = 2.0
THREADS = 2
AUTH = f"Authorization: Bearer {ADMIN}\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("slow")
    env = {
        "PIE_DATABASE_URL": f"sqlite:///{folder}/pie.sqlite",
        "PIE_INSTANCE_PATH": str(folder / "instance"),
        "PIE_JWT_SECRET": SECRET,
        "PIE_EMBEDDED_WORKER": "0",
        "PIE_LOG_FORMAT": "json",
        "PIE_CLIENT_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    process = ServerProcess(env, workers=1, log_path=str(folder / "server.log"), threads=THREADS)
    process.start()
    yield process
    process.stop()


def connect(server: ServerProcess, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    return sock


class Trickler(threading.Thread):
    """Sends `head` at once, then one byte of `tail` every `pause` seconds until the server
    closes the connection (or `tail` runs out); `closed_after` says when that happened."""

    def __init__(self, server: ServerProcess, head: bytes, tail: bytes, pause: float = 0.25):
        super().__init__(daemon=True)
        self.sock = connect(server)
        self.head, self.tail, self.pause = head, tail, pause
        self.closed_after: float | None = None
        self.answer = b""

    def run(self) -> None:
        start = time.monotonic()
        try:
            self.sock.sendall(self.head)
            for byte in self.tail:
                time.sleep(self.pause)
                self.sock.sendall(bytes([byte]))
        except OSError:  # the server closed it
            pass
        self.sock.settimeout(5)
        try:
            while chunk := self.sock.recv(65536):
                self.answer += chunk
        except OSError:
            pass
        self.closed_after = time.monotonic() - start
        self.sock.close()


def health_within(server: ServerProcess, seconds: float) -> float:
    """How long a normal client waited for /v2/health (fails past `seconds`)."""
    start = time.monotonic()
    r = requests.get(f"{server.url}/v2/health", timeout=seconds)
    assert r.status_code == 200
    return time.monotonic() - start


def test_slow_headers_do_not_hold_the_servers_threads(server):
    """THREADS * 2 connections each send a request line and then a header byte every
    0.25 s, for ever: the server closes each within the deadline, and a normal request is
    answered meanwhile (before the fix: never, every thread read one of them)."""
    head = b"GET /v2/health HTTP/1.1\r\nHost: x\r\n"
    slow = [Trickler(server, head, b"X-Slow: " + b"a" * 400) for _ in range(THREADS * 2)]
    for trickler in slow:
        trickler.start()
    time.sleep(0.5)  # each has been handed to a thread
    waited = health_within(server, TIMEOUT * 2 + 3)
    for trickler in slow:
        trickler.join(TIMEOUT * 3 + 10)
        assert trickler.closed_after is not None, "the server still reads a slow client"
        assert trickler.closed_after < TIMEOUT * 2 + 2, trickler.closed_after
    assert waited < TIMEOUT * 2 + 2


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_changes_nothing(server):
    body = json.dumps(model_body("slow-model")).encode()
    head = (
        f"POST /v2/models HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body[:10]
    trickler = Trickler(server, head, body[10:], pause=0.3)
    trickler.start()
    trickler.join(TIMEOUT * 3 + 10)
    assert trickler.closed_after is not None and trickler.closed_after < TIMEOUT + 3
    status, _, rest = trickler.answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408"), trickler.answer[:300]
    answer = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert answer["success"] is False and "PIE_CLIENT_TIMEOUT_SECONDS" in answer["message"]
    assert server.request("GET", "/v2/models/slow-model").status_code == 404


def test_a_client_that_never_reads_its_response_is_cut_off(server):
    """THREADS * 2 clients ask for the largest page (the docs' script, about 1.5 MB) with a
    tiny receive window and never read: the server gives up on each within the deadline (and
    its size allowance) and answers others meanwhile."""
    size = len(requests.get(f"{server.url}/docs/assets/swagger-ui-bundle.js", timeout=30).content)
    assert size > 1_000_000
    stalled = []
    for _ in range(THREADS * 2):
        sock = connect(server, receive_buffer=4096)
        sock.sendall(b"GET /docs/assets/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(sock)
    time.sleep(1)
    allowance = TIMEOUT + 65536 / 100_000 + 2  # one write of at most a 64 kB block
    waited = health_within(server, TIMEOUT * 2 + allowance * 2)
    assert waited < allowance * 2
    for sock in stalled:
        sock.close()


def test_a_slow_client_within_the_deadline_is_served(server):
    """The control: a body sent in three parts over about a second is read and applied."""
    body = json.dumps(model_body("patient-model")).encode()
    sock = connect(server)
    sock.sendall(
        (
            f"POST /v2/models HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    third = len(body) // 3
    for part in (body[:third], body[third : 2 * third], body[2 * third :]):
        time.sleep(TIMEOUT / 4)
        sock.sendall(part)
    sock.settimeout(10)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert server.request("GET", "/v2/models/patient-model").status_code == 200


def test_a_keepalive_connection_gets_a_fresh_deadline_for_each_request(server):
    """Three requests on one connection, over longer than one deadline, are all answered."""
    session = requests.Session()
    for _ in range(3):
        assert session.get(f"{server.url}/v2/health", timeout=10).status_code == 200
        time.sleep(TIMEOUT * 0.6)


def test_timeouts_are_one_log_line_not_a_traceback(server):
    log = open(server.log_path, encoding="utf-8").read()  # noqa: SIM115
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    slow = [line for line in lines if "did not send its request" in line["message"]]
    assert slow, "no line says a client was too slow"
    assert not [line for line in lines if "exception" in line], "a traceback was logged"
