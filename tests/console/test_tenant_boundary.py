"""The tenant boundary of the console, generated from its route table: every page, read by
tenant B's sessions (machine token with every scope, human `client:B`) with tenant A's real
ids in the path and in the jobs filters, shows nothing of A's (tests/tenant_world.py seeds A
with a mark in every value); A's own session finds A's data, so the walk is not blind; B's
forms change nothing of A's. A page added later is walked too; one whose path parameters A's
ids cannot fill fails until this module knows them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.console.helpers import Console, signed_in
from tests.tenant_world import (
    SHARED,
    A,
    B,
    Parked,
    World,
    build_world,
    fill,
    human,
    machine,
)

TOKENS: dict[str, Callable[[], str]] = {"machine": lambda: machine(B), "human": lambda: human(B)}
NOT_PAGES = {"console.static", "console.unknown", "console.sign_in", "console.home"}
JOB_FILTERS = ("client_id", "parent_job_id", "subscription_id", "model_id")


@pytest.fixture(scope="module")
def world(make_module_app: Callable[..., Any]) -> World:
    parked = Parked()
    return build_world(make_module_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[parked]), parked)


def pages(app: Any) -> list[str]:
    """Every console page (GET) as a path template: /ui/jobs/{job_id}, …"""
    return sorted(
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and rule.endpoint not in NOT_PAGES
        and "GET" in rule.methods
    )


def urls(world: World) -> list[str]:
    """Every page filled with each binding of A's ids, and the jobs list filtered by them."""
    found = []
    for path in pages(world.client.raw.application):
        names = re.findall(r"\{(\w+)\}", path)
        bindings = world.bindings_for(path) if names else [{}]
        assert bindings, f"no ids of {A} fill {path}: teach tests/tenant_world.py about them"
        found.extend(fill(path, ids) for ids in bindings)
    for binding in world.bindings:
        for name in JOB_FILTERS:
            if name in binding:
                found.append(f"/ui/jobs?{name}={binding[name]}")
                found.append(f"/ui/jobs/rows?{name}={binding[name]}")
    for sub in world.a_subscriptions:
        found.append(f"/ui/jobs?subscription_id={sub}")
    return sorted(set(found))


def walk(world: World, console: Console) -> dict[str, list[str]]:
    """A's markers each page showed (beyond what the URL itself sent)."""
    shown = {}
    for url in urls(world):
        response = console.get(url)
        assert response.status_code in (200, 400, 403, 404), (url, response.status_code)
        assert response.content_type.startswith("text/html"), url
        leaked = world.leaked(response, url)
        if leaked:
            shown[url] = leaked
    return shown


@pytest.mark.parametrize("token_kind", sorted(TOKENS))
def test_another_tenant_sees_nothing_of_a_tenants_on_any_page(world, token_kind):
    console = signed_in(world.client.raw.application, TOKENS[token_kind]())
    assert walk(world, console) == {}


def test_the_walk_finds_a_tenants_data_with_its_own_session(world):
    console = signed_in(world.client.raw.application, machine(A))
    shown = walk(world, console)
    holding = {url.split("?")[0].split(A)[0] for url in shown}
    for page in ("/ui/jobs", "/ui/clients", "/ui/graph", f"/ui/jobs/{world.open_job}"):
        assert any(url.startswith(page) for url in shown), page
    assert "/ui/clients/" in holding
    hooks = [b["webhook_id"] for b in world.bindings if set(b) == {"webhook_id"}]
    assert hooks and "/ui/webhooks" in shown
    for hook in hooks:
        assert any(url.startswith(f"/ui/webhooks/{hook}/deliveries/") for url in shown), hook


def a_deliveries(world: World) -> dict[str, Any]:
    return {
        hook: world.client.get(f"/v2/webhooks/{hook}/deliveries?page_size=1000").get_json()
        for hook in world.snapshot()["webhooks"]
    }


def test_another_tenants_forms_change_nothing(world):
    before, delivered = world.snapshot(), a_deliveries(world)
    for token in (machine(B), human(B)):
        console = signed_in(world.client.raw.application, token)
        for job_id in (world.open_job, *world.a_jobs):
            assert console.post(f"/ui/jobs/{job_id}/cancel").status_code == 403
        for hook, log in delivered.items():
            for action, form in (("test", {}), ("status", {"status": "paused"})):
                response = console.post(f"/ui/webhooks/{hook}/{action}", form)
                assert response.status_code in (403, 404), (hook, action)
            for delivery in log:
                url = f"/ui/webhooks/{hook}/deliveries/{delivery['delivery_id']}/redeliver"
                assert console.post(url).status_code in (403, 404), url
    assert world.snapshot() == before
    assert a_deliveries(world) == delivered
    job = world.client.get(f"/v2/jobs/{world.open_job}").get_json()
    assert job["status"] == "started"


def test_a_callback_token_cannot_sign_in(world):
    console = Console(world.client.raw.application.test_client())
    console.get("/ui/sign-in")
    token = world.callback_token(world.b_open_job)
    assert console.post("/ui/sign-in", {"token": token}).status_code == 403


def test_every_page_is_walked(world):
    walked = {url.split("?")[0] for url in urls(world)}
    for path in pages(world.client.raw.application):
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path))
        assert any(re.fullmatch(pattern, url) for url in walked), path
    assert f"/ui/models/{SHARED}" in walked
