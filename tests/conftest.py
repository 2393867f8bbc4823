"""Fixtures: one app per test on a temporary SQLite file, or on Postgres when
PIE_TEST_DATABASE_URL is set (the schema is reset before each test)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis.configuration
import marshmallow
import peewee
import pytest
from flask import Flask
from pie.schemas.common import Schema

from pie import create_app
from pie import db as pie_db
from pie.testing import drop_postgres_schema, postgres_schema_url
from tests import migrated
from tests.helpers import SECRET, Client, peewee_statements

POSTGRES_URL = os.environ.get("PIE_TEST_DATABASE_URL")

# Hypothesis keeps its example database and caches in a temporary folder, set before any test
# module is collected: a test run leaves nothing in the work tree (by default they would go to
# .hypothesis/ in it).
HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="pie-hypothesis-")
hypothesis.configuration.set_hypothesis_home_dir(HYPOTHESIS_HOME)


# Each pytest process gets its own schema, so parallel runs on one database never collide.
TEST_SCHEMA = f"pie_test_{os.getpid()}"


# What does not depend on the database backend runs once, in the SQLite suite: the JSON
# Schema and pattern checks (no database), the server's socket deadlines, the OpenAPI
# document and the tools that read it, the docs page and the console in a browser, the
# packaging, and the Python client (a client of the HTTP API, whose server side every API
# test covers on Postgres too). `.ci/run` runs the two suites side by side; these took some
# 4 of the Postgres suite's 30 minutes on the 2-core CI machine.
BACKEND_INDEPENDENT = (
    "tests/services/test_contracts.py",
    "tests/services/test_patterns.py",
    "tests/test_slow_clients.py",
    "tests/test_deadline_socket.py",
    "tests/api/test_schema_cost.py",
    "tests/api/test_openapi.py",
    "tests/api/test_openapi_tools.py",
    "tests/api/test_openapi_generators.py",
    "tests/test_docs_browser.py",
    "tests/console/test_browser.py",
    "tests/test_packaging.py",
    "tests/client/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="backend-independent: runs in the SQLite suite")
    root = str(config.rootpath) + os.sep
    for item in items:
        if str(item.path).removeprefix(root).startswith(BACKEND_INDEPENDENT):
            item.add_marker(skip)


def reset_postgres(url: str, schema: str = TEST_SCHEMA) -> str:
    """Recreate this process's schema; return a URL whose connections use it."""
    return postgres_schema_url(url, schema)


@pytest.fixture(scope="session", autouse=True)
def remove_hypothesis_home() -> Iterator[None]:
    yield
    shutil.rmtree(HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def drop_test_schema() -> Iterator[None]:
    yield
    if POSTGRES_URL:
        drop_postgres_schema(POSTGRES_URL, TEST_SCHEMA)


class StatementLog(logging.Handler):
    """SQL sent by this thread (the request's); background dispatch threads are not counted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and record.thread == self.thread:  # (sql, params)
            self.statements.append(record.msg[0])


@pytest.fixture
def statements():
    handler = StatementLog()
    with peewee_statements(handler):
        yield handler.statements


@pytest.fixture(autouse=True)
def dumps_match_marshmallow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every response PIE dumps in every test is also dumped by marshmallow's own loop, and
    the two must be equal (schemas.common.Schema is a faster copy of it)."""
    fast = Schema._serialize

    def checked(self: Schema, obj: Any, *, many: bool = False) -> Any:
        ours = fast(self, obj, many=many)
        theirs = marshmallow.Schema._serialize(self, obj, many=many)
        assert ours == theirs, (type(self).__name__, ours, theirs)
        return ours

    monkeypatch.setattr(Schema, "_serialize", checked)


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    if POSTGRES_URL:
        return reset_postgres(POSTGRES_URL)
    return f"sqlite:///{tmp_path}/pie.sqlite"


def app_settings(instance: Any, database_url: str, config: dict[str, Any] | None) -> dict:
    return {
        "TESTING": True,
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(instance),
        "PIE_LOAD_ENTRY_POINTS": False,
        "PIE_EMBEDDED_WORKER": False,
        "PIE_PUBLIC_URL": "http://pie.test",
        **(config or {}),
    }


def close_apps(apps: list[Flask]) -> None:
    for app in apps:
        app.extensions["pie"].close()
    apps.clear()
    pie_db.close_all()


@pytest.fixture
def make_app(tmp_path: Any, database_url: str) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(config: dict[str, Any] | None = None, plugins: Any = ()) -> Flask:
        migrated.migrate(database_url)
        app = create_app(app_settings(tmp_path / "instance", database_url, config), plugins=plugins)
        apps.append(app)
        return app

    yield factory
    close_apps(apps)


@pytest.fixture(scope="module")
def make_module_app(tmp_path_factory: Any) -> Iterator[Callable[..., Flask]]:
    """Like make_app, for the tests of one module that share an app; each call closes the
    apps it made before and starts again on an empty database."""
    apps: list[Flask] = []

    def factory(config: dict[str, Any] | None = None, plugins: Any = ()) -> Flask:
        close_apps(apps)
        folder = tmp_path_factory.mktemp("app")
        url = reset_postgres(POSTGRES_URL) if POSTGRES_URL else f"sqlite:///{folder}/pie.sqlite"
        migrated.migrate(url)
        app = create_app(app_settings(folder / "instance", url, config), plugins=plugins)
        apps.append(app)
        return app

    yield factory
    close_apps(apps)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Client:
    return Client(app.test_client())


@pytest.fixture
def anon(app: Flask) -> Client:
    return Client(app.test_client(), token=None)


__all__ = ["peewee"]
