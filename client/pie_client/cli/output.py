"""Every result is printed here: JSON or YAML for scripts, tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from pie_client.cli.common import output_format

# The columns a table shows per record type; other types show their scalar fields.
COLUMNS: dict[str, tuple[str, ...]] = {
    "Model": ("id", "name", "status", "latest_version", "updated_at"),
    "ModelVersion": ("model_id", "version", "status", "description", "updated_at"),
    "Job": ("job_id", "job_type", "model_id", "model_version", "status", "progress", "created_at"),
    "Subscription": ("id", "trigger_event", "target_model_id", "target_action", "status"),
    "Tenant": ("client_id", "name", "status", "updated_at"),
    "Domain": ("client_id", "domain_id", "status", "updated_at"),
    "FeatureDefinition": ("name", "mandatory", "json_schema"),
    "Service": ("service_id", "domain_id", "status", "resolved_features"),
    "Assignment": ("assignment_key", "model_id", "model_version", "status", "service_id"),
    "Webhook": ("webhook_id", "url", "events", "status", "client_id", "updated_at"),
    "Delivery": (
        "delivery_id",
        "event_type",
        "status",
        "attempts",
        "response_status",
        "created_at",
    ),
}
WIDEST = 60


def emit(value: Any) -> None:
    """Print a record, a list (or iterable) of records, a dict, or nothing."""
    from pie_client.records import Record, plain

    if value is None:
        return
    if not isinstance(value, Record | dict | list):
        value = list(value) if isinstance(value, Iterable) else value
    fmt = output_format()
    data = plain(value)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    elif isinstance(value, list):
        click.echo(table(value))
    else:
        click.echo(details(data))


def cell(value: Any) -> str:
    from pie_client.records import plain

    text = value if isinstance(value, str) else json.dumps(plain(value), ensure_ascii=False)
    text = "" if value is None else text
    return text if len(text) <= WIDEST else text[: WIDEST - 1] + "…"


def table(rows: list[Any]) -> str:
    from pie_client.records import plain

    if not rows:
        return "(none)"
    first = rows[0]
    names = COLUMNS.get(type(first).__name__) or scalar_fields(plain(first))
    cells = [[cell(plain(row).get(name)) for name in names] for row in rows]
    widths = [max(len(name), *(len(r[i]) for r in cells)) for i, name in enumerate(names)]
    lines = [[name.upper() for name in names], *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def scalar_fields(data: Any) -> tuple[str, ...]:
    if not isinstance(data, dict):
        return ("value",)
    return tuple(k for k, v in data.items() if not isinstance(v, dict | list))[:6]


def details(data: Any) -> str:
    """One `field  value` line per field of one object."""
    if not isinstance(data, dict):
        return cell(data)
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}" for k, v in data.items())
