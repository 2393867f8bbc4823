"""The Handler field: a `oneOf` discriminated by `type` over the registered handler types."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import marshmallow as ma
from flask import current_app

from pie.handler_types import HandlerType


@cache
def handler_object_schema(handler_type: type[HandlerType]) -> type[ma.Schema]:
    """The full handler object schema of a type: its own fields plus `type`."""
    name = "".join(part.capitalize() for part in handler_type.name.replace("-", "_").split("_"))
    return type(
        f"{name}Handler",
        (handler_type.schema,),
        {
            "type": ma.fields.String(
                required=True, validate=ma.validate.OneOf([handler_type.name])
            ),
            "Meta": type("Meta", (), {"unknown": ma.RAISE}),
        },
    )


def registered_types() -> dict[str, HandlerType]:
    return current_app.extensions["pie"].handler_types


class HandlerField(ma.fields.Field):
    """A handler object validated by the schema of the type it names."""

    # Each `type` problem ends with the names that would do: plugins register them at run
    # time, so a caller cannot know this server's set in advance.
    default_error_messages = {
        "invalid": "Not a valid handler object.",
        "missing_type": "Missing data for required field. Known handler types: {known}.",
        "null_type": "Field may not be null. Known handler types: {known}.",
        "type_not_string": "Not a valid string: got {kind}. Known handler types: {known}.",
        "unknown_type": "Unknown handler type {type!r}. Known handler types: {known}.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        types = registered_types()
        type_name = value.get("type", ma.missing)
        handler_type = types.get(type_name) if isinstance(type_name, str) else None
        if handler_type is None:
            raise ma.ValidationError({"type": [self.type_problem(type_name, types)]})
        loaded = handler_object_schema(type(handler_type))().load(value)
        problems = handler_type.check(loaded)
        if problems:
            raise ma.ValidationError(problems)
        return {"type": type_name, **loaded}

    def type_problem(self, type_name: Any, types: dict[str, HandlerType]) -> str:
        """Why `type_name` (missing, null, not a string, or unregistered) names no type."""
        known = ", ".join(sorted(types)) or "none"
        if type_name is ma.missing:
            return self.error_messages["missing_type"].format(known=known)
        if type_name is None:
            return self.error_messages["null_type"].format(known=known)
        if not isinstance(type_name, str):
            kind = json_kind(type_name)
            return self.error_messages["type_not_string"].format(kind=kind, known=known)
        return self.error_messages["unknown_type"].format(type=type_name, known=known)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's kind, for messages (bool before int: it is one)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object"


def component_names(types: dict[str, HandlerType]) -> dict[str, str]:
    """OpenAPI component name per handler type: `LambdaHandler` style, made unique when two
    type names fold to the same words (`in_process` and `in-process`)."""
    names: dict[str, str] = {}
    for type_name in sorted(types):
        name = handler_object_schema(type(types[type_name])).__name__
        if name in names.values():
            name = f"{name}-{re.sub(r'[^A-Za-z0-9._-]', '_', type_name)}"
        names[type_name] = name
    return names


HANDLER_COMPONENT = "Handler"


def handler_union(names: dict[str, str]) -> dict[str, Any]:
    """The `Handler` component: one of the registered types' components, told apart by
    `type` (`names`: component name per type name, from component_names)."""
    refs = {type_name: f"#/components/schemas/{name}" for type_name, name in names.items()}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


def handler_field_documenter(types: dict[str, HandlerType]) -> Any:
    """An apispec attribute function documenting HandlerField as the `Handler` component."""

    def handler_field_properties(
        converter: Any, field: ma.fields.Field, ret: dict, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(field, HandlerField):
            return {}
        for key in ("type", "format"):
            ret.pop(key, None)
        return {"$ref": f"#/components/schemas/{HANDLER_COMPONENT}"}

    return handler_field_properties
