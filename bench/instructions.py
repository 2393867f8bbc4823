"""Instructions per request, counted by valgrind: a figure the machine's noise cannot move.

    python -m bench.instructions [--requests 200] [ROUTE ...]

Runs bench/inprocess.py for each route (default: all of PIE's and both ceilings) under
`valgrind --tool=callgrind` (Debian package `valgrind`), counts the instructions executed
inside the timed loop only, and prints them per request with each PIE route's ratio to its
bare ceiling (bare instructions / PIE instructions: higher is better, like bench.http's
ratios). In process: no HTTP server or kernel time, so this complements bench.http rather
than replacing it; use it to compare a change before and after."""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.inprocess import ROUTES

ROOT = Path(__file__).resolve().parent.parent
CEILING = {
    "get": "bare-read",
    "tenant-get": "bare-read",
    "job-get": "bare-read",
    "status": "bare-insert",
    "version": "bare-insert",
    "inference": "bare-insert",
    "complete": "bare-insert",
    "floor-insert": "bare-insert",
}


def instructions(route: str, requests: int) -> float:
    """Instructions per request in the timed loop: callgrind dumps its counts at each
    os.getppid() (`--mark`), so the second part is the loop alone."""
    folder = tempfile.mkdtemp(prefix="pie-callgrind-")
    try:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-before=os_getppid",
                f"--callgrind-out-file={folder}/cg",
                sys.executable,  # a virtual environment's python stays in its environment
                "-m",
                "bench.inprocess",
                route,
                "--requests",
                str(requests),
                "--mark",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
        )
        parts = sorted(glob.glob(f"{folder}/cg.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        if len(parts) < 2:
            raise RuntimeError(f"callgrind wrote no loop part for {route}: {parts}")
        text = Path(parts[1]).read_text()
        return int(re.search(r"^totals: (\d+)", text, re.M).group(1)) / requests
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def counts(routes: list[str], requests: int) -> dict[str, float]:
    """Instructions per request of each route and of each one's ceiling, in that order."""
    routes = list(routes)
    for route in list(routes):
        if route in CEILING and CEILING[route] not in routes:
            routes.append(CEILING[route])
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # counts don't depend on load
        measured = pool.map(lambda route: instructions(route, requests), routes)
        return dict(zip(routes, measured, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("routes", nargs="*", choices=[[], *ROUTES], default=[])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install valgrind")
    measured = counts(args.routes or ROUTES, args.requests)
    print(f"{'route':<14}{'instructions/request':>22}{'ratio':>8}  ceiling")
    for route, count in measured.items():
        ceiling = CEILING.get(route)
        ratio = f"{measured[ceiling] / count:8.2f}" if ceiling else " " * 8
        print(f"{route:<14}{count:>22,.0f}{ratio}  {ceiling or ''}")


if __name__ == "__main__":
    main()
