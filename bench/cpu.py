"""Where a benchmark's CPU goes: CPU time per process role over a measured window, read from
/proc (Linux), in milliseconds per job. The job figures run every process on the machine's
cores at once, so a rate is bound by the CPU each job costs all of them together; these
figures say which process pays it.

    window = Window({"pie serve": [server.pid], "client": [os.getpid()]})
    ...                                   # the measured jobs
    window.per_job(jobs)                  # {"pie serve": 2.8, "client": 0.5, "total": 3.3}

A role's processes are the given ones and their descendants when the window opens (gunicorn
workers, a prefork pool's children), each counted for one role only: the role with the
smallest tree that holds it. A process that exits inside the window, or starts inside it (a
worker replaced meanwhile), is left out, and a pid reused meanwhile is told apart by its
start time. The window runs from just before the first job to the last job's end as the
benchmark waits for it, a little longer than its rate's window. A job
figure's peer is measured alike, so the two totals are comparable."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

HERTZ = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or no /proc
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def descendants(roots: list[int]) -> set[int]:
    """`roots` and every process under them."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents[int(entry)] = int(fields[1])
    found = set(roots)
    grew = True
    while grew:
        grown = {pid for pid, parent in parents.items() if parent in found}
        grew = not grown <= found
        found |= grown
    return found


def named(name: str) -> list[int]:
    """The processes whose command name is `name` (e.g. the machine's redis-server)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == name:
                found.append(int(entry))
        except OSError:
            continue
    return found


def ticks(pid: int) -> int | None:
    """User plus system CPU of `pid` (all its threads) in clock ticks."""
    sample = _sample(pid)
    return None if sample is None else sample[0]


def _sample(pid: int) -> tuple[int, int] | None:
    """(CPU ticks, start time) of `pid`: the start time tells a reused pid apart."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12]), int(fields[19]))


class Window:
    """CPU per role from now until `per_job`."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        trees = {role: descendants(pids) for role, pids in roles.items()}
        # Each process counts once, for the role with the smallest tree that holds it: the
        # bench's own process (the client) started the servers and workers, which are roles
        # of their own.
        owner: dict[int, str] = {}
        for role, tree in sorted(trees.items(), key=lambda item: -len(item[1])):
            owner.update(dict.fromkeys(tree, role))
        self.start: dict[str, dict[int, tuple[int, int] | None]] = {role: {} for role in roles}
        for pid, role in owner.items():
            self.start[role][pid] = _sample(pid)

    def per_job(self, jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job for each role and in all ("total")."""
        spent: dict[str, float] = {}
        for role, before in self.start.items():
            used = 0
            for pid, began in before.items():
                now = _sample(pid)
                if began is not None and now is not None and now[1] == began[1]:
                    used += now[0] - began[0]
            spent[role] = used / HERTZ * 1000 / jobs
        spent["total"] = sum(spent.values())
        return spent


def celery_roles(workers: list[int]) -> dict[str, list[int]]:
    """`celery worker` processes as two roles: the consumer (the worker process: it takes
    messages off the broker and hands them to its pool) and the pool (its children, which run
    the tasks: for PIE's celery type, pie.celery.pie_task's callback too)."""
    children = sorted(descendants(workers) - set(workers))
    return {"celery consumer": list(workers), "celery pool": children}


def broker_processes(url: str) -> list[int]:
    """The broker processes on this machine that listen on the port of a Redis or RabbitMQ
    URL (by their command line; RabbitMQ's is not checked): none for a broker elsewhere."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return []
    if not url.startswith("redis"):
        return named("beam.smp")
    port = f":{parts.port or 6379}"
    found = []
    for pid in named("redis-server"):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if port in command:
            found.append(pid)
    return found


def described(spent: dict[str, float]) -> str:
    """`spent` (per_job's) as text: "2.80 ms (broker 0.31, client 1.16)"."""
    parts = ", ".join(f"{role} {ms:.2f}" for role, ms in spent.items() if role != "total")
    return f"{spent['total']:.2f} ms ({parts})"
