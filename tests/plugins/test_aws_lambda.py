"""The `lambda` handler type against moto's Lambda on loopback: what the function receives
(contract 6.4), the callback it makes with its job-scoped token, and dispatch failures."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import Client, activate, assert_envelope, model_body, wait_for_job
from tests.plugins.conftest import REGION, set_lambda_docker

# A real PIE Lambda: run the model, then POST the result to the callback. moto's docker-free
# backend does not execute it; the tests play its part through the HTTP API instead.
FUNCTION_SOURCE = """
import json
import urllib.request


def handler(event, context):
    body = json.dumps({"status": "success", "output": {"echo": event["input"]}}).encode()
    request = urllib.request.Request(
        event["callback"]["url"],
        data=body,
        method="POST",
        headers={
            "Authorization": "Bearer " + event["callback"]["token"],
            "Content-Type": "application/json",
        },
    )
    urllib.request.urlopen(request)
"""
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
JOB_INPUT = {"features": [1.5, 2, None], "label": "naïve ☃", "nested": {"ok": True}}


def create_function(aws: Any, name: str = "scorer", region: str = REGION) -> str:
    role = aws("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=TRUST_POLICY)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", FUNCTION_SOURCE)
    created = aws("lambda", region).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return created["FunctionArn"]


def create_model(client: Any, handler: dict[str, Any], model_id: str = "m1") -> None:
    body = model_body(model_id, handlers={"training": handler, "inference": handler})
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def start_inference(client: Any, job_input: dict[str, Any], model_id: str = "m1") -> str:
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": job_input})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def wait_started(client: Any, job_id: str) -> dict[str, Any]:
    job = wait_for_job(client, job_id, ("started", "success", "failure"))
    assert job["status"] == "started", job
    return job


def contract_payload(job_id: str, job_input: Any, token: str, model_id: str = "m1") -> dict:
    """Contract 6.4, with the public URL the test app is configured with."""
    return {
        "job_id": job_id,
        "job_type": "inference",
        "model_id": model_id,
        "model_version": "1",
        "attempt": 1,  # a PIE extension (issue 15)
        "input": job_input,
        "context": {
            "client_id": None,
            "domain_id": None,
            "service_id": None,
            "assignment_id": None,
            "trigger": None,
        },
        "callback": {
            "url": f"http://pie.test/v2/models/{model_id}/versions/1/jobs/{job_id}/complete",
            "heartbeat_url": f"http://pie.test/v2/models/{model_id}/versions/1/jobs/{job_id}/heartbeat",
            "token": token,
        },
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("qualifier", [None, "$LATEST", "live"])
def test_inference_invokes_the_function_asynchronously_with_the_contract_payload(
    aws, aws_client, lambda_invocations, qualifier
):
    arn = create_function(aws)
    handler: dict[str, Any] = {"type": "lambda", "arn": arn}
    if qualifier == "live":
        version = aws("lambda").publish_version(FunctionName="scorer")["Version"]
        aws("lambda").create_alias(FunctionName="scorer", Name="live", FunctionVersion=version)
    if qualifier:
        handler["version"] = qualifier
    create_model(aws_client, handler)

    job_id = start_inference(aws_client, JOB_INPUT)
    job = wait_started(aws_client, job_id)

    assert len(lambda_invocations) == 1
    received = lambda_invocations[0]
    assert received.function_name == arn
    assert received.qualifier == qualifier
    assert received.invocation_type == "Event"
    token = received.event["callback"]["token"]
    assert isinstance(token, str) and token
    assert received.event == contract_payload(job_id, JOB_INPUT, token)
    assert received.request_id and job["external_id"] == received.request_id
    assert job["handler_type"] == "lambda" and job["started_at"] is not None


def test_the_function_completes_its_job_with_the_callback_token_and_nothing_else(
    aws, aws_client, lambda_invocations
):
    create_model(aws_client, {"type": "lambda", "arn": create_function(aws)})
    job_id = start_inference(aws_client, JOB_INPUT)
    other_id = start_inference(aws_client, {"other": 1})
    wait_started(aws_client, job_id)
    wait_started(aws_client, other_id)
    events = {inv.event["job_id"]: inv.event for inv in lambda_invocations}
    assert set(events) == {job_id, other_id}
    callback = events[job_id]["callback"]
    path = urlsplit(callback["url"]).path
    token = callback["token"]
    other_path = urlsplit(events[other_id]["callback"]["url"]).path

    # The token reads its own job and nothing else.
    r = aws_client.get(f"/v2/jobs/{job_id}", token=token)
    assert r.status_code == 200 and r.get_json()["input"] == JOB_INPUT
    assert_envelope(aws_client.get(f"/v2/jobs/{other_id}", token=token), 403)
    assert_envelope(aws_client.post(other_path, json={"status": "success"}, token=token), 403)
    assert_envelope(aws_client.get("/v2/models", token=token), 403)
    assert_envelope(
        aws_client.post("/v2/models/m1/versions/1/inference", json={"input": {}}, token=token),
        403,
    )

    r = aws_client.post(path, json={"status": "success", "output": {"score": 0.75}}, token=token)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "success" and r.get_json()["job_id"] == job_id

    job = wait_for_job(aws_client, job_id)
    assert job["status"] == "success" and job["output"] == {"score": 0.75}
    assert aws_client.get(f"/v2/jobs/{other_id}").get_json()["status"] == "started"


def test_a_function_that_does_not_exist_fails_the_job_readably(moto, aws_client):
    # moto's docker-free Lambda accepts an invoke of any name; its standard backend checks
    # existence (as AWS does) before it would need Docker.
    set_lambda_docker(moto, True)
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:not-deployed"
    create_model(aws_client, {"type": "lambda", "arn": arn})

    job = wait_for_job(aws_client, start_inference(aws_client, JOB_INPUT))

    assert job["status"] == "failure", job
    message = job["error"]["message"]
    assert "ResourceNotFound" in message and "not-deployed" in message
    assert job["external_id"] is None and job["completed_at"] is not None


def test_the_region_comes_from_the_arn_when_none_is_configured(
    aws, make_app, moto, lambda_invocations
):
    arn = create_function(aws, region="eu-west-1")
    client = Client(make_app({"PIE_AWS_ENDPOINT_URL": moto, "PIE_AWS_REGION": None}).test_client())
    create_model(client, {"type": "lambda", "arn": arn})

    wait_started(client, start_inference(client, JOB_INPUT))

    assert [(inv.function_name, inv.region) for inv in lambda_invocations] == [(arn, "eu-west-1")]


def test_an_unreachable_endpoint_fails_the_job_without_hanging(aws_credentials, make_app):
    port = closed_port()
    app = make_app({"PIE_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PIE_AWS_REGION": REGION})
    client = Client(app.test_client())
    create_model(
        client, {"type": "lambda", "arn": f"arn:aws:lambda:{REGION}:123456789012:function:f"}
    )

    # botocore's bounded retries give up well within the 30 s this waits.
    job = wait_for_job(client, start_inference(client, JOB_INPUT), timeout=30)

    assert job["status"] == "failure", job
    message = job["error"]["message"]
    assert f"127.0.0.1:{port}" in message and "connect" in message.lower()


@pytest.mark.parametrize(
    ("handler", "field"),
    [
        ({"type": "lambda"}, "arn"),
        ({"type": "lambda", "arn": "my-function"}, "arn"),
        (
            {
                "type": "lambda",
                "arn": f"arn:aws:lambda:{REGION}:123456789012:function:f",
                "version": "not a qualifier",
            },
            "version",
        ),
        (
            {
                "type": "lambda",
                "arn": f"arn:aws:lambda:{REGION}:123456789012:function:f",
                "timeout": 3,
            },
            "timeout",
        ),
    ],
)
def test_a_malformed_lambda_handler_is_400(client, handler, field):
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": handler, "inference": handler})
    )
    body = assert_envelope(r, 400)
    assert f"json.handlers.inference.{field}" in body["message"]
