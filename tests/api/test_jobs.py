"""Jobs: starting inference and training, reading and listing jobs, the completion callback and
in-process execution (contract sections 4 and 6)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    Implementations,
    activate,
    assert_envelope,
    make_token,
    model_body,
    wait_for_job,
)

JOB_FIELDS = {
    "job_id",
    "job_type",
    "model_id",
    "model_version",
    "status",
    "input",
    "output",
    "error",
    "warnings",
    "assignment_id",
    "client_id",
    "domain_id",
    "service_id",
    "trigger",
    "handler_type",
    "external_id",
    "created_at",
    "started_at",
    "completed_at",
    # PIE extensions (issue 15): attempts, deadline, heartbeat and progress.
    "attempt",
    "attempts",
    "deadline_at",
    "heartbeat_at",
    "progress",
    "progress_message",
}
RESULT_FIELDS = {"job_id", "model_id", "model_version", "status", "triggered_events"}
SCORE_CONTRACT = {
    "input_schema": {
        "type": "object",
        "required": ["x", "y"],
        "properties": {"x": {"type": "integer"}, "y": {"type": "string"}},
    },
    "output_schema": {
        "type": "object",
        "required": ["score"],
        "properties": {"score": {"type": "number"}},
    },
}


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 16}, plugins=[impls])
    yield app
    impls.release.set()  # let held jobs finish before the app's pools shut down


def create_model(client, model_id, training="echo", inference="echo", contracts=None):
    body = model_body(
        model_id,
        handlers={
            "training": {"type": "in_process", "value": training},
            "inference": {"type": "in_process", "value": inference},
        },
    )
    if contracts is not None:
        body["handler_contracts"] = contracts
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()


def move(client, model_id, status, version="1"):
    r = client.post(f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def new_version(client, model_id):
    r = client.post(f"/v2/models/{model_id}/new_version", json={})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["version"]["version"]


def post_inference(client, model_id, body, version="1", **kwargs):
    path = f"/v2/models/{model_id}/versions/{version}/inference"
    return client.post(path, json=body, **kwargs)


def post_training(client, model_id, body, version="1"):
    return client.post(f"/v2/models/{model_id}/versions/{version}/training", json=body)


def start_inference(client, model_id, job_input, version="1"):
    r = post_inference(client, model_id, {"input": job_input}, version)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def start_training(client, model_id, job_input, version="1"):
    r = post_training(client, model_id, {"input": job_input}, version)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["training_job_id"]


def complete(client, model_id, job_id, body, version="1", **kwargs):
    return client.post(
        f"/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete", json=body, **kwargs
    )


def get_job(client, job_id):
    r = client.get(f"/v2/jobs/{job_id}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def version_jobs(client, model_id, version="1", query=""):
    r = client.get(f"/v2/models/{model_id}/versions/{version}/jobs{query}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def version_status(client, model_id, version="1"):
    return client.get(f"/v2/models/{model_id}/versions/{version}").get_json()["status"]


def held_job(client, model_id, job_input=None, version="1"):
    """An inference job that stays `started` until the test completes it."""
    job_id = start_inference(client, model_id, job_input or {"x": 1}, version)
    wait_for_job(client, job_id, ("started",))
    return job_id


# --- starting inference ------------------------------------------------------------------


def test_inference_returns_202_with_the_job_id(client):
    create_model(client, "m1")
    activate(client, "m1")
    r = post_inference(client, "m1", {"input": {"q": 1}})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert set(body) == {"inference_job_id"}
    job = get_job(client, body["inference_job_id"])
    assert (job["job_type"], job["model_id"], job["model_version"]) == ("inference", "m1", "1")
    assert job["input"] == {"q": 1}


@pytest.mark.parametrize("path", [[], ["training"], ["training", "failed"]])
def test_inference_needs_an_active_version(client, path):
    create_model(client, "m1")
    for status in path:
        move(client, "m1", status)
    r = post_inference(client, "m1", {"input": {"q": 1}})
    body = assert_envelope(r, 422)
    assert "active" in body["message"]
    assert version_jobs(client, "m1") == []


@pytest.mark.parametrize("path", ["/v2/models/nope/versions/1", "/v2/models/m1/versions/9"])
def test_inference_on_an_unknown_model_or_version_is_404(client, path):
    create_model(client, "m1")
    activate(client, "m1")
    assert_envelope(client.post(f"{path}/inference", json={"input": {}}), 404)


@pytest.mark.parametrize("subscribe", [False, True])
def test_inference_input_failing_the_input_schema_is_422_and_stores_nothing(client, subscribe):
    create_model(client, "m1", contracts={"inference": SCORE_CONTRACT})
    activate(client, "m1")
    r = post_inference(client, "m1", {"input": {"x": "nope"}, "subscribe": subscribe})
    message = assert_envelope(r, 422)["message"]
    assert "'y' is a required property" in message
    assert "'nope' is not of type 'integer'" in message
    assert version_jobs(client, "m1") == []
    assert client.get("/v2/models/m1/event-subscriptions").get_json() == []
    assert post_inference(client, "m1", {"input": {"x": 1, "y": "a"}}).status_code == 202


def test_inference_is_not_checked_against_the_training_input_schema(client):
    create_model(client, "m1", contracts={"training": SCORE_CONTRACT})
    activate(client, "m1")
    assert post_inference(client, "m1", {"input": {"other": True}}).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": []},
        {"input": "text"},
        {"input": None},
        {"input": {}, "subscribe": "yes"},
        {"input": {}, "subscribe": 1},
        {"input": {}, "subscribe": 0},
        {"input": {}, "subscribe": None},
        {"input": {}, "unknown": 1},
    ],
)
def test_inference_with_a_bad_body_is_400(client, body):
    create_model(client, "m1")
    activate(client, "m1")
    assert_envelope(post_inference(client, "m1", body), 400)
    assert version_jobs(client, "m1") == []


# --- starting training -------------------------------------------------------------------


@pytest.mark.parametrize("path", [[], ["training", "failed"]])
def test_training_returns_202_and_moves_the_version_to_training(client, impls, path):
    create_model(client, "m1", training="hold")
    for status in path:
        move(client, "m1", status)
    r = post_training(client, "m1", {"input": {"epochs": 2}})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert set(body) == {"training_job_id"}
    assert version_status(client, "m1") == "training"
    job = get_job(client, body["training_job_id"])
    assert (job["job_type"], job["model_version"], job["input"]) == ("training", "1", {"epochs": 2})


@pytest.mark.parametrize("path", [["training"], ["training", "active"]])
def test_training_from_training_or_active_is_422(client, path):
    create_model(client, "m1")
    for status in path:
        move(client, "m1", status)
    assert_envelope(post_training(client, "m1", {"input": {}}), 422)
    assert version_status(client, "m1") == path[-1]
    assert version_jobs(client, "m1") == []


def test_training_input_failing_the_training_input_schema_is_422(client):
    create_model(client, "m1", contracts={"training": SCORE_CONTRACT})
    message = assert_envelope(post_training(client, "m1", {"input": {"y": 3}}), 422)["message"]
    assert "'x' is a required property" in message and "3 is not of type 'string'" in message
    assert version_status(client, "m1") == "pending"
    assert version_jobs(client, "m1") == []
    assert post_training(client, "m1", {"input": {"x": 1, "y": "a"}}).status_code == 202


@pytest.mark.parametrize("body", [{}, {"input": []}, {"input": {}, "subscribe": True}])
def test_training_with_a_bad_body_is_400(client, body):
    create_model(client, "m1")
    assert_envelope(post_training(client, "m1", body), 400)
    assert version_status(client, "m1") == "pending"


@pytest.mark.parametrize(("implementation", "outcome"), [("echo", "success"), ("fail", "failure")])
def test_completing_a_training_job_does_not_change_the_version_status(
    client, implementation, outcome
):
    create_model(client, "m1", training=implementation)
    job_id = start_training(client, "m1", {"epochs": 1})
    assert wait_for_job(client, job_id)["status"] == outcome
    assert version_status(client, "m1") == "training"


def test_completing_a_training_job_fires_nothing(client):
    create_model(client, "m1", training="hold")
    create_model(client, "t1")
    activate(client, "t1")
    for event in ("training_complete", "inference_complete"):
        sub = {
            "trigger_event": event,
            "target_model_id": "t1",
            "target_action": "inference",
            "input_source": "trigger_output",
        }
        assert client.post("/v2/models/m1/event-subscriptions", json=sub).status_code == 201
    job_id = start_training(client, "m1", {"epochs": 1})
    r = complete(client, "m1", job_id, {"status": "success", "output": {"loss": 0.1}})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["triggered_events"] == []
    assert version_status(client, "m1") == "training"
    assert version_jobs(client, "t1") == []


# --- reading jobs ------------------------------------------------------------------------


def test_get_job_returns_every_contract_field(client):
    create_model(client, "m1")
    activate(client, "m1")
    job_id = start_inference(client, "m1", {"q": [1, 2]})
    job = wait_for_job(client, job_id)
    assert set(job) == JOB_FIELDS
    assert job["job_id"] == job_id
    assert (job["job_type"], job["model_id"], job["model_version"]) == ("inference", "m1", "1")
    assert (job["status"], job["input"], job["output"]) == ("success", {"q": [1, 2]}, {"q": [1, 2]})
    assert job["error"] is None and job["warnings"] == [] and job["trigger"] is None
    for name in ("assignment_id", "client_id", "domain_id", "service_id", "external_id"):
        assert job[name] is None, name
    assert job["handler_type"] == "in_process"
    stamps = [job["created_at"], job["started_at"], job["completed_at"]]
    assert all(isinstance(s, str) and s.endswith("Z") for s in stamps)
    assert stamps == sorted(stamps)


def test_get_unknown_job_is_404(client):
    assert_envelope(client.get("/v2/jobs/0190a4b6-0000-7000-8000-000000000000"), 404)


@pytest.fixture
def mixed_jobs(client):
    """m1 v1 with a successful training job, then inference jobs: success, failure, started."""
    create_model(client, "m1", training="hold", inference="hold")
    training = start_training(client, "m1", {"epochs": 1})
    assert complete(client, "m1", training, {"status": "success", "output": {}}).status_code == 200
    move(client, "m1", "active")
    ok, bad, running = (held_job(client, "m1", {"n": n}) for n in range(3))
    assert complete(client, "m1", ok, {"status": "success", "output": {}}).status_code == 200
    assert complete(client, "m1", bad, {"status": "failure", "error": {}}).status_code == 200
    return {"training": training, "ok": ok, "bad": bad, "running": running}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["running", "bad", "ok", "training"]),
        ("?status=success", ["ok", "training"]),
        ("?status=failure", ["bad"]),
        ("?status=started", ["running"]),
        ("?status=pending", []),
        ("?job_type=training", ["training"]),
        ("?job_type=inference", ["running", "bad", "ok"]),
        ("?job_type=inference&status=success", ["ok"]),
    ],
)
def test_version_jobs_are_newest_first_and_filterable(client, mixed_jobs, query, expected):
    listed = version_jobs(client, "m1", query=query)
    assert [job["job_id"] for job in listed] == [mixed_jobs[name] for name in expected]
    assert all(set(job) == JOB_FIELDS for job in listed)


def test_version_jobs_pagination_counts_the_filtered_jobs(client, mixed_jobs):
    r = client.get("/v2/models/m1/versions/1/jobs?job_type=inference&page_size=2")
    assert r.status_code == 200, r.get_json()
    assert [job["job_id"] for job in r.get_json()] == [mixed_jobs["running"], mixed_jobs["bad"]]
    pagination = json.loads(r.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"]) == (3, 2)


@pytest.mark.parametrize("query", ["?status=done", "?job_type=scoring", "?status="])
def test_version_jobs_with_a_bad_filter_is_400(client, query):
    create_model(client, "m1")
    assert_envelope(client.get(f"/v2/models/m1/versions/1/jobs{query}"), 400)


def test_version_jobs_are_paginated_and_limited_to_the_version(client):
    create_model(client, "m1")
    activate(client, "m1")
    ids = [start_inference(client, "m1", {"n": n}) for n in range(5)]
    version = new_version(client, "m1")
    activate(client, "m1", version)
    start_inference(client, "m1", {"other": True}, version)
    r = client.get("/v2/models/m1/versions/1/jobs?page=2&page_size=2")
    assert r.status_code == 200, r.get_json()
    assert [job["job_id"] for job in r.get_json()] == [ids[2], ids[1]]
    pagination = json.loads(r.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"], pagination["page"]) == (5, 3, 2)
    assert [job["job_id"] for job in version_jobs(client, "m1")] == ids[::-1]


@pytest.mark.parametrize(
    "path", ["/v2/models/m1/versions/9/jobs", "/v2/models/nope/versions/1/jobs"]
)
def test_version_jobs_of_an_unknown_version_is_404(client, path):
    create_model(client, "m1")
    assert_envelope(client.get(path), 404)


# --- the completion callback -------------------------------------------------------------


def test_completion_with_success_stores_the_output_and_no_error(client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    body = {"status": "success", "output": {"y": 1}, "error": {"ignored": True}}
    r = complete(client, "m1", job_id, body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {
        "job_id": job_id,
        "model_id": "m1",
        "model_version": "1",
        "status": "success",
        "triggered_events": [],
    }
    job = get_job(client, job_id)
    assert (job["status"], job["output"], job["error"]) == ("success", {"y": 1}, None)
    assert job["completed_at"] and job["started_at"] <= job["completed_at"]


def test_completion_with_failure_stores_the_error(client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    error = {"type": "OOM", "message": "out of memory"}
    r = complete(client, "m1", job_id, {"status": "failure", "error": error})
    assert r.status_code == 200, r.get_json()
    assert set(r.get_json()) == RESULT_FIELDS
    assert (r.get_json()["status"], r.get_json()["triggered_events"]) == ("failure", [])
    job = get_job(client, job_id)
    assert (job["status"], job["error"], job["output"]) == ("failure", error, None)
    assert job["completed_at"]


@pytest.mark.parametrize("job_type", ["inference", "training"])
def test_output_violating_the_output_schema_becomes_warnings(client, job_type):
    create_model(
        client, "m1", training="hold", inference="hold", contracts={job_type: SCORE_CONTRACT}
    )
    if job_type == "inference":
        activate(client, "m1")
        job_id = held_job(client, "m1", {"x": 1, "y": "a"})
    else:
        job_id = start_training(client, "m1", {"x": 1, "y": "a"})
    r = complete(client, "m1", job_id, {"status": "success", "output": {"score": "high"}})
    assert r.status_code == 200, r.get_json()
    warnings = r.get_json()["warnings"]
    assert len(warnings) == 1 and "'high' is not of type 'number'" in warnings[0]
    job = get_job(client, job_id)
    assert (job["status"], job["warnings"]) == ("success", warnings)


def test_output_matching_the_output_schema_has_no_warnings(client):
    create_model(client, "m1", inference="hold", contracts={"inference": SCORE_CONTRACT})
    activate(client, "m1")
    job_id = held_job(client, "m1", {"x": 1, "y": "a"})
    r = complete(client, "m1", job_id, {"status": "success", "output": {"score": 0.5}})
    assert r.status_code == 200 and "warnings" not in r.get_json()
    assert get_job(client, job_id)["warnings"] == []


OUTPUT = {"score": 1, "labels": ["a", "b"], "detail": {"ok": True, "note": None}}


def subscribed_pair(client):
    """Model m1 (held inference) with an inference_complete subscription to t1."""
    create_model(client, "m1", inference="hold")
    create_model(client, "t1")
    activate(client, "m1")
    activate(client, "t1")
    sub = {
        "trigger_event": "inference_complete",
        "target_model_id": "t1",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    assert client.post("/v2/models/m1/event-subscriptions", json=sub).status_code == 201


@pytest.mark.parametrize(
    "repeat",
    [
        OUTPUT,
        # Key order does not matter, and 1.0 is the number 1.
        {"detail": {"note": None, "ok": True}, "labels": ["a", "b"], "score": 1.0},
    ],
    ids=["same", "reordered-and-1.0"],
)
def test_repeating_a_completion_returns_the_same_body_and_fires_once(app, client, repeat):
    subscribed_pair(client)
    job_id = held_job(client, "m1")
    token = {"token": app.extensions["pie"].callback_token(job_id)}  # as a handler calls
    first = complete(client, "m1", job_id, {"status": "success", "output": OUTPUT}, **token)
    assert first.status_code == 200, first.get_json()
    assert len(first.get_json()["triggered_events"]) == 1
    for _ in range(2):
        again = complete(client, "m1", job_id, {"status": "success", "output": repeat}, **token)
        assert (again.status_code, again.get_json()) == (200, first.get_json())
    assert get_job(client, job_id)["output"] == OUTPUT
    fired = version_jobs(client, "t1")
    assert [job["job_id"] for job in fired] == [first.get_json()["triggered_events"][0]["job_id"]]


@pytest.mark.parametrize(
    "different",
    [
        {**OUTPUT, "score": 2},
        {**OUTPUT, "score": True},  # Python's True == 1, JSON's true is no number
        {**OUTPUT, "score": "1"},
        {**OUTPUT, "labels": ["b", "a"]},  # arrays keep their order
        {**OUTPUT, "extra": None},
        {"score": 1},
        {},
        None,
    ],
    ids=["value", "boolean", "string", "order", "extra-key", "fewer-keys", "empty", "null"],
)
def test_repeating_a_completion_with_a_different_output_is_409(client, different):
    subscribed_pair(client)
    job_id = held_job(client, "m1")
    first = complete(client, "m1", job_id, {"status": "success", "output": OUTPUT})
    assert first.status_code == 200, first.get_json()

    body = (
        {"status": "success"} if different is None else {"status": "success", "output": different}
    )
    r = complete(client, "m1", job_id, body)

    assert assert_envelope(r, 409)["message"] == (
        f"job '{job_id}' already ended with 'success' and a different output; "
        "a repeated completion must send the same output"
    )
    job = get_job(client, job_id)
    assert (job["status"], job["output"]) == ("success", OUTPUT)
    assert len(version_jobs(client, "t1")) == 1  # nothing fired again
    again = complete(client, "m1", job_id, {"status": "success", "output": OUTPUT})
    assert (again.status_code, again.get_json()) == (200, first.get_json())


def test_repeating_a_failure_must_repeat_its_error(client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    error = {"type": "ValueError", "message": "bad input", "at": [1, 2]}
    first = complete(client, "m1", job_id, {"status": "failure", "error": error})
    assert first.status_code == 200, first.get_json()

    reordered = {"at": [1.0, 2], "message": "bad input", "type": "ValueError"}
    again = complete(client, "m1", job_id, {"status": "failure", "error": reordered})
    assert (again.status_code, again.get_json()) == (200, first.get_json())
    for body, name in [
        ({"status": "failure", "error": {**error, "message": "other"}}, "error"),
        ({"status": "failure"}, "error"),
        ({"status": "failure", "error": error, "output": {"partial": 1}}, "output"),
    ]:
        r = complete(client, "m1", job_id, body)
        assert assert_envelope(r, 409)["message"] == (
            f"job '{job_id}' already ended with 'failure' and a different {name}; "
            f"a repeated completion must send the same {name}"
        )
    job = get_job(client, job_id)
    assert (job["status"], job["error"], job["output"]) == ("failure", error, None)


def test_a_success_records_no_error_so_a_repeat_is_not_judged_by_one(client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    body = {"status": "success", "output": {"a": 1}, "error": {"message": "ignored"}}
    first = complete(client, "m1", job_id, body)
    assert first.status_code == 200, first.get_json()
    again = complete(client, "m1", job_id, {**body, "error": {"message": "also ignored"}})
    assert (again.status_code, again.get_json()) == (200, first.get_json())
    assert get_job(client, job_id)["error"] is None


@pytest.mark.parametrize(("first", "second"), [("success", "failure"), ("failure", "success")])
def test_completing_with_a_different_status_is_409(client, first, second):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    assert complete(client, "m1", job_id, {"status": first, "output": {}}).status_code == 200
    r = complete(client, "m1", job_id, {"status": second, "output": {}})
    assert assert_envelope(r, 409)["message"] == f"job '{job_id}' already ended with '{first}'"
    assert get_job(client, job_id)["status"] == first


@pytest.mark.parametrize(("model_id", "version"), [("m2", "1"), ("m1", "2"), ("nope", "1")])
def test_completion_through_another_model_or_version_is_404(client, model_id, version):
    create_model(client, "m1", inference="hold")
    create_model(client, "m2")
    activate(client, "m1")
    new_version(client, "m1")
    job_id = held_job(client, "m1")
    r = complete(client, model_id, job_id, {"status": "success", "output": {}}, version=version)
    assert_envelope(r, 404)
    assert get_job(client, job_id)["status"] == "started"


def test_completing_an_unknown_job_is_404(client):
    create_model(client, "m1")
    r = complete(client, "m1", "0190a4b6-0000-7000-8000-000000000000", {"status": "success"})
    assert_envelope(r, 404)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "started"},
        {"status": "success", "output": [1]},
        {"status": "failure", "error": "oops"},
        {"status": "success", "x": 1},
    ],
)
def test_completion_with_a_bad_body_is_400(client, body):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    assert_envelope(complete(client, "m1", job_id, body), 400)
    assert get_job(client, job_id)["status"] == "started"


def test_a_callback_token_completes_only_its_own_job(app, client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    mine, other = held_job(client, "m1"), held_job(client, "m1")
    token = app.extensions["pie"].callback_token(mine)
    r = complete(client, "m1", other, {"status": "success", "output": {}}, token=token)
    assert_envelope(r, 403)
    assert get_job(client, other)["status"] == "started"
    assert client.get(f"/v2/jobs/{other}", token=token).status_code == 403
    assert post_inference(client, "m1", {"input": {}}, token=token).status_code == 403
    assert client.get(f"/v2/jobs/{mine}", token=token).status_code == 200
    r = complete(client, "m1", mine, {"status": "success", "output": {"ok": 1}}, token=token)
    assert r.status_code == 200, r.get_json()
    assert get_job(client, mine)["output"] == {"ok": 1}


def test_completion_needs_the_complete_jobs_permission(client):
    create_model(client, "m1", inference="hold")
    activate(client, "m1")
    job_id = held_job(client, "m1")
    reader = make_token(scope="streamline/read_models")
    r = complete(client, "m1", job_id, {"status": "success"}, token=reader)
    assert_envelope(r, 403)
    worker = make_token(scope="streamline/complete_jobs")
    assert complete(client, "m1", job_id, {"status": "success"}, token=worker).status_code == 200


def test_jobs_outlive_their_model(client):
    create_model(client, "m1")
    activate(client, "m1")
    job = wait_for_job(client, start_inference(client, "m1", {"q": 1}))
    assert client.delete("/v2/models/m1").status_code == 204
    assert get_job(client, job["job_id"]) == job


# --- in-process execution ----------------------------------------------------------------


def test_in_process_echo_runs_end_to_end(client):
    create_model(client, "m1")
    activate(client, "m1")
    job_input = {"text": "hello", "nested": {"n": [1, 2.5, None, True]}}
    job_id = start_inference(client, "m1", job_input)
    assert get_job(client, job_id)["status"] in ("pending", "started", "success")
    job = wait_for_job(client, job_id)
    assert (job["status"], job["output"], job["error"]) == ("success", job_input, None)
    assert job["started_at"] and job["completed_at"]
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]


def test_an_in_process_implementation_that_raises_fails_the_job(client):
    create_model(client, "m1", inference="fail")
    activate(client, "m1")
    job = wait_for_job(client, start_inference(client, "m1", {"q": 1}))
    assert job["status"] == "failure"
    assert job["error"] == {"type": "RuntimeError", "message": "boom"}
    assert job["output"] is None and job["completed_at"]
