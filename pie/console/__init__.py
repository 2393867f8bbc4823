"""The web console at /ui: server-rendered pages over the same services and permission checks
as the API, signed in with a pasted token."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Flask, g

from pie.console import session
from pie.console.base import bp

# (endpoint, label, the permission the page needs: its link is shown only to those who have it)
NAV = [
    ("console.models", "Models", None),
    ("console.graph", "Chain graph", None),
    ("console.jobs", "Jobs", None),
    ("console.clients", "Tenants", None),
    ("console.webhooks_page", "Webhooks", "manage_webhooks"),
    ("console.status", "Status", None),
]


def iso(value: datetime | None) -> str:
    """A stored (naive UTC) time as the API writes it."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else ""


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def init_app(app: Flask) -> None:
    from pie.console import (  # noqa: F401 (routes)
        graph,
        jobs,
        models,
        pages,
        status,
        tenants,
        webhooks,
    )

    app.register_blueprint(bp)
    app.jinja_env.filters.update(iso=iso, pretty=pretty)
    app.jinja_env.globals["csrf_token"] = lambda: session.current().csrf
    app.jinja_env.globals["nav_links"] = lambda: [
        (endpoint, label)
        for endpoint, label, permission in NAV
        if endpoint in app.view_functions
        and (permission is None or g.get("principal") is None or g.principal.has(permission))
    ]
