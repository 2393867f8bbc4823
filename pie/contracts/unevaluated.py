"""unevaluatedItems and unevaluatedProperties, in time linear in the value (jsonschema's are
quadratic); messages stay jsonschema's, with bounded quotes."""

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError

from pie.contracts.applicators import extras as _extras
from pie.contracts.applicators import matches_a_pattern as _matches_a_pattern
from pie.contracts.applicators import valid as _valid


def _lookup(validator: Any, schema: dict, keyword: str) -> Any:
    resolved = validator._resolver.lookup(schema[keyword])
    return validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)


def _evaluated_indexes(validator: Any, instance: list, schema: Any) -> set[int]:
    """Indexes of `instance` some keyword of `schema` evaluated (as jsonschema computes them)."""
    if not isinstance(schema, dict):
        return set()
    if "items" in schema:
        return set(range(len(instance)))
    found: set[int] = set()
    for keyword in ("$ref", "$dynamicRef"):
        if keyword in schema:
            target = _lookup(validator, schema, keyword)
            found |= _evaluated_indexes(target, instance, target.schema)
    found |= set(range(min(len(schema.get("prefixItems", [])), len(instance))))
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            found |= _evaluated_indexes(validator, instance, schema["if"])
            found |= _evaluated_indexes(validator, instance, schema.get("then"))
        else:
            found |= _evaluated_indexes(validator, instance, schema.get("else"))
    for keyword in ("contains", "unevaluatedItems"):
        if keyword in schema:
            applied = validator.evolve(schema=schema[keyword])
            found |= {i for i, item in enumerate(instance) if applied.is_valid(item)}
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if next(validator.descend(instance, subschema), None) is None:
                found |= _evaluated_indexes(validator, instance, subschema)
    return found


def _evaluated_keys(validator: Any, instance: dict, schema: Any) -> set[str]:
    """Keys of `instance` some keyword of `schema` evaluated (as jsonschema computes them)."""
    if not isinstance(schema, dict):
        return set()
    found: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        if keyword in schema:
            target = _lookup(validator, schema, keyword)
            found |= _evaluated_keys(target, instance, target.schema)
    if isinstance(schema.get("properties"), dict):
        found |= schema["properties"].keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            found |= {
                key
                for key, value in instance.items()
                if next(validator.descend(value, schema[keyword]), None) is None
            }
    if "patternProperties" in schema:
        found |= {key for key in instance if _matches_a_pattern(schema, key)}
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            found |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if next(validator.descend(instance, subschema), None) is None:
                found |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            found |= _evaluated_keys(validator, instance, schema["if"])
            found |= _evaluated_keys(validator, instance, schema.get("then"))
        else:
            found |= _evaluated_keys(validator, instance, schema.get("else"))
    return found


def _unevaluated_items(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "array"):
        return
    evaluated = _evaluated_indexes(validator, instance, schema)
    extras = [item for index, item in enumerate(instance) if index not in evaluated]
    if extras:
        yield ValidationError(f"Unevaluated items are not allowed ({_extras(extras)} unexpected)")


def _unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    failing = [  # each key once (jsonschema lists it once per error), found by its first
        key
        for key in instance
        if key not in evaluated
        and not _valid(validator, instance[key], unevaluated, path=key, schema_path=key)
    ]
    if not failing:
        return
    if unevaluated is False:
        extras = _extras(sorted(failing, key=str))
        yield ValidationError(f"Unevaluated properties are not allowed ({extras} unexpected)")
    else:
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({_extras(failing)} unevaluated and invalid)"
        )


UNEVALUATED = {
    "unevaluatedItems": _unevaluated_items,
    "unevaluatedProperties": _unevaluated_properties,
}
