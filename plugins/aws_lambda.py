"""The `lambda` handler type: asynchronous AWS Lambda invocation through boto3."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from pie.plugins._aws import AwsClients
from pie.schemas.common import FullMatch

from pie import HandlerType, hookimpl

ARN_PATTERN = (
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:function:[A-Za-z0-9_-]{1,64}"
    r"(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


class LambdaHandlerSchema(ma.Schema):
    arn = ma.fields.String(
        required=True,
        validate=FullMatch(ARN_PATTERN, error="must be a Lambda function ARN"),
        metadata={
            "description": "Function ARN",
            "example": "arn:aws:lambda:us-east-1:123456789012:function:my-model",
        },
    )
    version = ma.fields.String(
        validate=FullMatch(
            r"^(\$LATEST|[A-Za-z0-9_-]{1,128})$", error="must be a Lambda version or alias"
        ),
        metadata={"description": "Version or alias, passed as the invoke qualifier"},
    )


class LambdaHandlerType(HandlerType):
    name = "lambda"
    schema = LambdaHandlerSchema
    description = "Asynchronous AWS Lambda invoke (InvocationType=Event)."

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.clients = AwsClients(runtime.config)

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        """Invoke asynchronously; the request id becomes the job's external id."""
        region = self.clients.region(fallback=handler["arn"].split(":")[3])
        request: dict[str, Any] = {
            "FunctionName": handler["arn"],
            "InvocationType": "Event",
            "Payload": json.dumps(payload).encode("utf-8"),
        }
        if handler.get("version"):
            request["Qualifier"] = handler["version"]
        response = self.clients.get("lambda", region).invoke(**request)
        if response.get("FunctionError"):
            raise RuntimeError(f"Lambda reported {response['FunctionError']}")
        return response["ResponseMetadata"]["RequestId"]


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [LambdaHandlerType]
