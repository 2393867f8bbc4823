"""FeatureDefinition: one named, schema-checked feature of a domain or a frozen version contract."""

from __future__ import annotations

import marshmallow as ma
from pie.schemas.common import JsonObject, Schema, StrictBoolean


class FeatureDefinitionSchema(Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    json_schema = JsonObject(required=True, metadata={"description": "Draft 2020-12 schema"})
    mandatory = StrictBoolean(required=True)
