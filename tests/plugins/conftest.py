"""Fixtures for the handler plugins: moto's server on loopback as the AWS endpoint, fake
credentials, and recorders that show what the fake server received.

The recorders wrap moto's request handlers inside this process (ThreadedMotoServer runs here):
they instrument the fake AWS and still run it. boto3 in PIE is never touched."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import requests
from flask import Flask
from moto.server import ThreadedMotoServer

from tests.helpers import Client

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # Nothing from the machine's own AWS set-up may leak into the tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="package")
def aws_credentials() -> Iterator[None]:
    """Fake credentials while tests/plugins runs; the environment is restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="package")
def moto_server(aws_credentials: None) -> Iterator[str]:
    """One moto server for tests/plugins, on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def set_lambda_docker(url: str, use_docker: bool) -> None:
    """False: moto's docker-free Lambda backend (no Docker engine here), which accepts every
    invoke. True: the standard backend, which checks that the function exists first."""
    r = requests.post(f"{url}/moto-api/config", json={"lambda": {"use_docker": use_docker}})
    r.raise_for_status()


@pytest.fixture
def moto(moto_server: str) -> Iterator[str]:
    """The moto endpoint URL, with empty state and the docker-free Lambda backend."""
    requests.post(f"{moto_server}/moto-api/reset").raise_for_status()
    set_lambda_docker(moto_server, False)
    yield moto_server
    set_lambda_docker(moto_server, False)


@pytest.fixture
def aws(moto: str) -> Callable[..., Any]:
    """`aws("ecs")`: a boto3 client on moto, for the test's own set-up and checks."""

    def client(service: str, region: str = REGION) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=moto)

    return client


@pytest.fixture
def aws_config(moto: str) -> dict[str, Any]:
    return {"PIE_AWS_ENDPOINT_URL": moto, "PIE_AWS_REGION": REGION}


@pytest.fixture
def aws_app(make_app: Callable[..., Flask], aws_config: dict[str, Any]) -> Flask:
    return make_app(aws_config)


@pytest.fixture
def aws_client(aws_app: Flask) -> Client:
    return Client(aws_app.test_client())


@dataclass
class Invocation:
    """One Lambda Invoke as moto received it."""

    function_name: str
    region: str
    qualifier: str | None
    invocation_type: str | None
    event: Any
    response_headers: dict[str, Any] = field(repr=False)

    @property
    def request_id(self) -> str | None:
        """The request id moto answered with (it is set after the handler returns)."""
        return self.response_headers.get("x-amzn-requestid")


@pytest.fixture
def lambda_invocations(monkeypatch: pytest.MonkeyPatch) -> list[Invocation]:
    """Every Invoke moto's Lambda receives. Recorded at moto's HTTP handler rather than
    `LambdaSimpleBackend.invoke`, because moto passes the backend `qualifier=None` whatever
    the request said (it reads a lower-case query parameter)."""
    from moto.awslambda.responses import LambdaResponse

    original = LambdaResponse.invoke
    received: list[Invocation] = []

    def recording_invoke(self: Any) -> Any:
        received.append(
            Invocation(
                function_name=unquote(self.path.rsplit("/", 2)[-2]),
                region=self.region,
                qualifier=(self.querystring.get("Qualifier") or [None])[0],
                invocation_type=self.headers.get("X-Amz-Invocation-Type"),
                event=json.loads(self.body) if self.body else None,
                response_headers=self.response_headers,
            )
        )
        return original(self)

    monkeypatch.setattr(LambdaResponse, "invoke", recording_invoke)
    return received


@pytest.fixture
def ecs_run_task_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The body of every ECS RunTask moto receives (moto does not report networkConfiguration
    back, so this is where subnets and security groups can be seen in full)."""
    from moto.ecs.responses import EC2ContainerServiceResponse

    original = EC2ContainerServiceResponse.run_task
    received: list[dict[str, Any]] = []

    def recording_run_task(self: Any) -> Any:
        received.append(json.loads(self.body))
        return original(self)

    monkeypatch.setattr(EC2ContainerServiceResponse, "run_task", recording_run_task)
    return received
