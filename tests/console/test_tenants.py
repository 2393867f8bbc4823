"""The tenants pages (clients, domains with their feature contracts, services, assignments and
revisions) and the status page, with the API's checks."""

from __future__ import annotations

import pytest

from pie.tables import Process
from tests.console.helpers import signed_in
from tests.helpers import ADMIN, make_token, model_body, scoped

FEATURES = [
    {"name": "region", "json_schema": {"type": "string", "default": "eu"}, "mandatory": True}
]


@pytest.fixture
def tenant(client):
    client.post("/v2/models", json=model_body("m"))
    client.post("/v2/models/m/versions/1/new_status", json={"status": "active"})
    client.post("/v2/models", json=model_body("m2"))
    client.post("/v2/models/m2/versions/1/new_status", json={"status": "active"})
    for client_id in ("acme", "beta"):
        assert (
            client.post(
                "/v2/clients", json={"client_id": client_id, "name": client_id.title()}
            ).status_code
            == 201
        )
        body = {"domain_id": "shop", "features": FEATURES}
        assert client.post(f"/v2/clients/{client_id}/domains", json=body).status_code == 201
        key = f"/v2/clients/{client_id}/domains/shop/assignments/default"
        assert client.put(key, json={"model_id": "m", "model_version": "1"}).status_code == 201
    client.put(
        "/v2/clients/acme/domains/shop/assignments/default",
        json={"model_id": "m2", "model_version": "1"},
    )
    init = "/v2/clients/acme/domains/shop/service/init"
    r = client.post(init, json={"service_id": "store-1", "static_features": {"region": "us"}})
    assert r.status_code in (200, 201, 202), r.get_json()
    return client


def test_clients_a_tenant_sees_only_its_own(app, tenant):
    page = signed_in(app, make_token(groups=["client:acme"])).text("/ui/clients")
    assert "/ui/clients/acme" in page and "/ui/clients/beta" not in page
    admin = signed_in(app, ADMIN).text("/ui/clients")
    assert "/ui/clients/acme" in admin and "/ui/clients/beta" in admin


def test_the_client_and_domain_pages(app, tenant, statements):
    console = signed_in(app, make_token(groups=["client:acme"]))
    client_page = console.text("/ui/clients/acme")
    assert "/ui/clients/acme/domains/shop" in client_page
    statements.clear()
    page = console.text("/ui/clients/acme/domains/shop")
    # The suspension check of the token's client, the client's, the domain, its services,
    # its revisions.
    assert len(statements) <= 5, statements
    assert "<code>region</code>" in page  # the feature contract
    assert "store-1" in page and "&#34;us&#34;" in page  # the service's resolved features
    assert page.count("status-archived") == 1 and "m2</a> v1" in page  # the revisions


def test_client_pages_are_one_statement_per_list(app, tenant, statements):
    console = signed_in(app, ADMIN)
    statements.clear()
    console.get("/ui/clients")
    assert len(statements) == 1
    statements.clear()
    console.get("/ui/clients/acme")
    assert len(statements) == 2  # the client, its domains


def test_another_tenants_pages_are_refused(app, tenant):
    console = signed_in(app, make_token(groups=["client:acme"]))
    for path in ("/ui/clients/beta", "/ui/clients/beta/domains/shop", "/ui/clients/nope"):
        response = console.get(path)
        assert response.status_code == 403, path
        assert "Beta" not in response.get_data(as_text=True)
    assert console.get("/ui/clients/acme/domains/nope").status_code == 404


def test_a_suspended_client(app, tenant):
    tenant.put("/v2/clients/beta", json={"status": "suspended"})
    page = signed_in(app, ADMIN).text("/ui/clients/beta")
    assert "status-suspended" in page and "/ui/clients/beta/domains/shop" not in page
    assert signed_in(app, ADMIN).get("/ui/clients/beta/domains/shop").status_code == 403
    console = signed_in(app, make_token(groups=["client:acme", "client:beta"]))
    assert "/ui/clients/beta" not in console.text("/ui/clients")


def test_the_status_page(app, tenant, statements):
    Process.create(id="p-1", hostname="host-a", pid=42, kind="worker")
    console = signed_in(app, ADMIN)
    statements.clear()
    page = console.text("/ui/status")
    assert len(statements) == 3  # health, the processes, the queue depths
    assert "host-a" in page and "Queue depths" in page and "Recovery loop" in page
    tenant_page = signed_in(app, scoped("read_models", client_id="acme")).text("/ui/status")
    assert "host-a" not in tenant_page and "Queue depths" not in tenant_page
    assert "Database" in tenant_page
