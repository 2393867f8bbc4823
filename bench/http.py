"""PIE against the ceiling, over real HTTP, in one run.

    python -m bench.http [--duration 3] [--connections 8] [--rounds 5] [--workers 2]
                         [--database postgresql://...]

Starts `pie serve` (SQLite unless --database, 2 worker processes unless --workers) and a
bare Flask + peewee + SQLite app on the same WSGI server (bench/bare_app.py; SQLite whatever
PIE's database: the ceiling), and the same insert on flask-smorest + marshmallow
(bench/floor_app.py: the framework's floor for a write, measured like PIE's figures, for
information), both on gunicorn's threaded worker with `pie serve`'s connection balancing
(bench/gunicorn_balanced.py), drives them with wrk (Debian package `wrk`) and prints each
figure with its ratio to the bare read or insert, and p50/p99 latency; then in-process echo
jobs end to end and fan-out per subscription. `measure` returns the same figures."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789"
HANDLERS = {
    "training": {"type": "in_process", "value": "echo"},
    "inference": {"type": "in_process", "value": "echo"},
}
FLOOR = "POST floor insert (flask-smorest)"
EXTERNAL = {"type": "bench_external"}  # not loaded: its jobs stay pending for callbacks


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Http:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return (
                    response.status,
                    json.loads(response.read() or b"null"),
                    dict(response.headers),
                )
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


class KeepAlive:
    """A client for many threads, each on its own persistent connection (HTTP/1.1
    keep-alive, as wrk's and any real client's): the submitting side of the job figures."""

    def __init__(self, base: str, token: str) -> None:
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.local = threading.local()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else None
        for attempt in range(2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.local.connection = connection
            try:
                connection.request(method, path, data, self.headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt:
                    raise
                continue  # the server closed an idle connection: once on a new one
            if response.will_close:
                connection.close()
                self.local.connection = None
            return response.status, json.loads(answer or b"null")
        raise AssertionError("unreachable")


def wrk(
    url: str, args: argparse.Namespace, script: str | None = None, token: str | None = None
) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if script:
        handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        handle.write(script)
        handle.close()
        command += ["-s", handle.name]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency(out, "50%"),
        "p99": latency(out, "99%"),
        "non2xx": int(bad.group(1)) if bad else 0,
    }


def latency(out: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def post_script(body: dict, path_format: str | None = None) -> str:
    """A wrk script POSTing `body`; with `path_format`, each request gets its own path
    (`%d-%d`: wrk thread, request number) so every request does real work."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = '{json.dumps(body)}'",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if path_format:
        lines += [
            "local next_id = 0",
            "function setup(thread) thread:set('tid', next_id); next_id = next_id + 1 end",
            "local n = 0",
            "function request()",
            "  n = n + 1",
            f'  return wrk.format(nil, string.format("{path_format}", tid, n))',
            "end",
        ]
    return "\n".join(lines) + "\n"


def seed_database(url: str, threads: int, per_thread: int, rounds: int) -> None:
    """Rows the write benchmarks consume: pending versions and pending external jobs."""
    from pie.db import database, open_database
    from pie.tables import Job, ModelVersion, RegisteredModel, utcnow

    database.initialize(open_database(url))
    now = utcnow()
    with database.connection_context():
        model = RegisteredModel.get(RegisteredModel.id == "m")
        versions, jobs = [], []
        for tid, n, r in itertools.product(range(threads), range(1, per_thread + 1), range(rounds)):
            # one pending version and one pending job per (wrk thread, request, round)
            versions.append(
                {
                    "model": model.id,
                    "version": f"b{r}-{tid}-{n}",
                    "metadata": {},
                    "status": "pending",
                    "handlers": HANDLERS,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            jobs.append(
                {
                    "job_id": f"cb{r}-{tid}-{n}",
                    "job_type": "inference",
                    "model_id": "m",
                    "model_version": "1",
                    "status": "pending",
                    "input": {},
                    "warnings": [],
                    "handler_type": "bench_external",
                    "handler": EXTERNAL,
                    "created_at": now,
                }
            )
        with database.atomic():
            for start in range(0, len(versions), 500):
                ModelVersion.insert_many(versions[start : start + 500]).execute()
                Job.insert_many(jobs[start : start + 500]).execute()
        if url.startswith("sqlite"):
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # as a settled server has
    database.close_all()


def seed_subscriptions(url: str, source: str, count: int) -> None:
    from pie.db import database, open_database
    from pie.ids import uuid7
    from pie.tables import Subscription, utcnow

    database.initialize(open_database(url))
    now = utcnow()
    rows = [
        {
            "id": uuid7(),
            "source_model_id": source,
            "trigger_event": "training_complete",
            "target_model_id": "m",
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
    with database.connection_context(), database.atomic():
        for start in range(0, count, 500):
            Subscription.insert_many(rows[start : start + 500]).execute()
    database.close_all()


def successes(api: Http) -> int:
    _, _, headers = api.call("GET", "/v2/models/m/versions/1/jobs?status=success&page_size=1")
    return json.loads(headers["X-Pagination"])["total"]


def settle(api: Http, target: int, timeout: float = 120) -> None:
    """Wait until `target` jobs of m/1 have succeeded: the previous step's jobs are done."""
    deadline = time.monotonic() + timeout
    while successes(api) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs did not finish within {timeout} s")
        time.sleep(0.05)


def fan_out(api: Http, url: str, size: int, repeats: int = 5) -> list[float]:
    """Seconds of each of `repeats` training → active transitions with `size` subscriptions,
    each timed once the jobs the previous one started have run (so that they don't compete).
    The transitions go over one persistent connection (opened by the first call), as any
    real client's would: a new connection per request (urllib) cost the timed request about
    2 ms of connecting and urllib's set-up that are neither PIE's nor per subscription."""
    client = KeepAlive(api.base, api.token)
    source = f"src{size}"
    api.call(
        "POST",
        "/v2/models",
        {"id": source, "name": source, "description": "", "handlers": HANDLERS},
    )
    seed_subscriptions(url, source, size)
    times = []
    for repeat in range(repeats):
        version = str(repeat + 2)
        api.call("POST", f"/v2/models/{source}/new_version", {"version": version})
        path = f"/v2/models/{source}/versions/{version}/new_status"
        assert client.call("POST", path, {"status": "training"})[0] == 200
        before = successes(api)
        start = time.perf_counter()
        status, body = client.call("POST", path, {"status": "active"})
        times.append(time.perf_counter() - start)
        assert status == 200 and len(body["triggered_events"]) == size, (status, body)
        settle(api, before + size)
    return sorted(times)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def stored_times(url: str, job_ids: list[str]) -> tuple[list[float], float]:
    """Each job's created → completed seconds, and the last completion as a Unix time, as
    the database at `url` stored them: a rate ends there, not when a client's poll noticed
    it (bare Celery's ends at its last result's stored date_done alike)."""
    from pie.db import database, open_database
    from pie.tables import Job

    database.initialize(open_database(url))
    with database.connection_context():
        rows = list(Job.select(Job.created_at, Job.completed_at).where(Job.job_id.in_(job_ids)))
    database.close_all()
    ends = [(row.completed_at - row.created_at).total_seconds() for row in rows]
    return ends, max(row.completed_at for row in rows).replace(tzinfo=UTC).timestamp()


def echo_throughput(api: Http, url: str, jobs: int = 1000) -> dict[str, float]:
    """In-process echo jobs per second, submitted by 8 threads on a connection each, from
    the first request to the last success (its stored completed_at; `observed_rate` to
    when the client's poll saw it); p50/p99 of the starting request (client side) and of
    each job's creation → completion (its stored times)."""
    before = successes(api)
    requests: list[float] = []
    client = KeepAlive(api.base, api.token)

    def start_one(n: int) -> str:
        began = time.perf_counter()
        status, body = client.call("POST", "/v2/models/m/versions/1/inference", {"input": {"n": n}})
        requests.append(time.perf_counter() - began)
        assert status == 202, (status, body)
        return body["inference_job_id"]

    start, start_wall = time.perf_counter(), time.time()
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(start_one, range(jobs)))
    settle(api, before + jobs)
    observed = jobs / (time.perf_counter() - start)
    ends, last = stored_times(url, job_ids)
    return {
        "rate": jobs / (last - start_wall),
        "observed_rate": observed,
        "request_p50": percentile(requests, 0.5),
        "request_p99": percentile(requests, 0.99),
        "job_p50": percentile(ends, 0.5),
        "job_p99": percentile(ends, 0.99),
    }


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Clean-up that Ctrl-C or SIGTERM cannot cut short: one arriving meanwhile is held back
    and raised again once it ends. (The main thread only, as any signal handling.)"""
    caught: list[int] = []
    previous = {
        number: signal.signal(number, lambda signum, frame: caught.append(signum))
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            if handler is not None:
                signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def stop(processes: list[subprocess.Popen]) -> None:
    """End each process's whole group (servers and workers fork children): SIGTERM, SIGKILL
    for what is left after 20 s."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
        process.wait()


def measure(
    url: str | None = None,
    workers: int = 2,
    *,
    duration: int = 3,
    connections: int = 8,
    threads: int = 2,
    rounds: int = 5,
    echo_jobs: int = 1000,
    fanout_sizes: tuple[int, ...] = (100, 1000),
) -> dict[str, Any]:
    """Every figure of `pie serve --workers {workers}` on the database at `url` (None: a new
    SQLite file), each HTTP figure beside the bare app's (always SQLite, 2 gunicorn workers);
    `echo_jobs` 0 leaves the echo figure out. Returns {"figures": {name: {rps, ceiling, ratio,
    p50, p99, non2xx, low, high}}, "echo": echo_throughput's or None, "fanout": {size: {median,
    fastest, slowest, repeats}}} (times in seconds but wrk's p50/p99, in ms)."""
    args = argparse.Namespace(
        duration=duration, connections=connections, threads=threads, rounds=rounds
    )
    folder = Path(tempfile.mkdtemp(prefix="pie-bench-"))
    pie_port, bare_port = free_port(), free_port()
    pie_url = url or f"sqlite:///{folder}/pie.sqlite"
    pie_env = {
        "PIE_DATABASE_URL": pie_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(folder),
        "PIE_EMBEDDED_WORKER": "0",
    }
    floor_port = free_port()
    bare_env = {"BARE_DB": str(folder / "bare.sqlite")}
    floor_env = {"BARE_DB": str(folder / "floor.sqlite")}
    for env in (bare_env, floor_env):
        subprocess.run(
            [sys.executable, "-c", "from bench.bare_app import setup; setup()"],
            env={**os.environ, **env},
            cwd=ROOT,
            check=True,
        )
    serve = [sys.executable, "-m", "pie", "serve", "--port", str(pie_port)]
    servers = [start(serve + ["--workers", str(workers)], pie_env, folder / "pie.log")]
    for app, port, env in (
        ("bench.bare_app:app", bare_port, bare_env),
        ("bench.floor_app:app", floor_port, floor_env),
    ):
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:bench.gunicorn_balanced"]
        gunicorn += ["-w", "2", "--threads", "4", "-b", f"127.0.0.1:{port}", app]
        servers.append(start(gunicorn, env, folder / f"{app.split(':')[0]}.log"))
    try:
        pie, bare = f"http://127.0.0.1:{pie_port}", f"http://127.0.0.1:{bare_port}"
        floor = f"http://127.0.0.1:{floor_port}"
        wait_healthy(f"{pie}/v2/health")
        wait_healthy(f"{bare}/items/item-1")
        wait_healthy(f"{floor}/health")
        sys.path.insert(0, str(ROOT))
        from pie.auth import TokenVerifier

        token = TokenVerifier(SECRET).mint({"sub": "bench", "scope": "streamline/admin"}, 7200)
        api = Http(pie, token)
        api.call(
            "POST", "/v2/models", {"id": "m", "name": "m", "description": "", "handlers": HANDLERS}
        )
        api.call("POST", "/v2/models/m/versions/1/new_status", {"status": "active"})
        _, started, _ = api.call("POST", "/v2/models/m/versions/1/inference", {"input": {"a": 1}})
        job_id = started["inference_job_id"]
        # Rows enough for 5,000 writes a second per wrk thread
        seed_database(pie_url, args.threads, 5_000 * args.duration, args.rounds)

        ceilings = {
            "read": lambda: wrk(f"{bare}/items/item-1", args),
            "insert": lambda: wrk(
                f"{bare}/items", args, post_script({"name": "x", "body": {"a": 1}})
            ),
        }
        figures = [
            (  # the framework's floor for a write (bench/floor_app.py), for information
                FLOOR,
                "insert",
                lambda r: wrk(f"{floor}/items", args, post_script({"name": "x", "body": {"a": 1}})),
            ),
            ("GET /v2/models/{id}", "read", lambda r: wrk(f"{pie}/v2/models/m", args, token=token)),
            (
                "GET /v2/jobs/{id}",
                "read",
                lambda r: wrk(f"{pie}/v2/jobs/{job_id}", args, token=token),
            ),
            (
                "POST new_version",
                "insert",
                lambda r: wrk(f"{pie}/v2/models/m/new_version", args, post_script({}), token=token),
            ),
            (
                "POST new_status (0 subs)",
                "insert",
                lambda r: wrk(
                    pie,
                    args,
                    post_script(
                        {"status": "training"}, f"/v2/models/m/versions/b{r}-%d-%d/new_status"
                    ),
                    token=token,
                ),
            ),
            (
                "POST complete (callback)",
                "insert",
                lambda r: wrk(
                    pie,
                    args,
                    post_script(
                        {"status": "success", "output": {"ok": True}},
                        f"/v2/models/m/versions/1/jobs/cb{r}-%d-%d/complete",
                    ),
                    token=token,
                ),
            ),
        ]
        # Warm-up, discarded: a server's first seconds under load (files growing, caches
        # filling) are slower, and would otherwise land on whichever figure comes first.
        warm = argparse.Namespace(**{**vars(args), "duration": 2})
        wrk(f"{bare}/items/item-1", warm)
        wrk(f"{bare}/items", warm, post_script({"name": "x", "body": {"a": 1}}))
        wrk(f"{pie}/v2/models/m", warm, token=token)
        wrk(f"{pie}/v2/models/m/new_version", warm, post_script({}), token=token)
        result: dict[str, Any] = {"figures": {}, "echo": None, "fanout": {}}
        for name, kind, run in figures:
            rounds = []
            for round_no in range(args.rounds):
                # Adjacent in time, so that the machine's noise hits both alike; the order
                # alternates, so that a drift favours neither.
                if round_no % 2:
                    figure, ceiling = run(round_no), ceilings[kind]()
                else:
                    ceiling, figure = ceilings[kind](), run(round_no)
                rounds.append((figure["rps"] / ceiling["rps"], figure, ceiling))
            rounds.sort(key=lambda r: r[0])
            ratio, figure, ceiling = rounds[len(rounds) // 2]
            result["figures"][name] = {
                **figure,
                "kind": kind,
                "ceiling": ceiling["rps"],
                "ratio": ratio,
                "low": rounds[0][0],
                "high": rounds[-1][0],
            }
        if echo_jobs:
            result["echo"] = echo_throughput(api, pie_url, echo_jobs)
        for size in fanout_sizes:
            times = fan_out(api, pie_url, size)
            result["fanout"][size] = {
                "median": times[len(times) // 2],
                "fastest": times[0],
                "slowest": times[-1],
                "repeats": len(times),
            }
        return result
    finally:
        with shielded():
            stop(servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="`pie serve` worker processes")
    parser.add_argument("--database", help="PIE's database URL (default: a new SQLite file)")
    args = parser.parse_args()
    result = measure(
        args.database,
        args.workers,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
    )
    print(
        f"{'figure':<28}{'req/s':>9}{'ceiling':>9}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-2xx':>8}{'ratio range':>14}   (medians of {args.rounds} rounds, "
        "each beside its ceiling)"
    )
    for name, figure in result["figures"].items():
        print(
            f"{name:<28}{figure['rps']:>9.0f}{figure['ceiling']:>9.0f}{figure['ratio']:>7.2f}"
            f"{figure['p50']:>8.2f}{figure['p99']:>8.2f}{figure['non2xx']:>8}"
            f"{figure['low']:>8.2f}–{figure['high']:.2f}"
        )
    echo = result["echo"]
    print(
        f"in-process echo jobs end to end: {echo['rate']:.0f} jobs/s; starting request "
        f"p50 {echo['request_p50'] * 1000:.2f} ms, p99 {echo['request_p99'] * 1000:.2f} ms; "
        f"created -> completed p50 {echo['job_p50'] * 1000:.0f} ms, "
        f"p99 {echo['job_p99'] * 1000:.0f} ms"
    )
    for size, times in result["fanout"].items():
        median = times["median"]
        print(
            f"training -> active with {size} subscriptions: {median * 1000:.0f} ms, "
            f"{median / size * 1000:.3f} ms per subscription (median of {times['repeats']}; "
            f"fastest {times['fastest'] * 1000:.0f} ms, slowest {times['slowest'] * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main()
