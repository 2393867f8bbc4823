"""SIGKILL a real `pie serve` (two workers) while models are being created, each with its
`model.created` event, and while deliveries are in flight to a slow receiver: after a restart
on the same database every model that exists has had its event delivered at least once, and
no event names a model that does not (its change did not commit). Every delivery is verified
with the `standardwebhooks` library; a redelivered event keeps its webhook-id."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from tests.helpers import SECRET, model_body, wait_for
from tests.server import ServerProcess

WRITERS = 4


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections of a burst (then retried)


class Receiver:
    """Records each verified delivery: (webhook-id, event); answers after a pause, so some
    requests are always in flight."""

    def __init__(self) -> None:
        self.secret = ""
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = Webhook(receiver.secret).verify(body, dict(self.headers.items()))
                time.sleep(0.05)
                with receiver.lock:
                    receiver.got.append((self.headers["webhook-id"], event))
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def created(self) -> dict[str, set[str]]:
        """Model id -> the webhook-ids its model.created event came with."""
        with self.lock:
            found: dict[str, set[str]] = {}
            for webhook_id, event in self.got:
                if event["type"] == "model.created":
                    found.setdefault(event["data"]["id"], set()).add(webhook_id)
            return found


@pytest.fixture
def receiver():
    recv = Receiver()
    yield recv
    recv.server.shutdown()
    recv.server.server_close()


def server_env(database_url: str, tmp_path: Any) -> dict[str, str]:
    return {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
        "PIE_PROCESS_HEARTBEAT_SECONDS": "0.5",
        "PIE_PROCESS_TIMEOUT_SECONDS": "2",
    }


def write_models(server: ServerProcess, prefix: str, stop: threading.Event, done: list) -> None:
    """Create models until stopped; the ids whose creation was answered 201 go to `done`."""
    n = 0
    while not stop.is_set():
        model_id = f"{prefix}-{n}"
        n += 1
        try:
            r = server.request("POST", "/v2/models", json=model_body(model_id))
        except requests.RequestException:
            return  # the server is gone: this one may or may not have committed
        if r.status_code == 201:
            done.append(model_id)


def all_models(server: ServerProcess) -> set[str]:
    r = server.request("GET", "/v2/models?page_size=1000")
    assert r.status_code == 200
    return {model["id"] for model in r.json()}


def test_sigkill_loses_no_committed_event_and_invents_none(database_url, tmp_path, receiver):
    env = server_env(database_url, tmp_path)
    server = ServerProcess(env, workers=2, log_path=str(tmp_path / "server.log"))
    server.start()
    try:
        r = server.request("POST", "/v2/webhooks", json={"url": receiver.url, "events": ["*"]})
        assert r.status_code == 201, r.text
        receiver.secret = r.json()["secret"]
        time.sleep(5.5)  # each worker reads the endpoints at most every 5 s (documented)
        stop, answered = threading.Event(), []
        writers = [
            threading.Thread(target=write_models, args=(server, f"w{i}", stop, answered))
            for i in range(WRITERS)
        ]
        for thread in writers:
            thread.start()
        wait_for(lambda: len(receiver.created()) >= 20, timeout=30)  # deliveries under way
        server.kill()  # mid-request and mid-delivery
        stop.set()
        for thread in writers:
            thread.join(30)
    finally:
        server.kill()

    before_restart = receiver.created()
    server = ServerProcess(env, workers=2, log_path=str(tmp_path / "server2.log"))
    server.start()
    try:
        models = all_models(server)
        assert set(answered) <= models  # what was answered 201 committed
        # Every committed creation's event arrives; none for one that did not commit.
        wait_for(lambda: set(receiver.created()) >= models, timeout=60)
        delivered = receiver.created()
        assert set(delivered) == models, set(delivered) ^ models
        assert len(models) > len(before_restart)  # some were delivered only after restart
        # One delivery per event: a resend (it was in flight at the kill) keeps its id.
        assert all(len(ids) == 1 for ids in delivered.values())
        wait_for(lambda: "pie_webhook_queue_depth 0.0" in server.request("GET", "/metrics").text)
    finally:
        server.stop()
