"""The loop guard bounds volume, not only depth (5.2): every job one root event causes,
across its whole chain of completions and transitions, counts against
PIE_MAX_TRIGGERED_JOBS, even when sibling jobs of the chain complete at the same moment."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.helpers import Client, Implementations, activate, model_body, wait_for, wait_for_job

VOLUME_ERROR = "trigger volume limit reached"


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app_config():
    return {}


@pytest.fixture
def app(make_app, impls, app_config):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 16, **app_config}, plugins=[impls])
    yield app
    impls.release.set()


def create_model(client, model_id, inference="echo", training="echo"):
    body = model_body(
        model_id,
        handlers={
            "training": {"type": "in_process", "value": training},
            "inference": {"type": "in_process", "value": inference},
        },
    )
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, model_id)


def subscribe(client, source, target, times, event="inference_complete", action="inference"):
    ids = []
    for _ in range(times):
        r = client.post(
            f"/v2/models/{source}/event-subscriptions",
            json={
                "trigger_event": event,
                "target_model_id": target,
                "target_action": action,
                "input_source": "trigger_output",
            },
        )
        assert r.status_code == 201, r.get_json()
        ids.append(r.get_json()["id"])
    return ids


def jobs_of(client, model_id):
    jobs = []
    for version in client.get(f"/v2/models/{model_id}/versions").get_json():
        path = f"/v2/models/{model_id}/versions/{version['version']}/jobs?page_size=1000"
        jobs += client.get(path).get_json()
    return jobs


def settled(client, *model_ids):
    """Every job of the models, once none is pending or started and the count is stable."""
    last = [None]

    def done():
        jobs = [j for m in model_ids for j in jobs_of(client, m)]
        ended = all(j["status"] in ("success", "failure") for j in jobs)
        stable = last[0] == len(jobs)
        last[0] = len(jobs)
        return jobs if ended and stable else None

    return wait_for(done, timeout=60, interval=0.3)


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 20}])
def test_a_cycle_with_fan_out_stops_at_the_volume_limit(client, caplog):
    """A → B → A with 3 subscriptions each way (9,841 jobs at depth 8 without the bound)."""
    create_model(client, "a")
    create_model(client, "b")
    subscribe(client, "a", "b", 3)
    subscribe(client, "b", "a", 3)
    caplog.set_level(logging.WARNING, logger="pie")
    r = client.post("/v2/models/a/versions/1/inference", json={"input": {"hop": 0}})
    root = r.get_json()["inference_job_id"]
    jobs = settled(client, "a", "b")
    triggered = [j for j in jobs if j["job_id"] != root]
    assert len(triggered) == 20
    assert all(j["trigger"]["depth"] <= 8 for j in triggered)
    refusals = [rec for rec in caplog.records if VOLUME_ERROR in rec.getMessage()]
    assert refusals and all(rec.levelno == logging.WARNING for rec in refusals)


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 4}])
def test_refusals_are_triggered_event_errors(client):
    create_model(client, "a", inference="hold")
    create_model(client, "b", inference="hold")
    to_b = subscribe(client, "a", "b", 3)
    to_a = subscribe(client, "b", "a", 3)
    r = client.post("/v2/models/a/versions/1/inference", json={"input": {}})
    root = r.get_json()["inference_job_id"]
    wait_for_job(client, root, ("started",))
    done = {"status": "success", "output": {"x": 1}}
    r = client.post(f"/v2/models/a/versions/1/jobs/{root}/complete", json=done)
    assert r.status_code == 200, r.get_json()
    events = r.get_json()["triggered_events"]
    assert [e["subscription_id"] for e in events] == to_b and all("job_id" in e for e in events)
    first, second = events[0]["job_id"], events[1]["job_id"]
    wait_for_job(client, first, ("started",))
    r = client.post(f"/v2/models/b/versions/1/jobs/{first}/complete", json=done)
    assert r.status_code == 207, r.get_json()
    granted, *refused = r.get_json()["triggered_events"]
    assert granted["subscription_id"] == to_a[0] and "job_id" in granted
    assert [e["subscription_id"] for e in refused] == to_a[1:]
    for event in refused:
        assert set(event) == {"subscription_id", "error"}
        assert VOLUME_ERROR in event["error"] and "PIE_MAX_TRIGGERED_JOBS=4" in event["error"]
    wait_for_job(client, second, ("started",))
    r = client.post(f"/v2/models/b/versions/1/jobs/{second}/complete", json=done)
    assert r.status_code == 207, r.get_json()
    assert all("error" in e for e in r.get_json()["triggered_events"])
    # A repeated completion answers the stored result and takes nothing more.
    again = client.post(f"/v2/models/b/versions/1/jobs/{first}/complete", json=done)
    assert again.status_code == 207 and again.get_json()["triggered_events"][0] == granted
    assert len(jobs_of(client, "a")) + len(jobs_of(client, "b")) == 1 + 4


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 3}])
def test_each_root_event_has_its_own_budget(client):
    create_model(client, "a")
    create_model(client, "b")
    subscribe(client, "a", "b", 3)
    for n in range(2):
        r = client.post("/v2/models/a/versions/1/inference", json={"input": {"n": n}})
        assert r.status_code == 202
    jobs = settled(client, "a", "b")
    assert len([j for j in jobs if j["model_id"] == "b"]) == 6


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 5}])
def test_the_budget_follows_the_chain_through_a_transition(client):
    """Training subscriptions: a triggered training job's version becoming active continues
    the chain of the event that started the training."""
    create_model(client, "a")
    create_model(client, "t")
    subscribe(client, "a", "t", 2, action="training")
    subscribe(client, "t", "a", 3, event="training_complete")
    r = client.post("/v2/models/a/versions/1/inference", json={"input": {}})
    assert r.status_code == 202
    trainings = wait_for(
        lambda: [j for j in settled(client, "a", "t") if j["job_type"] == "training"] or None
    )
    assert len(trainings) == 2  # budget used: 2 of 5
    fired = []
    for job in trainings:
        r = client.post(
            f"/v2/models/t/versions/{job['model_version']}/new_status", json={"status": "active"}
        )
        assert r.status_code == 200, r.get_json()
        fired += r.get_json()["triggered_events"]
    assert len([e for e in fired if "job_id" in e]) == 3
    assert [VOLUME_ERROR in e["error"] for e in fired if "error" in e] == [True] * 3


SIBLINGS, FAN_OUT, LIMIT = 4, 3, 9  # the root takes 4; 5 remain for the siblings' 12


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": LIMIT}])
def test_racing_sibling_completions_share_one_budget(app, client):
    create_model(client, "root", inference="hold")
    create_model(client, "mid", inference="hold")
    create_model(client, "leaf", inference="hold")
    subscribe(client, "root", "mid", SIBLINGS)
    subscribe(client, "mid", "leaf", FAN_OUT)
    r = client.post("/v2/models/root/versions/1/inference", json={"input": {}})
    root = r.get_json()["inference_job_id"]
    wait_for_job(client, root, ("started",))
    done = {"status": "success", "output": {}}
    r = client.post(f"/v2/models/root/versions/1/jobs/{root}/complete", json=done)
    siblings = [e["job_id"] for e in r.get_json()["triggered_events"]]
    assert len(siblings) == SIBLINGS
    for job_id in siblings:
        wait_for_job(client, job_id, ("started",))

    barrier = threading.Barrier(SIBLINGS)
    results: dict[str, tuple[int, dict]] = {}

    def finish(job_id: str) -> None:
        racer = Client(app.test_client())
        barrier.wait(timeout=30)
        r = racer.post(f"/v2/models/mid/versions/1/jobs/{job_id}/complete", json=done)
        results[job_id] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=finish, args=(job_id,)) for job_id in siblings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == SIBLINGS, results
    events = [e for _, body in results.values() for e in body["triggered_events"]]
    started = [e["job_id"] for e in events if "job_id" in e]
    refused = [e for e in events if "error" in e]
    assert len(started) == LIMIT - SIBLINGS
    assert len(refused) == SIBLINGS * FAN_OUT - len(started)
    assert all(VOLUME_ERROR in e["error"] for e in refused)
    assert {j["job_id"] for j in jobs_of(client, "leaf")} == set(started)
    assert all(
        code == (207 if any("error" in e for e in body["triggered_events"]) else 200)
        for code, body in results.values()
    )
