"""A handler type that records its dispatches, and an app with a model on it, for the
dispatch tests."""

from __future__ import annotations

import threading
from typing import Any

import marshmallow as ma
import pytest

from pie import HandlerType, hookimpl
from tests.helpers import Client, register_active


class Recorded:
    calls: list[str] = []
    lock = threading.Lock()
    fail_with: Exception | None = None


class RecorderSchema(ma.Schema):
    pass


class RecorderType(HandlerType):
    name = "recorder"
    schema = RecorderSchema

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        if Recorded.fail_with is not None:
            raise Recorded.fail_with
        with Recorded.lock:
            Recorded.calls.append(job.job_id)
        return f"ext-{job.job_id}"


class RecorderPlugin:
    name = "recorder-plugin"

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
        return [RecorderType]


@pytest.fixture
def recorder_app(make_app):
    Recorded.calls = []
    Recorded.fail_with = None
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 5}, plugins=[RecorderPlugin()])
    register_active(Client(app.test_client()), "rec", {"type": "recorder"})
    return app
