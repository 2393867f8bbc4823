"""JSON Schema Draft 2020-12 helpers: check a schema, list an instance's violations as strings."""

from __future__ import annotations

from typing import Any

import jsonschema
import regex
from jsonschema import Draft202012Validator, validators
from referencing.exceptions import Unresolvable

# A user-supplied `pattern` may backtrack catastrophically; evaluation is bounded so one
# request cannot stall a worker (the `regex` engine also avoids most such blow-ups).
PATTERN_TIMEOUT_SECONDS = 0.1


def _search(pattern: str, text: str) -> bool | None:
    """regex.search with a time bound; None when it ran out of time."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield jsonschema.ValidationError(f"pattern {pattern!r} took too long to evaluate")
    elif not found:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield jsonschema.ValidationError(
                    f"patternProperties {pattern!r} took too long to evaluate"
                )
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


Validator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` is not a usable Draft 2020-12 schema (empty when it is)."""
    if not isinstance(schema, dict | bool):
        return ["a JSON Schema must be an object or a boolean"]
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return [f"{where or '(root)'}: {exc.message}"]
    return []


def _path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def violations(schema: Any, instance: Any, label: str = "input") -> list[str]:
    """Every way `instance` fails `schema`, as `label.path: message` strings, sorted by path."""
    validator = Validator(schema)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    except Unresolvable as exc:
        return [f"{label}: the schema has an unresolvable reference ({exc})"]
    return [f"{label}{_path(e)}: {e.message}" for e in errors]


def contract_schema(holder: Any, kind: str, side: str) -> Any:
    """`handler_contracts[kind][side]` of a model or version (None when it has none)."""
    contracts = getattr(holder, "handler_contracts", None) or {}
    return (contracts.get(kind) or {}).get(side)


def feature_definition_problems(features: list[dict[str, Any]] | None) -> list[str]:
    """Why a list of FeatureDefinitions is invalid: duplicate names, bad schemas, bad defaults."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, feature in enumerate(features or []):
        name = feature["name"]
        if name in seen:
            problems.append(f"features[{index}].name: duplicate feature name '{name}'")
        seen.add(name)
        schema = feature["json_schema"]
        schema_errors = schema_problems(schema)
        problems += [f"features[{index}] '{name}'.json_schema: {p}" for p in schema_errors]
        if not schema_errors and isinstance(schema, dict) and "default" in schema:
            problems += violations(schema, schema["default"], f"{name}.default")
    return problems


def contract_problems(contracts: dict[str, Any] | None) -> list[str]:
    """Problems in a `handler_contracts` object, each naming the schema it is about."""
    problems: list[str] = []
    for kind, contract in (contracts or {}).items():
        for side, schema in (contract or {}).items():
            problems += [f"handler_contracts.{kind}.{side}: {p}" for p in schema_problems(schema)]
    return problems
