"""The `ecs_task` handler type: an AWS ECS RunTask per job through boto3."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from pie import HandlerType, hookimpl

VALUE_PATTERN = r"^[A-Za-z0-9_-]{1,255}/[A-Za-z0-9_-]{1,255}(:[0-9]{1,10})?$"


class EcsTaskHandlerSchema(ma.Schema):
    value = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(
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


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [EcsTaskHandlerType]
