"""Feature resolution (contract 7.2): caller values, schema defaults, mandatory checks."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from pie import contracts
from pie.errors import Unprocessable
from pie.tables import Service, utcnow


def resolve(
    definitions: list[dict[str, Any]], provided: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """(resolved features, errors naming each failing feature)."""
    known = {d["name"] for d in definitions}
    errors = [f"{name}: not a defined feature" for name in provided if name not in known]
    resolved: dict[str, Any] = {}
    for definition in definitions:
        name, schema = definition["name"], definition["json_schema"]
        if name in provided:
            value = provided[name]
        elif isinstance(schema, dict) and "default" in schema:
            value = copy.deepcopy(schema["default"])
        elif definition["mandatory"]:
            errors.append(f"{name}: mandatory feature is missing and has no default")
            continue
        else:
            continue
        errors += contracts.violations(schema, value, name)
        resolved[name] = value
    return resolved, errors


def resolve_or_422(definitions: list[dict[str, Any]], provided: dict[str, Any]) -> dict[str, Any]:
    resolved, errors = resolve(definitions, provided)
    if errors:
        raise Unprocessable("invalid features: " + "; ".join(errors))
    return resolved


def is_departed(service: Service, now: datetime | None = None) -> bool:
    return service.departure_datetime is not None and service.departure_datetime <= (
        now or utcnow()
    )


def staying(services: list[Service]) -> list[Service]:
    now = utcnow()
    return [s for s in services if not is_departed(s, now)]
