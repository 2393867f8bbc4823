"""Fixtures: one app per test on a temporary SQLite file, or on Postgres when
PIE_TEST_DATABASE_URL is set (the schema is reset before each test)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import peewee
import pytest
from flask import Flask

from pie import create_app
from pie import db as pie_db
from tests.helpers import SECRET, Client

POSTGRES_URL = os.environ.get("PIE_TEST_DATABASE_URL")


def reset_postgres(url: str) -> None:
    conn = pie_db.open_database(url, max_connections=1)
    conn.connect()
    conn.execute_sql("DROP SCHEMA IF EXISTS public CASCADE")
    conn.execute_sql("CREATE SCHEMA public")
    conn.close_all()


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    if POSTGRES_URL:
        reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite:///{tmp_path}/pie.sqlite"


@pytest.fixture
def make_app(tmp_path: Any, database_url: str) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(config: dict[str, Any] | None = None, plugins: Any = ()) -> Flask:
        settings = {
            "TESTING": True,
            "PIE_DATABASE_URL": database_url,
            "PIE_JWT_SECRET": SECRET,
            "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
            "PIE_LOAD_ENTRY_POINTS": False,
            "PIE_EMBEDDED_WORKER": False,
            "PIE_PUBLIC_URL": "http://pie.test",
            **(config or {}),
        }
        app = create_app(settings, plugins=plugins)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["pie"].close()
    pie_db.close_all()


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
