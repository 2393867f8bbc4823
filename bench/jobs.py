"""In-process echo jobs end to end against a fresh `pie serve` (its default worker processes
unless told): 8 threads, each on a persistent connection, POST the inference route; the rate
counts from the first request to the last success (bench.http.echo_throughput).

    python -m bench.jobs [--jobs 2000] [--workers N] [--database URL]

Prints jobs per second, the starting request's p50/p99, created -> completed p50/p99 and the
CPU each job cost `pie serve` and the client (bench.cpu)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import cpu
from bench.http import (
    HANDLERS,
    ROOT,
    SECRET,
    Http,
    echo_throughput,
    free_port,
    shielded,
    start,
    stop,
    wait_healthy,
)

WARM_UP = 200


def echo(url: str | None = None, workers: int | None = None, jobs: int = 2000) -> dict[str, Any]:
    """echo_throughput's figures (seconds) on the database at `url` (None: a new SQLite
    file), after WARM_UP jobs that are not counted."""
    folder = Path(tempfile.mkdtemp(prefix="pie-bench-jobs-"))
    port = free_port()
    database = url or f"sqlite:///{folder}/pie.sqlite"
    env = {"PIE_DATABASE_URL": database, "PIE_JWT_SECRET": SECRET, "PIE_INSTANCE_PATH": str(folder)}
    command = [sys.executable, "-m", "pie", "serve", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    server = start(command, env, folder / "pie.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health")
        sys.path.insert(0, str(ROOT))
        from pie.auth import TokenVerifier

        token = TokenVerifier(SECRET).mint({"sub": "bench", "scope": "streamline/admin"}, 7200)
        api = Http(f"http://127.0.0.1:{port}", token)
        model = {"id": "m", "name": "m", "description": "", "handlers": HANDLERS}
        assert api.call("POST", "/v2/models", model)[0] == 201
        api.call("POST", "/v2/models/m/versions/1/new_status", {"status": "active"})
        echo_throughput(api, database, WARM_UP)
        window = cpu.Window({"pie serve": [server.pid], "client": [os.getpid()]})
        result = echo_throughput(api, database, jobs)
        return {**result, "cpu_ms": window.per_job(jobs)}
    finally:
        with shielded():
            stop([server])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, help="pie serve's worker processes")
    parser.add_argument("--database", help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    result = echo(args.database, args.workers, args.jobs)
    print(
        f"in-process echo jobs: {result['rate']:.0f} jobs/s; starting request p50 "
        f"{result['request_p50'] * 1000:.1f} / p99 {result['request_p99'] * 1000:.1f} ms; "
        f"created -> completed p50 {result['job_p50'] * 1000:.0f} / "
        f"p99 {result['job_p99'] * 1000:.0f} ms; CPU per job {cpu.described(result['cpu_ms'])}"
    )


if __name__ == "__main__":
    main()
