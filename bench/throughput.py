"""Every throughput figure of issue 20 in one run, each with its peer, ratio, target and
PASS/FAIL.

    python -m bench.throughput [--quick] [--postgres URL] [--scale-jobs 1000000]
                               [--json PATH] [--duration 3] [--rounds 3] [--jobs 2000]
                               [--job-rounds 3]

In this order:
1. the job figures: bare Celery + Redis echo tasks (bench.bare_celery: one prefork worker
   of 2 processes, Celery's default of one per core), the peer; PIE's in-process echo jobs
   end to end (bench.jobs, `pie serve` at its default worker processes, one per core plus
   one) on SQLite, target >= 1.0 of the peer and created -> completed p99 <= 50 ms, and on
   Postgres for information; and PIE's `celery` handler type end to end (bench.celery, the
   peer's worker shape, `pie serve` at its default), target >= 0.7 of the peer. Bare
   Celery, the echo jobs and the celery type run in --job-rounds rounds, each round's three
   adjacent in time and their order turning; each of PIE's figures counts in the round of
   its median ratio (one pair on this machine varied 0.76-0.91 between runs). Then, for
   information, the CPU each job cost (bench.cpu): bare Celery's processes, `pie serve` and
   the rest for an echo job and for a celery job, and what `pie serve` may use per celery
   job for the 0.7 target (bare Celery's CPU per task / 0.7, less what the celery job's
   workers, broker and client use), beside what it used for an echo job in the same round;
2. bench.http's figures against `pie serve` with 1 and with 2 worker processes, on SQLite
   and on Postgres (a schema of its own, dropped afterwards): the reads (target >= 0.85 of
   the bare read), the writes (>= 0.8 of the bare insert) and fan-out per subscription at
   100 and 1,000 subscriptions (<= 0.2 ms); the bare app (bench/bare_app.py) runs on SQLite
   with 2 gunicorn workers in every case: the ceiling for all rows. With 2 workers, also
   the echo jobs (after the HTTP figures, on their grown database), for information;
3. bench.scale's reads at 1,000 rows and after growing to --scale-jobs jobs (and a tenth as
   many models), target large/small <= 1.5;
4. for information, the write routes in instructions per request (bench.instructions, with
   valgrind), beside the bare insert and the framework's floor: the same insert on
   flask-smorest and marshmallow alone (bench/floor_app.py).

Prints one line per figure (name, value, unit, peer, ratio, target, PASS/FAIL), then the
run's wall time; --json writes the same rows (and the raw figures) so that two runs can be
compared. A measurement that fails is a FAIL row with its error; the others still run.
Every process started is ended, also on errors and Ctrl-C, and the Celery queues deleted.

Bare Celery gets as many tasks as PIE jobs (--jobs, 2,000 by default). On the
2-core development machine (2026-11-30, with another benchmark running beside it) growing
to 1,000,000 jobs took 127 s and the whole default run 12 min (Celery 13 s, each HTTP
configuration 2-3 min, scale 2.3 min); --quick (1 s wrk runs, 1 round, 300 jobs, 20,000
jobs for scale) took 2.7 min."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import bare_celery, celery, http, instructions, jobs, scale
from bench.targets import failed, figure, table

READS = {"GET /v2/models/{id}", "GET /v2/jobs/{id}"}


def rounds_of(rounds: int, peer: Callable[[], dict], mine: dict[str, Callable[[], dict]]) -> dict:
    """`rounds` rounds, each measuring the peer and every figure of `mine` adjacent in time
    (so that the machine's noise hits them alike), the order turning from round to round (so
    that a drift favours none). For each figure of `mine`: the round of its median ratio to
    that round's peer ({"figure", "peer", "ratios"}, the lower middle of an even number: a
    drift never rounds it up); and "rounds": every round's figures, the peer's as "peer"."""
    names = ["peer", *mine]
    measure = {"peer": peer, **mine}
    measured = []
    for number in range(rounds):
        turn = number % len(names)
        measured.append({name: measure[name]() for name in names[turn:] + names[:turn]})
    result: dict[str, Any] = {"rounds": measured}
    for name in mine:
        ranked = sorted(measured, key=lambda one: one[name]["rate"] / one["peer"]["rate"])
        middle = ranked[(len(ranked) - 1) // 2]
        result[name] = {
            "figure": middle[name],
            "peer": middle["peer"],
            "ratios": [one[name]["rate"] / one["peer"]["rate"] for one in ranked],
        }
    return result


def paired_rounds(rounds: int, peer: Callable[[], dict], mine: Callable[[], dict]) -> dict:
    """rounds_of with one figure: {"mine", "peer", "ratios"} of its median pair."""
    median = rounds_of(rounds, peer, {"mine": mine})["mine"]
    return {"mine": median["figure"], "peer": median["peer"], "ratios": median["ratios"]}


def job_rows(args: argparse.Namespace, raw: dict) -> list[dict]:
    """The job figures, each against `pie serve` at its default worker processes (one per
    core plus one) and bare Celery at its own default (one process per core). Bare Celery,
    PIE's echo jobs and PIE's celery type run --job-rounds times, adjacent in time and in a
    turning order; each of PIE's figures counts in the round of its median ratio."""
    measured = raw["job_rounds"] = rounds_of(
        args.job_rounds,
        lambda: bare_celery.measure(args.jobs),
        {
            "echo": lambda: jobs.echo(None, None, args.jobs),
            "celery": lambda: celery.measure(args.jobs, 1, 2, pool="prefork", pie_workers=None),
        },
    )
    bare, echo = raw["bare_celery"], raw["echo"] = (
        measured["echo"]["peer"],
        measured["echo"]["figure"],
    )
    rows = [figure("bare Celery+Redis echo, 2 procs", bare["rate"], "tasks/s")]
    ratios = measured["echo"]["ratios"]
    rows += [
        figure(
            f"PIE echo jobs [SQLite, default] (median of {args.job_rounds} rounds, "
            f"ratios {ratios[0]:.2f}-{ratios[-1]:.2f})",
            echo["rate"],
            "jobs/s",
            bare["rate"],
            ratio_at_least=1.0,
        ),
        figure(
            "PIE echo created -> completed p99 [SQLite, default]",
            echo["job_p99"] * 1000,
            "ms",
            at_most=50,
        ),
        figure("PIE echo created -> completed p50 [SQLite, default]", echo["job_p50"] * 1000, "ms"),
    ]
    if args.postgres:
        from pie.testing import drop_postgres_schema, postgres_schema_url

        schema = f"pie_bench_{os.getpid()}_jobs"
        try:
            on_postgres = raw["echo_postgres"] = jobs.echo(
                postgres_schema_url(args.postgres, schema), None, args.jobs
            )
        finally:
            with http.shielded():
                drop_postgres_schema(args.postgres, schema)
        rows += [
            figure(
                "PIE echo jobs [Postgres, default]", on_postgres["rate"], "jobs/s", bare["rate"]
            ),
            figure(
                "PIE echo created -> completed p99 [Postgres, default]",
                on_postgres["job_p99"] * 1000,
                "ms",
            ),
        ]
    handler = raw["celery"] = measured["celery"]["figure"]
    its_peer = measured["celery"]["peer"]
    ratios = measured["celery"]["ratios"]
    rows += [
        figure(
            f"PIE celery handler [SQLite, default] (median of {args.job_rounds} rounds, "
            f"ratios {ratios[0]:.2f}-{ratios[-1]:.2f})",
            handler["rate"],
            "jobs/s",
            its_peer["rate"],
            ratio_at_least=0.7,
        ),
        figure(
            "PIE celery created -> completed p99 [SQLite, default]",
            handler["job_p99"] * 1000,
            "ms",
        ),
    ]
    return rows + cpu_rows(measured["rounds"])


def celery_budget(one: dict, cost_free: tuple[str, ...] = ()) -> float:
    """What `pie serve` may use per celery job, in one round's CPU figures (bench.cpu), for
    the celery type to reach 0.7 x bare Celery: the machine gives a round's jobs the CPU it
    gives bare Celery's tasks, so all processes together may use bare Celery's CPU per task
    / 0.7; less what the celery job's other processes use (but the roles in `cost_free`)."""
    spent = one["celery"]["cpu_ms"]
    others = spent["total"] - spent["pie serve"] - sum(spent[role] for role in cost_free)
    return one["peer"]["cpu_ms"]["total"] / 0.7 - others


def cpu_rows(rounds: list[dict]) -> list[dict]:
    """Where the job figures' CPU goes (bench.cpu, ms per job), for information, in the round
    of the median budget ratio. Every process shares the machine's cores, so a rate is
    bound by the CPU per job of all of them. pie serve's budget for the celery type's 0.7
    (celery_budget) is given twice: less all the celery job's other processes, and as if
    the worker's pool (where pie.celery.pie_task's callback runs: PIE's code) cost nothing.
    Its peer is what `pie serve` used for an in-process echo job in the same round, which
    does less (no publish, no callback request, one write fewer); the row names the range
    of that ratio over the rounds."""

    def ratio(one: dict, cost_free: tuple[str, ...] = ()) -> float:
        return celery_budget(one, cost_free) / one["echo"]["cpu_ms"]["pie serve"]

    ranked = sorted(rounds, key=ratio)
    one = ranked[(len(ranked) - 1) // 2]
    bare, echo, handler = (one[name]["cpu_ms"] for name in ("peer", "echo", "celery"))
    outside = handler["total"] - handler["pie serve"]
    strict = sorted(ratio(each) for each in rounds)
    lenient = sorted(ratio(each, ("celery pool",)) for each in rounds)
    return [
        figure("CPU per job: bare Celery, all processes", bare["total"], "ms"),
        figure("CPU per job: PIE echo, pie serve", echo["pie serve"], "ms"),
        figure("CPU per job: PIE echo, all processes", echo["total"], "ms", bare["total"]),
        figure("CPU per job: PIE celery, pie serve", handler["pie serve"], "ms"),
        figure("CPU per job: PIE celery, celery pool", handler["celery pool"], "ms"),
        figure("CPU per job: PIE celery, the rest", outside - handler["celery pool"], "ms"),
        figure(
            f"CPU per job: pie serve's budget for celery 0.7x "
            f"(ratios {strict[0]:.2f}-{strict[-1]:.2f})",
            celery_budget(one),
            "ms",
            echo["pie serve"],
        ),
        figure(
            f"CPU per job: the same if the pool cost nothing "
            f"(ratios {lenient[0]:.2f}-{lenient[-1]:.2f})",
            celery_budget(one, ("celery pool",)),
            "ms",
            echo["pie serve"],
        ),
    ]


def http_rows(args: argparse.Namespace, raw: dict, database: str, workers: int) -> list[dict]:
    label = f"[{database}, {workers} proc{'s' if workers > 1 else ''}]"
    url, schema = None, f"pie_bench_{os.getpid()}_{workers}"
    if database == "Postgres":
        from pie.testing import postgres_schema_url

        url = postgres_schema_url(args.postgres, schema)
    try:
        result = raw[label] = http.measure(
            url,
            workers,
            duration=args.duration,
            rounds=args.rounds,
            echo_jobs=args.jobs if workers == 2 else 0,
        )
    finally:
        if url:
            from pie.testing import drop_postgres_schema

            with http.shielded():
                drop_postgres_schema(args.postgres, schema)
    rows = []
    for name, one in result["figures"].items():
        # The targets compare like with like: 2 processes each. With 1, the ratio to the
        # 2-process ceiling shows the scaling, for information.
        bound = (0.85 if name in READS else 0.8) if workers == 2 and name != http.FLOOR else None
        rows.append(
            figure(f"{name} {label}", one["rps"], "req/s", one["ceiling"], ratio_at_least=bound)
        )
    for size, times in result["fanout"].items():
        per = times["median"] / size * 1000
        rows.append(figure(f"fan-out per sub, {size} subs {label}", per, "ms", at_most=0.2))
    echo = result["echo"]
    if echo:  # for information: the targets are the job figures' (job_rows)
        peer = raw.get("bare_celery", {}).get("rate")
        rows += [
            figure(f"PIE echo jobs {label}", echo["rate"], "jobs/s", peer),
            figure(f"PIE echo created -> completed p99 {label}", echo["job_p99"] * 1000, "ms"),
            figure(f"PIE echo created -> completed p50 {label}", echo["job_p50"] * 1000, "ms"),
        ]
    return rows


def scale_rows(args: argparse.Namespace, raw: dict) -> list[dict]:
    models = max(1000, args.scale_jobs // 10)
    result = raw["scale"] = scale.measure(args.scale_jobs, models, args.scale_repeats)
    rows = [figure(f"scale: grow to {args.scale_jobs:,} jobs", result["grow_seconds"], "s")]
    for name, small in result["small"].items():
        rows.append(
            figure(
                f"scale: {name}, {args.scale_jobs:,} jobs",
                result["large"][name],
                "ms",
                small,
                ratio_at_most=1.5,
            )
        )
    return rows


def instruction_rows(args: argparse.Namespace, raw: dict) -> list[dict]:
    """The write routes in instructions per request (bench.instructions, in process, which
    noise cannot move), beside the framework's floor: the bare insert on flask-smorest and
    marshmallow alone (bench/floor_app.py). For information: the targets are bench.http's.
    As requests per 10^9 instructions, so that the ratio reads like a rate's."""
    if shutil.which("valgrind") is None:
        return [failed("instructions", RuntimeError("valgrind not found"))]
    routes = ["floor-insert", "version", "status", "complete"]
    counts = raw["instructions"] = instructions.counts(routes, args.instruction_requests)
    bare = 1e9 / counts["bare-insert"]
    names = {
        "floor-insert": "flask-smorest floor insert",
        "version": "POST new_version",
        "status": "POST new_status (0 subs)",
        "complete": "POST complete (callback)",
    }
    rows = [figure("in process: bare insert", bare, "req/Ginstr")]
    for route in routes:
        rows.append(figure(f"in process: {names[route]}", 1e9 / counts[route], "req/Ginstr", bare))
    return rows


def sections(args: argparse.Namespace) -> list[tuple[str, Callable[[dict], list[dict]]]]:
    parts = [("jobs", lambda raw: job_rows(args, raw))]
    databases = ["SQLite"] + (["Postgres"] if args.postgres else [])
    for database in databases:
        for workers in (1, 2):
            parts.append(
                (
                    f"HTTP {database} {workers}",
                    lambda raw, d=database, w=workers: http_rows(args, raw, d, w),
                )
            )
    parts.append(("scale", lambda raw: scale_rows(args, raw)))
    parts.append(("instructions", lambda raw: instruction_rows(args, raw)))
    return parts


def grouped(rows: list[dict]) -> list[dict]:
    """The rows of one figure (`name [database, processes]`) together, so that scaling per
    process and per database reads down the table; groups in the order they first came."""
    order: dict[str, int] = {}
    for row in rows:
        order.setdefault(row["name"].split(" [")[0], len(order))
    return sorted(rows, key=lambda row: order[row["name"].split(" [")[0]])


def interrupted(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so that every `finally` ends its processes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="Postgres for the HTTP figures ('' leaves them out)",
    )
    parser.add_argument("--scale-jobs", type=int, help="default 1,000,000 (--quick 20,000)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, help="wrk rounds per HTTP figure (default 3)")
    parser.add_argument(
        "--jobs", type=int, help="jobs (and bare Celery tasks) per job figure (default 2000)"
    )
    parser.add_argument(
        "--job-rounds",
        type=int,
        help="rounds of bare Celery, PIE echo jobs and the celery type (default 3; --quick 1)",
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    defaults = (
        (1, 1, 300, 20_000, 20, 1, 20) if args.quick else (3, 3, 2000, 1_000_000, 200, 3, 200)
    )
    for name, value in zip(
        (
            "duration",
            "rounds",
            "jobs",
            "scale_jobs",
            "scale_repeats",
            "job_rounds",
            "instruction_requests",
        ),
        defaults,
        strict=True,
    ):
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started ignoring it
    began = time.perf_counter()
    raw: dict[str, Any] = {}
    rows: list[dict] = []
    for name, run in sections(args):
        print(f"[{time.perf_counter() - began:6.0f} s] {name}", file=sys.stderr, flush=True)
        try:
            rows += run(raw)
        except Exception as error:
            traceback.print_exc()
            rows.append(failed(name, error))
    wall = time.perf_counter() - began
    rows = grouped(rows)
    print(table(rows))
    passed = sum(row["pass"] is True for row in rows)
    targets = sum(row["pass"] is not None for row in rows)
    print(
        f"{passed} of {targets} targets met; the bare app (the HTTP rows' peer) ran on SQLite "
        f"with 2 gunicorn workers in every case; wall time {wall:.0f} s ({wall / 60:.1f} min)"
    )
    if args.json:
        with open(args.json, "w") as handle:
            options = {k: v for k, v in vars(args).items() if k != "json"}
            json.dump(
                {"options": options, "wall_seconds": wall, "figures": rows, "raw": raw},
                handle,
                indent=2,
                default=str,
            )


if __name__ == "__main__":
    main()
