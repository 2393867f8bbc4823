"""Fields and bases shared by every resource schema."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
import peewee
from marshmallow.decorators import POST_DUMP, PRE_DUMP

_PLAIN_ACCESS = (ma.Schema.get_attribute, ma.fields.Field.get_value, ma.fields.Field.serialize)

# How a field's value is turned into output, decided once per field (see Schema._plan).
_LONG, _ANY, _STR, _TIME, _NESTED = range(5)


def _columns(cls: type) -> dict[str, str] | None:
    """For a peewee model class: attribute name -> `__data__` key of each plain column (what
    peewee's own FieldAccessor reads); None for any other class. Cached per class."""
    columns = _COLUMNS.get(cls, _UNKNOWN)
    if columns is _UNKNOWN:
        columns = None
        if isinstance(cls, type) and issubclass(cls, peewee.Model):
            columns = {
                name: accessor.name
                for name in dir(cls)
                if type(accessor := inspect.getattr_static(cls, name, None)) is peewee.FieldAccessor
            }
        _COLUMNS[cls] = columns
    return columns


_UNKNOWN: Any = object()
_COLUMNS: dict[type, dict[str, str] | None] = {}


class Schema(ma.Schema):
    """marshmallow's Schema with a cheaper dump loop, the same output.

    marshmallow serialises each field through four layers (`Field.serialize`, `get_value`,
    the schema's accessor, `utils.get_value`) before the field's own `_serialize`; for a
    response of a few dozen fields that is most of the dump. Here each field with the
    default access path is read directly (`obj[key]`, else `getattr`, as `utils.get_value`
    does; a peewee row's plain columns straight from its `__data__`, as peewee's accessor
    does), strings, timestamps and nested schemas of this class are turned into output
    inline, and any field with a custom path goes the long way. Every dump in the test suite
    is checked against marshmallow's own loop (tests/conftest.py)."""

    def _serialize(self, obj: Any, *, many: bool = False) -> Any:
        if many and obj is not None:
            return [self._serialize(item) for item in obj]
        fields, plan = self.__dict__.get("_dump_plan", (None, None))
        if fields is not self.dump_fields:  # built, or rebuilt after marshmallow's copies
            plan = self._plan()
            self._dump_plan = (self.dump_fields, plan)
        cls = type(obj)
        columns = _COLUMNS[cls] if cls in _COLUMNS else _columns(cls)
        data = obj.__data__ if columns is not None else None
        keyed = columns is None and hasattr(obj, "__getitem__")
        ret = self.dict_class()
        for out, name, key, field, kind, nested in plan:
            if kind == _LONG:
                value = field.serialize(name, obj, accessor=self.get_attribute)
                if value is ma.missing:
                    continue
                ret[out] = value
                continue
            if data is not None and key in columns:
                value = data.get(columns[key])
            elif keyed:
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
            if value is None:
                ret[out] = None if kind != _ANY else field._serialize(value, name, obj)
            elif kind == _STR and type(value) is str:
                ret[out] = value
            elif kind == _TIME and type(value) is datetime and value.tzinfo is None:
                ret[out] = value.isoformat(timespec="microseconds") + "Z"
            elif kind == _NESTED:
                ret[out] = nested._serialize(value)
            else:
                ret[out] = field._serialize(value, name, obj)
        return ret

    def _plan(self) -> list[tuple[str, str, str | None, ma.fields.Field, int, Any]]:
        """(output key, field name, key to read, field, kind, nested schema) per field."""
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
            kind, nested = (_ANY, None) if plain else (_LONG, None)
            if plain and type(field) is ma.fields.String:
                kind = _STR  # String._serialize: None stays None, str(value) otherwise
            elif plain and type(field) is Timestamp:
                kind = _TIME
            elif plain and type(field) is ma.fields.Nested:
                schema = field.schema
                if (
                    isinstance(schema, Schema)
                    and not (schema.many or field.many)
                    and not schema._hooks[PRE_DUMP]
                    and not schema._hooks[POST_DUMP]
                ):  # Nested._serialize: None stays None, schema.dump(value) otherwise
                    kind, nested = _NESTED, schema
            plan.append((out, name, key, field, kind, nested))
        return plan


class FullMatch(ma.validate.Regexp):
    """marshmallow's Regexp, matched against the whole value. Regexp uses `re.match`, and a
    pattern's closing `$` also matches before a trailing newline, so `^[a-z]+$` would take
    "m-shared\n". The pattern keeps its `^…$` form for the OpenAPI document, where JSON
    Schema (ECMA-262) reads `$` as the very end."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ID_REGEX = re.compile(ID_PATTERN)  # use with fullmatch (see FullMatch)
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
        try:
            return parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00: a valid text, no UTC datetime
            raise ma.ValidationError(
                "Not a datetime PIE can store: in UTC it falls outside years 1 to 9999."
            ) from None


def Identifier(**kwargs: Any) -> ma.fields.String:  # noqa: N802  (a field factory)
    return ma.fields.String(validate=FullMatch(ID_PATTERN, error=ID_ERROR), **kwargs)


class StrictBoolean(ma.fields.Boolean):
    """Only JSON true/false; marshmallow's default also takes "yes", 1, "on"…"""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def JsonObject(**kwargs: Any) -> ma.fields.Dict:  # noqa: N802
    return ma.fields.Dict(keys=ma.fields.String(), **kwargs)


ALWAYS_FALSE = {"description": "Always `false`", "default": False}


class ErrorSchema(Schema):
    """The error envelope every error response uses."""

    # Always false. Not `enum: [false]`: openapi-generator's Python client then fails to
    # parse every error body.
    success = ma.fields.Boolean(required=True, metadata=ALWAYS_FALSE)
    message = ma.fields.String(required=True, metadata={"description": "What failed"})
