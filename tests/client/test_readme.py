"""The README's quickstart and tenants walkthrough, in both their forms (curl, and the `pie`
command's client verbs), run as written by bash against a real `pie serve`; then the state
they leave is checked through the client."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pie_client import Client

from tests.conftest import POSTGRES_URL, reset_postgres
from tests.helpers import ADMIN, SECRET
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FORMS = {"curl": 0, "cli": 1}
HEADINGS = ("Quickstart", "Tenants: domains, services and assignments")


def shell_blocks(heading: str) -> list[str]:
    """The ```sh blocks of the README section under `## heading`."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def walkthrough(form: str, url: str) -> str:
    """The quickstart then the tenants walkthrough (which continues it in the same shell)."""
    blocks = [shell_blocks(heading)[FORMS[form]] for heading in HEADINGS]
    return "\n".join(blocks).replace("http://127.0.0.1:8000", url)


def test_each_section_has_both_forms() -> None:
    for heading in HEADINGS:
        curl, cli = shell_blocks(heading)
        assert "curl -s" in curl
        assert "curl" not in cli and "pie login" in cli


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        "PIE_DATABASE_URL": reset_postgres(POSTGRES_URL) if POSTGRES_URL else "",
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_JWT_SECRET": SECRET,
    }
    proc = ServerProcess(env, log_path=str(tmp_path / "server.log"))
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_walkthroughs_run_as_written(form: str, server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(sys.prefix)  # `source .venv/bin/activate`, as in a clone
    env = {k: v for k, v in server.env.items() if k not in ("PIE_URL", "PIE_TOKEN", "PIE_PROFILE")}
    env["PIE_CONFIG"] = str(tmp_path / "pie-config.json")
    script = "set -euo pipefail\n" + walkthrough(form, server.url)
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr

    api = Client(server.url, ADMIN)
    assert [(v.version, v.status) for v in api.versions.list("sentiment")] == [
        ("2", "active"),
        ("1", "pending"),
    ]
    jobs = [api.jobs.wait(job.job_id, timeout=30) for job in api.jobs.list(model_id="sentiment")]
    service = api.services.get("acme", "shops", "shop-1")  # once its re-initialisation ended
    assert service.resolved_features == {"region": "eu", "size": 3}
    assert service.status == "available"
    # the quickstart's inference, the init, the assignment's job and the re-initialisation
    assert [job.status for job in jobs] == ["success"] * 4
    assert jobs[-1].output == {"text": "hello"} and jobs[-1].client_id is None
    assert jobs[-2].output == {"region": "eu", "size": 3} and jobs[-2].client_id == "acme"
    if form == "cli":
        assert '"status": "success"' in result.stdout  # jobs run --wait printed the job
        assert f"job {jobs[-1].job_id} status=success" in result.stderr  # its progress line
