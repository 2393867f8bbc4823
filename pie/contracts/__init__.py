"""JSON Schema Draft 2020-12 for user schemas: check one, list an instance's violations."""

# Every user schema is checked and applied through this package, under one set of rules:
# nothing is fetched or read (references resolve inside the document only), no reference loop
# or nesting exhausts the stack, and a request spends at most PIE_SCHEMA_BUDGET_SECONDS of CPU
# on schemas.

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import referencing.exceptions

from pie.contracts import document
from pie.contracts.budget import BudgetExceeded, end_budget, metered, start_budget
from pie.contracts.cache import SizedCache
from pie.contracts.validator import validator_for

DEFAULT_MAX_SCHEMA_BYTES = 65536
# A 422 lists at most this many violations, each cut to MAX_MESSAGE characters.
MAX_VIOLATIONS = 50
MAX_MESSAGE = 1000

_max_bytes: contextvars.ContextVar[int] = contextvars.ContextVar("pie_schema_max_bytes")
_budget_seconds: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pie_schema_budget_seconds", default=None
)


@contextlib.contextmanager
def limits(budget_seconds: float, max_schema_bytes: int) -> Iterator[None]:
    """The limits of one request (or other unit of work): its budget starts here."""
    tokens = (
        start_budget(budget_seconds),
        _budget_seconds.set(budget_seconds),
        _max_bytes.set(max_schema_bytes),
    )
    try:
        yield
    finally:
        _max_bytes.reset(tokens[2])
        _budget_seconds.reset(tokens[1])
        end_budget(tokens[0])


def limits_from(config: Mapping[str, Any]) -> contextlib.AbstractContextManager[None]:
    """`limits` as an app's settings give them."""
    return limits(config["PIE_SCHEMA_BUDGET_SECONDS"], config["PIE_SCHEMA_MAX_BYTES"])


def _budget_message() -> str:
    seconds = _budget_seconds.get()
    amount = f" of {seconds:g} CPU seconds" if seconds is not None else ""
    return (
        f"schema validation stopped: this request used up its budget{amount} for checking "
        "JSON Schemas (PIE_SCHEMA_BUDGET_SECONDS)"
    )


def _key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Checked schemas by their canonical JSON, at most 256 of them and 1 MiB of that JSON (their
# objects take about twenty times as much): bounded by size, as schemas may be 64 KiB each.
_CHECKED = SizedCache(1 << 20, count=256)


def _compiled(key: str) -> tuple[list[str], Any]:
    """(problems, validator or None) for a schema, by its canonical JSON. A check that ran out
    of budget raises instead, and so is not cached."""
    found = _CHECKED.get(key)
    if found is None:
        schema = json.loads(key)
        problems = document.problems(schema)
        found = problems, None if problems else validator_for(schema)
        _CHECKED.put(key, found, len(key))
    return found


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` cannot be registered (empty when it can): not a Draft 2020-12 schema, too
    large, or unsafe to apply (see document.py)."""
    if not isinstance(schema, dict | bool):
        return ["a JSON Schema must be an object or a boolean"]
    if document.depth(schema) > document.MAX_DEPTH:
        return [f"(root): the schema nests deeper than {document.MAX_DEPTH} levels"]
    key = _key(schema)
    size, limit = len(key.encode()), _max_bytes.get(DEFAULT_MAX_SCHEMA_BYTES)
    if size > limit:
        return [
            f"(root): the schema is {size} bytes, over the limit of {limit} (PIE_SCHEMA_MAX_BYTES)"
        ]
    try:
        with metered():
            return _compiled(key)[0]
    except BudgetExceeded:
        return [f"(root): {_budget_message()}"]


def _path(error: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _short(message: str) -> str:
    """A long message loses its middle (jsonschema's messages quote the value first and say
    what is wrong with it last)."""
    if len(message) <= MAX_MESSAGE:
        return message
    head, tail = MAX_MESSAGE * 2 // 3, MAX_MESSAGE // 3
    return (
        f"{message[:head]} … ({len(message) - head - tail} characters left out) … {message[-tail:]}"
    )


def violations(schema: Any, instance: Any, label: str = "input") -> list[str]:
    """Every way `instance` fails `schema` (up to MAX_VIOLATIONS), as `label.path: message`
    strings sorted by path; a schema that cannot be applied, or a budget used up, is one."""
    try:
        with metered():
            problems, validator = _compiled(_key(schema))
            if problems:
                return [_short(f"{label}: the schema cannot be applied: {p}") for p in problems]
            errors = list(itertools.islice(validator.iter_errors(instance), MAX_VIOLATIONS + 1))
    except BudgetExceeded:
        return [f"{label}: {_budget_message()}"]
    except RecursionError:
        return [f"{label}: the value nests too deeply for its schema to be checked"]
    except referencing.exceptions.Unresolvable as exc:  # checked above; kept as a backstop
        return [f"{label}: the schema has an unresolvable reference ({exc})"]
    found = [
        _short(f"{label}{_path(e)}: {e.message}")
        for e in sorted(errors[:MAX_VIOLATIONS], key=lambda e: list(map(str, e.path)))
    ]
    if len(errors) > MAX_VIOLATIONS:
        found.append(f"{label}: further violations not listed (at most {MAX_VIOLATIONS} are)")
    return found


def contract_schema(holder: Any, kind: str, side: str) -> Any:
    """`handler_contracts[kind][side]` of a model or version (None when it has none)."""
    return schema_in(getattr(holder, "handler_contracts", None), kind, side)


def schema_in(handler_contracts: Any, kind: str, side: str) -> Any:
    """`handler_contracts[kind][side]` (None when there is none)."""
    return ((handler_contracts or {}).get(kind) or {}).get(side)


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
