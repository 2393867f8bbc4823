"""The `ecs_task` handler type against moto's ECS on loopback: RunTask with the job in the
container's environment (contract 6.4), the RunTask settings (contract 11), and failures."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import Client, activate, assert_envelope, model_body, wait_for_job
from tests.plugins.conftest import REGION

CONTAINERS = [
    {"name": "model", "image": "example.org/scorer:1", "memory": 256, "essential": True},
    {"name": "sidecar", "image": "example.org/log-shipper:1", "memory": 64},
]
JOB_INPUT = {"rows": [[1, 2], [3, 4]], "note": "naïve ☃"}
ENV_NAMES = {"PIE_JOB_ID", "PIE_JOB_PAYLOAD", "PIE_CALLBACK_URL", "PIE_CALLBACK_TOKEN"}


def register_task(aws: Any, family: str = "scorer", **extra: Any) -> str:
    """Register a task definition revision on moto; returns its `family:revision`."""
    ecs = aws("ecs")
    if not ecs.list_clusters()["clusterArns"]:
        ecs.create_cluster(clusterName="ml")
    td = ecs.register_task_definition(family=family, containerDefinitions=CONTAINERS, **extra)
    return f"{family}:{td['taskDefinition']['revision']}"


def create_model(client: Client, value: str, model_id: str = "m1") -> None:
    handler = {"type": "ecs_task", "value": value}
    r = client.post(
        "/v2/models",
        json=model_body(model_id, handlers={"training": handler, "inference": handler}),
    )
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def start_inference(client: Client, job_input: dict[str, Any], model_id: str = "m1") -> str:
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": job_input})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def run_job(client: Client, value: str, job_input: dict[str, Any] = JOB_INPUT) -> dict:
    create_model(client, value)
    job = wait_for_job(client, start_inference(client, job_input), ("started", "failure"))
    assert job["status"] == "started", job
    return job


def add_container_instance(aws: Any) -> None:
    """EC2 tasks need a container instance in the cluster, backed by an EC2 instance."""
    ec2 = aws("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    document = json.dumps({"instanceId": instance["InstanceId"]})
    aws("ecs").register_container_instance(cluster="ml", instanceIdentityDocument=document)


def describe_task(aws: Any, task_arn: str, cluster: str = "ml") -> dict[str, Any]:
    described = aws("ecs").describe_tasks(cluster=cluster, tasks=[task_arn])
    assert described["failures"] == [] and len(described["tasks"]) == 1, described
    return described["tasks"][0]


def overrides(task: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The one container override of a task: its container name and environment."""
    (override,) = task["overrides"]["containerOverrides"]
    return override["name"], {e["name"]: e["value"] for e in override["environment"]}


def contract_payload(job_id: str, job_input: Any, token: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_type": "inference",
        "model_id": "m1",
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
            "url": f"http://pie.test/v2/models/m1/versions/1/jobs/{job_id}/complete",
            "heartbeat_url": f"http://pie.test/v2/models/m1/versions/1/jobs/{job_id}/heartbeat",
            "token": token,
        },
    }


def complete(client: Client, env: dict[str, str], output: dict[str, Any]) -> None:
    """Act as the task: POST the callback with the token from the environment."""
    path = urlsplit(env["PIE_CALLBACK_URL"]).path
    body = {"status": "success", "output": output}
    r = client.post(path, json=body, token=env["PIE_CALLBACK_TOKEN"])
    assert r.status_code == 200, r.get_json()


def test_run_task_carries_the_job_in_the_first_containers_environment(aws, aws_client):
    family_revision = register_task(aws)

    job = run_job(aws_client, f"ml/{family_revision}")

    task = describe_task(aws, job["external_id"])
    assert task["taskArn"] == job["external_id"]
    assert task["taskDefinitionArn"].endswith(f":task-definition/{family_revision}")
    assert task["launchType"] == "FARGATE"
    name, env = overrides(task)
    assert name == "model"
    assert set(env) == ENV_NAMES
    assert env["PIE_JOB_ID"] == job["job_id"]
    expected = contract_payload(job["job_id"], JOB_INPUT, env["PIE_CALLBACK_TOKEN"])
    assert json.loads(env["PIE_JOB_PAYLOAD"]) == expected
    assert env["PIE_CALLBACK_URL"] == expected["callback"]["url"]

    complete(aws_client, env, {"label": "spam"})
    done = wait_for_job(aws_client, job["job_id"])
    assert done["status"] == "success" and done["output"] == {"label": "spam"}


def test_a_family_without_revision_runs_the_latest_revision(aws, aws_client):
    register_task(aws)
    latest = register_task(aws)
    assert latest == "scorer:2"

    job = run_job(aws_client, "ml/scorer")

    task = describe_task(aws, job["external_id"])
    assert task["taskDefinitionArn"].endswith(":task-definition/scorer:2")
    assert overrides(task)[0] == "model"


def test_the_container_name_comes_from_pie_ecs_container(aws, make_app, aws_config):
    client = Client(make_app({**aws_config, "PIE_ECS_CONTAINER": "sidecar"}).test_client())
    family_revision = register_task(aws)

    job = run_job(client, f"ml/{family_revision}")

    name, env = overrides(describe_task(aws, job["external_id"]))
    assert name == "sidecar"
    assert env["PIE_JOB_ID"] == job["job_id"]


def test_the_launch_type_comes_from_pie_ecs_launch_type(aws, make_app, aws_config):
    client = Client(make_app({**aws_config, "PIE_ECS_LAUNCH_TYPE": "EC2"}).test_client())
    family_revision = register_task(aws)
    add_container_instance(aws)

    job = run_job(client, f"ml/{family_revision}")

    task = describe_task(aws, job["external_id"])
    assert task["launchType"] == "EC2"
    assert overrides(task)[0] == "model"


def test_subnets_and_security_groups_come_from_comma_separated_settings(
    aws, make_app, aws_config, monkeypatch, ecs_run_task_requests
):
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto 5.2 fails awsvpc RunTask with a 500 unless the VPC has DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    groups = [
        ec2.create_security_group(GroupName=n, Description=n, VpcId=vpc)["GroupId"]
        for n in ("model-egress", "model-db")
    ]
    monkeypatch.setenv("PIE_ECS_SUBNETS", f"{subnets[0]}, {subnets[1]}")
    monkeypatch.setenv("PIE_ECS_SECURITY_GROUPS", ",".join(groups))
    client = Client(make_app(aws_config).test_client())
    family_revision = register_task(
        aws, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512"
    )

    job = run_job(client, f"ml/{family_revision}")

    assert [r.get("networkConfiguration") for r in ecs_run_task_requests] == [
        {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}
    ]
    # What moto reports back: the task's network interface, in the first subnet, in both groups.
    (attachment,) = describe_task(aws, job["external_id"])["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    assert details["subnetId"] == subnets[0]
    (eni,) = ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])[
        "NetworkInterfaces"
    ]
    assert sorted(g["GroupId"] for g in eni["Groups"]) == sorted(groups)


def test_no_network_configuration_without_subnets(aws, aws_client, ecs_run_task_requests):
    run_job(aws_client, f"ml/{register_task(aws)}")

    assert len(ecs_run_task_requests) == 1
    assert "networkConfiguration" not in ecs_run_task_requests[0]


def test_a_large_input_is_read_back_with_the_callback_token(aws, aws_client):
    big_input = {"blob": "x" * 9000}

    job = run_job(aws_client, f"ml/{register_task(aws)}", big_input)

    _, env = overrides(describe_task(aws, job["external_id"]))
    assert set(env) == ENV_NAMES - {"PIE_JOB_PAYLOAD"}
    assert env["PIE_JOB_ID"] == job["job_id"]
    r = aws_client.get(f"/v2/jobs/{job['job_id']}", token=env["PIE_CALLBACK_TOKEN"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["input"] == big_input
    assert_envelope(aws_client.get("/v2/models", token=env["PIE_CALLBACK_TOKEN"]), 403)

    complete(aws_client, env, {"size": 9000})
    assert wait_for_job(aws_client, job["job_id"])["status"] == "success"


def test_a_payload_just_under_8_kib_stays_in_the_environment(aws, aws_client):
    job = run_job(aws_client, f"ml/{register_task(aws)}", {"blob": "x" * 6000})

    _, env = overrides(describe_task(aws, job["external_id"]))
    assert json.loads(env["PIE_JOB_PAYLOAD"])["input"] == {"blob": "x" * 6000}


@pytest.mark.parametrize(
    ("value", "reasons", "named"),
    [
        ("missing-cluster/scorer:1", ["ClusterNotFound", "Cluster not found"], "missing-cluster"),
        ("ml/not-registered:1", ["Unable to describe task definition"], "not-registered:1"),
    ],
)
def test_a_missing_cluster_or_task_definition_fails_the_job_readably(
    aws, aws_client, value, reasons, named
):
    register_task(aws)
    create_model(aws_client, value)

    job = wait_for_job(aws_client, start_inference(aws_client, JOB_INPUT))

    assert job["status"] == "failure", job
    message = job["error"]["message"]
    assert any(word in message for word in reasons), message
    assert f"'{named}'" in message, message  # the message names what is missing
    assert job["external_id"] is None


def test_an_unreachable_endpoint_fails_the_job_without_hanging(aws_credentials, make_app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_app({"PIE_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "PIE_AWS_REGION": REGION})
    client = Client(app.test_client())
    create_model(client, "ml/scorer:1")

    job = wait_for_job(client, start_inference(client, JOB_INPUT), timeout=30)

    assert job["status"] == "failure", job
    assert f"127.0.0.1:{port}" in job["error"]["message"]


@pytest.mark.parametrize("value", ["ml", "ml/scorer/1", "arn:aws:ecs:task/x", "ml/scorer:x"])
def test_a_malformed_ecs_task_value_is_400(client, value):
    handler = {"type": "ecs_task", "value": value}
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": handler, "inference": handler})
    )
    body = assert_envelope(r, 400)
    assert "json.handlers.inference.value" in body["message"]


def test_a_new_revision_of_a_family_uses_its_own_first_container(aws, aws_client):
    register_task(aws)
    create_model(aws_client, "ml/scorer")
    first = wait_for_job(aws_client, start_inference(aws_client, JOB_INPUT), ("started", "failure"))
    renamed = [{**CONTAINERS[0], "name": "predictor"}, CONTAINERS[1]]
    aws("ecs").register_task_definition(family="scorer", containerDefinitions=renamed)

    second = wait_for_job(
        aws_client, start_inference(aws_client, JOB_INPUT), ("started", "failure")
    )

    assert overrides(describe_task(aws, first["external_id"]))[0] == "model"
    task = describe_task(aws, second["external_id"])
    assert task["taskDefinitionArn"].endswith(":task-definition/scorer:2")
    assert overrides(task)[0] == "predictor"


def test_a_run_task_that_starts_no_task_fails_the_job_readably(aws, make_app, aws_config):
    client = Client(make_app({**aws_config, "PIE_ECS_LAUNCH_TYPE": "EC2"}).test_client())
    aws("ecs").create_cluster(clusterName="ml")
    add_container_instance(aws)
    # More memory than the container instance has: moto places no task and reports no failure.
    huge = [{"name": "model", "image": "example.org/scorer:1", "memory": 10_000_000}]
    aws("ecs").register_task_definition(family="huge", containerDefinitions=huge)
    create_model(client, "ml/huge:1")

    job = wait_for_job(client, start_inference(client, JOB_INPUT))

    assert job["status"] == "failure", job
    message = job["error"]["message"]
    assert "RunTask" in message and "IndexError" not in message
