"""Job control against moto's server on loopback (issue 15): an ECS job is stopped on cancel
and when it times out (moto shows the task STOPPED), a Lambda job that never calls back
times out, and a failed dispatch is retried with the job's attempt in the payload."""

from __future__ import annotations

import time
from typing import Any

from tests.helpers import Client, wait_for, wait_for_job
from tests.plugins.test_aws_lambda import create_function, wait_started
from tests.plugins.test_aws_lambda import create_model as create_lambda_model
from tests.plugins.test_ecs_task import (
    JOB_INPUT,
    create_model,
    describe_task,
    register_task,
    start_inference,
)


def recover(client: Client) -> int:
    return client.raw.application.extensions["pie"].dispatcher.recover_once()


def set_policy(client: Client, **inference: Any) -> None:
    r = client.put("/v2/models/m1/job_policy", json={"inference": inference})
    assert r.status_code == 200, r.get_json()


def test_cancelling_an_ecs_job_stops_its_task(aws, aws_client):
    create_model(aws_client, f"ml/{register_task(aws)}")
    job_id = start_inference(aws_client, JOB_INPUT)
    task_arn = wait_for_job(aws_client, job_id, ("started",))["external_id"]
    assert describe_task(aws, task_arn)["lastStatus"] != "STOPPED"

    r = aws_client.post(f"/v2/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.get_json()
    task = describe_task(aws, task_arn)
    assert task["lastStatus"] == "STOPPED" and task["desiredStatus"] == "STOPPED"
    assert "Cancelled" in task["stoppedReason"] and job_id in task["stoppedReason"]


def test_an_ecs_job_past_its_deadline_is_stopped(aws, aws_client):
    create_model(aws_client, f"ml/{register_task(aws)}")
    set_policy(aws_client, timeout_seconds=1)
    job_id = start_inference(aws_client, JOB_INPUT)
    task_arn = wait_for_job(aws_client, job_id, ("started",))["external_id"]
    time.sleep(1.1)
    assert recover(aws_client) == 1
    assert aws_client.get(f"/v2/jobs/{job_id}").get_json()["error"]["type"] == "Timeout"
    assert describe_task(aws, task_arn)["lastStatus"] == "STOPPED"


def test_a_lambda_job_that_never_calls_back_times_out(aws, aws_client, lambda_invocations):
    # moto's docker-free Lambda accepts the invocation and runs nothing: the function never
    # calls back, as an asynchronous invocation that AWS dropped after its retries.
    create_lambda_model(aws_client, {"type": "lambda", "arn": create_function(aws)})
    set_policy(aws_client, timeout_seconds=1)
    job_id = start_inference(aws_client, {"x": 1})
    wait_started(aws_client, job_id)
    assert len(lambda_invocations) == 1
    time.sleep(1.1)
    assert recover(aws_client) == 1
    job = aws_client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "Timeout"
    assert recover(aws_client) == 0


def test_a_failed_dispatch_is_retried_and_each_attempt_has_its_own_token(
    aws, aws_client, lambda_invocations
):
    create_model(aws_client, "ml/not-registered:1")  # RunTask fails: no such definition
    set_policy(aws_client, max_attempts=2, retry_backoff_seconds=0)
    job_id = start_inference(aws_client, JOB_INPUT)

    def failed() -> Any:
        recover(aws_client)
        job = aws_client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job["status"] == "failure" else None

    job = wait_for(failed, timeout=20, interval=0.1)
    assert job["attempt"] == 2 and job["error"]["type"] == "DispatchError"
    assert "not-registered" in job["error"]["message"]
    assert [a["error"]["type"] for a in job["attempts"]] == ["DispatchError"]

    # A Lambda retried after a timeout gets its second attempt's payload and token.
    create_lambda_model(aws_client, {"type": "lambda", "arn": create_function(aws)}, "m2")
    r = aws_client.put(
        "/v2/models/m2/job_policy",
        json={"inference": {"timeout_seconds": 1, "max_attempts": 2, "retry_backoff_seconds": 0}},
    )
    assert r.status_code == 200
    second = start_inference(aws_client, {"x": 2}, model_id="m2")
    wait_started(aws_client, second)
    time.sleep(1.1)
    recover(aws_client)
    wait_for(lambda: recover(aws_client) >= 0 and len(lambda_invocations) == 2, timeout=10)
    first_event, second_event = (inv.event for inv in lambda_invocations)
    assert (first_event["attempt"], second_event["attempt"]) == (1, 2)
    old, new = first_event["callback"]["token"], second_event["callback"]["token"]
    path = f"/v2/models/m2/versions/1/jobs/{second}/complete"
    late = aws_client.post(path, json={"status": "success", "output": {}}, token=old)
    assert late.status_code == 409, late.get_json()
    done = aws_client.post(path, json={"status": "success", "output": {}}, token=new)
    assert done.status_code == 200, done.get_json()
