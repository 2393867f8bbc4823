"""GET /metrics: public Prometheus text; requests by URL rule and status, dispatches, job
outcomes, trigger fan-out, recovery passes, the open-jobs backlog; several workers add up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

import marshmallow as ma
import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from pie import DispatchDeferred, HandlerType, hookimpl
from pie.db import connection
from pie.server import metrics_directory
from pie.services import jobs, lifecycle
from pie.tables import Job, utcnow
from tests.helpers import ADMIN, SECRET, Client, activate, model_body, wait_for, wait_for_job
from tests.server import ServerProcess

MODEL_RULE = "/v2/models/<model_id>"


def scrape(client: Any) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics as {(name, sorted labels): value}."""
    r = client.get("/metrics", token=None)
    assert r.status_code == 200
    return parse(r.get_data(as_text=True))


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_is_public_prometheus_text_outside_the_openapi_document(anon):
    r = anon.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(r.get_data(as_text=True))}
    assert {"pie_http_requests", "pie_job_dispatches", "pie_recovery_passes"} <= names
    assert "/metrics" not in anon.get("/openapi.json").get_json()["paths"]
    openmetrics = anon.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.mimetype == "application/openmetrics-text"
    assert openmetrics.get_data(as_text=True).endswith("# EOF\n")


def test_requests_are_counted_by_url_rule_and_status(client):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    before = scrape(client)
    assert client.get("/v2/models/m1").status_code == 200
    assert client.get("/v2/models/secret-looking-id-123").status_code == 404
    assert client.get("/v2/models/another-id").status_code == 404
    assert client.get("/v2/not/a/route").status_code == 404
    assert client.request("BREW-COFFEE", "/v2/models/m1").status_code == 405
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    get = {"method": "GET", "route": MODEL_RULE}
    assert delta("pie_http_requests_total", **get, status="200") == 1
    assert delta("pie_http_requests_total", **get, status="404") == 2
    assert delta("pie_http_request_duration_seconds_count", **get, status="404") == 2
    assert delta("pie_http_request_duration_seconds_sum", **get, status="404") > 0
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta("pie_http_requests_total", **unmatched) == 1
    assert delta("pie_http_requests_total", method="other", route="unmatched", status="405") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(r and ("m1" in r or "secret-looking" in r) for r in routes), routes


def test_job_dispatches_and_outcomes_by_type_and_handler(client):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    before = scrape(client)
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"x": 1}})
    wait_for_job(client, r.get_json()["inference_job_id"])
    after = scrape(client)
    labels = {"job_type": "inference", "handler_type": "in_process"}
    name = "pie_job_dispatches_total"
    assert value(after, name, **labels, outcome="dispatched") == (
        value(before, name, **labels, outcome="dispatched") + 1
    )
    name = "pie_jobs_completed_total"
    assert value(after, name, **labels, status="success") == (
        value(before, name, **labels, status="success") + 1
    )


class Flaky:
    mode = "fail"


class FlakySchema(ma.Schema):
    pass


class FlakyType(HandlerType):
    name = "flaky"
    schema = FlakySchema

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        if Flaky.mode == "defer":
            raise DispatchDeferred("backend full")
        raise ConnectionError("backend unreachable")


class FlakyPlugin:
    name = "flaky-plugin"

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
        return [FlakyType]


@pytest.mark.parametrize("mode, outcome", [("fail", "failed"), ("defer", "deferred")])
def test_dispatch_failures_and_deferrals_are_counted(make_app, mode, outcome):
    Flaky.mode = mode
    client = Client(make_app(plugins=[FlakyPlugin()]).test_client())
    handler = {"type": "flaky"}
    body = model_body("f1", handlers={"training": handler, "inference": handler})
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "f1")
    before = scrape(client)
    r = client.post("/v2/models/f1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    labels = {"job_type": "inference", "handler_type": "flaky", "outcome": outcome}
    wait_for(lambda: value(scrape(client), "pie_job_dispatches_total", **labels) > 0)
    after = scrape(client)
    assert value(after, "pie_job_dispatches_total", **labels) == (
        value(before, "pie_job_dispatches_total", **labels) + 1
    )
    failed = {"job_type": "inference", "handler_type": "flaky", "status": "failure"}
    grew = value(after, "pie_jobs_completed_total", **failed) - value(
        before, "pie_jobs_completed_total", **failed
    )
    assert grew == (1 if mode == "fail" else 0)
    status = client.get(f"/v2/jobs/{job_id}").get_json()["status"]
    assert status == ("failure" if mode == "fail" else "pending")


def test_trigger_fan_out_sizes(client):
    for model_id in ("source", "target"):
        assert client.post("/v2/models", json=model_body(model_id)).status_code == 201
    activate(client, "target")
    for event, count in (("inference_complete", 3), ("training_complete", 2)):
        for _ in range(count):
            sub = {
                "trigger_event": event,
                "target_model_id": "target",
                "target_action": "inference",
                "input_source": "stored",
                "input": {},
            }
            r = client.post("/v2/models/source/event-subscriptions", json=sub)
            assert r.status_code == 201, r.get_json()
    before = scrape(client)
    activate(client, "source")  # training -> active fires training_complete: 2 jobs
    r = client.post("/v2/models/source/versions/1/inference", json={"input": {}})
    wait_for_job(client, r.get_json()["inference_job_id"])  # its completion fires 3 jobs
    after = scrape(client)
    for event, jobs_started in (("inference_complete", 3), ("training_complete", 2)):
        count = "pie_trigger_fan_out_jobs_count"
        total = "pie_trigger_fan_out_jobs_sum"
        assert value(after, count, event=event) - value(before, count, event=event) == 1
        assert value(after, total, event=event) - value(before, total, event=event) == jobs_started


def orphans(app: Any, count: int) -> list[str]:
    """Pending jobs nobody dispatched (what a crash or a shutdown leaves behind)."""
    with app.app_context(), connection():
        version = lifecycle.get_version("m1", "1")
        ids = [jobs.new_job(version, "inference", {"n": n}).job_id for n in range(count)]
        Job.update(created_at=utcnow() - timedelta(minutes=5)).where(Job.job_id.in_(ids)).execute()
    return ids


def test_open_jobs_backlog_and_recovery_activity(app, client):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    orphans(app, 2)
    before = scrape(client)
    pending = {"job_type": "inference", "status": "pending", "handler_type": "in_process"}
    assert value(before, "pie_jobs_open", **pending) == 2
    started_at = time.time()
    assert app.extensions["pie"].dispatcher.recover_once() == 2
    wait_for(lambda: value(scrape(client), "pie_jobs_open", **pending) == 0)
    after = scrape(client)
    assert value(after, "pie_recovery_redispatched_jobs_total") == (
        value(before, "pie_recovery_redispatched_jobs_total") + 2
    )
    passes = "pie_recovery_passes_total"
    assert value(after, passes, result="ok") == value(before, passes, result="ok") + 1
    assert value(after, "pie_recovery_last_pass_timestamp_seconds") >= int(started_at)


class _Unwind(Exception):
    """Raised in a forked child to leave the block the way a gunicorn worker's exit does."""


def test_metrics_directory_is_emptied_and_only_the_creator_removes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "placeholder")  # restored (unset) after
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    try:
        with metrics_directory() as path:
            assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path and os.path.isdir(path)
            child = os.fork()
            if child == 0:
                raise _Unwind
            os.waitpid(child, 0)
            assert os.path.isdir(path), "a forked process removed the directory on its way out"
    except _Unwind:
        os._exit(0)
    assert not os.path.exists(path)
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_99999.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    with metrics_directory() as path:
        assert path == str(given) and os.listdir(path) == []
    assert given.is_dir()  # the operator's directory stays


def test_a_killed_masters_metrics_directory_is_removed_by_the_next_server(tmp_path, monkeypatch):
    """A SIGKILLed `pie serve` cannot remove its directory; the next one does, and leaves
    live servers' directories and anything not named like its own alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "placeholder")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs (and is not reused this instant)
    dead = tmp_path / f"pie-metrics-{gone.pid}-abc"
    live = tmp_path / f"pie-metrics-{os.getppid()}-def"
    other = tmp_path / "pie-metrics-unnamed"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    with metrics_directory() as path:
        assert os.path.basename(path).startswith(f"pie-metrics-{os.getpid()}-")
        assert not dead.exists() and live.is_dir() and other.is_dir()
    assert not os.path.exists(path)


def worker_pids(master: int) -> set[int]:
    """The live children of a gunicorn master (Linux /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master and fields[0] != "Z":
            found.add(int(entry))
    return found


def served_by(folder: str, pid: int, route: str) -> float:
    """Requests to `route` counted in one worker's own file."""
    path = os.path.join(folder, f"counter_{pid}.db")
    if not os.path.exists(path):
        return 0.0
    return sum(
        sample.value
        for metric in MultiProcessCollector.merge([path], accumulate=False)
        for sample in metric.samples
        if sample.name == "pie_http_requests_total" and sample.labels.get("route") == route
    )


@pytest.mark.parametrize("directory", ["given", "created by pie serve"])
def test_several_workers_add_up_and_a_dead_worker_drops_out(database_url, tmp_path, directory):
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    temp = tmp_path / "tmp"  # where `pie serve` creates its directory when none is given
    temp.mkdir()
    if directory == "given":
        folder = tmp_path / "prometheus"
        folder.mkdir()
        (folder / "counter_4242.db").write_bytes(b"left by a previous run")  # must be wiped
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    server = ServerProcess({**env, "TMPDIR": str(temp)}, workers=2)
    if directory != "given":
        server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # even if this test run has one
    server.start()
    if directory != "given":
        [folder] = temp.glob("pie-metrics-*")
    try:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        sent = 0

        def both_workers_served() -> bool:
            nonlocal sent
            for _ in range(10):  # a new connection each time, so either worker may answer
                assert requests.get(f"{server.url}/v2/models", headers=auth).status_code == 200
                sent += 1
            pids = worker_pids(server.proc.pid)
            return len(pids) == 2 and all(served_by(str(folder), p, "/v2/models") for p in pids)

        wait_for(both_workers_served, timeout=30, interval=0)
        assert not (folder / "counter_4242.db").exists()
        ok = {"method": "GET", "route": "/v2/models", "status": "200"}
        samples = parse(requests.get(f"{server.url}/metrics").text)
        assert value(samples, "pie_http_requests_total", **ok) == sent
        assert value(samples, "pie_server_worker_processes") == 2

        victim = min(worker_pids(server.proc.pid))
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            pids = worker_pids(server.proc.pid)
            return (
                len(pids) == 2
                and victim not in pids
                and all((folder / f"gauge_livesum_{p}.db").exists() for p in pids)
            )

        wait_for(replaced, timeout=30, interval=0.1)
        samples = parse(requests.get(f"{server.url}/metrics").text)
        assert value(samples, "pie_server_worker_processes") == 2  # not 3: child_exit ran
        assert value(samples, "pie_http_requests_total", **ok) == sent  # its counts stay
    finally:
        server.stop()
    assert folder.is_dir() == (directory == "given")  # pie serve removes only its own
