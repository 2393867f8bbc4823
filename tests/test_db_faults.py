"""The database going away: requests answer 503 in the envelope, health says so, and the
server recovers by itself when the database returns (Postgres, through a cuttable proxy)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.conftest import POSTGRES_URL
from tests.helpers import Client, assert_envelope, model_body
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs PIE_TEST_DATABASE_URL (Postgres)")


@pytest.fixture
def proxied(make_app, database_url):
    parsed = urlparse(database_url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    proxy.start()
    url = database_url.replace(
        f"{parsed.hostname}:{parsed.port or 5432}", f"127.0.0.1:{proxy.port}", 1
    )
    if f":{proxy.port}" not in url:  # URL without an explicit port
        url = database_url.replace(f"@{parsed.hostname}/", f"@127.0.0.1:{proxy.port}/", 1)
    app = make_app({"PIE_DATABASE_URL": url})
    yield Client(app.test_client()), proxy
    proxy.stop()


def test_database_outage_is_503_and_recovers(proxied):
    client, proxy = proxied
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    assert client.get("/v2/health").status_code == 200

    proxy.stop()
    health = client.get("/v2/health", token=None)
    assert health.status_code == 503
    assert health.get_json()["database"] == "unavailable"
    assert health.get_json()["success"] is False
    for _ in range(3):  # pooled connections are broken and must be discarded, not reused
        r = client.get("/v2/models/m")
        assert "database is unavailable" in assert_envelope(r, 503)["message"]
    assert_envelope(client.post("/v2/models", json=model_body("m2")), 503)

    proxy.start()
    assert client.get("/v2/health").status_code == 200
    assert client.get("/v2/models/m").status_code == 200
    assert client.post("/v2/models", json=model_body("m2")).status_code == 201


def test_unreachable_database_at_request_time_is_503(make_app, database_url):
    app = make_app()
    client = Client(app.test_client())
    from pie.db import database, open_database

    original = database.obj
    database.initialize(open_database("postgresql://postgres@127.0.0.1:1/none"))
    try:
        assert_envelope(client.get("/v2/models"), 503)
        assert client.get("/v2/health").status_code == 503
    finally:
        database.initialize(original)
