"""The console in a real Chromium against a real server, every other host unreachable: sign
in, each page, the graph, a cancel, a webhook test-fired at a real receiver on loopback and
redelivered, sign out; a screenshot of each page is saved (the folder is printed;
PIE_CONSOLE_SCREENSHOTS names another)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.helpers import ADMIN, Implementations, model_body
from tests.plugins.test_http_handler import ok, receiver  # noqa: F401 (a fixture)
from tests.test_docs_browser import TIMEOUT_MS, Traffic, browser  # noqa: F401 (a fixture)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: Any) -> Path:
    folder = Path(os.environ.get("PIE_CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("console"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def implementations() -> Iterator[Implementations]:
    held = Implementations()
    yield held
    held.release.set()


@pytest.fixture(scope="module")
def server(make_module_app: Any, implementations: Implementations) -> Iterator[str]:
    # Webhooks may reach the test's receiver on loopback; the deliverer runs as in `pie serve`.
    app = make_module_app({"PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"]}, plugins=[implementations])
    app.extensions["pie"].deliverer.start()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    implementations.release.set()
    httpd.shutdown()
    thread.join(10)


class Api:
    def __init__(self, origin: str, token: str = ADMIN) -> None:
        self.origin, self.token = origin, token

    def __call__(self, method: str, path: str, body: Any = None, ok: int = 299) -> Any:
        response = requests.request(
            method,
            f"{self.origin}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code <= ok, (path, response.status_code, response.text)
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def world(server: str) -> Api:
    """Three chained models (one link paused), for every test of the module."""
    api = Api(server)
    text = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    contract = {"inference": {"input_schema": text}}
    api("POST", "/v2/models", model_body("ingest", name="Ingest", handler_contracts=contract))
    api("POST", "/v2/models", model_body("embed", name="Embed"))
    api("POST", "/v2/models", model_body("index", name="Index"))
    hold = {"type": "in_process", "value": "hold"}
    api(
        "POST",
        "/v2/models",
        model_body("slow", name="Slow", handlers={"training": hold, "inference": hold}),
    )
    for model_id in ("ingest", "embed", "index", "slow"):
        for status in ("training", "active"):
            api("POST", f"/v2/models/{model_id}/versions/1/new_status", {"status": status})
    link = {"target_action": "inference"}
    api(
        "POST",
        "/v2/models/ingest/event-subscriptions",
        {
            **link,
            "trigger_event": "inference_complete",
            "target_model_id": "embed",
            "input_source": "trigger_output",
            "label": "embed what was read",
        },
    )
    api(
        "POST",
        "/v2/models/embed/event-subscriptions",
        {
            **link,
            "trigger_event": "inference_complete",
            "target_model_id": "index",
            "input_source": "trigger_output",
        },
    )
    nightly = api(
        "POST",
        "/v2/models/index/event-subscriptions",
        {
            **link,
            "trigger_event": "training_complete",
            "target_model_id": "ingest",
            "input_source": "stored",
            "input": {"text": "again"},
            "label": "nightly",
        },
    )
    api("PUT", f"/v2/models/index/event-subscriptions/{nightly['id']}", {"status": "paused"})
    api(
        "POST",
        "/v2/models/slow/event-subscriptions",
        {
            **link,
            "trigger_event": "inference_complete",
            "target_model_id": "embed",
            "input_source": "trigger_output",
        },
    )
    # A new inference contract for index: the link from embed goes stale.
    index = api("GET", "/v2/models/index")
    new_input = {"type": "object", "properties": {"vector": {"type": "array"}}}
    body = {k: index[k] for k in ("name", "description", "handlers", "metadata")}
    api(
        "PUT",
        "/v2/models/index",
        {**body, "handler_contracts": {"inference": {"input_schema": new_input}}},
    )
    api("POST", "/v2/clients", {"client_id": "acme", "name": "Acme Retail"})
    region = {"type": "string", "enum": ["eu", "us"], "default": "eu"}
    feature = {"name": "region", "json_schema": region, "mandatory": True}
    api("POST", "/v2/clients/acme/domains", {"domain_id": "shops", "features": [feature]})
    key = "/v2/clients/acme/domains/shops/assignments/default"
    api("PUT", key, {"model_id": "ingest", "model_version": "1"})
    api("PUT", key, {"model_id": "embed", "model_version": "1", "role": "champion"})
    init = {"service_id": "store-1", "static_features": {"region": "us"}}
    api("POST", "/v2/clients/acme/domains/shops/service/init", init)
    return api


@pytest.fixture
def page(browser: Any, server: str, world: Api) -> Iterator[Any]:  # noqa: F811 (the fixture)
    """A signed-in page; every request is checked and the traffic asserted at the end."""
    traffic = Traffic(server)
    context = browser.new_context(viewport=LAPTOP, service_workers="block")
    context.route("**/*", traffic.route)
    tab = context.new_page()
    tab.on("websocket", lambda websocket: traffic.outside.append(websocket.url))
    tab.on("console", traffic.console)
    tab.on("pageerror", lambda error: traffic.errors.append(str(error)))
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(f"{server}/ui/models")
    assert tab.url.startswith(f"{server}/ui/sign-in")
    tab.get_by_label("Token").fill(ADMIN)
    tab.keyboard.press("Tab")
    tab.keyboard.press("Enter")  # the Sign in button, by keyboard
    tab.get_by_role("heading", name="Models").wait_for()
    yield tab
    context.close()
    assert traffic.outside == [], "the page requested other hosts"
    assert traffic.errors == [], "the page logged errors"


def test_sign_in_models_and_a_lifecycle_action(page, server, world, shots):
    assert "/ui/models" in page.url
    page.get_by_role("link", name="ingest").click()
    page.get_by_role("heading", name="Model ingest").wait_for()
    assert page.get_by_role("table").filter(has_text="inference input").count() == 1
    page.screenshot(path=shots / "model.png", full_page=True)
    page.get_by_role("link", name="Models").first.click()
    page.get_by_label("Search id, name or description").fill("emb")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="embed").wait_for()
    assert page.get_by_role("link", name="ingest").count() == 0
    version = world("POST", "/v2/models/embed/new_version", {})["version"]["version"]
    page.goto(f"{server}/ui/models/embed")
    page.get_by_role("button", name=f"Move version {version} to failed").click()
    page.get_by_role("heading", name="Model embed").wait_for()
    assert world("GET", f"/v2/models/embed/versions/{version}")["status"] == "failed"
    page.goto(f"{server}/ui/models")
    page.screenshot(path=shots / "models.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=shots / "models-phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways at phone width"


def test_sign_out(page, server):
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto(f"{server}/ui/models")
    assert page.url.startswith(f"{server}/ui/sign-in")


def test_the_chain_graph(page, server, world, shots):
    page.get_by_role("link", name="Chain graph").click()
    page.get_by_role("heading", name="Chain graph").wait_for()
    graph = page.locator(".graph svg")
    assert graph.locator("a.node").count() == 4
    assert graph.locator("a.edge.stale").count() >= 1
    assert graph.locator("a.edge.paused").count() == 1
    page.screenshot(path=shots / "graph.png", full_page=True)
    graph.locator("a.node", has_text="index").click()
    page.get_by_role("heading", name="Model index").wait_for()


def test_jobs_live_status_a_job_page_its_tree_and_a_cancel(page, server, world, shots):
    job_id = world("POST", "/v2/models/ingest/versions/1/inference", {"input": {"text": "hello"}})[
        "inference_job_id"
    ]
    page.goto(f"{server}/ui/jobs/{job_id}")
    page.locator("#job-live dd .status-success").wait_for()  # live: no reload
    page.get_by_role("heading", name="Output").wait_for()
    page.screenshot(path=shots / "job.png", full_page=True)
    page.get_by_role("link", name="the tree of jobs its completion started").click()
    page.locator("ul.tree ul li").first.wait_for()
    assert page.locator("ul.tree li").count() >= 2  # ingest's job, then embed's
    page.screenshot(path=shots / "job-tree.png", full_page=True)

    slow = world("POST", "/v2/models/slow/versions/1/inference", {"input": {}})["inference_job_id"]
    page.goto(f"{server}/ui/jobs?model_id=slow")
    row = page.locator("#job-rows tr", has_text=slow)
    row.locator(".status-started, .status-pending").wait_for()
    page.get_by_label("Status").select_option("started")
    page.get_by_role("button", name="Find jobs").click()
    page.locator("#job-rows tr", has_text=slow).wait_for()
    page.screenshot(path=shots / "jobs.png", full_page=True)
    page.get_by_role("link", name=slow).click()
    page.get_by_role("button", name="Cancel this job").click()
    page.locator("#job-live dd .status-failure").wait_for()
    assert "Cancelled" in page.locator("#job-live").inner_text()
    assert world("GET", f"/v2/jobs/{slow}")["error"]["type"] == "Cancelled"
    page.screenshot(path=shots / "job-cancelled.png", full_page=True)


def test_the_jobs_list_updates_itself(page, server, world):
    slow = world("POST", "/v2/models/slow/versions/1/inference", {"input": {}})["inference_job_id"]
    page.goto(f"{server}/ui/jobs?model_id=slow")
    row = page.locator("#job-rows tr", has_text=slow)
    row.locator(".status-started, .status-pending").wait_for()
    world("POST", f"/v2/jobs/{slow}/cancel")
    row.locator(".status-failure").wait_for()  # htmx polled it in


def test_tenants_and_status(page, server, shots):
    page.get_by_role("link", name="Tenants").click()
    page.get_by_role("link", name="acme").click()
    page.get_by_role("heading", name="Client acme").wait_for()
    page.get_by_role("link", name="shops").click()
    page.get_by_role("heading", name="Domain shops").wait_for()
    assert page.locator("tr", has_text="store-1").count() == 1
    assert page.locator(".status-archived").count() == 1  # the first revision
    page.screenshot(path=shots / "domain.png", full_page=True)
    page.get_by_role("link", name="Status").click()
    page.get_by_role("heading", name="Queue depths").wait_for()
    page.screenshot(path=shots / "status.png", full_page=True)


def test_webhooks_test_fire_and_redeliver(page, server, world, shots, receiver):  # noqa: F811
    recv = receiver(ok)
    hook = {"url": recv.url, "events": ["model.deleted"], "description": "ops pager"}
    made = world("POST", "/v2/webhooks", hook)
    other = {"url": "http://127.0.0.1:9/acme", "events": ["*"], "client_id": "acme"}
    world("POST", "/v2/webhooks", {**other, "status": "paused", "description": "Acme's audit"})
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("heading", name="Webhooks").wait_for()
    assert page.locator("tr", has_text="Acme's audit").locator(".status-paused").count() == 1
    page.screenshot(path=shots / "webhooks.png", full_page=True)
    page.get_by_role("link", name=made["webhook_id"]).click()
    page.get_by_role("heading", name=f"Webhook {made['webhook_id']}").wait_for()
    page.get_by_role("button", name="Send a test event").click()
    page.get_by_role("heading", name="Delivery").wait_for()
    page.locator("dd .status-delivered").wait_for()
    assert len(recv.received) == 1 and recv.received[0].verify(made["secret"])
    delivery_id = recv.received[0].headers["webhook-id"]
    page.get_by_role("link", name=made["webhook_id"]).click()
    row = page.locator("tr", has_text=delivery_id)
    row.locator(".status-delivered").wait_for()
    assert "webhook.test" in row.inner_text()
    page.locator("select[name=status]").select_option("delivered")
    page.get_by_role("button", name="Filter").click()
    page.locator("tr", has_text=delivery_id).wait_for()
    page.screenshot(path=shots / "webhook.png", full_page=True)
    page.get_by_role("button", name=f"Redeliver {delivery_id}").click()
    page.get_by_role("heading", name=f"Delivery {delivery_id}").wait_for()
    deadline = time.monotonic() + 20
    while page.locator("table tbody tr").count() < 2:  # the attempts: the test, then again
        assert time.monotonic() < deadline, "the redelivery was not sent"
        time.sleep(0.2)
        page.reload()
    assert len(recv.received) == 2
    assert recv.received[1].headers["webhook-id"] == delivery_id
    page.locator("dd .status-delivered").wait_for()
    page.screenshot(path=shots / "delivery.png", full_page=True)
    assert made["secret"] not in page.content()
    page.set_viewport_size(PHONE)
    for path in ("/ui/webhooks", f"/ui/webhooks/{made['webhook_id']}"):
        page.goto(f"{server}{path}")
        assert made["secret"] not in page.content()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at phone width ({width}px)"


def test_every_page_reads_at_phone_width_and_by_keyboard(page, server, world, shots):
    started = world("POST", "/v2/models/ingest/versions/1/inference", {"input": {"text": "a"}})
    job_id = started["inference_job_id"]
    paths = [
        "/ui/models",
        "/ui/models/ingest",
        "/ui/graph",
        "/ui/jobs",
        f"/ui/jobs/{job_id}",
        f"/ui/jobs/{job_id}/tree",
        "/ui/clients",
        "/ui/clients/acme",
        "/ui/clients/acme/domains/shops",
        "/ui/status",
    ]
    page.set_viewport_size(PHONE)
    for path in paths:
        page.goto(f"{server}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at phone width ({width}px)"
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(e => !e.labels.length && !e.getAttribute('aria-label')).length"""
        )
        assert unlabelled == 0, f"{path} has fields without a label"
    page.screenshot(path=shots / "domain-phone.png", full_page=True)
    page.keyboard.press("Tab")  # the first stop is the skip link, and it works
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
