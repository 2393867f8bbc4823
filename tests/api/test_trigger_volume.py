"""The loop guard bounds volume, not only depth (5.2): every job one root event causes,
across its whole chain of completions and transitions, counts against
PIE_MAX_TRIGGERED_JOBS, even when sibling jobs of the chain complete at the same moment."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.helpers import (
    Client,
    Implementations,
    activate,
    model_body,
    scoped,
    wait_for,
    wait_for_job,
)

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


DONE = {"status": "success", "output": {}}


def held_siblings(client) -> list[str]:
    """Run `root` and complete it: the `mid` jobs it fired, each held `started`."""
    r = client.post("/v2/models/root/versions/1/inference", json={"input": {}})
    root = r.get_json()["inference_job_id"]
    wait_for_job(client, root, ("started",))
    r = client.post(f"/v2/models/root/versions/1/jobs/{root}/complete", json=DONE)
    siblings = [e["job_id"] for e in r.get_json()["triggered_events"]]
    for job_id in siblings:
        wait_for_job(client, job_id, ("started",))
    return siblings


def complete_at_once(app, job_ids: list[str]) -> dict[str, tuple[int, dict]]:
    """Complete the `mid` jobs from one thread each, released together; {job id: (status,
    body)}."""
    barrier = threading.Barrier(len(job_ids))
    results: dict[str, tuple[int, dict]] = {}

    def finish(job_id: str) -> None:
        racer = Client(app.test_client())
        barrier.wait(timeout=30)
        r = racer.post(f"/v2/models/mid/versions/1/jobs/{job_id}/complete", json=DONE)
        results[job_id] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=finish, args=(job_id,)) for job_id in job_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": LIMIT}])
def test_racing_sibling_completions_share_one_budget(app, client):
    create_model(client, "root", inference="hold")
    create_model(client, "mid", inference="hold")
    create_model(client, "leaf", inference="hold")
    subscribe(client, "root", "mid", SIBLINGS)
    subscribe(client, "mid", "leaf", FAN_OUT)
    siblings = held_siblings(client)
    assert len(siblings) == SIBLINGS
    results = complete_at_once(app, siblings)
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


# --- each owner's subscriptions have their own budget in a chain ----------------------------

TENANT = ("read_models", "manage_models", "run_inference", "run_training", "read_domains")


def tenant_token(client_id):
    return scoped(*TENANT, client_id=client_id)


def tenant(client, client_id, model_id):
    """A client whose domain d has `default` pointing at the model's version 1."""
    r = client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
    assert r.status_code == 201, r.get_json()
    r = client.post(f"/v2/clients/{client_id}/domains", json={"domain_id": "d"})
    assert r.status_code == 201, r.get_json()
    r = client.put(
        f"/v2/clients/{client_id}/domains/d/assignments/default",
        json={"model_id": model_id, "model_version": "1"},
    )
    assert r.status_code == 201, r.get_json()


def replay(client, client_id, n):
    r = client.post(
        f"/v2/clients/{client_id}/domains/d/assignments/default/jobs",
        json={"input": {"n": n}, "subscribe": True},
        token=tenant_token(client_id),
    )
    assert r.status_code == 202, r.get_json()


def retrain(client, model_id, version):
    assert client.post(f"/v2/models/{model_id}/new_version", json={}).status_code == 201
    for status in ("training", "active"):
        r = client.post(
            f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status}
        )
        assert r.status_code == 200, r.get_json()
    return r.get_json()["triggered_events"]


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 5}])
def test_one_tenant_cannot_spend_the_budget_of_the_others(client):
    """The attack: evil's replays, made first, took the whole chain's budget on every
    retrain of a shared model, refusing acme's replay and the operator's subscription."""
    create_model(client, "m")
    create_model(client, "m2")
    for client_id in ("evil", "acme"):
        tenant(client, client_id, "m")
    for n in range(8):
        replay(client, "evil", n)
    replay(client, "acme", 100)
    settled(client, "m")
    # acme's own subscription, fired by acme's replay job when it completes.
    r = client.post(
        "/v2/models/m/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "m2",
            "target_action": "inference",
            "input_source": "trigger_output",
        },
        token=tenant_token("acme"),
    )
    assert r.status_code == 201 and r.get_json()["client_id"] == "acme"
    [operator] = subscribe(client, "m", "m2", 1, event="training_complete")
    settled(client, "m", "m2")
    events = retrain(client, "m", "2")
    subs = client.get("/v2/models/m/event-subscriptions").get_json()
    owner = {s["id"]: s.get("client_id") for s in subs}
    started = [owner[e["subscription_id"]] for e in events if "job_id" in e]
    refused = [owner[e["subscription_id"]] for e in events if "error" in e]
    assert sorted(started, key=str) == sorted(["evil"] * 5 + ["acme", None], key=str)
    assert refused == ["evil"] * 3
    assert any(e["subscription_id"] == operator and "job_id" in e for e in events)
    jobs = settled(client, "m", "m2")
    acme_chained = [j for j in jobs if j["model_id"] == "m2" and j["client_id"] == "acme"]
    assert [j["input"] for j in acme_chained] == [{"n": 100}]


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 3}])
def test_a_tenants_budget_counts_its_jobs_at_the_root_too(client):
    """A → B → A through evil's own subscriptions, fired by evil's job: 3 jobs in all, the
    root's 2 included (which travel in no job's trigger, unlike the global ones)."""
    create_model(client, "a")
    create_model(client, "b")
    tenant(client, "evil", "a")
    for source, target in (("a", "b"), ("b", "a")):
        for _ in range(2):
            r = client.post(
                f"/v2/models/{source}/event-subscriptions",
                json={
                    "trigger_event": "inference_complete",
                    "target_model_id": target,
                    "target_action": "inference",
                    "input_source": "trigger_output",
                },
                token=tenant_token("evil"),
            )
            assert r.status_code == 201, r.get_json()
    r = client.post(
        "/v2/clients/evil/domains/d/assignments/default/jobs",
        json={"input": {}},
        token=tenant_token("evil"),
    )
    root = r.get_json()["job_id"]
    jobs = settled(client, "a", "b")
    triggered = [j for j in jobs if j["job_id"] != root]
    assert len(triggered) == 3 and {j["client_id"] for j in triggered} == {"evil"}


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": 3}])
def test_a_spent_budget_is_logged_once_not_at_every_firing(client, caplog):
    """a → b three times takes the budget; each b job's completion then has its b → c
    subscription refused: three firings, one warning."""
    create_model(client, "a")
    create_model(client, "b")
    create_model(client, "c")
    subscribe(client, "a", "b", 3)
    subscribe(client, "b", "c", 1)
    caplog.set_level(logging.WARNING, logger="pie")
    r = client.post("/v2/models/a/versions/1/inference", json={"input": {}})
    assert r.status_code == 202
    jobs = settled(client, "a", "b", "c")
    assert [j["model_id"] for j in jobs].count("b") == 3
    assert [j["model_id"] for j in jobs].count("c") == 0
    warnings = [rec for rec in caplog.records if VOLUME_ERROR in rec.getMessage()]
    assert len(warnings) == 1, [rec.getMessage() for rec in warnings]


OWNERS = (None, "acme", "evil")


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGERED_JOBS": LIMIT}])
def test_racing_siblings_share_each_owners_budget(app, client):
    """As test_racing_sibling_completions_share_one_budget, with the mid model's
    subscriptions owned by the operator, acme and evil: each owner's budget holds exactly."""
    create_model(client, "root", inference="hold")
    create_model(client, "mid", inference="hold")
    create_model(client, "leaf", inference="hold")
    for client_id in ("acme", "evil"):
        r = client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
        assert r.status_code == 201
    subscribe(client, "root", "mid", SIBLINGS)
    owner_of = {}
    for owner in reversed(OWNERS):  # evil's first: creation order is not the owners' order
        body = {
            "trigger_event": "inference_complete",
            "target_model_id": "leaf",
            "target_action": "inference",
            "input_source": "trigger_output",
        }
        if owner:  # a tenant's own passes on only its own jobs' output: these store theirs
            body.update(input_source="stored", input={"by": owner})
        token = tenant_token(owner) if owner else "default"
        for _ in range(FAN_OUT):
            r = client.post("/v2/models/mid/event-subscriptions", json=body, token=token)
            assert r.status_code == 201, r.get_json()
            owner_of[r.get_json()["id"]] = owner
    results = complete_at_once(app, held_siblings(client))
    assert len(results) == SIBLINGS and all(code in (200, 207) for code, _ in results.values())
    events = [e for _, body in results.values() for e in body["triggered_events"]]
    started = {owner: 0 for owner in OWNERS}
    for event in events:
        if "job_id" in event:
            started[owner_of[event["subscription_id"]]] += 1
        else:
            assert VOLUME_ERROR in event["error"]
    # The root's 4 jobs were the operator's; the tenants' budgets were untouched by them.
    assert started == {None: LIMIT - SIBLINGS, "acme": LIMIT, "evil": LIMIT}
    assert len(jobs_of(client, "leaf")) == LIMIT - SIBLINGS + 2 * LIMIT
