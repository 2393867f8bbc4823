"""Fields and bases shared by every resource schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_ERROR = "must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$"  # str.format()ed


class Timestamp(ma.fields.DateTime):
    """RFC 3339 UTC with a `Z` suffix; naive datetimes are UTC."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

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


class ErrorSchema(ma.Schema):
    """The error envelope every error response uses."""

    success = ma.fields.Boolean(required=True, metadata={"enum": [False]})
    message = ma.fields.String(required=True, metadata={"description": "What failed"})
