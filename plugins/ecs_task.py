"""The `ecs_task` handler type: an AWS ECS RunTask per job through boto3."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from botocore.exceptions import ClientError
from pie.plugins._aws import AwsClients
from pie.schemas.common import FullMatch

from pie import HandlerType, hookimpl

MAX_PAYLOAD_BYTES = 8192  # larger payloads are left out of the environment
VALUE_PATTERN = r"^[A-Za-z0-9_-]{1,255}/[A-Za-z0-9_-]{1,255}(:[0-9]{1,10})?$"


class EcsTaskHandlerSchema(ma.Schema):
    value = ma.fields.String(
        required=True,
        validate=FullMatch(
            VALUE_PATTERN,
            error="must be '<cluster>/<task_definition>' with exactly one '/'",
        ),
        metadata={
            "description": "<cluster>/<family> or <cluster>/<family:revision>",
            "example": "ml-cluster/my-model:3",
        },
    )


class EcsTaskHandlerType(HandlerType):
    name = "ecs_task"
    schema = EcsTaskHandlerSchema
    description = "AWS ECS RunTask with the job in container environment overrides."

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.settings = runtime.config
        self.clients = AwsClients(runtime.config)
        self._containers: dict[str, str] = {}

    def container_name(self, client: Any, task_definition: str) -> str:
        """PIE_ECS_CONTAINER, else the task definition's first container. Only a pinned
        `family:revision` is cached: a bare family may gain a new revision at any time."""
        if self.settings.get("PIE_ECS_CONTAINER"):
            return self.settings["PIE_ECS_CONTAINER"]
        if task_definition in self._containers:
            return self._containers[task_definition]
        try:
            described = client.describe_task_definition(taskDefinition=task_definition)
        except ClientError as exc:
            raise RuntimeError(f"task definition '{task_definition}': {exc}") from exc
        name = described["taskDefinition"]["containerDefinitions"][0]["name"]
        if ":" in task_definition:
            self._containers[task_definition] = name
        return name

    def environment(self, job: Any, payload: dict[str, Any]) -> list[dict[str, str]]:
        env = {
            "PIE_JOB_ID": job.job_id,
            "PIE_CALLBACK_URL": payload["callback"]["url"],
            "PIE_CALLBACK_TOKEN": payload["callback"]["token"],
        }
        document = json.dumps(payload, separators=(",", ":"))
        if len(document.encode("utf-8")) <= MAX_PAYLOAD_BYTES:
            env["PIE_JOB_PAYLOAD"] = document  # larger ones: the task GETs /v2/jobs/{job_id}
        return [{"name": name, "value": value} for name, value in env.items()]

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        """RunTask with the job in environment overrides; the task ARN is the external id."""
        cluster, task_definition = handler["value"].split("/", 1)
        client = self.clients.get("ecs", self.clients.region())
        request: dict[str, Any] = {
            "cluster": cluster,
            "taskDefinition": task_definition,
            "count": 1,
            "launchType": self.settings.get("PIE_ECS_LAUNCH_TYPE") or "FARGATE",
            "startedBy": job.job_id[:36],
            "overrides": {
                "containerOverrides": [
                    {
                        "name": self.container_name(client, task_definition),
                        "environment": self.environment(job, payload),
                    }
                ]
            },
        }
        if self.settings.get("PIE_ECS_SUBNETS"):
            vpc = {"subnets": self.settings["PIE_ECS_SUBNETS"]}
            if self.settings.get("PIE_ECS_SECURITY_GROUPS"):
                vpc["securityGroups"] = self.settings["PIE_ECS_SECURITY_GROUPS"]
            request["networkConfiguration"] = {"awsvpcConfiguration": vpc}
        try:
            response = client.run_task(**request)
        except ClientError as exc:
            raise RuntimeError(
                f"RunTask of '{task_definition}' on cluster '{cluster}': {exc}"
            ) from exc
        if response.get("failures"):
            reasons = "; ".join(
                f"{f.get('arn', cluster)}: {f.get('reason', 'unknown')}"
                + (f" ({f['detail']})" if f.get("detail") else "")
                for f in response["failures"]
            )
            raise RuntimeError(f"RunTask failed: {reasons}")
        if not response.get("tasks"):
            raise RuntimeError("RunTask started no task and reported no failure")
        return response["tasks"][0]["taskArn"]

    def cancel(
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        """StopTask on the attempt's task (PIE cancelled the job, or it timed out)."""
        if not external_id:
            return  # never started a task
        cluster = handler["value"].split("/", 1)[0]
        client = self.clients.get("ecs", self.clients.region())
        reason = f"PIE: {reason} (job {job.job_id}, attempt {job.attempt})"
        try:
            client.stop_task(cluster=cluster, task=external_id, reason=reason[:255])
        except ClientError as exc:
            raise RuntimeError(f"StopTask of '{external_id}' on '{cluster}': {exc}") from exc


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [EcsTaskHandlerType]
