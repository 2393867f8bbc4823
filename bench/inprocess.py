"""CPU per request of one route in process (Flask's test client, no HTTP server), for
profiling and before/after comparisons; `bare-read` and `bare-insert` run the ceiling app
(bench/bare_app.py) through the same loop, `floor-insert` the same insert on flask-smorest
and marshmallow (bench/floor_app.py: the framework's floor for a write route).

    python -m bench.inprocess
        {echo,complete,status,version,inference,get,tenant-get,job-get,bare-read,bare-insert,
         floor-insert}
        [--requests 2000] [--profile [--sort tottime] [--lines 40]] [--mark]

`tenant-get` is `get` with a tenant's token (a `client_id`, no admin scope) instead of an
admin's. `job-get` reads a job (GET /v2/jobs/{id}), as bench.http does. `inference` starts a
job on the direct route with its dispatch left out (that runs on the dispatcher's threads,
after the response): the request and the job's insert.

Prints requests per second and CPU microseconds per request (process time, so other load on
the machine matters less than for wall-clock figures); `--profile` adds a cProfile table;
`--mark` calls os.getppid() just before and after the timed loop, where
`valgrind --tool=callgrind --dump-before=os_getppid` cuts its counts (bench/instructions.py).
The access log is written to a temporary file, as a server writes it."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

ROUTES = (
    "echo",
    "complete",
    "status",
    "version",
    "inference",
    "get",
    "tenant-get",
    "job-get",
    "bare-read",
    "bare-insert",
    "floor-insert",
)
WARMUP = 50


def pie_requests(
    route: str, requests: int, folder: str
) -> tuple[Callable[[int], None], Callable[[], None]]:
    from bench.http import EXTERNAL, HANDLERS
    from pie import create_app
    from pie.db import database
    from pie.scopes import ADMIN_SCOPE
    from pie.tables import Job, ModelVersion

    app = create_app(
        {
            "PIE_INSTANCE_PATH": folder,
            "PIE_EMBEDDED_WORKER": False,
            "PIE_DATABASE_URL": f"sqlite:///{folder}/pie.sqlite",
        }
    )
    runtime = app.extensions["pie"]
    headers = {
        "Authorization": "Bearer "
        + runtime.verifier.mint({"sub": "bench", "scope": ADMIN_SCOPE}, 7200)
    }
    client = app.test_client()
    model = {"id": "m", "name": "m", "description": "", "handlers": HANDLERS}
    client.post("/v2/models", json=model, headers=headers)
    client.post("/v2/models/m/versions/1/new_status", json={"status": "active"}, headers=headers)
    if route == "tenant-get":
        client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=headers)
        claims = {"sub": "bench", "scope": "streamline/read_models", "client_id": "acme"}
        headers = {"Authorization": "Bearer " + runtime.verifier.mint(claims, 7200)}
    if route in ("inference", "job-get"):
        runtime.dispatcher.submit = lambda job_ids: None
    if route == "job-get":  # a job as bench.http reads it: started over HTTP, left pending
        started = client.post(
            "/v2/models/m/versions/1/inference", json={"input": {"a": 1}}, headers=headers
        ).get_json()
        job_path = f"/v2/jobs/{started['inference_job_id']}"
    if route == "echo":
        return echo_requests(app, client, headers)
    now = datetime.now(UTC).replace(tzinfo=None)
    with database.connection_context(), database.atomic():  # what the writes consume
        for n in range(requests + WARMUP if route in ("complete", "status") else 0):
            if route == "complete":
                Job.create(
                    job_id=f"cb{n}",
                    job_type="inference",
                    model_id="m",
                    model_version="1",
                    input={},
                    handler_type="bench_external",
                    handler=EXTERNAL,
                    created_at=now,
                )
            else:
                ModelVersion.create(
                    model="m", version=f"b{n}", metadata={}, handlers=HANDLERS, created_at=now
                )

    def request(n: int) -> None:
        if route == "complete":
            path, body = f"/v2/models/m/versions/1/jobs/cb{n}/complete", {"status": "success"}
        elif route == "status":
            path, body = f"/v2/models/m/versions/b{n}/new_status", {"status": "training"}
        elif route == "version":
            path, body = "/v2/models/m/new_version", {}
        elif route == "inference":
            path, body = "/v2/models/m/versions/1/inference", {"input": {"a": n}}
        else:  # get, tenant-get, job-get
            path = job_path if route == "job-get" else "/v2/models/m"
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.get_json()
            return
        response = client.post(path, json=body, headers=headers)
        assert response.status_code < 300, response.get_json()

    return request, runtime.close


def echo_requests(
    app: Any, client: Any, headers: dict[str, str]
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """Whole in-process echo jobs: the starting request, then (on the dispatcher's and the
    pool's threads) claim, start, run and completion. Every 100 requests, and at the end,
    waits for the jobs so far to succeed, so the CPU counted is all of their work."""

    runtime = app.extensions["pie"]
    started: list[str] = []
    # Completions are counted as they are recorded (no polling, which would add its own
    # queries to the count): the in-process type completes through runtime.complete_job.
    completed = threading.Semaphore(0)
    complete_job = runtime.complete_job

    def counting_complete_job(*args: Any, **kwargs: Any) -> Any:
        result = complete_job(*args, **kwargs)
        completed.release()
        return result

    runtime.complete_job = counting_complete_job
    settled = [0]

    def settle() -> None:
        for _ in range(len(started) - settled[0]):
            if not completed.acquire(timeout=60):
                raise RuntimeError("echo jobs did not finish")
        settled[0] = len(started)

    def request(n: int) -> None:
        response = client.post(
            "/v2/models/m/versions/1/inference", json={"input": {"a": n}}, headers=headers
        )
        assert response.status_code == 202, response.get_json()
        started.append(response.get_json()["inference_job_id"])
        if len(started) % 100 == 0:
            settle()

    def close() -> None:
        settle()
        runtime.close()

    request.settle = settle  # type: ignore[attr-defined]
    return request, close


def bare_requests(route: str, folder: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    os.environ["BARE_DB"] = f"{folder}/bare.sqlite"
    if route == "floor-insert":  # the same insert on flask-smorest + marshmallow
        from bench.floor_app import app, setup
    else:
        from bench.bare_app import app, setup

    setup()
    client = app.test_client()

    def request(n: int) -> None:
        if route == "bare-read":
            response = client.get("/items/item-1")
        else:
            response = client.post("/items", json={"name": "x", "body": {"a": 1}})
        assert response.status_code < 300, response.get_json()

    return request, lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("route", choices=ROUTES)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--sort", default="cumulative", help="the cProfile table's order (e.g. tottime)"
    )
    parser.add_argument("--lines", type=int, default=40, help="the cProfile table's length")
    parser.add_argument("--mark", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="pie-inprocess-")
    sys.stderr = open(f"{folder}/access.log", "w")  # noqa: SIM115  (the log, for the run)
    if args.route.startswith(("bare-", "floor-")):
        request, close = bare_requests(args.route, folder)
    else:
        request, close = pie_requests(args.route, args.requests, folder)
    for n in range(args.requests, args.requests + WARMUP):
        request(n)
    profile = cProfile.Profile() if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if args.mark:
        os.getppid()
    if profile:
        profile.enable()
    for n in range(args.requests):
        request(n)
    if args.route == "echo":
        request.settle()  # type: ignore[attr-defined]
    if profile:
        profile.disable()
    if args.mark:
        os.getppid()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profile:
        pstats.Stats(profile, stream=sys.stdout).sort_stats(args.sort).print_stats(args.lines)
    print(
        f"{args.route}: {args.requests / wall:.0f} req/s, "
        f"{cpu / args.requests * 1e6:.0f} us CPU per request"
    )
    close()


if __name__ == "__main__":
    main()
