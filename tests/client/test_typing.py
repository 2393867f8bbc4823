"""mypy --strict passes on the client package (its typed results are what users check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"

USAGE = """
from pie_client import Client
from pie_client.types import Job, Model

client = Client("http://127.0.0.1:8000", "token")
model: Model = client.models.get("m")
version: str | None = model.latest_version
jobs: list[Job] = client.jobs.list(model_id="m").first(5)
progress: float | None = jobs[0].progress
wrong: int = model.name
"""


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, *args]
    return subprocess.run(command, cwd=CLIENT, capture_output=True, text=True, timeout=300)


def test_the_package_type_checks_strictly(tmp_path: Path) -> None:
    result = mypy("pie_client")
    assert result.returncode == 0, result.stdout + result.stderr


def test_results_are_typed_for_callers(tmp_path: Path) -> None:
    """A caller's mistake (a str assigned to an int) is caught: the results are not Any."""
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    result = mypy("--strict", str(usage))
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "usage.py:10" in errors[0], result.stdout
