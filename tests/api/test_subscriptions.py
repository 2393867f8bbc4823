"""Event subscriptions: CRUD, validation, warnings, firing, the loop guard, staleness and the
`subscribe` flag (contract section 5)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from tests.helpers import (
    Implementations,
    activate,
    assert_envelope,
    model_body,
    wait_for,
    wait_for_job,
)

SUBSCRIPTION_FIELDS = {
    "id",
    "source_model_id",
    "trigger_event",
    "target_model_id",
    "target_action",
    "input_source",
    "label",
    "status",
    "created_at",
    "updated_at",
}
STORED = {"campaign": "spring", "limit": 3}
TRAINING_OUTPUT = {"trained": "s1", "loss": 0.25}
INFERENCE_INPUT = {"asked": "s1", "n": 7}
# Input schemas for the warning tests: three ways for {"x": "nope", "extra": 1} to fail.
STRICT_INPUT = {
    "type": "object",
    "required": ["x", "y"],
    "properties": {"x": {"type": "integer"}, "y": {"type": "string"}},
    "additionalProperties": False,
}
BAD_INPUT = {"x": "nope", "extra": 1}
GOOD_INPUT = {"x": 1, "y": "ok"}
ANY_OBJECT = {"type": "object"}


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {}


@pytest.fixture
def app(make_app, impls, app_config):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 16, **app_config}, plugins=[impls])
    yield app
    impls.release.set()  # let held jobs finish before the app's pools shut down


# --- helpers -----------------------------------------------------------------------------


def handlers(training="echo", inference="echo"):
    return {
        "training": {"type": "in_process", "value": training},
        "inference": {"type": "in_process", "value": inference},
    }


def create_model(client, model_id, training="echo", inference="echo", contracts=None):
    body = model_body(model_id, handlers=handlers(training, inference))
    if contracts is not None:
        body["handler_contracts"] = contracts
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()


def update_model(client, model_id, training="echo", inference="echo", contracts=None):
    body = model_body(None, handlers=handlers(training, inference), handler_contracts=contracts)
    r = client.put(f"/v2/models/{model_id}", json=body)
    assert r.status_code == 200, r.get_json()


def new_status(client, model_id, status, version="1"):
    r = client.post(f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["triggered_events"]


def new_version(client, model_id):
    r = client.post(f"/v2/models/{model_id}/new_version", json={})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["version"]["version"]


def sub_body(target, event="training_complete", action="inference", source="stored", **extra):
    body = {
        "trigger_event": event,
        "target_model_id": target,
        "target_action": action,
        "input_source": source,
    }
    if source == "stored":
        body["input"] = dict(STORED)
    body.update(extra)
    return body


def subscribe(client, source_model, target, **kwargs):
    r = client.post(
        f"/v2/models/{source_model}/event-subscriptions", json=sub_body(target, **kwargs)
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def sub_path(model_id, sub_id=""):
    return f"/v2/models/{model_id}/event-subscriptions" + (f"/{sub_id}" if sub_id else "")


def get_sub(client, model_id, sub_id):
    r = client.get(sub_path(model_id, sub_id))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def put_sub(client, model_id, sub_id, body):
    r = client.put(sub_path(model_id, sub_id), json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def list_subs(client, model_id):
    r = client.get(sub_path(model_id))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def get_job(client, job_id):
    r = client.get(f"/v2/jobs/{job_id}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def version_jobs(client, model_id, version="1"):
    r = client.get(f"/v2/models/{model_id}/versions/{version}/jobs")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def get_version(client, model_id, version):
    r = client.get(f"/v2/models/{model_id}/versions/{version}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def start_inference(client, model_id, job_input, version="1", subscribe=False):
    r = client.post(
        f"/v2/models/{model_id}/versions/{version}/inference",
        json={"input": job_input, "subscribe": subscribe},
    )
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def start_training(client, model_id, job_input, version="1"):
    r = client.post(f"/v2/models/{model_id}/versions/{version}/training", json={"input": job_input})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["training_job_id"]


def complete(client, model_id, job_id, body, version="1"):
    return client.post(
        f"/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete", json=body
    )


def triggered_job(client, model_id, sub_id, version="1"):
    """Wait for the job a subscription started on `model_id`'s `version`; return it."""

    def find():
        found = [
            job
            for job in version_jobs(client, model_id, version)
            if (job["trigger"] or {}).get("subscription_id") == sub_id
        ]
        return found[0] if found else None

    return wait_for(find)


def all_jobs(client, *model_ids):
    return [job for m in model_ids for job in version_jobs(client, m)]


# --- CRUD --------------------------------------------------------------------------------


@pytest.fixture
def two_models(client):
    create_model(client, "s1")
    create_model(client, "t1")


def test_create_returns_201_active_with_the_contract_fields(client, two_models):
    r = client.post(sub_path("s1"), json=sub_body("t1", label="nightly"))
    assert r.status_code == 201, r.get_json()
    sub = r.get_json()
    assert set(sub) == SUBSCRIPTION_FIELDS | {"input"}
    assert uuid.UUID(sub["id"])
    assert sub["source_model_id"] == "s1" and sub["target_model_id"] == "t1"
    assert (sub["trigger_event"], sub["target_action"]) == ("training_complete", "inference")
    assert (sub["input_source"], sub["input"], sub["label"]) == ("stored", STORED, "nightly")
    assert sub["status"] == "active"
    assert sub["created_at"].endswith("Z") and sub["updated_at"].endswith("Z")
    assert get_sub(client, "s1", sub["id"]) == sub


def test_trigger_output_subscription_has_no_input_and_a_null_label(client, two_models):
    sub = subscribe(client, "s1", "t1", event="inference_complete", source="trigger_output")
    assert set(sub) == SUBSCRIPTION_FIELDS
    assert sub["label"] is None and sub["input_source"] == "trigger_output"


def test_list_returns_only_the_source_models_subscriptions(client, two_models):
    first = subscribe(client, "s1", "t1")
    second = subscribe(client, "s1", "s1", event="inference_complete", action="training")
    subscribe(client, "t1", "s1")
    assert {sub["id"] for sub in list_subs(client, "s1")} == {first["id"], second["id"]}
    assert all(sub["source_model_id"] == "s1" for sub in list_subs(client, "s1"))
    assert len(list_subs(client, "t1")) == 1


def test_list_of_an_unknown_model_is_404(client):
    assert_envelope(client.get(sub_path("nope")), 404)


def test_get_needs_the_subscription_under_its_source(client, two_models):
    sub = subscribe(client, "s1", "t1")
    assert_envelope(client.get(sub_path("t1", sub["id"])), 404)
    assert_envelope(client.get(sub_path("s1", str(uuid.uuid4()))), 404)
    assert_envelope(client.get(sub_path("nope", sub["id"])), 404)


@pytest.mark.parametrize(
    "change",
    [
        {"input": {"campaign": "autumn"}},
        {"label": "renamed"},
        {"label": None},
        {"status": "paused"},
    ],
)
def test_put_updates_input_label_or_status(client, two_models, change):
    sub = subscribe(client, "s1", "t1", label="nightly")
    updated = put_sub(client, "s1", sub["id"], change)
    assert updated == {**sub, **change, "updated_at": updated["updated_at"]}
    assert updated["updated_at"] >= sub["updated_at"]
    assert get_sub(client, "s1", sub["id"]) == updated


def test_put_of_an_unknown_subscription_is_404(client, two_models):
    assert_envelope(client.put(sub_path("s1", str(uuid.uuid4())), json={"label": "x"}), 404)


def test_delete_answers_204_and_then_404(client, two_models):
    sub = subscribe(client, "s1", "t1")
    kept = subscribe(client, "s1", "t1")
    r = client.delete(sub_path("s1", sub["id"]))
    assert r.status_code == 204 and not r.get_data()
    assert_envelope(client.get(sub_path("s1", sub["id"])), 404)
    assert_envelope(client.delete(sub_path("s1", sub["id"])), 404)
    assert [s["id"] for s in list_subs(client, "s1")] == [kept["id"]]


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        sub_body("t1", source="stored", input=None),
        {k: v for k, v in sub_body("t1").items() if k != "input"},
        sub_body("t1", source="trigger_output", input={"a": 1}),
    ],
    ids=["stored-null-input", "stored-without-input", "trigger_output-with-input"],
)
def test_input_must_match_the_input_source(client, two_models, body):
    assert_envelope(client.post(sub_path("s1"), json=body), 400)
    assert list_subs(client, "s1") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trigger_event", "deployed"),
        ("target_action", "scoring"),
        ("input_source", "inline"),
        ("input", [1]),
        ("label", 5),
        ("status", "active"),
        ("id", "0190a4b6-0000-7000-8000-000000000000"),
    ],
)
def test_create_with_a_bad_or_unknown_field_is_400(client, two_models, field, value):
    assert_envelope(client.post(sub_path("s1"), json={**sub_body("t1"), field: value}), 400)
    assert list_subs(client, "s1") == []


@pytest.mark.parametrize("field", ["trigger_event", "target_model_id", "target_action"])
def test_create_without_a_required_field_is_400(client, two_models, field):
    body = {k: v for k, v in sub_body("t1").items() if k != field}
    assert_envelope(client.post(sub_path("s1"), json=body), 400)


def test_create_with_an_unknown_target_is_422(client, two_models):
    body = assert_envelope(client.post(sub_path("s1"), json=sub_body("ghost")), 422)
    assert "ghost" in body["message"]
    assert list_subs(client, "s1") == []


def test_create_on_an_unknown_source_is_404(client, two_models):
    assert_envelope(client.post(sub_path("ghost"), json=sub_body("t1")), 404)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trigger_event", "inference_complete"),
        ("target_model_id", "s1"),
        ("target_action", "training"),
        ("input_source", "trigger_output"),
        ("source_model_id", "t1"),
        ("id", "0190a4b6-0000-7000-8000-000000000000"),
        ("created_at", "2024-01-01T00:00:00Z"),
    ],
)
def test_put_of_an_immutable_field_is_400(client, two_models, field, value):
    sub = subscribe(client, "s1", "t1")
    assert_envelope(client.put(sub_path("s1", sub["id"]), json={field: value}), 400)
    assert get_sub(client, "s1", sub["id"]) == sub


@pytest.mark.parametrize(
    "body", [{"status": "deleted"}, {"input": None}, {"input": "x"}, {"label": 3}]
)
def test_put_with_a_bad_value_is_400(client, two_models, body):
    sub = subscribe(client, "s1", "t1")
    assert_envelope(client.put(sub_path("s1", sub["id"]), json=body), 400)
    assert get_sub(client, "s1", sub["id"]) == sub


def test_put_of_an_input_on_a_trigger_output_subscription_is_400(client, two_models):
    sub = subscribe(client, "s1", "t1", source="trigger_output")
    assert_envelope(client.put(sub_path("s1", sub["id"]), json={"input": {"a": 1}}), 400)
    assert "input" not in get_sub(client, "s1", sub["id"])


# --- warnings (5.1) ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["inference", "training"])
def test_stored_input_violations_become_one_warning_each(client, action):
    other = "training" if action == "inference" else "inference"
    contracts = {action: {"input_schema": STRICT_INPUT}, other: {"input_schema": {"type": "array"}}}
    create_model(client, "s1")
    create_model(client, "t1", contracts=contracts)
    sub = subscribe(client, "s1", "t1", action=action, input=BAD_INPUT)
    warnings = sub["warnings"]
    assert len(warnings) == 3, warnings
    assert any("'y' is a required property" in w for w in warnings)
    assert any("'nope' is not of type 'integer'" in w for w in warnings)
    assert any("extra" in w for w in warnings)
    assert sub["status"] == "active"
    assert get_sub(client, "s1", sub["id"])["warnings"] == warnings


def test_no_warnings_key_when_the_stored_input_is_valid(client):
    create_model(client, "s1")
    create_model(client, "t1", contracts={"inference": {"input_schema": STRICT_INPUT}})
    sub = subscribe(client, "s1", "t1", input=GOOD_INPUT)
    assert "warnings" not in sub
    assert "warnings" not in get_sub(client, "s1", sub["id"])


def test_warnings_are_recomputed_on_update(client):
    create_model(client, "s1")
    create_model(client, "t1", contracts={"inference": {"input_schema": STRICT_INPUT}})
    sub = subscribe(client, "s1", "t1", input=BAD_INPUT)
    assert len(sub["warnings"]) == 3
    assert "warnings" not in put_sub(client, "s1", sub["id"], {"input": GOOD_INPUT})
    assert len(put_sub(client, "s1", sub["id"], {"input": {"x": 1}})["warnings"]) == 1
    assert "warnings" not in put_sub(client, "s1", sub["id"], {"input": GOOD_INPUT})
    assert "warnings" not in get_sub(client, "s1", sub["id"])


SOURCE_OUTPUT = {
    "type": "object",
    "properties": {"x": {"type": "string"}, "y": {"type": "string"}},
}
COMPATIBLE_OUTPUT = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "string"}, "z": {"type": "number"}},
}
TARGET_INPUT = {
    "type": "object",
    "required": ["x", "y", "z"],
    "properties": {"x": {"type": "integer"}, "y": {"type": "string"}, "z": {"type": "number"}},
}


@pytest.mark.parametrize(
    ("event", "kind", "action"),
    list(
        itertools.product(
            ["training_complete", "inference_complete"], ["training", "inference"], ["inference"]
        )
    )
    + [("inference_complete", "inference", "training")],
)
def test_trigger_output_compatibility_warnings(client, event, kind, action):
    """Warnings come from the source's output schema for the event's handler only; `kind` says
    which handler gets the incompatible schema (the other one is compatible)."""
    source_kind = {"training_complete": "training", "inference_complete": "inference"}[event]
    other = "training" if kind == "inference" else "inference"
    create_model(
        client,
        "s1",
        contracts={
            kind: {"output_schema": SOURCE_OUTPUT},
            other: {"output_schema": COMPATIBLE_OUTPUT},
        },
    )
    create_model(client, "t1", contracts={action: {"input_schema": TARGET_INPUT}})
    sub = subscribe(client, "s1", "t1", event=event, action=action, source="trigger_output")
    if kind != source_kind:
        assert "warnings" not in sub
        return
    warnings = sub["warnings"]
    assert len(warnings) == 2, warnings
    assert any("'x'" in w and "integer" in w and "string" in w for w in warnings)
    assert any("'z'" in w for w in warnings)


def test_trigger_output_warnings_are_recomputed_on_update(client):
    create_model(client, "s1", contracts={"inference": {"output_schema": COMPATIBLE_OUTPUT}})
    create_model(client, "t1", contracts={"inference": {"input_schema": TARGET_INPUT}})
    sub = subscribe(client, "s1", "t1", event="inference_complete", source="trigger_output")
    assert "warnings" not in sub
    update_model(client, "s1", contracts={"inference": {"output_schema": SOURCE_OUTPUT}})
    assert get_sub(client, "s1", sub["id"])["status"] == "stale"
    rearmed = put_sub(client, "s1", sub["id"], {"status": "active"})
    assert rearmed["status"] == "active" and len(rearmed["warnings"]) == 2


# --- firing (5.2) ------------------------------------------------------------------------

COMBINATIONS = list(
    itertools.product(
        ["training_complete", "inference_complete"],
        ["inference", "training"],
        ["stored", "trigger_output"],
    )
)


@pytest.mark.parametrize(("event", "action", "source"), COMBINATIONS)
def test_every_subscription_kind_fires_end_to_end(client, event, action, source):
    create_model(client, "s1")
    create_model(client, "t1")
    activate(client, "t1")
    sub = subscribe(client, "s1", "t1", event=event, action=action, source=source)
    target_version = "1" if action == "inference" else "2"
    if event == "training_complete":
        parent = start_training(client, "s1", TRAINING_OUTPUT)
        assert wait_for_job(client, parent)["output"] == TRAINING_OUTPUT
        events = new_status(client, "s1", "active")
        assert [e["subscription_id"] for e in events] == [sub["id"]]
        assert set(events[0]) == {"subscription_id", "job_id"}
        job = get_job(client, events[0]["job_id"])
        trigger_output = TRAINING_OUTPUT
    else:
        activate(client, "s1")
        parent = start_inference(client, "s1", INFERENCE_INPUT)
        assert wait_for_job(client, parent)["status"] == "success"
        job = triggered_job(client, "t1", sub["id"], target_version)
        trigger_output = INFERENCE_INPUT  # echo's output is its input
    expected_input = STORED if source == "stored" else trigger_output
    assert (job["model_id"], job["model_version"]) == ("t1", target_version)
    assert (job["job_type"], job["input"]) == (action, expected_input)
    assert job["trigger"] == {"subscription_id": sub["id"], "parent_job_id": parent, "depth": 1}
    done = wait_for_job(client, job["job_id"])
    assert (done["status"], done["output"]) == ("success", expected_input)
    if action == "training":
        version = get_version(client, "t1", "2")
        assert version["status"] == "training"
        assert client.get("/v2/models/t1").get_json()["latest_version"] == "2"
    else:
        assert client.get("/v2/models/t1/versions").get_json()[0]["version"] == "1"
    assert len(all_jobs(client, "t1")) == (1 if action == "inference" else 0)


def test_training_complete_trigger_output_is_empty_without_a_training_job(client):
    """Version 2 never ran a training job; version 1's training output is not its output."""
    create_model(client, "s1")
    create_model(client, "t1")
    activate(client, "t1")
    wait_for_job(client, start_training(client, "s1", TRAINING_OUTPUT))
    new_status(client, "s1", "active")
    version = new_version(client, "s1")
    sub = subscribe(client, "s1", "t1", source="trigger_output")
    new_status(client, "s1", "training", version)
    events = new_status(client, "s1", "active", version)
    job = get_job(client, events[0]["job_id"])
    assert job["input"] == {}
    assert job["trigger"] == {"subscription_id": sub["id"], "parent_job_id": None, "depth": 1}


def test_training_complete_uses_the_latest_successful_training_output(client):
    create_model(client, "s1", training="hold")
    create_model(client, "t1")
    activate(client, "t1")
    subscribe(client, "s1", "t1", source="trigger_output")
    outcomes = [("success", {"n": 1}), ("success", {"n": 2}), ("failure", {"n": 3})]
    for index, (status, output) in enumerate(outcomes):
        if index:
            assert new_status(client, "s1", "failed") == []
        job_id = start_training(client, "s1", {"round": index})
        r = complete(client, "s1", job_id, {"status": status, "output": output})
        assert r.status_code == 200, r.get_json()
        if index == 1:
            latest_success = job_id
    events = new_status(client, "s1", "active")
    job = get_job(client, events[0]["job_id"])
    assert job["input"] == {"n": 2}
    assert job["trigger"]["parent_job_id"] == latest_success


def test_inference_target_runs_on_its_newest_active_version(client):
    create_model(client, "s1")
    create_model(client, "t1")
    activate(client, "t1")
    activate(client, "t1", new_version(client, "t1"))  # "2", active
    new_version(client, "t1")  # "3", pending
    subscribe(client, "s1", "t1")
    activate(client, "s1")
    fired = (
        all_jobs(client, "t1") + version_jobs(client, "t1", "2") + version_jobs(client, "t1", "3")
    )
    assert [job["model_version"] for job in fired] == ["2"]


def test_triggered_events_are_empty_for_every_other_transition(client):
    create_model(client, "s1")
    create_model(client, "t1")
    activate(client, "t1")
    sub = subscribe(client, "s1", "t1")
    walk = ["failed", "pending", "training", "failed", "training", "training"]
    for status in walk:
        assert new_status(client, "s1", status) == [], status
    assert all_jobs(client, "t1") == []
    events = new_status(client, "s1", "active")
    assert [e["subscription_id"] for e in events] == [sub["id"]]
    assert new_status(client, "s1", "active") == []  # a same-status no-op fires nothing
    version = new_version(client, "s1")
    assert new_status(client, "s1", "active", version) == []  # pending → active does not fire
    assert [job["job_id"] for job in all_jobs(client, "t1")] == [events[0]["job_id"]]


def test_every_active_subscription_fires_once_per_transition(client):
    create_model(client, "s1")
    for target in ("t1", "t2"):
        create_model(client, target)
        activate(client, target)
    subs = [
        subscribe(client, "s1", "t1"),
        subscribe(client, "s1", "t2", source="trigger_output"),
        subscribe(client, "s1", "t2", action="training"),
        subscribe(client, "s1", "t1", event="inference_complete"),
    ]
    new_status(client, "s1", "training")
    events = new_status(client, "s1", "active")
    assert sorted(e["subscription_id"] for e in events) == sorted(s["id"] for s in subs[:3])
    assert len({e["job_id"] for e in events}) == 3


def test_completion_answers_207_when_a_subscription_cannot_start(client):
    create_model(client, "s1", inference="hold")
    create_model(client, "ready")
    create_model(client, "idle")  # no active version
    activate(client, "s1")
    activate(client, "ready")
    ok = subscribe(client, "s1", "ready", event="inference_complete")
    broken = subscribe(client, "s1", "idle", event="inference_complete")
    job_id = start_inference(client, "s1", {"q": 1})
    wait_for_job(client, job_id, ("started",))
    r = complete(client, "s1", job_id, {"status": "success", "output": {"a": 1}})
    assert r.status_code == 207, r.get_json()
    body = r.get_json()
    assert body["status"] == "success" and body["job_id"] == job_id
    by_sub = {e["subscription_id"]: e for e in body["triggered_events"]}
    assert set(by_sub) == {ok["id"], broken["id"]}
    assert set(by_sub[ok["id"]]) == {"subscription_id", "job_id"}
    assert set(by_sub[broken["id"]]) == {"subscription_id", "error"}
    assert "active version" in by_sub[broken["id"]]["error"]
    again = complete(client, "s1", job_id, {"status": "success", "output": {"a": 1}})
    assert (again.status_code, again.get_json()) == (207, body)
    assert all_jobs(client, "idle") == []
    # Once the target has an active version, every subscription starts and the answer is 200.
    activate(client, "idle")
    job_id = start_inference(client, "s1", {"q": 2})
    wait_for_job(client, job_id, ("started",))
    r = complete(client, "s1", job_id, {"status": "success", "output": {"a": 2}})
    assert r.status_code == 200, r.get_json()
    assert all("job_id" in e for e in r.get_json()["triggered_events"])


def test_a_failed_inference_fires_nothing(client):
    create_model(client, "s1", inference="hold")
    create_model(client, "t1")
    activate(client, "s1")
    activate(client, "t1")
    subscribe(client, "s1", "t1", event="inference_complete")
    job_id = start_inference(client, "s1", {"q": 1})
    r = complete(client, "s1", job_id, {"status": "failure", "error": {"message": "x"}})
    assert (r.status_code, r.get_json()["triggered_events"]) == (200, [])
    assert all_jobs(client, "t1") == []


def test_new_status_reports_a_subscription_that_cannot_start(client):
    create_model(client, "s1")
    create_model(client, "idle")
    sub = subscribe(client, "s1", "idle")
    new_status(client, "s1", "training")
    events = new_status(client, "s1", "active")
    assert len(events) == 1 and set(events[0]) == {"subscription_id", "error"}
    assert events[0]["subscription_id"] == sub["id"] and events[0]["error"]


def test_paused_and_stale_subscriptions_do_not_fire_until_rearmed(client):
    create_model(client, "s1")
    create_model(client, "t1")
    activate(client, "t1")
    active = subscribe(client, "s1", "t1")
    paused = subscribe(client, "s1", "t1")
    put_sub(client, "s1", paused["id"], {"status": "paused"})
    stale = subscribe(client, "s1", "t1", source="trigger_output")
    update_model(client, "s1", training="other")  # s1 has no contracts: the handler counts
    assert [get_sub(client, "s1", s["id"])["status"] for s in (active, paused, stale)] == [
        "active",
        "paused",
        "stale",
    ]
    new_status(client, "s1", "training")
    assert [e["subscription_id"] for e in new_status(client, "s1", "active")] == [active["id"]]
    assert len(all_jobs(client, "t1")) == 1
    for sub in (paused, stale):
        assert put_sub(client, "s1", sub["id"], {"status": "active"})["status"] == "active"
    version = new_version(client, "s1")
    new_status(client, "s1", "training", version)
    events = new_status(client, "s1", "active", version)
    assert {e["subscription_id"] for e in events} == {active["id"], paused["id"], stale["id"]}


# --- the loop guard ----------------------------------------------------------------------


def cycle(client, a_inference="echo", b_inference="echo"):
    """A → B → A on inference_complete, passing each output on."""
    create_model(client, "a", inference=a_inference)
    create_model(client, "b", inference=b_inference)
    activate(client, "a")
    activate(client, "b")
    ab = subscribe(client, "a", "b", event="inference_complete", source="trigger_output")
    ba = subscribe(client, "b", "a", event="inference_complete", source="trigger_output")
    return ab["id"], ba["id"]


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGER_DEPTH": 3}])
def test_a_subscription_cycle_stops_at_the_depth_limit(client):
    ab, ba = cycle(client)
    root = start_inference(client, "a", {"hop": 0})

    def deepest_done():
        # b's list first: once it holds the done depth-3 job, a's (read after) holds every
        # job before it. Read the other way, a's list could predate depth 2 (CI once saw 3).
        jobs = all_jobs(client, "b", "a")
        deep = [j for j in jobs if (j["trigger"] or {}).get("depth") == 3]
        return jobs if deep and deep[0]["status"] in ("success", "failure") else None

    jobs = sorted(wait_for(deepest_done), key=lambda j: j["job_id"])
    # The depth-3 job is complete and its (refused) trigger committed with it: nothing follows.
    assert len(jobs) == 4
    assert [j["model_id"] for j in jobs] == ["a", "b", "a", "b"]
    assert jobs[0]["job_id"] == root and jobs[0]["trigger"] is None
    for depth, (parent, job) in enumerate(itertools.pairwise(jobs), start=1):
        expected_sub = ab if job["model_id"] == "b" else ba
        assert job["trigger"] == {
            "subscription_id": expected_sub,
            "parent_job_id": parent["job_id"],
            "depth": depth,
        }
        assert job["input"] == {"hop": 0}
    assert all(wait_for_job(client, j["job_id"])["status"] == "success" for j in jobs)
    assert len(all_jobs(client, "a", "b")) == 4


@pytest.mark.parametrize("app_config", [{"PIE_MAX_TRIGGER_DEPTH": 3}])
def test_the_depth_limit_is_reported_as_an_error_event(client):
    ab, ba = cycle(client, b_inference="hold")
    start_inference(client, "a", {"hop": 0})
    first = triggered_job(client, "b", ab)
    assert first["trigger"]["depth"] == 1
    r = complete(client, "b", first["job_id"], {"status": "success", "output": {"hop": 1}})
    assert r.status_code == 200, r.get_json()
    [event] = r.get_json()["triggered_events"]
    assert event["subscription_id"] == ba
    assert get_job(client, event["job_id"])["trigger"]["depth"] == 2

    def third():
        jobs = [j for j in version_jobs(client, "b") if j["trigger"]["depth"] == 3]
        return jobs[0] if jobs else None

    deep = wait_for(third)
    assert deep["input"] == {"hop": 1}
    r = complete(client, "b", deep["job_id"], {"status": "success", "output": {"hop": 3}})
    assert r.status_code == 207, r.get_json()
    [event] = r.get_json()["triggered_events"]
    assert set(event) == {"subscription_id", "error"} and event["subscription_id"] == ba
    assert "depth" in event["error"].lower()
    assert len(version_jobs(client, "a")) == 2


# --- staleness (5.3) ---------------------------------------------------------------------

SCHEMA_V1 = {"type": "object"}
SCHEMA_V2 = {"type": "object", "required": ["changed"]}
CONTRACTS = {
    kind: {"input_schema": SCHEMA_V1, "output_schema": SCHEMA_V1}
    for kind in ("training", "inference")
}


@pytest.fixture
def dependents(client):
    """Subscriptions around model m (with contracts), by what they depend on."""
    create_model(client, "m", contracts=CONTRACTS)
    create_model(client, "x")
    activate(client, "m")
    made = {
        "into_m_training": subscribe(client, "x", "m", action="training"),
        "into_m_inference": subscribe(client, "x", "m", event="inference_complete"),
        "m_training_output": subscribe(client, "m", "x", source="trigger_output"),
        "m_inference_output": subscribe(
            client, "m", "x", event="inference_complete", source="trigger_output"
        ),
        "m_training_stored": subscribe(client, "m", "x"),
        "m_inference_stored": subscribe(client, "m", "x", event="inference_complete"),
        "unrelated": subscribe(client, "x", "x", source="trigger_output"),
    }
    return {name: (sub["source_model_id"], sub["id"]) for name, sub in made.items()}


def stale_names(client, dependents):
    return {
        name
        for name, (source, sub_id) in dependents.items()
        if get_sub(client, source, sub_id)["status"] == "stale"
    }


@pytest.mark.parametrize(
    ("kind", "side", "expected"),
    [
        ("training", "input_schema", {"into_m_training"}),
        ("inference", "input_schema", {"into_m_inference"}),
        ("training", "output_schema", {"m_training_output"}),
        ("inference", "output_schema", {"m_inference_output"}),
    ],
)
def test_a_contract_change_stales_exactly_its_dependents(client, dependents, kind, side, expected):
    contracts = {k: dict(v) for k, v in CONTRACTS.items()}
    contracts[kind][side] = SCHEMA_V2
    update_model(client, "m", contracts=contracts)
    assert stale_names(client, dependents) == expected


def test_with_contracts_a_handler_change_stales_nothing(client, dependents):
    update_model(client, "m", training="other", inference="other", contracts=CONTRACTS)
    assert stale_names(client, dependents) == set()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("training", {"into_m_training", "m_training_output"}),
        ("inference", {"into_m_inference", "m_inference_output"}),
    ],
)
def test_without_contracts_a_handler_change_stales_both_sides(client, kind, expected):
    create_model(client, "m")
    create_model(client, "x")
    made = {
        "into_m_training": subscribe(client, "x", "m", action="training"),
        "into_m_inference": subscribe(client, "x", "m", event="inference_complete"),
        "m_training_output": subscribe(client, "m", "x", source="trigger_output"),
        "m_inference_output": subscribe(
            client, "m", "x", event="inference_complete", source="trigger_output"
        ),
        "m_training_stored": subscribe(client, "m", "x"),
        "m_inference_stored": subscribe(client, "m", "x", event="inference_complete"),
    }
    dependents = {name: (sub["source_model_id"], sub["id"]) for name, sub in made.items()}
    update_model(client, "m", **{kind: "other"})
    assert stale_names(client, dependents) == expected


def test_an_update_that_changes_no_dependency_stales_nothing(client, dependents):
    update_model(client, "m", contracts=CONTRACTS)
    assert stale_names(client, dependents) == set()


# --- the subscribe flag (5.4) ------------------------------------------------------------


def test_subscribe_stores_a_replay_and_retraining_replays_it(client):
    create_model(client, "m1")
    activate(client, "m1")
    job_input = {"customer": 42}
    first = start_inference(client, "m1", job_input, subscribe=True)
    [sub] = list_subs(client, "m1")
    assert (sub["trigger_event"], sub["target_model_id"]) == ("training_complete", "m1")
    assert (sub["target_action"], sub["input_source"]) == ("inference", "stored")
    assert (sub["input"], sub["label"], sub["status"]) == (job_input, "subscribe", "active")
    wait_for_job(client, first)
    version = new_version(client, "m1")
    new_status(client, "m1", "training", version)
    [event] = new_status(client, "m1", "active", version)
    assert event["subscription_id"] == sub["id"]
    replay = wait_for_job(client, event["job_id"])
    assert (replay["model_version"], replay["job_type"]) == (version, "inference")
    assert (replay["input"], replay["status"], replay["output"]) == (
        job_input,
        "success",
        job_input,
    )


def test_inference_without_subscribe_stores_no_subscription(client):
    create_model(client, "m1")
    activate(client, "m1")
    start_inference(client, "m1", {"customer": 42})
    assert list_subs(client, "m1") == []


def test_subscribe_on_a_version_that_is_not_active_stores_nothing(client):
    create_model(client, "m1")
    r = client.post(
        "/v2/models/m1/versions/1/inference", json={"input": {"a": 1}, "subscribe": True}
    )
    assert_envelope(r, 422)
    assert list_subs(client, "m1") == []


# --- deleting models ---------------------------------------------------------------------


def test_deleting_a_model_removes_its_subscriptions_on_both_sides(client):
    for model_id in ("a", "b", "c", "d"):
        create_model(client, model_id)
    a_to_b = subscribe(client, "a", "b")
    a_to_c = subscribe(client, "a", "c")
    subscribe(client, "b", "a")
    subscribe(client, "b", "b")
    c_to_b = subscribe(client, "c", "b")
    c_to_d = subscribe(client, "c", "d")
    assert client.delete("/v2/models/b").status_code == 204
    assert [s["id"] for s in list_subs(client, "a")] == [a_to_c["id"]]
    assert [s["id"] for s in list_subs(client, "c")] == [c_to_d["id"]]
    assert_envelope(client.get(sub_path("a", a_to_b["id"])), 404)
    assert_envelope(client.get(sub_path("c", c_to_b["id"])), 404)
    assert_envelope(client.get(sub_path("b")), 404)
    create_model(client, "b")  # the same id again starts with no subscriptions
    assert list_subs(client, "b") == []
