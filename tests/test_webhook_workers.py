"""Three `pie worker` processes deliver one backlog of webhook events at once, on SQLite and
on Postgres: each delivery is claimed by one process at a time, so a receiver that answers
every request gets each event exactly once (no crash here, so no resend), every one
verified with the `standardwebhooks` library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

from tests.helpers import SECRET, Client, model_body, wait_for
from tests.test_webhook_crash import Receiver

EVENTS = 150
WORKERS = 3


def test_racing_workers_deliver_each_event_once(make_app, database_url, tmp_path):
    receiver = Receiver()
    app = make_app({"PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"]})
    client = Client(app.test_client())
    r = client.post("/v2/webhooks", json={"url": receiver.url, "events": ["model.created"]})
    assert r.status_code == 201
    receiver.secret = r.get_json()["secret"]
    for n in range(EVENTS):
        assert client.post("/v2/models", json=model_body(f"m{n}")).status_code == 201
    env = {
        **os.environ,
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),  # the key beside the test's
        "PIE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.05",
        "PIE_WEBHOOK_ENDPOINT_CONCURRENCY": "8",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "pie", "worker"],
            env=env,
            stdout=open(tmp_path / f"worker{n}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n in range(WORKERS)
    ]
    try:
        wait_for(lambda: len(receiver.got) >= EVENTS, timeout=120)
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        receiver.server.shutdown()
        receiver.server.server_close()
    ids = Counter(webhook_id for webhook_id, _event in receiver.got)
    assert len(ids) == EVENTS and set(ids.values()) == {1}, ids.most_common(3)
    assert {event["data"]["id"] for _id, event in receiver.got} == {f"m{n}" for n in range(EVENTS)}
    # Several processes took part (their logs name the deliveries they sent, answered 204).
    senders = [(tmp_path / f"worker{n}.log").read_text().count(': 204"') for n in range(WORKERS)]
    assert sum(senders) == EVENTS and sum(1 for s in senders if s) >= 2, senders
