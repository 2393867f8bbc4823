"""Values quoted in violation messages: repr() when short, its beginning when long."""

# jsonschema puts repr(instance) in nearly every message, and anyOf/oneOf build one message per
# branch: a 900 KB value under 5,000 branches made gigabytes. A quote here costs at most about
# LIMIT characters of work, however large the value.

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

LIMIT = 200  # characters of a quoted value
_DEEPEST = 16


def quote(value: Any, limit: int | None = None) -> str:
    """repr(value) when that is at most `limit` (LIMIT) characters, else its first ones and
    '...'."""
    limit = LIMIT if limit is None else limit
    pieces, size = [], 0
    for piece in _pieces(value, 0, limit):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(pieces)[:limit] + "..."
    return "".join(pieces)


def _pieces(value: Any, depth: int, limit: int) -> Iterator[str]:
    """repr(value), piece by piece (a long string is cut at once: it will be cut anyway)."""
    if isinstance(value, dict):
        if depth > _DEEPEST:
            yield "{...}"
            return
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _pieces(key, depth + 1, limit)
            yield ": "
            yield from _pieces(item, depth + 1, limit)
        yield "}"
    elif isinstance(value, list):
        if depth > _DEEPEST:
            yield "[...]"
            return
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _pieces(item, depth + 1, limit)
        yield "]"
    elif isinstance(value, str):
        yield repr(value[: limit + 1])
    else:
        try:
            yield repr(value)[: limit + 1]
        except ValueError:  # an integer beyond Python's 4,300 digits for str()
            yield f"<an integer of {value.bit_length():,} bits>"


def listing(values: Sequence[Any], limit: int | None = None) -> str:
    """The quoted values joined with ', ' while they fit in about `limit` (LIMIT) characters;
    then how many more there are."""
    limit = LIMIT if limit is None else limit
    parts: list[str] = []
    size = 0
    for index, value in enumerate(values):
        part = quote(value, limit)
        if parts and size + len(part) > limit:
            return ", ".join(parts) + f", ... ({len(values) - index:,} more)"
        parts.append(part)
        size += len(part) + 2
    return ", ".join(parts)
