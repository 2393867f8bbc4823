"""pie.celery's callback POST against a real HTTP server: connections kept per thread and
server, a kept connection the server closed meanwhile replaced once, error statuses as
urllib's HTTPError, network trouble as OSError."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pie import celery as pie_celery


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[dict] = []
        self.status = 200
        self.close_after_answer = False
        self.delay = 0.0
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2/jobs/j/complete"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        time.sleep(self.server.delay)
        answer = json.dumps({"status": self.server.status}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if self.server.close_after_answer:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_one_connection_for_many_posts(receiver):
    for n in range(5):
        assert pie_celery.post(receiver.url, "t", {"n": n}, 5) == {"status": 200}
    assert receiver.connections == 1
    assert [body["n"] for body in receiver.bodies] == list(range(5))


def test_a_connection_the_server_closed_is_replaced(receiver):
    receiver.close_after_answer = True
    for n in range(3):
        assert pie_celery.post(receiver.url, "t", {"n": n}, 5) == {"status": 200}
    assert receiver.connections == 3
    assert len(receiver.bodies) == 3  # each sent once


def test_an_error_status_is_an_http_error(receiver):
    receiver.status = 409
    with pytest.raises(urllib.error.HTTPError) as raised:
        pie_celery.post(receiver.url, "t", {}, 5)
    assert raised.value.code == 409
    assert json.loads(raised.value.read()) == {"status": 409}


def test_a_server_that_is_not_there_is_an_os_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(OSError):
        pie_celery.post(f"http://127.0.0.1:{port}/v2/jobs/j/complete", "t", {}, 5)


def test_a_redirect_is_an_http_error_not_followed(receiver):
    receiver.status = 307
    with pytest.raises(urllib.error.HTTPError) as raised:
        pie_celery.post(receiver.url, "t", {}, 5)
    assert raised.value.code == 307 and len(receiver.bodies) == 1


def test_a_timeout_on_a_kept_connection_is_not_sent_again(receiver):
    pie_celery.post(receiver.url, "t", {"n": 0}, 5)  # the connection is kept
    receiver.delay = 1.0
    with pytest.raises(TimeoutError):
        pie_celery.post(receiver.url, "t", {"n": 1}, 0.3)
    assert [body["n"] for body in receiver.bodies] == [0, 1]  # sent once
