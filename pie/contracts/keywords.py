"""The value keywords PIE evaluates itself instead of jsonschema; messages stay jsonschema's."""

# Python's `re` has no timeout; jsonschema's `uniqueItems` takes time quadratic in the value;
# and its messages quote the whole value (see quote.py), once per failing keyword.

from __future__ import annotations

from fractions import Fraction
from typing import Any

from jsonschema import ValidationError

from pie.contracts.patterns import PatternError, search
from pie.contracts.quote import listing, quote


def found(pattern: str, text: str) -> bool | None:
    """Whether `pattern` matches in `text`; None when it took too long (a timed-out or unusable
    pattern is reported by the `pattern` or `patternProperties` keyword that holds it)."""
    try:
        return search(pattern, text)
    except PatternError:
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = search(pattern, instance)
    except PatternError as exc:
        yield ValidationError(f"pattern {quote(pattern)} cannot be used: {exc}")
        return
    if matched is None:
        yield ValidationError(f"pattern {quote(pattern)} took too long to evaluate")
    elif not matched:
        yield ValidationError(f"{quote(instance)} does not match {quote(pattern)}")


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema decides it (1 equals 1.0, true is not 1), in time bounded
    by the smaller value: a long array is not walked to compare it with a short one."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(v, two[k]) for k, v in one.items())
    if isinstance(one, bool | list | dict) or isinstance(two, bool | list | dict):
        return one is two
    if one is None or two is None:
        return one is two
    return one == two


def canonical(value: Any) -> Any:
    """A hashable key equal for JSON-equal values. Numbers are keyed by their hex text: the
    hashes of integers are predictable (k·(2^61−1) all hash alike), those of strings are not."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int):
        return ("n", hex(value))
    if isinstance(value, float):
        return ("n", hex(int(value)) if value.is_integer() else value.hex())
    if isinstance(value, list):
        return ("l", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", frozenset((k, canonical(v)) for k, v in value.items()))
    return ("s", value)


def _enum(validator: Any, enums: Any, instance: Any, schema: Any) -> Any:
    if not any(_equal(instance, each) for each in enums):
        yield ValidationError(f"{quote(instance)} is not one of {quote(enums)}")


def _const(validator: Any, const: Any, instance: Any, schema: Any) -> Any:
    if not _equal(instance, const):
        yield ValidationError(f"{quote(const)} was expected")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
    if unique and validator.is_type(instance, "array"):
        if len({canonical(item) for item in instance}) != len(instance):
            yield ValidationError(f"{quote(instance)} has non-unique elements")


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
        yield ValidationError(f"{quote(instance)} is not a multiple of {divisor}")


def _type(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
    types = types if isinstance(types, list) else [types]
    if not any(validator.is_type(instance, each) for each in types):
        yield ValidationError(f"{quote(instance)} is not of type {listing(types)}")


def _size(kind: str, low: bool, empty: str, wrong: str) -> Any:
    """minLength, maxLength, minItems, …: `instance` has fewer (more) parts than the limit."""

    def keyword(validator: Any, limit: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, kind):
            return
        size = len(instance)
        if size < limit if low else size > limit:
            edge = 1 if low else 0
            yield ValidationError(f"{quote(instance)} {empty if limit == edge else wrong}")

    return keyword


VALUE_KEYWORDS = {
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    "uniqueItems": _unique_items,
    "multipleOf": _multiple_of,
    "type": _type,
    "minLength": _size("string", True, "should be non-empty", "is too short"),
    "maxLength": _size("string", False, "is expected to be empty", "is too long"),
    "minItems": _size("array", True, "should be non-empty", "is too short"),
    "maxItems": _size("array", False, "is expected to be empty", "is too long"),
    "minProperties": _size(
        "object", True, "should be non-empty", "does not have enough properties"
    ),
    "maxProperties": _size("object", False, "is expected to be empty", "has too many properties"),
}
