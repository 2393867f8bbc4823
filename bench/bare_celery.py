"""Bare Celery + Redis echo tasks per second, the peer of PIE's echo jobs: one
`celery -A bench.bare_celery_tasks worker -c 2` (prefork: 2 processes) on its own queue; 8
client threads submit the tasks with apply_async, then every result is fetched (`.get()`).

    python -m bench.bare_celery [--tasks 2000] [--broker redis://127.0.0.1:6379/13]

Prints tasks per second, from the first submit to the last result's date_done as the result
backend recorded it (PIE's echo figure ends at its last stored completion alike), after 20
warm-up tasks, and the CPU each task cost the worker (its consumer and its pool), the broker
and the client (bench.cpu). The worker is ended, the queue deleted and the results
forgotten afterwards."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench import cpu
from bench.http import free_port, shielded, start, stop

BROKER = "redis://127.0.0.1:6379/13"


def stamp(moment: datetime | str) -> float:
    """A result's date_done (UTC, naive or aware, or its ISO text) as a Unix time."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def measure(
    tasks: int = 2000, broker: str = BROKER, backend: str | None = None, concurrency: int = 2
) -> dict[str, float]:
    """{rate: tasks/s, seconds, cpu_ms: bench.cpu's milliseconds of CPU per task by role} of
    `tasks` echo tasks; results in `backend` (default: the broker's Redis database)."""
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
        window = cpu.Window(
            {
                **cpu.celery_roles([worker.pid]),
                "broker": cpu.broker_processes(broker),
                "client": [os.getpid()],
            }
        )
        began, began_wall = time.perf_counter(), time.time()
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda n: echo.apply_async(({"n": n},), queue=queue), range(tasks))
            )
        for result in results:
            result.get(timeout=120)
        spent = window.per_job(tasks)
        observed = time.perf_counter() - began
        # To the last result as the backend recorded it (PIE's figure ends at its last
        # stored completion alike), not when this client got round to reading it.
        last = max(stamp(result.date_done) for result in results)
        seconds = last - began_wall
        return {
            "rate": tasks / seconds,
            "seconds": seconds,
            "observed_rate": tasks / observed,
            "cpu_ms": spent,
        }
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
    print(
        f"bare celery echo: {args.tasks} tasks, {figures['rate']:.0f} tasks/s; CPU per task "
        + cpu.described(figures["cpu_ms"])
    )


if __name__ == "__main__":
    main()
