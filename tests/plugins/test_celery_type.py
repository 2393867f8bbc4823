"""The `celery` handler type and pie.celery without a worker: the broker setting, a dead
broker, the type without the extra, and the worker helper against a small fake PIE."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

import pie.cli
from pie import celery as pie_celery
from tests.helpers import SECRET, Client, model_body, wait_for
from tests.server import free_port

pytest.importorskip("celery")

CELERY = {"type": "celery", "task": "models.predict", "queue": "q1"}


def handlers(handler: dict[str, Any]) -> dict[str, Any]:
    return {"training": handler, "inference": handler}


def test_importing_pie_celery_pulls_in_no_server_code() -> None:
    code = (
        "import sys, pie.celery\n"
        "heavy = ('flask', 'werkzeug', 'peewee', 'marshmallow', 'pluggy', 'celery', 'kombu',"
        " 'psycopg2', 'boto3')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith(('pie.db', 'pie.api', 'pie.services', 'pie.runtime'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_celery_handler_needs_the_broker_setting(make_app) -> None:
    client = Client(make_app({"PIE_CELERY_BROKER_URL": None}).test_client())
    r = client.post("/v2/models", json=model_body(handlers=handlers(CELERY)))
    assert r.status_code in (400, 422), r.get_json()
    assert "PIE_CELERY_BROKER_URL is not set" in json.dumps(r.get_json())


@pytest.fixture
def silent() -> Iterator[Any]:
    from tests.plugins.test_worker_crash import SilentEndpoint

    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_a_dead_broker_fails_the_dispatch_quickly_and_retryably(
    make_app, request, scheme, kind
) -> None:
    """Nothing listening, or a listener that never answers (a hung broker): the dispatch
    fails within seconds, as a DispatchError the policy retries."""
    port = (
        free_port()
        if kind == "refused"
        else request.getfixturevalue("silent").url.rsplit(":", 1)[1]
    )
    broker = f"{scheme}://127.0.0.1:{port}/"
    client = Client(make_app({"PIE_CELERY_BROKER_URL": broker}).test_client())
    body = model_body(handlers=handlers(CELERY))
    body["job_policy"] = {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}}
    assert client.post("/v2/models", json=body).status_code == 201
    for status in ("training", "active"):
        client.post("/v2/models/m1/versions/1/new_status", json={"status": status})
    started = time.monotonic()
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["inference_job_id"]
    job = wait_for(lambda: (j := client.get(f"/v2/jobs/{job_id}").get_json())["attempts"] and j, 20)
    assert time.monotonic() - started < 15
    assert job["status"] == "pending" and job["attempt"] == 2  # retried per the policy
    error = job["attempts"][0]["error"]
    assert error["type"] == "DispatchError"
    assert "dispatch to 'celery' failed" in error["message"]


@pytest.fixture
def without_celery(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin module as it loads where the extra is not installed."""
    import pie.plugins.celery_handler as module

    monkeypatch.setitem(sys.modules, "celery", None)  # `import celery` raises ImportError
    yield importlib.reload(module)
    monkeypatch.undo()
    importlib.reload(module)


def test_without_the_extra_the_type_is_not_offered_and_pie_plugins_says_why(
    without_celery, make_app, database_url, tmp_path
) -> None:
    assert without_celery.pie_register_handler_types(app=None) == []
    assert "celery" not in make_app().extensions["pie"].handler_types
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "cli-instance"),
    }
    result = CliRunner().invoke(pie.cli.main, ["plugins"], env=env)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert "celery" not in listed["handler_types"]
    assert listed["unavailable"] == {"celery": "not available - install pie-registry[celery]"}


class FakePie:
    """Answers heartbeats with `heartbeat_status` and records completions."""

    def __init__(self, heartbeat_status: int = 200) -> None:
        self.heartbeat_status = heartbeat_status
        self.completions: list[tuple[str, dict[str, Any]]] = []
        self.heartbeats: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/heartbeat"):
                    fake.heartbeats.append(body)
                    status = fake.heartbeat_status
                else:
                    fake.completions.append((self.headers["Authorization"], body))
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payload(self, attempt: int = 1) -> dict[str, Any]:
        return {
            "job_id": "j1",
            "attempt": attempt,
            "input": {"x": 1},
            "callback": {
                "url": f"{self.url}/jobs/j1/complete",
                "heartbeat_url": f"{self.url}/jobs/j1/heartbeat",
                "token": "tok",
            },
        }


@pytest.fixture
def fake_pie() -> Iterator[FakePie]:
    fake = FakePie()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_a_success_is_posted_with_the_token_and_heartbeats_carry_progress(fake_pie) -> None:
    def work(job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        job.heartbeat(0.5, "half")
        time.sleep(0.25)  # the background thread beats too, with the latest progress
        return {"doubled": job_input["x"] * 2}

    pie_celery.run_job(work, fake_pie.payload(), 0.1, pie_celery.takes_context(work))
    assert fake_pie.completions == [("Bearer tok", {"status": "success", "output": {"doubled": 2}})]
    assert fake_pie.heartbeats[0] == {"progress": 0.5, "message": "half"}
    assert len(fake_pie.heartbeats) >= 2


def test_failures_carry_their_type_and_retryable_when_marked(fake_pie) -> None:
    class Flaky(Exception):
        retryable = True

    def plain(job_input: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("x")

    def marked(job_input: dict[str, Any]) -> dict[str, Any]:
        raise Flaky("later")

    def retry(job_input: dict[str, Any]) -> dict[str, Any]:
        raise pie_celery.Retryable("again")

    for fn in (plain, marked, retry):
        pie_celery.run_job(fn, fake_pie.payload(), None, False)
    errors = [body["error"] for _, body in fake_pie.completions]
    assert errors == [
        {"type": "KeyError", "message": "'x'"},
        {"type": "Flaky", "message": "later", "retryable": True},
        {"type": "Retryable", "message": "again", "retryable": True},
    ]


def test_a_heartbeat_409_sets_cancelled_and_no_completion_is_posted(fake_pie) -> None:
    fake_pie.heartbeat_status = 409
    seen: dict[str, Any] = {}

    def long_work(job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        seen["stopped"] = job.cancelled.wait(5)
        return {"never": "sent"}

    started = time.monotonic()
    assert pie_celery.run_job(long_work, fake_pie.payload(), 0.1, True) is None
    assert seen["stopped"] is True and time.monotonic() - started < 2
    assert fake_pie.completions == []


def test_pie_task_registers_a_named_task_taking_the_payload(fake_pie) -> None:
    from celery import Celery

    app = Celery("t", broker="memory://", set_as_current=False)

    @pie_celery.pie_task(app, name="models.add", heartbeat_seconds=None)
    def add(job_input: dict[str, Any]) -> dict[str, Any]:
        return {"sum": job_input["x"] + 1}

    assert add.name == "models.add" and "models.add" in app.tasks
    add(fake_pie.payload())  # what the worker calls with the one argument
    assert fake_pie.completions == [("Bearer tok", {"status": "success", "output": {"sum": 2}})]


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_batch_to_a_dead_broker_gives_each_job_its_error(scheme) -> None:
    """dispatch_many never raises: a batch that cannot go out is sent task by task, and
    each task that fails alone too is that job's outcome (a retryable DispatchError)."""
    from types import SimpleNamespace

    from plugins.celery_handler import CeleryHandlerType

    broker = f"{scheme}://127.0.0.1:{free_port()}/"
    handler_type = CeleryHandlerType(SimpleNamespace(config={"PIE_CELERY_BROKER_URL": broker}))
    jobs = [SimpleNamespace(job_id=f"job-{n}", attempt=1) for n in range(3)]
    started = time.monotonic()
    try:
        outcomes = handler_type.dispatch_many(
            [(CELERY, job, {"job_id": job.job_id}) for job in jobs]
        )
    finally:
        handler_type.close()
    assert len(outcomes) == 3 and all(isinstance(o, Exception) for o in outcomes), outcomes
    assert time.monotonic() - started < 30
