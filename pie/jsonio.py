"""Strict JSON: request bodies must be JSON that any strict parser reads the same way, and
nothing PIE stores or serves holds NaN or Infinity."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from pie.errors import BadRequest

MAX_JSON_DEPTH = 64
# A lone UTF-16 surrogate: json decodes a "\ud83d\ude00" pair into one character, so any
# surrogate left in a decoded string had no partner. It is no Unicode character: UTF-8 cannot
# encode it (the databases refuse it) and strict parsers refuse its escape.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"the JSON body has {name}, which is not JSON: numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # an overflowing literal (1e999) parses to infinity
        shown = text if len(text) <= 40 else f"{text[:37]}..."
        raise BadRequest(
            f"the JSON body has the number {shown}, which is too large: numbers must fit a "
            "64-bit float"
        )
    return value


def repeated_key(pairs: list[tuple[str, Any]]) -> str | None:
    """The first key an object's pairs repeat, or None. Parsers disagree on which of two
    equal keys wins, so PIE takes neither: callers refuse the object (check `len(dict(pairs))
    != len(pairs)` first; this is the slow path that names the key)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        key = repeated_key(pairs)
        raise BadRequest(f"the JSON body repeats the key {ascii(key)} in one object")
    return obj


_BODY_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def parse_body(body: bytes) -> Any:
    """A request body as JSON: UTF-8 (no BOM), finite numbers, integers within Python's
    digit limit, no repeated keys, at most MAX_JSON_DEPTH levels, no NUL characters (Postgres
    cannot store them) and no lone surrogates. Malformed JSON raises json.JSONDecodeError (the
    caller words it); every other refusal is a BadRequest naming the rule."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # (a non-empty doc: webargs takes an error on an empty one for "no body")
        raise json.JSONDecodeError(f"not UTF-8: {exc.reason}", str(body), exc.start) from exc
    try:
        data = _BODY_DECODER.decode(text)
    except RecursionError as exc:
        raise BadRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int(): more digits than sys.get_int_max_str_digits()
        raise BadRequest(
            f"the JSON body has an integer of more than {sys.get_int_max_str_digits()} digits"
        ) from exc
    # Walk the parsed body only when its text allows the problem: nesting needs one "{" or "["
    # per level, and a NUL or a surrogate can only arrive escaped (\u0000, \ud800 to \udfff; JSON
    # strings admit no raw control characters and UTF-8 decoding refuses raw surrogates).
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    if "\\u0000" in text or "\\ud" in text or "\\uD" in text:
        check_strings(data)
    return data


def check_strings(value: Any) -> None:
    """Refuse NUL characters and lone surrogates in any string or object key of parsed JSON."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest("the JSON body may not contain NUL characters")
            if LONE_SURROGATE.search(item):
                raise BadRequest(
                    "the JSON body has a lone UTF-16 surrogate escape (such as \\ud800 without "
                    "its pair), which is no Unicode character"
                )
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (so hostile input cannot overflow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            stack.extend((child, depth + 1) for child in item)
    return deepest


# --- stored JSON ---------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON; NaN and Infinity raise ValueError rather than being written."""
    return _ENCODER.encode(value)


# Earlier versions stored NaN, Infinity and -Infinity when a body held them (or 1e999, which
# parsed to infinity). Such a value is read as null, so serving the row stays JSON; the stored
# text is left alone until the row is next written.
_STORED_DECODER = json.JSONDecoder(parse_constant=lambda name: None)


def loads_stored(text: str) -> Any:
    """JSON that PIE stored, NaN and ±Infinity (written by earlier versions) read as null."""
    return _STORED_DECODER.decode(text)
