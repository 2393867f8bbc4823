"""Fields and bases shared by every resource schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

_PLAIN_ACCESS = (ma.Schema.get_attribute, ma.fields.Field.get_value, ma.fields.Field.serialize)


class Schema(ma.Schema):
    """marshmallow's Schema with a cheaper dump loop, the same output.

    marshmallow serialises each field through four layers (`Field.serialize`, `get_value`,
    the schema's accessor, `utils.get_value`) before the field's own `_serialize`; for a
    response of a few dozen fields that is most of the dump. Here each field with the
    default access path is read directly (`obj[key]`, else `getattr`, as `utils.get_value`
    does) and handed to `_serialize`; any field with a custom path goes the long way."""

    def _serialize(self, obj: Any, *, many: bool = False) -> Any:
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        fields, plan = self.__dict__.get("_dump_plan", (None, None))
        if fields is not self.dump_fields:  # built, or rebuilt after marshmallow's copies
            plan = self._plan()
            self._dump_plan = (self.dump_fields, plan)
        keyed = hasattr(obj, "__getitem__")
        ret = self.dict_class()
        for out, name, key, field in plan:
            if key is None:  # the long way
                value = field.serialize(name, obj, accessor=self.get_attribute)
                if value is ma.missing:
                    continue
                ret[out] = value
                continue
            if keyed:
                try:
                    value = obj[key]
                except (KeyError, IndexError, TypeError, AttributeError):
                    value = getattr(obj, key, ma.missing)
            else:
                value = getattr(obj, key, ma.missing)
            if value is ma.missing:
                default = field.dump_default
                value = default() if callable(default) else default
                if value is ma.missing:
                    continue
            ret[out] = field._serialize(value, name, obj)
        return ret

    def _plan(self) -> list[tuple[str, str, str | None, ma.fields.Field]]:
        """(output key, field name, key to read or None for the long way, field) per field."""
        plain_schema = type(self).get_attribute is _PLAIN_ACCESS[0]
        plan = []
        for name, field in self.dump_fields.items():
            key = name if field.attribute is None else field.attribute
            plain = (
                plain_schema
                and field._CHECK_ATTRIBUTE
                and "." not in key
                and type(field).get_value is _PLAIN_ACCESS[1]
                and type(field).serialize is _PLAIN_ACCESS[2]
            )
            out = field.data_key if field.data_key is not None else name
            plan.append((out, name, key if plain else None, field))
        return plan


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_ERROR = "must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$"  # str.format()ed


class Timestamp(ma.fields.DateTime):
    """RFC 3339 UTC with a `Z` suffix; naive datetimes are UTC."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"  # = strftime(…%fZ), faster

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            raise self.make_error("invalid", input=value, obj_type="datetime with a timezone")
        return parsed.astimezone(UTC).replace(tzinfo=None)


def Identifier(**kwargs: Any) -> ma.fields.String:  # noqa: N802  (a field factory)
    return ma.fields.String(validate=ma.validate.Regexp(ID_PATTERN, error=ID_ERROR), **kwargs)


class StrictBoolean(ma.fields.Boolean):
    """Only JSON true/false; marshmallow's default also takes "yes", 1, "on"…"""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def JsonObject(**kwargs: Any) -> ma.fields.Dict:  # noqa: N802
    return ma.fields.Dict(keys=ma.fields.String(), **kwargs)


class ErrorSchema(Schema):
    """The error envelope every error response uses."""

    success = ma.fields.Boolean(required=True, metadata={"enum": [False]})
    message = ma.fields.String(required=True, metadata={"description": "What failed"})
