"""GET /v2/jobs, PIE's extension beyond the contract: every filter and combinations of them,
newest first, pages by cursor (while jobs are being added), bad input as the envelope, and
what each kind of token is shown. Expected lists are worked out from the jobs as
GET /v2/jobs/{job_id} shows them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest

from tests.api.test_jobs import JOB_FIELDS
from tests.helpers import (
    Client,
    activate,
    add_tenant,
    assert_envelope,
    make_token,
    model_body,
    scoped,
    wait_for,
)
from tests.tenant_world import Parked

PARKED = {"training": {"type": "parked"}, "inference": {"type": "parked"}}
ACME, BETA = "acme", "beta"
# Every job of the world, by name: direct jobs (d*), assignment jobs of acme and beta (a1,
# b1), the jobs a global subscription started when d1 and a1 succeeded (t1, ta1) and a
# training job (tr).
NAMES = ("d1", "d2", "d3", "a1", "b1", "t1", "ta1", "tr")


@pytest.fixture
def app(make_app):
    return make_app(plugins=[Parked()])


class World:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.ids: dict[str, str] = {}
        self.subscription = ""

    def job(self, name: str) -> dict[str, Any]:
        return self.client.get(f"/v2/jobs/{self.ids[name]}").get_json()

    def jobs(self) -> list[dict[str, Any]]:
        return [self.job(name) for name in NAMES]

    def name(self, job_id: str) -> str:
        return {v: k for k, v in self.ids.items()}.get(job_id, job_id)


@pytest.fixture
def world(client) -> World:
    world = World(client)
    for model_id in ("m1", "m2"):
        r = client.post("/v2/models", json=model_body(model_id, handlers=PARKED))
        assert r.status_code == 201, r.get_json()
        activate(client, model_id)
    chain = {
        "trigger_event": "inference_complete",
        "target_model_id": "m2",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    r = client.post("/v2/models/m1/event-subscriptions", json=chain)
    assert r.status_code == 201, r.get_json()
    world.subscription = r.get_json()["id"]
    add_tenant(client, ACME, "d", default="m1")
    add_tenant(client, BETA, "d", default="m1")
    for name in ("d1", "d2", "d3"):
        world.ids[name] = start(client, "/v2/models/m1/versions/1/inference", "inference_job_id")
    world.ids["a1"] = start(client, f"/v2/clients/{ACME}/domains/d/assignments/default/jobs")
    world.ids["b1"] = start(client, f"/v2/clients/{BETA}/domains/d/assignments/default/jobs")
    assert client.post("/v2/models/m2/new_version", json={}).status_code == 201
    world.ids["tr"] = start(client, "/v2/models/m2/versions/2/training", "training_job_id")
    for name, status in (("d1", "success"), ("d2", "failure"), ("a1", "success")):
        fired = complete(client, world.ids[name], status)
        if fired:
            world.ids["t1" if name == "d1" else "ta1"] = fired[0]["job_id"]
    wait_for(lambda: all(job["status"] != "pending" for job in world.jobs()))
    return world


def start(client: Client, path: str, key: str = "job_id") -> str:
    r = client.post(path, json={"input": {"n": 1}})
    assert r.status_code == 202, r.get_json()
    return r.get_json()[key]


def complete(client: Client, job_id: str, status: str) -> list[dict[str, Any]]:
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    path = f"/v2/models/{job['model_id']}/versions/{job['model_version']}/jobs/{job_id}/complete"
    r = client.post(path, json={"status": status, "output": {"n": 1}})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["triggered_events"]


def matches(job: dict[str, Any], filters: dict[str, str]) -> bool:
    trigger = job["trigger"] or {}
    for name, value in filters.items():
        found = trigger.get(name) if name in ("parent_job_id", "subscription_id") else job[name]
        if found != value:
            return False
    return True


def expected(world: World, visible: Any = None, **filters: str) -> list[str]:
    """The names of the jobs a list with `filters` shows, newest first; `visible` (a set of
    clients, None: all) as for a tenant's token."""
    jobs = [
        job
        for job in world.jobs()
        if matches(job, filters) and (visible is None or job["client_id"] in {None, *visible})
    ]
    return [world.name(job["job_id"]) for job in sorted(jobs, key=lambda j: j["job_id"])[::-1]]


def listed(world: World, query: str = "", **kw: Any) -> list[str]:
    r = world.client.get(f"/v2/jobs{query}", **kw)
    assert r.status_code == 200, r.get_json()
    assert all(set(job) == JOB_FIELDS for job in r.get_json())  # no search columns shown
    return [world.name(job["job_id"]) for job in r.get_json()]


def test_every_job_newest_first_and_one_page_says_it_is_the_last(world):
    r = world.client.get("/v2/jobs")
    assert r.status_code == 200
    names = [world.name(job["job_id"]) for job in r.get_json()]
    assert names == expected(world) and sorted(names) == sorted(NAMES)
    assert names.index("tr") < names.index("b1") < names.index("d1")  # later is first
    assert json.loads(r.headers["X-Pagination"]) == {"page_size": 100, "next_after": None}
    assert "Link" not in r.headers


FILTERS = [
    {"status": "started"},
    {"status": "success"},
    {"status": "failure"},
    {"status": "pending"},
    {"job_type": "training"},
    {"job_type": "inference"},
    {"model_id": "m2"},
    {"model_id": "m2", "model_version": "1"},
    {"model_id": "m2", "model_version": "2"},
    {"model_id": "nope"},
    {"client_id": ACME},
    {"client_id": BETA},
    {"status": "started", "model_id": "m2"},
    {"status": "success", "job_type": "inference", "model_id": "m1"},
    {"client_id": ACME, "status": "started"},
    {"client_id": ACME, "model_id": "m2", "model_version": "1", "job_type": "inference"},
]


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.items())
)
def test_each_filter_and_combinations(world, filters):
    query = "?" + "&".join(f"{k}={v}" for k, v in filters.items())
    assert listed(world, query) == expected(world, **filters)


def test_jobs_by_the_job_that_started_them_and_by_subscription(world):
    parent, sub = world.ids["d1"], world.subscription
    assert listed(world, f"?parent_job_id={parent}") == ["t1"]
    assert listed(world, f"?parent_job_id={world.ids['a1']}") == ["ta1"]
    assert listed(world, f"?parent_job_id={world.ids['d2']}") == []  # a failure fires nothing
    assert listed(world, f"?subscription_id={sub}") == expected(world, subscription_id=sub)
    assert set(listed(world, f"?subscription_id={sub}")) == {"t1", "ta1"}
    query = f"?subscription_id={sub}&client_id={ACME}&parent_job_id={world.ids['a1']}"
    assert listed(world, query) == ["ta1"]
    assert listed(world, f"?subscription_id={sub}&status=success") == []


def test_created_after_and_before_are_exclusive_and_read_any_timezone(world):
    middle = world.job("b1")["created_at"]  # e.g. 2026-11-30T04:39:01.351000Z
    jobs = sorted(world.jobs(), key=lambda j: j["job_id"])[::-1]
    after = [world.name(j["job_id"]) for j in jobs if j["created_at"] > middle]
    before = [world.name(j["job_id"]) for j in jobs if j["created_at"] < middle]
    assert after and before and "b1" not in after + before
    assert listed(world, f"?created_after={middle}") == after
    assert listed(world, f"?created_before={middle}") == before
    moment = datetime.fromisoformat(middle.replace("Z", "+00:00"))
    shifted = quote(moment.astimezone(timezone(timedelta(hours=-5))).isoformat())  # …-05:00
    assert listed(world, f"?created_after={shifted}") == after
    both = f"?created_after={jobs[-1]['created_at']}&created_before={jobs[0]['created_at']}"
    assert listed(world, both) == [world.name(j["job_id"]) for j in jobs[1:-1]]
    assert listed(world, f"?created_after={middle}&created_before={middle}") == []
    assert listed(world, "?created_before=2000-01-01T00:00:00Z") == []
    assert listed(world, "?created_after=2000-01-01T00:00:00Z") == expected(world)


def walk(client: Client, url: str, between: Any = None) -> list[str]:
    """Every job id of a list, page by page through the Link headers."""
    seen: list[str] = []
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.get_json()
        page = json.loads(r.headers["X-Pagination"])
        seen += [job["job_id"] for job in r.get_json()]
        if page["next_after"] is None:
            assert "Link" not in r.headers
            return seen
        assert page["next_after"] == seen[-1]
        link = r.headers["Link"]
        assert link.startswith("</v2/jobs?") and link.endswith('>; rel="next"'), link
        url = link[1 : link.index(">")]
        if between:
            between()


def test_the_cursor_walks_every_job_once_while_jobs_are_added(world):
    client = world.client
    for _ in range(7):
        start(client, "/v2/models/m1/versions/1/inference", "inference_job_id")
    before = [job["job_id"] for job in client.get("/v2/jobs?page_size=1000").get_json()]
    added: list[str] = []

    def add() -> None:
        added.append(start(client, "/v2/models/m1/versions/1/inference", "inference_job_id"))

    seen = walk(client, "/v2/jobs?page_size=3", between=add)
    assert seen == before  # in order, each once, none left out; the new ones are not older
    assert len(added) == -(-len(before) // 3) - 1 and not set(added) & set(seen)
    assert walk(client, "/v2/jobs?page_size=1")[: len(added)] == added[::-1]


def test_the_cursor_keeps_the_filters_and_a_page_holds_page_size_jobs(world):
    client = world.client
    everything = [world.ids[name] for name in expected(world, model_id="m1")]
    r = client.get("/v2/jobs?model_id=m1&page_size=2")
    assert [job["job_id"] for job in r.get_json()] == everything[:2]
    assert json.loads(r.headers["X-Pagination"]) == {"page_size": 2, "next_after": everything[1]}
    assert "model_id=m1" in r.headers["Link"] and "page_size=2" in r.headers["Link"]
    assert walk(client, "/v2/jobs?model_id=m1&page_size=2") == everything
    # Any job id is a cursor: the jobs older than it.
    assert (
        listed(world, f"?after={world.ids['a1']}")
        == expected(world)[expected(world).index("a1") + 1 :]
    )
    assert listed(world, f"?after={everything[-1]}&model_id=m1") == []
    assert listed(world, "?after=0") == []  # older than any UUIDv7


def test_the_default_page_is_100_and_the_largest_1000(world):
    r = world.client.get("/v2/jobs")
    assert json.loads(r.headers["X-Pagination"])["page_size"] == 100
    r = world.client.get("/v2/jobs?page_size=1000")
    assert r.status_code == 200 and json.loads(r.headers["X-Pagination"])["page_size"] == 1000


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=done", "status"),
        ("status=", "status"),
        ("job_type=scoring", "job_type"),
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=abc", "page_size"),
        ("page_size=99999999999999999999", "page_size"),
        ("after=", "after"),
        ("after=not%20a%20cursor", "after"),
        ("after=%00", "after"),
        ("after=" + "x" * 200, "after"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-01-01T00:00:00", "created_after"),  # no timezone
        ("created_before=2026-13-01T00:00:00Z", "created_before"),
        ("created_before=0001-01-01T00:00:00%2B01:00", "created_before"),  # before year 1
        ("model_id=-m", "model_id"),
        ("model_version=1", "model_version"),  # without model_id
        ("client_id=%00", "client_id"),
        ("parent_job_id=a%0A", "parent_job_id"),
        ("subscription_id=" + "s" * 129, "subscription_id"),
        ("page=2", "page"),  # this list pages by cursor
    ],
)
def test_bad_input_is_400_naming_the_parameter(client, query, field):
    body = assert_envelope(client.get(f"/v2/jobs?{query}"), 400)
    assert f"query.{field}:" in body["message"], body


def test_unknown_parameters_are_ignored_as_on_the_other_lists(world):
    assert listed(world, "?colour=blue") == expected(world)
    r = world.client.get("/v2/models/m1/versions/1/jobs?colour=blue")
    assert r.status_code == 200


def test_extreme_times_are_empty_or_everything_not_errors(world):
    latest = "9999-12-31T23:59:59.999999Z"
    assert listed(world, f"?created_after={latest}") == []
    assert listed(world, f"?created_before={latest}") == expected(world)
    assert listed(world, "?created_after=0001-01-01T00:00:00Z") == expected(world)


# --- who sees what --------------------------------------------------------------------------


def tenant(client_id: str) -> str:
    return scoped("read_models", client_id=client_id)


@pytest.mark.parametrize(
    "token, visible",
    [
        (lambda: tenant(ACME), {ACME}),
        (lambda: make_token(groups=[f"client:{ACME}"]), {ACME}),
        (lambda: tenant(BETA), {BETA}),
        (lambda: make_token(groups=[f"client:{ACME}", f"client:{BETA}"]), {ACME, BETA}),
        (lambda: scoped("read_models"), set()),  # an operator's token: jobs of no client
        (lambda: scoped("admin"), None),
        (lambda: make_token(groups=["admin"]), None),
    ],
    ids=["acme", "acme-human", "beta", "both-human", "operator", "admin", "admin-human"],
)
def test_a_token_sees_its_clients_jobs_and_those_of_no_client(world, token, visible):
    token = token()
    assert listed(world, token=token) == expected(world, visible)
    query = "?status=started&page_size=2"
    seen = walk_as(world.client, f"/v2/jobs{query}", token)
    assert [world.name(j) for j in seen] == expected(world, visible, status="started")
    sub = world.subscription
    assert listed(world, f"?subscription_id={sub}", token=token) == expected(
        world, visible, subscription_id=sub
    )
    parent = world.ids["a1"]
    assert listed(world, f"?parent_job_id={parent}", token=token) == expected(
        world, visible, parent_job_id=parent
    )


def walk_as(client: Client, url: str, token: str) -> list[str]:
    seen = []
    while url:
        r = client.get(url, token=token)
        assert r.status_code == 200, r.get_json()
        seen += [job["job_id"] for job in r.get_json()]
        link = r.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
    return seen


def test_naming_a_client_the_token_cannot_reach_is_403_whether_or_not_it_exists(world):
    for client_id in (BETA, "no-such-client"):
        for token in (tenant(ACME), scoped("read_models")):
            r = world.client.get(f"/v2/jobs?client_id={client_id}", token=token)
            refusal = f"this token has no access to client '{client_id}'"
            assert assert_envelope(r, 403)["message"] == refusal  # the same for both
    assert listed(world, f"?client_id={ACME}", token=tenant(ACME)) == ["ta1", "a1"]
    assert listed(world, "?client_id=no-such-client") == []  # an admin: nothing there


def test_a_suspended_client_of_the_token_is_refused_and_its_jobs_left_out(world):
    r = world.client.put(f"/v2/clients/{BETA}", json={"status": "suspended"})
    assert r.status_code == 200, r.get_json()
    both = make_token(groups=[f"client:{ACME}", f"client:{BETA}"])
    body = assert_envelope(world.client.get(f"/v2/jobs?client_id={BETA}", token=both), 403)
    assert "suspended" in body["message"]
    assert listed(world, token=both) == expected(world, {ACME})


def test_permission_is_checked_before_the_query(world):
    token = scoped("run_inference", "read_domains", client_id=ACME)
    body = assert_envelope(world.client.get("/v2/jobs?status=bogus&page=3", token=token), 403)
    assert "read_models" in body["message"]


def test_a_callback_token_lists_nothing(app, world):
    callback = app.extensions["pie"].callback_token(world.ids["b1"])
    assert_envelope(world.client.get("/v2/jobs", token=callback), 403)
    assert_envelope(world.client.get("/v2/jobs", token=None), 401)
