"""The tenant boundary, generated from the route table: every operation of the served
/openapi.json, called by tenant B's tokens (machine, every scope; human, `client:B`; the
callback token of one of B's jobs) with tenant A's real ids, answers without any of A's ids
or values that B did not send itself (body and headers; list totals count only what B sees),
and changes nothing A owns (nor an operator's job of no client, which every tenant relies on)
or starts anything in A's name — not then, and not when A goes on
working afterwards (runs an inference, retrains a shared model that an operator activates):
no job in A's name ever holds a value B sent. A route added later is walked too; one that
needs a body this module does not know fails until BODIES has one.

tests/api/test_tenant_isolation.py checks the stricter rule of the /v2/clients/{client_id}
routes (403 before any validation); this module covers every route, reads and writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import model_body
from tests.tenant_world import (
    CHAIN,
    SHARED,
    A,
    B,
    Parked,
    World,
    build_world,
    fill,
    human,
    machine,
    operations,
    served_spec,
)

SPEC = served_spec()
OPERATIONS = [(method, path) for method, path, _ in operations(SPEC)]
TOKENS: dict[str, Callable[[World], str]] = {
    "machine": lambda world: machine(B),
    "human": lambda world: human(B),
    "callback": lambda world: world.callback_token(world.b_open_job),
}

_V = "/v2/models/{model_id}/versions/{model_version}"
_SUB = "/v2/models/{model_id}/event-subscriptions"
_D = "/v2/clients/{client_id}/domains/{domain_id}"
_S = _D + "/service/{service_id}"
TARGET = {"model_id": SHARED, "model_version": "1"}


def same_model(world: World, ids: dict[str, str]) -> dict[str, Any]:
    """A model's own definition, renamed: B may update shared models (manage_models)."""
    model = world.client.get(f"/v2/models/{ids['model_id']}").get_json()
    return model_body(None, name="renamed by beta", handlers=model["handlers"])


# A valid body for every operation that takes one, so a write reaches its real checks. What
# could become a job's input or output carries B_VALUE: no job in A's name may ever hold it.
B_VALUE = "chosen-by-beta"
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v2/models"): model_body("beta-model"),
    ("put", "/v2/models/{model_id}"): same_model,
    ("post", "/v2/models/{model_id}/new_version"): {"description": "beta's"},
    ("post", f"{_V}/new_status"): {"status": "active"},
    ("post", f"{_V}/inference"): {"input": {"note": B_VALUE}, "subscribe": True},
    ("post", f"{_V}/training"): {"input": {"note": B_VALUE}},
    ("post", f"{_V}/jobs/{{job_id}}/complete"): {"status": "success", "output": {"by": B_VALUE}},
    ("post", f"{_V}/jobs/{{job_id}}/heartbeat"): {"progress": 0.5, "message": B_VALUE},
    ("put", "/v2/models/{model_id}/job_policy"): {"inference": {"timeout_seconds": 1}},
    ("post", _SUB): {
        "trigger_event": "training_complete",
        "target_model_id": CHAIN,
        "target_action": "inference",
        "input_source": "stored",
        "input": {"note": B_VALUE},
    },
    ("put", f"{_SUB}/{{subscription_id}}"): {"label": "beta's"},
    ("post", "/v2/webhooks"): {"url": "https://hooks.example.com/beta", "events": ["*"]},
    ("put", "/v2/webhooks/{webhook_id}"): {
        "url": "https://hooks.example.com/beta",
        "events": ["job.failed"],
        "status": "paused",
    },
    ("post", "/v2/clients"): {"client_id": "planted", "name": "Planted"},
    ("put", "/v2/clients/{client_id}"): {"name": "Taken over"},
    ("post", "/v2/clients/{client_id}/domains"): {"domain_id": "planted"},
    ("put", _D): {"status": "inactive"},
    ("put", f"{_D}/features"): {"features": []},
    ("post", f"{_D}/service/init"): {"service_id": "planted"},
    ("put", _S): {"static_features": {"region": "us"}},
    **{
        item: body
        for scope in (_D, _S)
        for item, body in {
            ("post", f"{scope}/assignments"): {"assignment_key": "planted", **TARGET},
            ("put", f"{scope}/assignments/{{assignment_key}}"): {**TARGET, "role": "beta's"},
            ("post", f"{scope}/assignments/{{assignment_key}}/jobs"): {
                "input": {"note": B_VALUE},
                "subscribe": True,
            },
        }.items()
    },
}


def params() -> Iterator[Any]:
    for method, path in OPERATIONS:
        for token in TOKENS:
            yield pytest.param(method, path, token, id=f"{token}-{method.upper()} {path}")


@pytest.fixture(scope="module")
def worlds(make_module_app: Callable[..., Any]) -> dict[str, World]:
    return {}


@pytest.fixture
def world(worlds: dict[str, World], make_module_app: Callable[..., Any]) -> Iterator[World]:
    """The module's world, built again after a test changed anything, so every test starts
    from the same seeded state."""
    if "current" not in worlds:
        parked = Parked()
        app = make_module_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[parked])
        worlds["current"] = built = build_world(app, parked)
        built.pristine = built.snapshot()
    yield worlds["current"]
    if worlds["current"].dirty:
        del worlds["current"]


def body_for(world: World, method: str, path: str, ids: dict[str, str]) -> Any:
    operation = SPEC["paths"][path][method]
    if "requestBody" not in operation:
        return None
    assert (method, path) in BODIES, (
        f"{method.upper()} {path} takes a body this test has none for: add one to BODIES"
    )
    body = BODIES[(method, path)]
    return body(world, ids) if callable(body) else body


def miscounted(response: Any) -> str | None:
    """A list whose X-Pagination total counts rows the caller was not shown (GET /v2/jobs,
    which pages by cursor, has no total)."""
    header = response.headers.get("X-Pagination")
    if response.status_code != 200 or not header or "total" not in json.loads(header):
        return None
    total, items = json.loads(header)["total"], response.get_json()
    if len(items) < 100 and total != len(items):  # one page (the default size) holds them all
        return f"X-Pagination total {total} but {len(items)} items"
    return None


def walk(world: World, method: str, path: str, token: str) -> list[str]:
    """Call one operation with every binding of A's ids; what leaked, by request."""
    bindings = world.bindings_for(path)
    assert bindings, f"tenant A has no ids for {path}: seed some in tests/tenant_world.py"
    wrong = []
    for ids in bindings:
        url = fill(path, ids)
        body = body_for(world, method, path, ids)
        r = world.client.request(method.upper(), url, json=body, token=token)
        assert r.status_code < 500, (url, r.get_data(as_text=True))
        if method != "get" and r.status_code < 300:
            world.dirty = True  # B changed something (shared models may be B's to change)
        found = world.leaked(r, sent=url + json.dumps(body))
        if found:
            wrong.append(f"{method.upper()} {url} -> {r.status_code} shows {found}")
        if miscounted(r):
            wrong.append(f"{method.upper()} {url} -> {miscounted(r)}")
    return wrong


@pytest.mark.parametrize("method, path, token_kind", list(params()))
def test_another_tenant_cannot_reach_a_tenants_things(world, method, path, token_kind):
    wrong = walk(world, method, path, TOKENS[token_kind](world))
    changed = changes(world.pristine, world.snapshot())
    if changed:
        world.dirty = True
        wrong.append(f"{method.upper()} {path} changed what {A} owns or relies on: {changed}")
    if world.dirty:  # B changed something: what A does next must not run B's data as A's
        planted = world.after_a_works(B_VALUE)
        wrong += [f"{method.upper()} {path} made job {job} run in {A}'s name" for job in planted]
    assert not wrong, "\n".join(wrong)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs in A's snapshot (A's things, and the operator's open job of no client that
    every tenant relies on), but for new jobs that subscriptions started: a retrain of
    a shared model, by whoever, replays A's subscribed input in A's name (what `subscribe`
    asks for), and what that replay triggers stays in A's tenant."""
    found = []
    for part in before:
        for key in sorted(set(before[part]) | set(after[part])):
            if before[part].get(key) == after[part].get(key):
                continue
            if part == "jobs" and key not in before[part] and after[part][key]["trigger"]:
                continue
            found.append(f"{part} {key}")
    return found


def test_every_operation_is_walked_and_every_body_is_used():
    served = {(m, p) for m, p, _ in operations(SPEC)}
    assert len(served) >= 48  # the contract's operations; more may come
    assert set(BODIES) <= served, sorted(set(BODIES) - served)  # no body for a gone route
    needing = {(m, p) for m, p, op in operations(SPEC) if "requestBody" in op}
    assert needing <= set(BODIES), sorted(needing - set(BODIES))


@pytest.mark.parametrize("token_kind", TOKENS)
def test_tenant_b_tokens_work_on_tenant_b(world, token_kind):
    token = TOKENS[token_kind](world)
    if token_kind == "callback":
        url = f"/v2/jobs/{world.b_open_job}"
    else:
        url = f"/v2/clients/{B}/domains/d-beta/assignments"
    r = world.client.get(url, token=token)
    assert r.status_code == 200, r.get_json()


def test_the_walk_finds_a_tenants_data_with_its_own_token(world):
    """The scan is not blind: A's own token sees A's data on every route that holds it."""
    seen = {
        path
        for method, path in OPERATIONS
        if method == "get" and walk(world, method, path, machine(A))
    }
    holding = {path for method, path in OPERATIONS if method == "get" and "{client_id}" in path}
    holding |= {"/v2/jobs/{job_id}", f"{_V}/jobs", _SUB, f"{_SUB}/{{subscription_id}}"}
    holding |= {"/v2/jobs"}
    assert holding <= seen, sorted(holding - seen)


def searches(world: World) -> list[str]:
    """GET /v2/jobs with each of A's ids as the filter that takes it: A's client, A's jobs as
    parents, A's subscriptions and the subscriptions A's jobs came from, and the models
    and versions A's jobs ran on, each page walked by its cursor."""
    queries = [f"client_id={A}", f"client_id={A}&status=success"]
    for job in world.a_jobs.values():
        queries.append(f"parent_job_id={job['job_id']}")
        queries.append(f"model_id={job['model_id']}&model_version={job['model_version']}")
        if job["trigger"]:
            queries.append(f"subscription_id={job['trigger']['subscription_id']}")
    queries += [f"subscription_id={sub_id}" for sub_id in world.a_subscriptions]
    return sorted(set(queries))


@pytest.mark.parametrize("token_kind", TOKENS)
def test_searching_jobs_by_a_tenants_ids_shows_another_tenant_none_of_its_jobs(world, token_kind):
    token, wrong, walked = TOKENS[token_kind](world), [], 0
    for query in searches(world):
        url = f"/v2/jobs?{query}&page_size=2"
        while url:
            r = world.client.get(url, token=token)
            assert r.status_code in (200, 403), (url, r.get_data(as_text=True))
            found = world.leaked(r, sent=url)
            if found:
                wrong.append(f"GET {url} -> {r.status_code} shows {found}")
            walked += r.status_code == 200
            link = r.headers.get("Link") if r.status_code == 200 else None
            url = link[1 : link.index(">")] if link else ""
    assert not wrong, "\n".join(wrong)
    assert walked or token_kind == "callback"  # the callback token reads no lists
    # and the same searches as A find A's jobs: the walk is not blind
    seen = [world.client.get(f"/v2/jobs?{q}", token=machine(A)) for q in searches(world)]
    assert any(world.leaked(r, sent="") for r in seen)
