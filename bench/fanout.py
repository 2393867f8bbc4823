"""Fan-out cost: one `training → active` transition with N active subscriptions (in-process
`echo` targets), on a temporary SQLite file (or PIE_DATABASE_URL).

    python -m bench.fanout [--sizes 1,100,1000] [--repeats 5]

Prints the median transition time per size and the marginal cost per subscription."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from pie import create_app
from pie.db import database
from pie.ids import uuid7
from pie.scopes import ADMIN_SCOPE
from pie.tables import Subscription, utcnow

HANDLERS = {
    "training": {"type": "in_process", "value": "echo"},
    "inference": {"type": "in_process", "value": "echo"},
}


def build_app(folder: str, plugins: tuple = (), **settings: object):
    """An app for a benchmark: its database in `folder` (or PIE_DATABASE_URL), no embedded
    worker, no entry-point plugins; `settings` override."""
    return create_app(
        {
            "PIE_INSTANCE_PATH": folder,
            "PIE_DATABASE_URL": os.environ.get("PIE_DATABASE_URL")
            or f"sqlite:///{folder}/b.sqlite",
            "PIE_EMBEDDED_WORKER": False,
            "PIE_LOAD_ENTRY_POINTS": False,
            **settings,
        },
        plugins=list(plugins),
    )


def add_subscriptions(source: str, target: str, count: int) -> None:
    now = utcnow()
    rows = [
        {
            "id": uuid7(),
            "source_model_id": source,
            "trigger_event": "training_complete",
            "target_model_id": target,
            "target_action": "inference",
            "input_source": "stored",
            "input": {"n": n},
            "label": None,
            "status": "active",
            "warnings": [],
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with database.connection_context():
        for start in range(0, count, 500):
            Subscription.insert_many(rows[start : start + 500]).execute()


def time_transition(client, headers, model_id: str, version: str) -> float:
    path = f"/v2/models/{model_id}/versions/{version}/new_status"
    assert client.post(path, json={"status": "training"}, headers=headers).status_code == 200
    start = time.perf_counter()
    response = client.post(path, json={"status": "active"}, headers=headers)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.get_json()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        app = build_app(folder)
        runtime = app.extensions["pie"]
        token = runtime.verifier.mint({"sub": "bench", "scope": ADMIN_SCOPE}, 3600)
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        client.post(
            "/v2/models",
            json={"id": "target", "name": "t", "description": "", "handlers": HANDLERS},
            headers=headers,
        )
        client.post(
            "/v2/models/target/versions/1/new_status", json={"status": "active"}, headers=headers
        )
        medians = {}
        for size in sizes:
            source = f"source-{size}"
            client.post(
                "/v2/models",
                json={"id": source, "name": source, "description": "", "handlers": HANDLERS},
                headers=headers,
            )
            add_subscriptions(source, "target", size)
            times = []
            for repeat in range(args.repeats):
                version = str(repeat + 2)
                client.post(
                    f"/v2/models/{source}/new_version", json={"version": version}, headers=headers
                )
                times.append(time_transition(client, headers, source, version))
            medians[size] = statistics.median(times)
            print(
                f"{size:>6} subscriptions: {medians[size] * 1000:8.1f} ms per transition, "
                f"{medians[size] / size * 1000:6.3f} ms per subscription"
            )
        if len(sizes) > 1:
            low, high = min(sizes), max(sizes)
            marginal = (medians[high] - medians[low]) / (high - low)
            print(f"marginal cost: {marginal * 1000:.3f} ms per subscription (target <= 2 ms)")
        runtime.close()


if __name__ == "__main__":
    main()
