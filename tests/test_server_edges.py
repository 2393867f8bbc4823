"""A real `pie serve`, spoken to through raw sockets: every answer it sends to a request it
cannot parse — gunicorn's own 400, 414, 417, 431 and 501 pages, a body that cannot be read —
is the JSON envelope; and its log stream stays JSON lines when a library warns."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.helpers import ADMIN, SECRET, model_body, strict_json
from tests.server import ServerProcess

AUTH = f"Authorization: Bearer {ADMIN}\r\n".encode()
JSON = b"Content-Type: application/json\r\n"


class SmallKeyJwks:
    """A JWKS endpoint on loopback whose RSA key is 1024 bits: PyJWT accepts its tokens but
    warns (InsecureKeyLengthWarning) on every new verification site."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        document = json.dumps({"keys": [{**jwk, "kid": "small", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self) -> str:
        now = int(time.time())
        claims = {"sub": "t", "iat": now, "exp": now + 600, "scope": "streamline/admin"}
        with warnings.catch_warnings():  # the server's warning is the one under test
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "small"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def jwks() -> Iterator[SmallKeyJwks]:
    keys = SmallKeyJwks()
    yield keys
    keys.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, jwks) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("edges")
    env = {
        "PIE_DATABASE_URL": f"sqlite:///{folder}/pie.sqlite",
        "PIE_INSTANCE_PATH": str(folder / "instance"),
        "PIE_JWT_SECRET": SECRET,
        "PIE_JWKS_URL": jwks.url,
        "PIE_EMBEDDED_WORKER": "0",
        "PIE_LOG_FORMAT": "json",
    }
    proc = ServerProcess(env, log_path=str(folder / "server.log"))
    proc.start()
    yield proc
    proc.stop()


def exchange(server: ServerProcess, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes (or one response is complete)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body[: int(headers["content-length"])]


def request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return line + b"\r\nHost: pie.test\r\n" + b"".join(headers) + b"\r\n" + body


MODEL = json.dumps(model_body("m1")).encode()
CASES = {
    "bad request line": (b"GARBAGE\r\n\r\n", 400),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "bad method": (request(b"G(T /v2/health HTTP/1.1"), 400),
    "bad version": (request(b"GET /v2/health HTTP/9.9"), 400),
    "NUL in the URL": (request(b"GET /v2/models/a\x00b HTTP/1.1"), 400),
    "non-UTF-8 URL": (request(b"GET /v2/models/\xff\xfe HTTP/1.1"), 400),
    "header without a colon": (request(b"GET /v2/health HTTP/1.1", b"Bad Header\r\n"), 400),
    "bad Content-Length": (
        request(b"POST /v2/models HTTP/1.1", b"Content-Length: abc\r\n"),
        400,
    ),
    "Content-Length and chunked": (
        request(
            b"POST /v2/models HTTP/1.1",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            body=b"0\r\n\r\n",
        ),
        400,
    ),
    "unknown Transfer-Encoding": (
        request(b"POST /v2/models HTTP/1.1", b"Transfer-Encoding: gzip\r\n"),
        (400, 501),  # gunicorn versions differ
    ),
    "URL over 4094 bytes": (request(b"GET /v2/models/" + b"a" * 8000 + b" HTTP/1.1"), 414),
    "header over 8190 bytes": (
        request(b"GET /v2/health HTTP/1.1", b"X-Big: " + b"a" * 9000 + b"\r\n"),
        431,
    ),
    "over 100 headers": (
        request(b"GET /v2/health HTTP/1.1", *[b"X-%d: 1\r\n" % i for i in range(150)]),
        431,
    ),
    "unmet Expect": (
        request(
            b"POST /v2/models HTTP/1.1", b"Expect: teapot\r\nContent-Length: 2\r\n", body=b"{}"
        ),
        417,
    ),
    "malformed chunk": (
        request(
            b"POST /v2/models HTTP/1.1",
            AUTH,
            JSON,
            b"Transfer-Encoding: chunked\r\n",
            body=b"ZZ\r\n{}\r\n0\r\n\r\n",
        ),
        400,
    ),
    "body shorter than its Content-Length": (
        request(
            b"POST /v2/models HTTP/1.1",
            AUTH,
            JSON,
            b"Content-Length: %d\r\n" % (len(MODEL) + 50),
            body=MODEL,
        ),
        400,
    ),
    "doubled slash": (request(b"GET /v2//models HTTP/1.1", AUTH), 404),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_error_the_server_sends_is_the_json_envelope(server, name):
    data, expected = CASES[name]
    status, headers, body = exchange(server, data)
    assert status in (expected if isinstance(expected, tuple) else (expected,)), (status, body)
    assert headers["content-type"] == "application/json", (headers, body)
    envelope = strict_json(body)
    assert envelope["success"] is False and envelope["message"], envelope


def test_nothing_was_stored_from_the_cut_bodies(server):
    assert server.request("GET", "/v2/models").json() == []


def test_a_library_warning_is_a_json_log_line(server, jwks):
    """A JWKS key under 2048 bits makes PyJWT warn on verification: the warning joins the log
    stream as a JSON line, and every line of the server's output is strict JSON."""
    r = server.session.get(
        f"{server.url}/v2/models", headers={"Authorization": f"Bearer {jwks.token()}"}
    )
    assert r.status_code == 200, r.text

    def warned() -> list[dict]:
        with open(server.log_path, encoding="utf-8") as fh:
            lines = [strict_json(line) for line in fh if line.strip()]
        return [line for line in lines if line.get("category") == "InsecureKeyLengthWarning"]

    deadline = time.monotonic() + 10
    while not warned() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = warned()
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING"
    assert "RSA key is 1024 bits long" in line["message"]


def test_a_worker_freezes_the_heap_it_starts_with_after_collecting_its_garbage(monkeypatch):
    """A worker's app lives as long as the worker: once it is built, what is left is frozen
    out of the garbage collector's reach (a full collection over it stopped the worker for
    ~120 ms), and what building it left as garbage (a reference cycle) is collected first,
    not frozen for ever."""
    import gc
    import weakref

    import pie
    import pie.metrics
    from pie.server import PieServer

    class Cycle:
        pass

    left: list[weakref.ref] = []

    class Built:
        config = {"PIE_EMBEDDED_WORKER": False}

    def create_app(settings: dict) -> Built:
        garbage = Cycle()
        garbage.itself = garbage  # only the cycle collector frees it
        left.append(weakref.ref(garbage))
        return Built()

    monkeypatch.setattr(pie, "create_app", create_app)
    monkeypatch.setattr(pie.metrics.SERVER_WORKERS, "set", lambda value: None)
    gc.unfreeze()
    server = PieServer.__new__(PieServer)  # load() alone, as a worker calls it after the fork
    try:
        assert isinstance(server.load(), Built)
        assert gc.get_freeze_count() > 0
        assert left[0]() is None
    finally:
        gc.unfreeze()
