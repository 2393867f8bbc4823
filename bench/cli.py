"""Start-up time of the `pie` command: `pie --help`, `pie --version` and `pie token --admin`,
each a fresh process, against the 0.5 s ceiling and against the bare interpreter
(`python -c pass`) timed in the same run, in alternating order.

    python -m bench.cli [--runs 30]

Prints, per command, the median and slowest wall time, the median as a share of the ceiling
and as a multiple of the bare interpreter's median."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CEILING = 0.5
PIE = str(Path(sys.executable).with_name("pie"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "pie --help": [PIE, "--help"],
    "pie --version": [PIE, "--version"],
    "pie token --admin": [PIE, "token", "--admin"],
}


def wall(command: list[str], cwd: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "PIE_INSTANCE_PATH": os.path.join(folder, "instance"),
            "PIE_JWT_SECRET": "bench-" + "s" * 42,
        }
        times = time_commands(COMMANDS, args.runs, folder, env)
        created = os.listdir(folder)
    report(times, f"{args.runs} runs each; files created: {created or 'none'}", CEILING)


def time_commands(
    commands: dict[str, list[str]], runs: int, folder: str, env: dict[str, str]
) -> dict[str, list[float]]:
    """Wall times of each command, `runs` times, in alternating order after one warm-up."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # warm the page cache once
        wall(command, folder, env)
    for run in range(runs):
        order = list(commands.items())
        for name, command in order if run % 2 == 0 else reversed(order):
            times[name].append(wall(command, folder, env))
    return times


def report(times: dict[str, list[float]], heading: str, ceiling: float) -> None:
    """Median and slowest per command, against the ceiling and `python -c pass`."""
    bare = statistics.median(times["python -c pass"])
    width = max(len(name) for name in times) + 2
    print(f"{heading}; ceiling {ceiling:.2f} s")
    print(f"{'command':<{width}} {'median':>8} {'slowest':>8} {'/ceiling':>9} {'x bare':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{name:<{width}} {median * 1000:6.0f}ms {max(samples) * 1000:6.0f}ms"
            f" {median / ceiling:9.2f} {median / bare:7.1f}"
        )


if __name__ == "__main__":
    main()
