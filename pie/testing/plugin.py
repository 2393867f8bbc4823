"""PIE's pytest plugin (entry point `pytest11: pie`): fixtures for testing handler plugins.

Override `pie_plugins` (plugin objects to register directly) or `pie_config` (settings) in your
own conftest.py; installed plugins (the `pie` entry-point group) load on their own. With
PIE_TEST_DATABASE_URL set to a Postgres URL, each app gets an empty schema there instead of a
SQLite file."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pie import testing


@pytest.fixture
def pie_plugins() -> list[Any]:
    """Plugin objects (modules, instances) registered after the installed ones. Override it."""
    return []


@pytest.fixture
def pie_config() -> dict[str, Any]:
    """Settings for `pie_app` (any `PIE_*` setting, as `create_app` takes them). Override it."""
    return {}


@pytest.fixture
def pie_make_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """`pie_make_app(config=None, plugins=())`: a new app on a new, empty database. PIE binds
    one database per process, so making an app closes the ones made before it; the last is
    closed at the end of the test."""
    apps: list[Any] = []
    schemas: list[str] = []
    postgres = os.environ.get("PIE_TEST_DATABASE_URL")

    def factory(config: dict[str, Any] | None = None, plugins: Any = ()) -> Any:
        while apps:
            testing.close_app(apps.pop())
        folder = tmp_path_factory.mktemp("pie")
        url = None
        if postgres:
            schemas.append(f"pie_testing_{os.getpid()}_{len(schemas)}")
            url = testing.postgres_schema_url(postgres, schemas[-1])
        app = testing.new_app(folder, database_url=url, config=config, plugins=plugins)
        apps.append(app)
        return app

    yield factory
    while apps:
        testing.close_app(apps.pop())
    for schema in schemas:
        testing.drop_postgres_schema(postgres or "", schema)


@pytest.fixture
def pie_app(pie_make_app: Callable[..., Any], pie_config: dict, pie_plugins: list) -> Any:
    """A PIE app with your plugin loaded, on an empty temporary database."""
    return pie_make_app(pie_config, pie_plugins)


@pytest.fixture
def pie_client(pie_app: Any) -> testing.PieClient:
    """A JSON test client of `pie_app` sending an admin token; `pie_client.make_token(...)`
    mints others and `pie_client.as_token(token)` uses one."""
    return testing.PieClient(pie_app)


@pytest.fixture
def pie_jobs(pie_client: testing.PieClient) -> testing.Jobs:
    """Register models, start jobs, complete them through their callback, wait for them."""
    return testing.Jobs(pie_client)


@pytest.fixture
def pie_live_app(pie_app: Any) -> Iterator[Any]:
    """`pie_app` itself, also served over real HTTP on a loopback port (threaded), its
    PIE_PUBLIC_URL pointing there, so callback URLs in dispatch payloads reach it: for
    backends in other threads or processes that call back. `pie_client` and `pie_jobs` in
    the same test work on this same app. The URL is `pie_live_app.config["PIE_PUBLIC_URL"]`."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, pie_app, threaded=True)
    pie_app.config["PIE_PUBLIC_URL"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="pie-live-app", daemon=True)
    thread.start()
    yield pie_app
    server.shutdown()
    server.server_close()
    thread.join(10)
