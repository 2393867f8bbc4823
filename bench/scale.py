"""Read costs at scale: job lookup, a version's job list (first and a deep page), the search
of all jobs (GET /v2/jobs: first page, a page from the middle of the table by cursor, filtered
pages, a tenant's page), model get and list, with 1,000 rows and then with 1,000,000 jobs
and 100,000 models.

    python -m bench.scale [--jobs 1000000] [--models 100000] [--repeats 200]

Times the HTTP handlers in process (Flask's test client) so that only the database work
grows; prints each median and the large/small ratio (target: <= 1.5). Growing to 1,000,000
jobs and 100,000 models took 127 s on the 2-core development machine (2026-11-30);
`measure` returns the figures."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta

from pie import create_app
from pie.db import database
from pie.ids import uuid7
from pie.scopes import ADMIN_SCOPE
from pie.tables import Job, ModelVersion, RegisteredModel, utcnow

HANDLERS = {
    "training": {"type": "in_process", "value": "echo"},
    "inference": {"type": "in_process", "value": "echo"},
}
BATCH = 1000


def add_models(count: int, start: int) -> None:
    now = utcnow()
    for first in range(start, start + count, BATCH):
        names = [f"model-{n:07d}" for n in range(first, min(first + BATCH, start + count))]
        with database.atomic():
            RegisteredModel.insert_many(
                [
                    {
                        "id": name,
                        "name": name,
                        "description": "",
                        "handlers": HANDLERS,
                        "metadata": {},
                        "status": "active",
                        "latest_version": "1",
                        "max_int_version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for name in names
                ]
            ).execute()
            ModelVersion.insert_many(
                [
                    {
                        "model": name,
                        "version": "1",
                        "metadata": {},
                        "status": "active",
                        "handlers": HANDLERS,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for name in names
                ]
            ).execute()


def add_jobs(count: int, model_id: str, spread: int) -> None:
    """`count` jobs: most on other models' versions, the rest on `model_id` version 1."""
    now = utcnow()
    for first in range(0, count, BATCH):
        rows = []
        for n in range(first, min(first + BATCH, count)):
            owner = model_id if n % spread == 0 else f"model-{n % 1000:07d}"
            rows.append(
                {
                    "job_id": uuid7(),
                    "job_type": "inference",
                    "model_id": owner,
                    "model_version": "1",
                    "status": "success",
                    "input": {"n": n},
                    "output": {},
                    "warnings": [],
                    "handler_type": "in_process",
                    "handler": HANDLERS["inference"],
                    "created_at": now - timedelta(seconds=count - n),
                }
            )
        with database.atomic():
            Job.insert_many(rows).execute()


def median_ms(client, path: str, headers: dict, repeats: int = 200) -> float:
    for _ in range(min(20, repeats)):
        client.get(path, headers=headers)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.get_json()
    return statistics.median(times) * 1000


def middle_job(model_id: str | None = None) -> str:
    """The job id halfway down the newest-first list (of one model's jobs): a cursor that
    starts a page in the middle of the table."""
    query = Job.select(Job.job_id)
    if model_id is not None:
        query = query.where(Job.model_id == model_id)
    with database.connection_context():
        total = query.count()
        return query.order_by(Job.job_id.desc()).offset(total // 2).limit(1).scalar()


def reads(client, headers: dict, job_id: str, tenant: dict, repeats: int) -> dict[str, float]:
    search = "/v2/jobs?page_size=100"
    filtered = f"{search}&model_id=model-0000000&status=success"
    paths = {
        "GET /v2/jobs/{id}": (f"/v2/jobs/{job_id}", headers),
        "version jobs, first page": (
            "/v2/models/model-0000000/versions/1/jobs?page_size=100",
            headers,
        ),
        "version jobs, page 10": (
            "/v2/models/model-0000000/versions/1/jobs?page_size=100&page=10",
            headers,
        ),
        "GET /v2/jobs, first page": (search, headers),
        "GET /v2/jobs, mid-table page": (f"{search}&after={middle_job()}", headers),
        "GET /v2/jobs, filtered": (filtered, headers),
        "GET /v2/jobs, filtered, mid": (
            f"{filtered}&after={middle_job('model-0000000')}",
            headers,
        ),
        "GET /v2/jobs, a tenant's page": (search, tenant),
        "GET /v2/models/{id}": ("/v2/models/model-0000500", headers),
        "GET /v2/models (first page)": ("/v2/models?page_size=100", headers),
    }
    return {name: median_ms(client, path, auth, repeats) for name, (path, auth) in paths.items()}


def measure(jobs: int = 1_000_000, models: int = 100_000, repeats: int = 200) -> dict:
    """{"small": {read: median ms}, "large": {read: median ms}, "grow_seconds"}: each read at
    1,000 rows, then at `jobs` jobs and `models` models (both at least 1,000)."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "PIE_INSTANCE_PATH": folder,
                "PIE_EMBEDDED_WORKER": False,
                "PIE_LOG_LEVEL": "WARNING",  # no access line per request
                "PIE_DATABASE_URL": os.environ.get("PIE_DATABASE_URL")
                or f"sqlite:///{folder}/scale.sqlite",
            }
        )
        runtime = app.extensions["pie"]
        try:
            headers = {
                "Authorization": "Bearer "
                + runtime.verifier.mint({"sub": "bench", "scope": ADMIN_SCOPE}, 7200)
            }
            client = app.test_client()
            client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}, headers=headers)
            claims = {"sub": "bench", "scope": "streamline/read_models", "client_id": "acme"}
            tenant = {"Authorization": "Bearer " + runtime.verifier.mint(claims, 7200)}
            with database.connection_context():
                add_models(1000, 0)
                add_jobs(1000, "model-0000000", spread=1)  # 1,000 jobs, all on one version
                job_id = Job.select(Job.job_id).order_by(Job.job_id).first().job_id
            small = reads(client, headers, job_id, tenant, repeats)
            started = time.perf_counter()
            with database.connection_context():
                add_models(models - 1000, 1000)
                add_jobs(jobs - 1000, "model-0000000", spread=10)
                database.execute_sql("ANALYZE")
            grow_seconds = time.perf_counter() - started
            large = reads(client, headers, job_id, tenant, repeats)
        finally:
            runtime.close()
    return {"small": small, "large": large, "grow_seconds": grow_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=200, help="requests timed per read")
    args = parser.parse_args()
    result = measure(args.jobs, args.models, args.repeats)
    small, large = result["small"], result["large"]
    print(
        f"grew to {args.jobs:,} jobs and {args.models:,} models in {result['grow_seconds']:.0f} s"
    )
    print(f"{'read':<30}{'1k rows ms':>12}{'large ms':>10}{'ratio':>8}")
    for name in small:
        print(
            f"{name:<30}{small[name]:>12.3f}{large[name]:>10.3f}{large[name] / small[name]:>8.2f}"
        )


if __name__ == "__main__":
    main()
