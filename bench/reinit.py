"""Re-initialising every service of a big domain, and what it costs everyone else: while
`POST …/services/init` starts N init jobs, another thread keeps writing (a model update, a
small write transaction of its own) and records how long each of its writes took.

    python -m bench.reinit [--services 10000] [--repeats 3]

Then, the same way, assigning the domain's `default` key to versions with a frozen
feature_schema, which re-resolves every service in the revision's transaction.

Prints the re-init time and the longest and median write of the other thread during it,
against the same writes on an idle server (the ratio is what one tenant's re-init costs every
other writer). SQLite on a temporary file, or PIE_DATABASE_URL."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

from bench.fanout import build_app
from pie.db import database
from pie.scopes import ADMIN_SCOPE
from pie.tables import Service, utcnow

D = "/v2/clients/acme/domains/d1"


MODEL = {
    "id": "m1",
    "name": "m1",
    "description": "",
    "handlers": {
        "training": {"type": "in_process", "value": "echo"},
        "inference": {"type": "parked"},
    },
}


def seed(client, headers, count: int) -> None:
    body = MODEL
    for method, path, payload in (
        ("post", "/v2/models", body),
        ("post", "/v2/models/m1/versions/1/new_status", {"status": "training"}),
        ("post", "/v2/models/m1/versions/1/new_status", {"status": "active"}),
        ("post", "/v2/models", {**body, "id": "other"}),
        ("post", "/v2/clients", {"client_id": "acme", "name": "Acme"}),
        ("post", "/v2/clients/acme/domains", {"domain_id": "d1"}),
        ("put", D, {"status": "active"}),
        (
            "post",
            f"{D}/assignments",
            {"assignment_key": "default", "model_id": "m1", "model_version": "1"},
        ),
    ):
        response = getattr(client, method)(path, json=payload, headers=headers)
        assert response.status_code < 300, (path, response.get_json())
    now = utcnow()
    rows = [
        {
            "client_id": "acme",
            "domain_id": "d1",
            "service_id": f"s{n:06d}",
            "status": "available",
            "provided_features": {},
            "resolved_features": {},
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with database.connection_context():
        for start in range(0, count, 500):
            Service.insert_many(rows[start : start + 500]).execute()


def writes_during(client, headers, work) -> tuple[float, list[float]]:
    """Run `work()` while another thread updates a model in a loop; (work seconds, write
    latencies)."""
    stop, latencies = threading.Event(), []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            start = time.perf_counter()
            body = {**MODEL, "name": f"other {n}"}
            del body["id"]
            r = client.put("/v2/models/other", json=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200, r.get_json()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    start = time.perf_counter()
    work()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    return elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tests.tenant_world import Parked

    with tempfile.TemporaryDirectory() as folder:
        app = build_app(folder, plugins=(Parked(),), PIE_LOG_LEVEL="WARNING")
        runtime = app.extensions["pie"]
        token = runtime.verifier.mint({"sub": "bench", "scope": ADMIN_SCOPE}, 3600)
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        seed(client, headers, args.services)
        _, idle = writes_during(client, headers, lambda: time.sleep(1.0))

        def reinit() -> None:
            r = client.post(f"{D}/services/init", headers=headers)
            assert r.status_code == 202, r.get_json()
            assert len(r.get_json()["dispatched_services"]) == args.services

        def report(what: str, took: float, during: list[float]) -> None:
            print(
                f"services={args.services} {what}={took:.2f}s "
                f"other writer: longest {max(during) * 1000:.0f} ms "
                f"(idle {max(idle) * 1000:.1f} ms, ratio {max(during) / max(idle):.0f}x), "
                f"median {statistics.median(during) * 1000:.1f} ms "
                f"(idle {statistics.median(idle) * 1000:.1f} ms), writes {len(during)}"
            )

        for _ in range(args.repeats):
            report("reinit", *writes_during(client, headers, reinit))
        # A default assignment to a version with a frozen feature_schema re-resolves every
        # service in the transaction that adds the revision (applied whole or not at all).
        for n in range(args.repeats):
            schema = [{"name": f"f{n}", "mandatory": False, "json_schema": {"default": n}}]
            version = str(n + 2)
            path = f"/v2/models/m1/versions/{version}/new_status"
            for method, url, body in (
                ("post", "/v2/models/m1/new_version", {"feature_schema": schema}),
                ("post", path, {"status": "training"}),
                ("post", path, {"status": "active"}),
            ):
                r = getattr(client, method)(url, json=body, headers=headers)
                assert r.status_code < 300, r.get_json()

            def assign(version: str = version) -> None:
                body = {"model_id": "m1", "model_version": version}
                r = client.put(f"{D}/assignments/default", json=body, headers=headers)
                assert r.status_code == 200, r.get_json()

            report("default-with-frozen-schema", *writes_during(client, headers, assign))
        runtime.close()


if __name__ == "__main__":
    main()
