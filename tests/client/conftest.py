"""One real `pie serve` per test module (SQLite in a temporary folder, or this process's
Postgres schema), with the tests' `slow` in-process implementation loaded from a plugin
folder, and tokens signed with its secret."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pie_client import Client

from tests.conftest import POSTGRES_URL, reset_postgres
from tests.helpers import ADMIN, SECRET
from tests.server import ServerProcess

TESTS = Path(__file__).resolve().parents[1]
ECHO = {"type": "in_process", "value": "echo"}
SLOW = {"type": "in_process", "value": "slow"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


def serve(tmp_path_factory: Any, **settings: str) -> Iterator[ServerProcess]:
    """A `pie serve` for a module's tests, with these settings beside the usual ones."""
    folder = tmp_path_factory.mktemp("pie-serve")
    (folder / "plugins").mkdir()
    shutil.copy(TESTS / "slow_plugin.py", folder / "plugins" / "slow_plugin.py")
    env = {
        "PIE_DATABASE_URL": reset_postgres(POSTGRES_URL) if POSTGRES_URL else "",
        "PIE_INSTANCE_PATH": str(folder / "instance"),
        "PIE_JWT_SECRET": SECRET,
        "PIE_PLUGINS_PATH": str(folder / "plugins"),
        "PIE_SHUTDOWN_GRACE_SECONDS": "1",
        **settings,
    }
    proc = ServerProcess(env, log_path=str(folder / "server.log"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, ADMIN) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def active_model(api: Client, handlers: dict[str, Any] | None = None, **fields: Any) -> str:
    """A model whose version 1 is active, running `echo` unless told otherwise."""
    model_id = unique("m")
    inference = handlers or ECHO
    api.models.create(
        id=model_id,
        name=model_id,
        description="",
        handlers={"training": ECHO, "inference": inference},
        **fields,
    )
    api.versions.set_status(model_id, "1", "active")
    return model_id
