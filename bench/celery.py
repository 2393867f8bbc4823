"""Celery jobs per second end to end on this machine: `pie serve` (SQLite, 2 workers) sends
each job to the broker, N `celery worker` processes run an echo task (bench/celery_tasks.py,
made with pie.celery.pie_task) and call back over HTTP.

    python -m bench.celery [--jobs 500] [--workers 2] [--concurrency 4] [--pool threads]
                           [--broker redis://127.0.0.1:6379/14]

Prints jobs per second (first request to last success), p50/p99 of each job's creation →
completion (its stored times) and of the starting request (client side), and the CPU each
job cost `pie serve`, the workers (consumers and pools), the broker and the client (bench.cpu)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import cpu
from bench.http import (
    ROOT,
    SECRET,
    Http,
    KeepAlive,
    free_port,
    percentile,
    settle,
    shielded,
    start,
    stop,
    stored_times,
    successes,
)
from bench.http import wait_healthy as wait_up


def measure(
    jobs: int = 500,
    workers: int = 2,
    concurrency: int = 4,
    broker: str = "redis://127.0.0.1:6379/14",
    pool: str = "threads",
    pie_workers: int | None = 2,
) -> dict[str, float]:
    """Celery jobs end to end with `workers` `celery worker` commands, each a `pool` of
    `concurrency`, against `pie serve --workers {pie_workers}` (None: its default):
    {rate (jobs/s), job_p50, job_p99 (created → completed), request_p50, request_p99} in
    seconds, and cpu_ms: bench.cpu's milliseconds of CPU per job by role. Every process is
    ended and the queue deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="pie-bench-celery-"))
    port = free_port()
    url = f"sqlite:///{folder}/pie.sqlite"
    queue = f"pie-bench-{port}"
    pie_env = {
        "PIE_DATABASE_URL": url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(folder),
        "PIE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PIE_CELERY_BROKER_URL": broker,
    }
    processes = []
    try:
        processes.append(
            start(
                [sys.executable, "-m", "pie", "serve", "--port", str(port)]
                + (["--workers", str(pie_workers)] if pie_workers else []),
                pie_env,
                folder / "pie.log",
            )
        )
        for n in range(workers):
            processes.append(
                start(
                    [sys.executable, "-m", "celery", "-A", "bench.celery_tasks", "worker"]
                    + ["-Q", queue, "-P", pool, "-c", str(concurrency), "-n", f"w{n}-{port}@%h"]
                    + "--loglevel WARNING --without-gossip --without-mingle".split()
                    + ["--without-heartbeat"],
                    {"PIE_BENCH_CELERY_BROKER": broker},
                    folder / f"worker{n}.log",
                )
            )
        wait_up(f"http://127.0.0.1:{port}/v2/health")
        sys.path.insert(0, str(ROOT))
        from pie.auth import TokenVerifier

        token = TokenVerifier(SECRET).mint({"sub": "bench", "scope": "streamline/admin"}, 7200)
        api = Http(f"http://127.0.0.1:{port}", token)
        handler = {"type": "celery", "task": "bench.echo", "queue": queue}
        model = {
            "id": "m",
            "name": "m",
            "description": "",
            "handlers": {"training": handler, "inference": handler},
        }
        status, body, _ = api.call("POST", "/v2/models", model)
        assert status == 201, body
        api.call("POST", "/v2/models/m/versions/1/new_status", {"status": "active"})
        # Warm-up: a few jobs, which also waits for the workers to take the queue.
        for n in range(10):
            api.call("POST", "/v2/models/m/versions/1/inference", {"input": {"warm": n}})
        settle(api, 10, timeout=60)
        requests: list[float] = []

        client = KeepAlive(api.base, api.token)

        def start_one(n: int) -> str:
            began = time.perf_counter()
            status, body = client.call(
                "POST", "/v2/models/m/versions/1/inference", {"input": {"n": n}}
            )
            requests.append(time.perf_counter() - began)
            assert status == 202, (status, body)
            return body["inference_job_id"]

        before = successes(api)
        window = cpu.Window(
            {
                "pie serve": [processes[0].pid],
                **cpu.celery_roles([worker.pid for worker in processes[1:]]),
                "broker": cpu.broker_processes(broker),
                "client": [os.getpid()],
            }
        )
        began, began_wall = time.perf_counter(), time.time()
        with ThreadPoolExecutor(8) as executor:
            job_ids = list(executor.map(start_one, range(jobs)))
        settle(api, before + jobs)
        spent = window.per_job(jobs)
        observed = jobs / (time.perf_counter() - began)
        ends, last = stored_times(url, job_ids)
        return {
            "rate": jobs / (last - began_wall),
            "observed_rate": observed,
            "job_p50": percentile(ends, 0.5),
            "job_p99": percentile(ends, 0.99),
            "request_p50": percentile(requests, 0.5),
            "request_p99": percentile(requests, 0.99),
            "cpu_ms": spent,
        }
    finally:
        from kombu import Connection

        with shielded(), Connection(broker, connect_timeout=3) as connection:
            stop(processes)
            connection.default_channel.queue_delete(queue)  # RabbitMQ keeps declared queues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="celery worker commands")
    parser.add_argument("--concurrency", type=int, default=4, help="pool size per worker")
    parser.add_argument("--pool", default="threads", help="celery's -P: threads, prefork, ...")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    figures = measure(args.jobs, args.workers, args.concurrency, args.broker, args.pool)
    print(
        f"celery ({args.broker.split(':')[0]}, {args.workers} workers × {args.concurrency} "
        f"{args.pool}): {args.jobs} jobs, {figures['rate']:.0f} jobs/s; created → completed "
        f"p50 {figures['job_p50'] * 1000:.0f} / p99 {figures['job_p99'] * 1000:.0f} ms;"
        f" request p50 {figures['request_p50'] * 1000:.1f} / "
        f"p99 {figures['request_p99'] * 1000:.1f} ms; CPU per job "
        + cpu.described(figures["cpu_ms"])
    )


if __name__ == "__main__":
    main()
