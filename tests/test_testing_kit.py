"""pie.testing, the kit plugin authors test with: its fixtures (loaded here through the
`pytest11` entry point, as in a plugin author's project) and its job helpers, driving a
third-party type through dispatch, heartbeat, completion, retry and cancellation. The
example package examples/pie-redis-list is its other test (.ci/plugin-example)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest

from pie import HandlerType, hookimpl
from pie.testing import PieClient, UnexpectedResponse


class Backend:
    """What a third-party type dispatched, and the attempts it was told to stop."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.cancelled: list[tuple[str, str]] = []


class ListSchema(ma.Schema):
    name = ma.fields.String(required=True)


def list_plugin(backend: Backend) -> Any:
    class ListType(HandlerType):
        name = "list"
        schema = ListSchema

        def dispatch(self, handler: dict, job: Any, payload: dict) -> str:
            backend.payloads.append(payload)
            return f"{handler['name']}-{len(backend.payloads)}"

        def cancel(self, handler: dict, job: Any, external_id: str | None, reason: str) -> None:
            backend.cancelled.append((external_id or "", reason))

    class Plugin:
        @hookimpl
        def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
            return [ListType]

    return Plugin()


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def pie_plugins(backend: Backend) -> list[Any]:  # overrides pie.testing's fixture
    return [list_plugin(backend)]


HANDLER = {"type": "list", "name": "scoring"}


def test_the_kit_is_a_pytest_plugin_registered_by_entry_point():
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "pie"]
    assert entry.value == "pie.testing.plugin"


def test_a_job_runs_through_dispatch_and_callback(pie_jobs, backend):
    model = pie_jobs.register_model(HANDLER)
    assert model["handlers"]["inference"] == HANDLER

    job_id = pie_jobs.run_inference("m1", {"x": 1})
    started = pie_jobs.wait(job_id, ["started"])
    (payload,) = backend.payloads

    assert started["external_id"] == "scoring-1" and payload["input"] == {"x": 1}
    assert pie_jobs.heartbeat(payload, 0.5, "half").status_code == 200
    assert pie_jobs.get(job_id)["progress"] == 0.5
    assert pie_jobs.complete(payload, output={"y": 2}).status_code == 200
    assert pie_jobs.wait(job_id)["output"] == {"y": 2}
    assert pie_jobs.heartbeat(payload).status_code == 409


def test_a_retryable_failure_is_retried_by_the_recovery_pass(pie_jobs, backend):
    policy = {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}}
    pie_jobs.register_model(HANDLER, job_policy=policy)
    job_id = pie_jobs.run_inference()
    pie_jobs.wait(job_id, ["started"])

    assert pie_jobs.fail(backend.payloads[0], "busy", retryable=True).status_code == 200
    second = pie_jobs.wait(job_id, ["started"], recover=True)

    assert second["attempt"] == 2 and backend.payloads[1]["attempt"] == 2
    assert pie_jobs.fail(backend.payloads[1], "still busy").status_code == 200
    failed = pie_jobs.wait(job_id)
    assert failed["error"] == {"type": "Error", "message": "still busy"}


def test_cancelling_tells_the_type(pie_jobs, backend):
    pie_jobs.register_model(HANDLER)
    job_id = pie_jobs.run_inference()
    pie_jobs.wait(job_id, ["started"])

    assert pie_jobs.cancel(job_id)["error"]["type"] == "Cancelled"
    assert backend.cancelled == [("scoring-1", "Cancelled")]
    assert pie_jobs.complete(backend.payloads[0]).status_code == 409


def test_tokens_carry_the_scopes_and_tenant_asked_for(pie_client):
    reader = pie_client.as_token(pie_client.make_token("read_models"))
    anonymous = pie_client.as_token(None)

    assert reader.get("/v2/models").status_code == 200
    assert reader.post("/v2/models", json={}).status_code == 403
    assert anonymous.get("/v2/models").status_code == 401
    r = pie_client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"})
    assert r.status_code == 201
    tenant = pie_client.as_token(pie_client.make_token("read_domains", client_id="acme"))
    assert tenant.get("/v2/clients/acme/domains").status_code == 200
    assert tenant.get("/v2/clients/other/domains").status_code == 403
    with pytest.raises(ValueError, match="unknown scope"):
        pie_client.make_token("read_everything")


def test_a_helper_says_what_the_server_answered(pie_jobs):
    with pytest.raises(UnexpectedResponse, match="expected 201, got 400: .*Unknown handler type"):
        pie_jobs.register_model({"type": "nothing"})


def test_the_live_app_is_the_app_of_pie_jobs_served_over_real_http(pie_live_app, pie_jobs):
    url = pie_live_app.config["PIE_PUBLIC_URL"]
    with urllib.request.urlopen(f"{url}/v2/health", timeout=10) as response:
        assert response.status == 200 and json.load(response)["status"] == "ok"

    assert pie_jobs.client.app is pie_live_app
    pie_jobs.register_model({"type": "in_process", "value": "echo"})
    job_id = pie_jobs.run_inference("m1", {"a": 1})
    headers = {"Authorization": f"Bearer {pie_jobs.client.token}"}
    request = urllib.request.Request(f"{url}/v2/jobs/{job_id}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["job_id"] == job_id


def test_waiting_for_a_status_a_job_ended_without_fails_at_once_saying_why(pie_jobs):
    pie_jobs.register_model(HANDLER)
    job_id = pie_jobs.run_inference()
    pie_jobs.wait(job_id, ["started"])
    pie_jobs.cancel(job_id)

    began = time.monotonic()
    with pytest.raises(
        AssertionError,
        match=f"job {job_id} ended as 'failure' .*Cancelled.* while waiting for started",
    ):
        pie_jobs.wait(job_id, ["started"], timeout=30)
    assert time.monotonic() - began < 5


def test_a_job_that_never_gets_there_fails_the_wait_with_its_state(pie_jobs):
    pie_jobs.register_model(HANDLER)
    job_id = pie_jobs.run_inference()

    with pytest.raises(AssertionError, match=f"job {job_id} still after 0.3s is 'started'"):
        pie_jobs.wait(job_id, timeout=0.3)


def test_a_client_of_an_app_pie_make_app_closed_says_so(pie_make_app):
    first = PieClient(pie_make_app())
    pie_make_app()

    with pytest.raises(RuntimeError, match="this PIE app was closed"):
        first.get("/v2/models")


def test_each_app_of_pie_make_app_starts_on_an_empty_database(pie_make_app):
    first = PieClient(pie_make_app())
    r = first.post("/v2/clients", json={"client_id": "acme", "name": "Acme"})
    assert r.status_code == 201

    second = PieClient(pie_make_app({"PIE_MAX_TRIGGER_DEPTH": 7}))
    assert second.get("/v2/clients/acme").status_code == 404
    assert second.app.config["PIE_MAX_TRIGGER_DEPTH"] == 7


def test_a_plugin_authors_test_file_gets_the_fixtures_with_no_set_up(tmp_path):
    """A test file alone in a folder, with no conftest: pytest loads PIE's plugin itself."""
    (tmp_path / "test_author.py").write_text(
        textwrap.dedent(
            """
            def test_echo_runs(pie_jobs):
                pie_jobs.register_model({"type": "in_process", "value": "echo"})
                job = pie_jobs.wait(pie_jobs.run_inference("m1", {"a": 1}))
                assert job["status"] == "success" and job["output"] == {"a": 1}
            """
        )
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_author.py"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_readme_plugin_example_passes_its_readme_test(tmp_path):
    """The README's worked plugin and the test shown for it, run as their author would: the
    plugin loaded from a PIE_PLUGINS_PATH folder, the test with nothing but PIE installed."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Writing a handler plugin") :]
    plugin = re.search(r"```python\n(# pie_queue_handler\.py\n.*?)```", section, re.S)
    test = re.search(r"```python\n(def test_.*?)```", section, re.S)
    assert plugin and test, "the README's plugin section lost its example or its test"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "pie_queue_handler.py").write_text(plugin.group(1))
    (tmp_path / "test_queue.py").write_text(
        f"import sys\nsys.path.insert(0, {str(folder)!r})\n" + test.group(1)
    )

    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_queue.py"]
    env = {**os.environ, "PIE_PLUGINS_PATH": str(folder)}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
