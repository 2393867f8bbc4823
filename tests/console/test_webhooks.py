"""The webhook pages: the endpoints a token manages, an endpoint's delivery log by status and
event type, a delivery's attempts, and test-fire, redeliver, pause and resume, with the API's
permission (manage_webhooks, admin implies it) and tenant reach; secrets are never shown."""

from __future__ import annotations

import re

import pytest

from tests.api.test_webhooks import TENANT_A as ACME
from tests.api.test_webhooks import URL, setup  # noqa: F401  (the fixture)
from tests.console.helpers import signed_in
from tests.helpers import ADMIN, scoped
from tests.plugins.test_http_handler import ok, receiver  # noqa: F401  (the fixture)
from tests.webhooks import add_endpoint, deliver_all, hook_app


@pytest.fixture
def endpoints(setup):  # noqa: F811  (the API tests' app with clients acme and beta)
    """A global endpoint, acme's and beta's."""
    app, client = setup
    made = {
        "global": add_endpoint(client, URL, description="every client's"),
        "acme": add_endpoint(client, URL + "/a", ["job.failed"], token=ACME, description="A's"),
        "beta": add_endpoint(
            client, URL + "/b", ["job.succeeded"], token=scoped("manage_webhooks", client_id="beta")
        ),
    }
    return app, client, made


def listed(page: str) -> list[str]:
    return re.findall(r'<a href="/ui/webhooks/([^"/]+)"><code>', page)


def test_the_list_shows_what_get_v2_webhooks_does_in_one_statement(endpoints, statements):
    app, _client, hooks = endpoints
    console = signed_in(app, ADMIN)
    statements.clear()
    page = console.text("/ui/webhooks")
    assert len(statements) == 1
    assert sorted(listed(page)) == sorted(h["webhook_id"] for h in hooks.values())
    assert URL + "/a" in page and "job.failed" in page and "A&#39;s" in page
    assert ">acme</a>" in page and "global" in page and "status-active" in page
    assert 'href="/ui/webhooks" aria-current="page"' in page  # in the navigation
    for hook in hooks.values():
        assert hook["secret"] not in page


def test_a_tenant_sees_and_acts_on_its_own_clients_endpoints_only(endpoints):
    app, client, hooks = endpoints
    console = signed_in(app, ACME)
    assert listed(console.text("/ui/webhooks")) == [hooks["acme"]["webhook_id"]]
    console.text(f"/ui/webhooks/{hooks['acme']['webhook_id']}")
    for other in ("beta", "global"):
        hook_id = hooks[other]["webhook_id"]
        assert console.get(f"/ui/webhooks/{hook_id}").status_code == 404
        assert console.post(f"/ui/webhooks/{hook_id}/test").status_code == 404
        assert (
            console.post(f"/ui/webhooks/{hook_id}/status", {"status": "paused"}).status_code == 404
        )
    assert (
        client.get("/v2/webhooks/" + hooks["beta"]["webhook_id"]).get_json()["status"] == "active"
    )
    assert client.get(f"/v2/webhooks/{hooks['beta']['webhook_id']}/deliveries").get_json() == []


def test_the_permission_is_the_apis(endpoints):
    app, _client, hooks = endpoints
    hook_id = hooks["acme"]["webhook_id"]
    console = signed_in(app, scoped("read_models", "manage_models", client_id="acme"))
    for path in ("/ui/webhooks", f"/ui/webhooks/{hook_id}"):
        assert console.get(path).status_code == 403
    assert console.post(f"/ui/webhooks/{hook_id}/test").status_code == 403
    assert console.post(f"/ui/webhooks/{hook_id}/status", {"status": "paused"}).status_code == 403


def test_test_fire_then_redeliver_against_a_real_receiver(make_app, receiver, statements):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    made = add_endpoint(client, recv.url, ["job.failed"])
    hook_id = made["webhook_id"]
    console = signed_in(app, ADMIN)
    console.get(f"/ui/webhooks/{hook_id}")
    response = console.post(f"/ui/webhooks/{hook_id}/test")
    assert response.status_code == 303
    delivery_page = response.headers["Location"]
    (delivery_id,) = re.findall(r"/deliveries/([^/]+)$", delivery_page)
    assert len(recv.received) == 1 and recv.received[0].verify(made["secret"])
    page = console.text(delivery_page)
    assert "status-delivered" in page and "202" in page and "webhook.test" in page
    statements.clear()
    log = console.text(f"/ui/webhooks/{hook_id}")
    assert len(statements) == 2  # the endpoint, its delivery log
    assert delivery_id in log and "status-delivered" in log and " ms</td>" in log
    assert made["secret"] not in log and made["secret"] not in page
    assert delivery_id in console.text(f"/ui/webhooks/{hook_id}?status=delivered&event_type=")
    assert delivery_id not in console.text(f"/ui/webhooks/{hook_id}?status=failed")
    assert delivery_id not in console.text(f"/ui/webhooks/{hook_id}?event_type=job.failed")
    assert console.get(f"/ui/webhooks/{hook_id}?status=nope").status_code == 400

    url = f"/ui/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver"
    assert console.post(url, csrf=False).status_code == 403  # no CSRF token: nothing sent
    response = console.post(url)
    assert response.status_code == 303 and response.headers["Location"] == delivery_page
    deliver_all(app)
    assert len(recv.received) == 2
    assert recv.received[1].headers["webhook-id"] == recv.received[0].headers["webhook-id"]
    api = client.get(f"/v2/webhooks/{hook_id}/deliveries/{delivery_id}").get_json()
    assert api["status"] == "delivered" and api["attempts"] == 1
    assert console.post(f"/ui/webhooks/{hook_id}/deliveries/nope/redeliver").status_code == 404


def test_pause_and_resume(endpoints):
    app, client, hooks = endpoints
    hook_id = hooks["acme"]["webhook_id"]
    console = signed_in(app, ACME)
    assert ">Pause</button>" in console.text(f"/ui/webhooks/{hook_id}")
    assert console.post(f"/ui/webhooks/{hook_id}/status", {"status": "paused"}).status_code == 303
    assert client.get(f"/v2/webhooks/{hook_id}").get_json()["status"] == "paused"
    page = console.text(f"/ui/webhooks/{hook_id}")
    assert ">Resume</button>" in page and "status-paused" in page
    assert console.post(f"/ui/webhooks/{hook_id}/status", {"status": "disabled"}).status_code == 400
    assert console.post(f"/ui/webhooks/{hook_id}/status", {"status": "active"}).status_code == 303
    after = client.get(f"/v2/webhooks/{hook_id}").get_json()
    assert after["status"] == "active" and after["url"] == URL + "/a"
    assert after["events"] == ["job.failed"] and after["description"] == "A's"


def test_the_webhooks_link_shows_only_to_tokens_that_manage_webhooks(endpoints):
    app, _client, _hooks = endpoints
    link = 'href="/ui/webhooks"'

    assert link in signed_in(app, ADMIN).text("/ui/status")
    assert link in signed_in(app, ACME).text("/ui/status")
    reader = signed_in(app, scoped("read_models", client_id="acme"))
    assert link not in reader.text("/ui/status")
