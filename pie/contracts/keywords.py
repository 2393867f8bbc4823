"""The keywords PIE evaluates itself instead of jsonschema; messages stay jsonschema's."""

# Python's `re` has no timeout; jsonschema's `uniqueItems` and `unevaluated*` take time
# quadratic in the value; its `enum` and `const` quote all of themselves in every message.

from __future__ import annotations

import reprlib
from fractions import Fraction
from typing import Any

from jsonschema import ValidationError

from pie.contracts.patterns import PatternError, search


def _search(pattern: str, text: str) -> bool | None:
    """Whether `pattern` matches in `text`; None when it took too long or cannot be used (the
    schema's check says why)."""
    try:
        return search(pattern, text)
    except PatternError:
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield ValidationError(f"pattern {pattern!r} took too long to evaluate")
    elif not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield ValidationError(f"patternProperties {pattern!r} took too long to evaluate")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _matches_a_pattern(schema: dict, key: str) -> bool:
    """Whether a patternProperties pattern matches `key` (a timed-out one counts as matching:
    patternProperties itself reports it)."""
    return any(_search(p, key) is not False for p in schema.get("patternProperties", {}))


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    extras = {k for k in instance if k not in named and not _matches_a_pattern(schema, k)}
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({_extras(sorted(extras, key=str))} "
                "unexpected)"
            )


def _extras(extras: list) -> str:
    verb = "was" if len(extras) == 1 else "were"
    return ", ".join(repr(extra) for extra in extras) + f" {verb}"


def _canonical(value: Any) -> Any:
    """A hashable key equal for JSON-equal values: 1 equals 1.0, true is not 1."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, list):
        return ("l", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("s", value)


def _member(instance: Any, values: list) -> bool:
    """Whether `instance` is JSON-equal to one of `values` (as jsonschema's `equal` decides:
    1 equals 1.0, true is not 1)."""
    if isinstance(instance, list | dict):
        key = _canonical(instance)
        return any(isinstance(v, list | dict) and _canonical(v) == key for v in values)
    if isinstance(instance, bool) or instance is None:
        return any(v is instance for v in values)
    return any(
        not isinstance(v, bool | list | dict) and v is not None and v == instance for v in values
    )


# An enum or const is quoted in each message about it, once per failing value: at most this
# much of it, as jsonschema's repr() would show it when it is short.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxdict, _QUOTE.maxlist, _QUOTE.maxstring = 4, 10, 20, 80
_QUOTE.maxlong, _QUOTE.maxother = 40, 80


def _enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
    if not _member(instance, enums):
        yield ValidationError(f"{instance!r} is not one of {_QUOTE.repr(enums)}")


def _const(validator: Any, const: Any, instance: Any, schema: Any) -> Any:
    if not _member(instance, [const]):
        yield ValidationError(f"{_QUOTE.repr(const)} was expected")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
    if unique and validator.is_type(instance, "array"):
        if len({_canonical(item) for item in instance}) != len(instance):
            yield ValidationError(f"{instance!r} has non-unique elements")


def _multiple_of(validator: Any, divisor: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "number"):
        return
    try:
        if isinstance(divisor, float):
            quotient = instance / divisor
            failed = int(quotient) != quotient
        else:
            failed = bool(instance % divisor)
    except OverflowError:  # a number beyond float range: exact arithmetic instead
        failed = Fraction(instance) % Fraction(divisor) != 0
    if failed:
        yield ValidationError(f"{instance!r} is not a multiple of {divisor}")


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
    failing = [
        key
        for key in instance
        if key not in evaluated
        for _ in validator.descend(instance[key], unevaluated, path=key, schema_path=key)
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


REPLACED = {
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "multipleOf": _multiple_of,
    "unevaluatedItems": _unevaluated_items,
    "unevaluatedProperties": _unevaluated_properties,
}
