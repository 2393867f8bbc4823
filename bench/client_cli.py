"""Start-up time of the client verbs of `pie`: help, and a JSON result from a local `pie serve`
(`pie models get M -o json`, `pie jobs get J -o json`), each a fresh process, against the
0.3 s ceiling of issue 18 and the bare interpreter (`python -c pass`) timed in the same run,
in alternating order.

    python -m bench.client_cli [--runs 30]

Prints, per command, the median and slowest wall time, the median as a share of the ceiling
and as a multiple of the bare interpreter's median."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.cli import report, time_commands

CEILING = 0.3
PIE = str(Path(sys.executable).with_name("pie"))
ECHO = {"type": "in_process", "value": "echo"}


def commands(model_id: str, job_id: str) -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "pie --help": [PIE, "--help"],
        "pie models --help": [PIE, "models", "--help"],
        "pie models get -o json": [PIE, "models", "get", model_id, "-o", "json"],
        "pie jobs get -o json": [PIE, "jobs", "get", job_id, "-o", "json"],
        "python -m pie_client --help": [sys.executable, "-m", "pie_client", "--help"],
    }


def serve(folder: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A `pie serve` on a free port with one model and one finished job."""
    from pie_client import Client

    from tests.server import free_port

    port = free_port()
    server = subprocess.Popen(
        [PIE, "serve", "--port", str(port), "--workers", "1"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    token = subprocess.run(
        [PIE, "token", "--admin"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    client = Client(url, token, retries=50, backoff=0.1)
    client.health()  # retried until the server answers
    client.models.create(
        id="bench", name="bench", description="", handlers={"training": ECHO, "inference": ECHO}
    )
    client.versions.set_status("bench", "1", "active")
    job = client.jobs.run("bench", {"text": "hello"}, wait=True, timeout=30)
    env.update(PIE_URL=url, PIE_TOKEN=token)
    return server, job.job_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "PIE_INSTANCE_PATH": os.path.join(folder, "instance"),
            "PIE_JWT_SECRET": "bench-" + "s" * 42,
            "PIE_CONFIG": os.path.join(folder, "config.json"),
        }
        server, job_id = serve(folder, env)
        try:
            times = time_commands(commands("bench", job_id), args.runs, folder, env)
        finally:
            server.terminate()
            server.wait(30)
    report(times, f"{args.runs} runs each", CEILING)


if __name__ == "__main__":
    main()
