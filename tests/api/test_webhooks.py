"""Webhook endpoints through the API (issue 17): create, read, list, change, delete; the
`manage_webhooks` scope (admin implies it); a tenant's token manages its own client's
endpoints only, and only an admin makes a global one; the secret is shown once and stored
encrypted; URLs the destination guard refuses, and malformed event lists, are 400s."""

from __future__ import annotations

import os
import stat

import pytest

from pie.db import connection
from pie.outbound.secretbox import SecretBox, generate_key, parse_key
from pie.tables import Webhook
from tests.helpers import assert_envelope, make_token, scoped
from tests.webhooks import add_endpoint, hook_app

URL = "http://127.0.0.1:9/hooks"
TENANT_A = scoped("manage_webhooks", client_id="acme")
TENANT_B = scoped("manage_webhooks", client_id="beta")


@pytest.fixture
def setup(make_app):
    app, client = hook_app(make_app)
    for name in ("acme", "beta"):
        assert client.post("/v2/clients", json={"client_id": name, "name": name}).status_code == 201
    return app, client


def test_create_read_list_update_delete(setup):
    _app, client = setup
    made = add_endpoint(client, URL, ["job.failed", "job.succeeded"], description="ops")
    assert made["secret"].startswith("whsec_")
    assert made["status"] == "active" and made["client_id"] is None
    assert made["events"] == ["job.failed", "job.succeeded"] and made["description"] == "ops"
    one = client.get(f"/v2/webhooks/{made['webhook_id']}").get_json()
    assert "secret" not in one and one["url"] == URL
    assert [w["webhook_id"] for w in client.get("/v2/webhooks").get_json()] == [made["webhook_id"]]
    body = {"url": URL + "/2", "events": ["*"], "status": "paused"}
    changed = client.put(f"/v2/webhooks/{made['webhook_id']}", json=body).get_json()
    assert changed["url"] == URL + "/2" and changed["status"] == "paused"
    assert changed["events"] == ["*"] and "secret" not in changed
    assert client.delete(f"/v2/webhooks/{made['webhook_id']}").status_code == 204
    assert_envelope(client.get(f"/v2/webhooks/{made['webhook_id']}"), 404)
    assert client.get("/v2/webhooks").get_json() == []


def test_the_secret_is_encrypted_at_rest_with_a_generated_key(setup, tmp_path, database_url):
    _app, client = setup
    made = add_endpoint(client, URL)
    with connection():
        stored = Webhook.get_by_id(made["webhook_id"]).secret
    assert stored.startswith("v1:") and made["secret"] not in stored
    folder = tmp_path if database_url.startswith("sqlite") else tmp_path / "instance"
    key_file = folder / "pie-webhook-secret-key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    box = SecretBox(parse_key(key_file.read_text()))
    assert box.open(stored, made["webhook_id"]) == made["secret"]
    with pytest.raises(ValueError):  # bound to its endpoint: no use on another row
        box.open(stored, "another-endpoint")
    with pytest.raises(ValueError):  # and to its key
        SecretBox(parse_key(generate_key())).open(stored, made["webhook_id"])


def test_the_key_setting_is_used_and_checked(make_app):
    key = generate_key()
    _app, client = hook_app(make_app, PIE_WEBHOOK_SECRET_KEY=key)
    made = add_endpoint(client, URL)
    with connection():
        stored = Webhook.get_by_id(made["webhook_id"]).secret
    assert SecretBox(parse_key(key)).open(stored, made["webhook_id"]) == made["secret"]
    from pie import config

    with pytest.raises(config.ConfigurationError, match="PIE_WEBHOOK_SECRET_KEY"):
        config.load({"PIE_WEBHOOK_SECRET_KEY": "c2hvcnQ="})
    with pytest.raises(config.ConfigurationError, match="PIE_WEBHOOK_RETRY_SCHEDULE"):
        config.load({"PIE_WEBHOOK_RETRY_SCHEDULE": "5,-1"})


def test_rotation_shows_a_new_secret_once(setup):
    _app, client = setup
    made = add_endpoint(client, URL)
    r = client.post(f"/v2/webhooks/{made['webhook_id']}/rotate-secret")
    assert r.status_code == 200
    assert r.get_json()["secret"].startswith("whsec_") and r.get_json()["secret"] != made["secret"]


def test_manage_webhooks_is_needed_and_admin_implies_it(setup):
    _app, client = setup
    for token in (scoped("read_models", "manage_models", client_id="acme"), make_token()):
        assert_envelope(client.get("/v2/webhooks", token=token), 403)
        assert_envelope(client.post("/v2/webhooks", json={}, token=token), 403)
    human = make_token(groups=["client:acme"])
    assert_envelope(client.get("/v2/webhooks", token=human), 403)
    add_endpoint(client, URL)  # the admin's token (ADMIN) works without the scope


def test_a_tenant_manages_only_its_own_clients_endpoints(setup):
    _app, client = setup
    mine = add_endpoint(client, URL, token=TENANT_A)
    assert mine["client_id"] == "acme"
    theirs = add_endpoint(client, URL, token=TENANT_B)
    assert theirs["client_id"] == "beta"
    global_one = add_endpoint(client, URL)
    assert global_one["client_id"] is None
    listed = client.get("/v2/webhooks", token=TENANT_A)
    assert [w["webhook_id"] for w in listed.get_json()] == [mine["webhook_id"]]
    assert '"total": 1' in listed.headers["X-Pagination"]
    for other in (theirs, global_one):
        base = f"/v2/webhooks/{other['webhook_id']}"
        assert_envelope(client.get(base, token=TENANT_A), 404)
        body = {"url": URL, "events": ["*"]}
        assert_envelope(client.put(base, json=body, token=TENANT_A), 404)
        assert_envelope(client.delete(base, token=TENANT_A), 404)
        assert_envelope(client.post(f"{base}/rotate-secret", token=TENANT_A), 404)
        assert_envelope(client.post(f"{base}/test", token=TENANT_A), 404)
        assert_envelope(client.get(f"{base}/deliveries", token=TENANT_A), 404)
    # Naming another client, or making a global endpoint, is refused.
    body = {"url": URL, "events": ["*"], "client_id": "beta"}
    assert_envelope(client.post("/v2/webhooks", json=body, token=TENANT_A), 403)
    operator = scoped("manage_webhooks")
    r = client.post("/v2/webhooks", json={"url": URL, "events": ["*"]}, token=operator)
    assert "only an admin" in assert_envelope(r, 403)["message"]
    # An admin may make one for a client, which must exist.
    assert add_endpoint(client, URL, client_id="beta")["client_id"] == "beta"
    r = client.post("/v2/webhooks", json={"url": URL, "events": ["*"], "client_id": "nobody"})
    assert_envelope(r, 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "ftp://example.com/x", "events": ["*"]}, "json.url"),
        ({"url": "http://user:pw@example.com/x", "events": ["*"]}, "json.url"),
        ({"url": URL, "events": []}, "json.events"),
        ({"url": URL, "events": ["job.exploded"]}, "json.events"),
        ({"url": URL, "events": ["*", "job.failed"]}, "json.events"),
        ({"url": URL, "events": ["job.failed", "job.failed"]}, "json.events"),
        ({"url": URL, "events": ["*"], "status": "disabled"}, "json.status"),
        ({"url": URL, "events": ["*"], "secret": "whsec_mine"}, "json.secret"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(setup, body, field):
    _app, client = setup
    message = assert_envelope(client.post("/v2/webhooks", json=body), 400)["message"]
    assert field in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.2/x", "http://169.254.169.254/latest", "http://localhost/x"]
)
def test_destinations_the_guard_refuses_are_422s(setup, url):
    _app, client = setup
    r = client.post("/v2/webhooks", json={"url": url, "events": ["*"]})
    assert "json.url" in assert_envelope(r, 422)["message"]
    made = add_endpoint(client, URL)
    r = client.put(f"/v2/webhooks/{made['webhook_id']}", json={"url": url, "events": ["*"]})
    assert "json.url" in assert_envelope(r, 422)["message"]


def test_a_suspended_clients_token_cannot_manage_its_endpoints(setup):
    _app, client = setup
    mine = add_endpoint(client, URL, token=TENANT_A)
    assert client.put("/v2/clients/acme", json={"status": "suspended"}).status_code == 200
    assert_envelope(client.get(f"/v2/webhooks/{mine['webhook_id']}", token=TENANT_A), 403)
