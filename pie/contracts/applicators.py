"""The applicator keywords PIE evaluates itself instead of jsonschema; messages stay its own."""

# jsonschema's anyOf and oneOf keep every error of every branch (as `context`, which PIE never
# shows), and its messages quote the whole value: with 5,000 branches over a 900 KB value that
# was a gigabyte. Here a branch is evaluated only up to its first error, and messages quote a
# bounded part of the value. patternProperties and additionalProperties use bounded patterns.

from __future__ import annotations

from typing import Any

from jsonschema import ValidationError

from pie.contracts.keywords import found
from pie.contracts.quote import listing, quote


def valid(validator: Any, instance: Any, subschema: Any, **where: Any) -> bool:
    """Whether `instance` passes `subschema`, evaluated only up to its first error."""
    return next(validator.descend(instance, subschema, **where), None) is None


def _any_of(validator: Any, any_of: list, instance: Any, schema: Any) -> Any:
    if not any(valid(validator, instance, each, schema_path=i) for i, each in enumerate(any_of)):
        yield ValidationError(f"{quote(instance)} is not valid under any of the given schemas")


def _one_of(validator: Any, one_of: list, instance: Any, schema: Any) -> Any:
    passed = [s for i, s in enumerate(one_of) if valid(validator, instance, s, schema_path=i)]
    if not passed:
        yield ValidationError(f"{quote(instance)} is not valid under any of the given schemas")
    elif len(passed) > 1:
        passed.append(passed.pop(0))  # jsonschema names the first valid one last
        yield ValidationError(f"{quote(instance)} is valid under each of {listing(passed)}")


def _not(validator: Any, not_schema: Any, instance: Any, schema: Any) -> Any:
    if validator.evolve(schema=not_schema).is_valid(instance):
        yield ValidationError(f"{quote(instance)} should not be valid under {quote(not_schema)}")


def _items(validator: Any, items: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "array"):
        return
    prefix = len(schema.get("prefixItems", []))
    extra = len(instance) - prefix
    if extra <= 0:
        return
    if items is False:
        rest = instance[prefix:] if extra != 1 else instance[prefix]
        item = "items" if prefix != 1 else "item"
        yield ValidationError(
            f"Expected at most {prefix} {item} but found {extra} extra: {quote(rest)}"
        )
        return
    for index in range(prefix, len(instance)):
        yield from validator.descend(instance[index], items, path=index)


def _contains(validator: Any, contains: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "array"):
        return
    least, most = schema.get("minContains", 1), schema.get("maxContains", len(instance))
    applied = validator.evolve(schema=contains)
    matches = 0
    for each in instance:
        if applied.is_valid(each):
            matches += 1
            if matches > most:
                yield ValidationError(
                    f"Too many items match the given schema (expected at most {most})",
                    validator="maxContains",
                    validator_value=most,
                )
                return
    if matches < least:
        if not matches:
            yield ValidationError(
                f"{quote(instance)} does not contain items matching the given schema"
            )
        else:
            yield ValidationError(
                f"Too few items match the given schema (expected at least {least} but only "
                f"{matches} matched)",
                validator="minContains",
                validator_value=least,
            )


def _pattern_properties(validator: Any, patterns: dict, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            matched = found(pattern, key)
            if matched is None:
                yield ValidationError(
                    f"patternProperties {quote(pattern)} took too long to evaluate"
                )
                break  # once for the pattern, not once per key
            if matched:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def matches_a_pattern(schema: dict, key: str) -> bool:
    """Whether a patternProperties pattern matches `key` (a timed-out one counts as matching:
    patternProperties itself reports it)."""
    return any(found(p, key) is not False for p in schema.get("patternProperties", {}))


def extras(values: list) -> str:
    verb = "was" if len(values) == 1 else "were"
    return f"{listing(values)} {verb}"


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    unnamed = [k for k in instance if k not in named and not matches_a_pattern(schema, k)]
    if validator.is_type(extra, "object"):
        for key in unnamed:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and unnamed:
        if "patternProperties" in schema:
            verb = "does" if len(unnamed) == 1 else "do"
            patterns = listing(sorted(schema["patternProperties"]))
            yield ValidationError(
                f"{listing(sorted(unnamed))} {verb} not match any of the regexes: {patterns}"
            )
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({extras(sorted(unnamed))} unexpected)"
            )


APPLICATORS = {
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "items": _items,
    "contains": _contains,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}
