"""Every subscription combination (trigger event × target action × input source) firing a
job on a Lambda target on moto's server: the function receives the triggered job, with the
right input and causation, and completes it by callback."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import Client, activate, model_body, wait_for, wait_for_job
from tests.plugins.test_aws_lambda import create_function

STORED = {"stored": True}
TRIGGER_INPUT = {"text": "hi"}


@pytest.fixture
def chain(aws, aws_client):
    """Source `src` runs in process (echo); target `tgt` runs on Lambda."""
    arn = create_function(aws)
    assert aws_client.post("/v2/models", json=model_body("src")).status_code == 201
    activate(aws_client, "src")
    lam = {"type": "lambda", "arn": arn}
    body = model_body("tgt", handlers={"training": lam, "inference": lam})
    assert aws_client.post("/v2/models", json=body).status_code == 201
    activate(aws_client, "tgt")
    return aws_client


def fire(client: Client, trigger_event: str) -> None:
    if trigger_event == "inference_complete":
        r = client.post("/v2/models/src/versions/1/inference", json={"input": TRIGGER_INPUT})
        assert r.status_code == 202
        wait_for_job(client, r.get_json()["inference_job_id"])
        return
    version = client.post("/v2/models/src/new_version", json={}).get_json()["version"]["version"]
    activate(client, "src", version)  # training → active fires training_complete


@pytest.mark.parametrize(
    "trigger_event,target_action,input_source",
    list(
        itertools.product(
            ("training_complete", "inference_complete"),
            ("inference", "training"),
            ("stored", "trigger_output"),
        )
    ),
)
def test_subscription_fires_a_lambda_job(
    chain, lambda_invocations, trigger_event, target_action, input_source
):
    sub = {
        "trigger_event": trigger_event,
        "target_model_id": "tgt",
        "target_action": target_action,
        "input_source": input_source,
    }
    if input_source == "stored":
        sub["input"] = STORED
    r = chain.post("/v2/models/src/event-subscriptions", json=sub)
    assert r.status_code == 201, r.get_json()
    sub_id = r.get_json()["id"]

    fire(chain, trigger_event)

    invocation = wait_for(
        lambda: next(
            (
                i
                for i in lambda_invocations
                if (i.event["context"]["trigger"] or {}).get("subscription_id") == sub_id
            ),
            None,
        )
    )
    event = invocation.event
    assert invocation.invocation_type == "Event"
    assert event["model_id"] == "tgt" and event["job_type"] == target_action
    expected = (
        STORED
        if input_source == "stored"
        else (TRIGGER_INPUT if trigger_event == "inference_complete" else {})
    )
    assert event["input"] == expected
    assert event["context"]["trigger"]["depth"] == 1
    if target_action == "training":
        version = chain.get(f"/v2/models/tgt/versions/{event['model_version']}").get_json()
        assert event["model_version"] != "1" and version["status"] == "training"
    else:
        assert event["model_version"] == "1"

    callback = event["callback"]
    path = callback["url"].removeprefix("http://pie.test")
    done = chain.post(
        path, json={"status": "success", "output": {"ok": True}}, token=callback["token"]
    )
    assert done.status_code == 200, done.get_json()
    assert wait_for_job(chain, event["job_id"])["status"] == "success"
