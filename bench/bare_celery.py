"""Bare Celery + Redis echo tasks per second, the peer of PIE's echo jobs: one
`celery -A bench.bare_celery_tasks worker -c 2` (prefork: 2 processes) on its own queue; 8
client threads submit the tasks with apply_async, then every result is fetched (`.get()`).

    python -m bench.bare_celery [--tasks 2000] [--broker redis://127.0.0.1:6379/13]

Prints tasks per second, first submit to last result, after 20 warm-up tasks. The worker is
ended, the queue deleted and the results forgotten afterwards."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.http import free_port, shielded, start, stop

BROKER = "redis://127.0.0.1:6379/13"


def measure(
    tasks: int = 2000, broker: str = BROKER, backend: str | None = None, concurrency: int = 2
) -> dict[str, float]:
    """{rate: tasks/s, seconds} of `tasks` echo tasks; results in `backend` (default: the
    broker's Redis database)."""
    from kombu import Connection

    from bench.bare_celery_tasks import app, echo

    backend = backend or broker
    app.conf.broker_url, app.conf.result_backend = broker, backend
    folder = Path(tempfile.mkdtemp(prefix="pie-bench-bare-celery-"))
    queue = f"bare-bench-{free_port()}"
    worker = start(
        [sys.executable, "-m", "celery", "-A", "bench.bare_celery_tasks", "worker"]
        + ["-Q", queue, "-c", str(concurrency), "-P", "prefork", "-n", f"{queue}@%h"]
        + "--loglevel WARNING --without-gossip --without-mingle --without-heartbeat".split(),
        {"PIE_BENCH_CELERY_BROKER": broker, "PIE_BENCH_CELERY_BACKEND": backend},
        folder / "worker.log",
    )
    warm, results = [], []
    try:
        for n in range(20):
            warm.append(echo.apply_async(({"warm": n},), queue=queue))
            warm[-1].get(timeout=60)
        began = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda n: echo.apply_async(({"n": n},), queue=queue), range(tasks))
            )
        for result in results:
            result.get(timeout=120)
        seconds = time.perf_counter() - began
        return {"rate": tasks / seconds, "seconds": seconds}
    finally:
        with shielded(), Connection(broker, connect_timeout=3) as connection:
            stop([worker])
            for result in warm + results:
                result.forget()
            connection.default_channel.queue_delete(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--broker", default=BROKER)
    parser.add_argument("--backend", help="result backend (default: the broker)")
    args = parser.parse_args()
    figures = measure(args.tasks, args.broker, args.backend)
    print(f"bare celery echo: {args.tasks} tasks, {figures['rate']:.0f} tasks/s")


if __name__ == "__main__":
    main()
