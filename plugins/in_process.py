"""The `in_process` handler type: named Python implementations run on a bounded worker pool."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from pie import HandlerType, hookimpl


class InProcessHandlerSchema(ma.Schema):
    value = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=200),
        metadata={
            "description": "Name of an implementation registered by a plugin",
            "example": "echo",
        },
    )


class InProcessHandlerType(HandlerType):
    name = "in_process"
    schema = InProcessHandlerSchema
    description = "A Python callable registered with pie_register_in_process_handlers."

    def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        known = self.runtime.in_process_handlers
        if handler["value"] in known:
            return {}
        names = ", ".join(sorted(known)) or "none"
        return {
            "value": [
                f"Unknown in-process implementation {handler['value']!r} (registered: {names})."
            ]
        }


def echo(job_input: dict[str, Any]) -> dict[str, Any]:
    """Return the job input unchanged."""
    return job_input


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [InProcessHandlerType]


@hookimpl
def pie_register_in_process_handlers(app: Any) -> dict[str, Any]:
    return {"echo": echo}
