"""/docs in a real Chromium: Swagger UI renders /openapi.json and runs a request, PIE alone."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

# Debian's Chromium, driven by the playwright package: `playwright install` downloads browsers
# from outside the package registries, which cannot work here.
CHROMIUM = "/usr/bin/chromium"
# CI sets this so that a missing browser fails the run instead of skipping the test unseen.
REQUIRED = os.environ.get("PIE_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium's own traffic (updates, sync, field trials) would leave the machine unseen by
    # page routes; the resolver rule makes every other name fail even if something slips out.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
TIMEOUT_MS = 20_000


def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing_browser()
    if reason and REQUIRED:
        pytest.fail(f"PIE_REQUIRE_BROWSER=1, but {reason}")
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[str]:
    """A real HTTP server on loopback around a test app; its origin."""
    httpd = make_server("127.0.0.1", 0, make_app(), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)


@dataclass
class Traffic:
    """What the page asked for: anything not to PIE is aborted and kept here."""

    origin: str
    outside: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def route(self, route: Any) -> None:
        url = route.request.url
        if url == self.origin or url.startswith(f"{self.origin}/"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort("blockedbyclient")

    def response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def docs(browser: Any, server: str) -> Iterator[tuple[Any, Traffic]]:
    """A page showing /docs, with every request checked; the traffic is asserted at the end."""
    traffic = Traffic(server)
    # A service worker's requests would bypass the route; websockets are never routed.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.route("**/*", traffic.route)
    page = context.new_page()
    page.on("websocket", lambda websocket: traffic.outside.append(websocket.url))
    page.on("response", traffic.response)
    page.on("console", traffic.console)
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server}/docs")
    # Operations, or the notice that the document cannot be rendered (Swagger UI 4 on 3.1).
    page.locator(".opblock, .version-pragma, .errors-wrapper").first.wait_for()
    yield page, traffic
    context.close()
    assert traffic.outside == [], "the page requested other hosts"
    assert traffic.failed == [], "PIE answered the page with errors"
    assert traffic.errors == [], "the page logged errors"


def documented_operations(server: str) -> set[tuple[str, str]]:
    spec = requests.get(f"{server}/openapi.json", timeout=30).json()
    assert spec["openapi"].startswith("3.1")
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def listed_operations(page: Any) -> list[tuple[str, str]]:
    return page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent.trim(),
            block.querySelector('.opblock-summary-path').dataset.path])""",
    )


def test_docs_lists_every_operation_of_the_openapi_31_document(docs, server):
    page, _ = docs
    body = page.locator("body").inner_text()
    listed = [tuple(operation) for operation in listed_operations(page)]

    assert "Unable to render this definition" not in body, body
    assert page.locator(".errors-wrapper").count() == 0, body
    assert page.evaluate("window.versions.swaggerUI.version").startswith("5.")
    assert page.locator(".info .title").inner_text().startswith("PIE")
    assert len(listed) == len(set(listed))  # each once: no operation under two tags
    assert set(listed) == documented_operations(server)
    assert {("GET", "/v2/health"), ("POST", "/v2/models")} <= set(listed)


def test_try_it_out_runs_get_health_from_the_page(docs, tmp_path: Path):
    page, _ = docs
    health = page.locator(".opblock.opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/v2/health"]')
    )

    health.locator(".opblock-summary").first.click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    response = health.locator(".live-responses-table tr.response")
    response.wait_for()
    page.screenshot(path=tmp_path / "docs.png")
    health.screenshot(path=tmp_path / "docs-health.png")

    assert response.locator(".response-col_status").inner_text().strip() == "200"
    shown = response.locator(".response-col_description").inner_text()
    assert '"status": "ok"' in shown and '"database": "ok"' in shown, shown
    assert "/v2/health" in health.locator(".request-url").inner_text()
