"""Two tenants on shared models, tenant A seeded richly and distinctively: for the tests that
walk the tenant boundary (tests/api/test_tenant_boundary.py) and fuzz as a tenant
(tests/test_fuzz.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma

from pie import HandlerType, hookimpl
from pie.db import connection
from pie.scopes import PERMISSIONS
from pie.tables import Job
from tests.helpers import Client, activate, make_token, model_body, scoped, wait_for

# Every name and value tenant A chose holds this, so a leak of A's data is easy to spot; no
# other tenant's data and no global name (models) does.
MARK = "qz7"
A, B = f"acme-{MARK}", "beta"
SHOPS, VAULT = f"shops-{MARK}", f"vault-{MARK}"
SHOP1, SHOP2 = f"shop-{MARK}-1", f"shop-{MARK}-2"
PRICING = f"pricing-{MARK}"
SHARED, CHAIN, PARKED = "m-shared", "m-chain", "m-parked"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
FEATURES = [
    {
        "name": f"loyalty_{MARK}",
        "json_schema": {"type": "string", "default": f"bronze-{MARK}"},
        "mandatory": True,
    },
    {
        "name": "region",
        "json_schema": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
        "mandatory": True,
    },
]
# Keys whose values are server-assigned ids (in A's tenant records).
ID_KEYS = ("job_id", "assignment_id", "client_uuid")


def machine(client_id: str) -> str:
    """A machine token of one tenant with every scope but admin."""
    return scoped(*sorted(PERMISSIONS - {"admin"}), client_id=client_id)


def human(client_id: str) -> str:
    return make_token(groups=[f"client:{client_id}"])


class Parked:
    """A plugin with handler type `parked`: dispatch only records the payload (as a Lambda
    invoke would), so the job stays `started` until someone calls its callback."""

    name = "parked-plugin"

    def __init__(self) -> None:
        self.payloads: dict[str, dict[str, Any]] = {}

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
        payloads = self.payloads

        class ParkedType(HandlerType):
            name = "parked"
            schema = ma.Schema

            def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
                payloads[job.job_id] = payload
                return f"parked-{job.job_id}"

        return [ParkedType]


def everything(operation: dict[str, Any]) -> str:
    """A query string asking a list operation for all it has."""
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    query = [q for q in ("page_size=1000", "include_archived=true") if q.split("=")[0] in names]
    return "?" + "&".join(query) if query else ""


def path_parameters(path: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\{(\w+)\}", path))


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) for every operation of an OpenAPI document."""
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def strings_with_mark(value: Any) -> set[str]:
    """Every string and object key in parsed JSON that holds MARK."""
    found, stack = set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if MARK in item:
                found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def ids_in(value: Any) -> set[str]:
    """Every server-assigned id (ID_KEYS) in parsed JSON."""
    found, stack = set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(str(item[k]) for k in ID_KEYS if isinstance(item.get(k), str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@dataclass
class World:
    """Tenants A and B on shared models; `bindings` are A's real ids for path parameters."""

    client: Client
    parked: Parked
    spec: dict[str, Any] = field(default_factory=dict)
    bindings: list[dict[str, str]] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)
    a_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    a_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_job: str = ""  # A's job that is still `started` (its backend has not called back)
    b_open_job: str = ""  # and one of B's
    global_open_job: str = ""  # and an operator's, of no client (every tenant relies on it)
    pristine: dict[str, Any] = field(default_factory=dict)  # the snapshot once seeded
    dirty: bool = False  # a test changed something: the next test needs a new world

    def callback_token(self, job_id: str) -> str:
        """The callback token the backend of a parked job was sent."""
        return self.parked.payloads[job_id]["callback"]["token"]

    # --- reading ---------------------------------------------------------------------------

    def all_jobs(self) -> list[dict[str, Any]]:
        """Every job of every version of every model, as admin sees them."""
        found = []
        for model in self.client.get("/v2/models?page_size=1000").get_json():
            versions = self.client.get(f"/v2/models/{model['id']}/versions?page_size=1000")
            for version in versions.get_json():
                url = f"/v2/models/{model['id']}/versions/{version['version']}/jobs"
                found.extend(self.client.get(f"{url}?page_size=1000").get_json())
        return found

    def all_subscriptions(self) -> list[dict[str, Any]]:
        found = []
        for model in self.client.get("/v2/models?page_size=1000").get_json():
            url = f"/v2/models/{model['id']}/event-subscriptions?page_size=1000"
            found.extend(self.client.get(url).get_json())
        return found

    def settle(self) -> None:
        """Wait until no job is pending or running in process (parked jobs stay started)."""

        def quiet() -> bool:
            with connection():
                busy = Job.select().where(
                    Job.status.in_(("pending", "started")) & (Job.handler_type != "parked")
                )
                return not busy.exists()

        wait_for(quiet, timeout=20)

    def tenant_reads(self) -> dict[str, Any]:
        """Admin's answers to every GET under /v2/clients/{client_id}, for A's ids (whole
        lists, archived revisions included)."""
        seen = {}
        for method, path, operation in operations(self.spec):
            if method == "get" and "{client_id}" in path:
                for ids in self.bindings_for(path):
                    url = fill(path, ids) + everything(operation)
                    seen[url] = call(self.client, "GET", url)
        return seen

    def snapshot(self) -> dict[str, Any]:
        """What A owns, as admin sees it: every tenant read, A's jobs (read one by one, so a
        job whose model was deleted still counts) and subscriptions (also those made through
        A but today stored outside A's tenant), and every job run in A's tenant context — so
        a change, or a job started in A's name, shows."""
        self.settle()
        listed = {j["job_id"] for j in self.all_jobs() if self.is_a_job(j)}
        return {
            "tenant": self.tenant_reads(),
            "jobs": {
                job_id: call(self.client, "GET", f"/v2/jobs/{job_id}")
                for job_id in sorted(listed | set(self.a_jobs))
            },
            "subscriptions": {
                s["id"]: s
                for s in self.all_subscriptions()
                if s.get("client_id") == A or strings_with_mark(s.get("input"))
            },
            "webhooks": {hook["webhook_id"]: hook for hook in self.a_webhooks()},
            # What every tenant relies on and no tenant may change for the others.
            "global": {
                self.global_open_job: call(self.client, "GET", f"/v2/jobs/{self.global_open_job}")
            },
        }

    def after_a_works(self, value: str) -> list[str]:
        """A goes on working — an inference through its `default` key, then a retrain of
        the shared model through it, which an operator activates — and the ids of the jobs
        in A's name that now hold `value` (in input or output). What fails (B may have
        changed the shared models) is skipped: only what runs matters here."""
        token = machine(A)
        key = f"/v2/clients/{A}/domains/{SHOPS}/assignments/default/jobs"
        self.client.post(key, json={"input": {"note": f"input-{MARK}-later"}}, token=token)
        self.settle()
        r = self.client.post(key, json={"input": {}, "job_type": "training"}, token=token)
        if r.status_code == 202:
            job = wait_for(lambda: job_if_ended(self.client, r.get_json()["job_id"]))
            url = f"/v2/models/{job['model_id']}/versions/{job['model_version']}/new_status"
            self.client.post(url, json={"status": "active"})
        self.settle()
        return [
            job["job_id"]
            for job in self.all_jobs()
            if job["client_id"] == A and value in json.dumps([job["input"], job["output"]])
        ]

    def a_webhooks(self) -> list[dict[str, Any]]:
        hooks = call(self.client, "GET", "/v2/webhooks?page_size=1000")
        return [hook for hook in hooks if hook["client_id"] == A]

    @staticmethod
    def is_a_job(job: dict[str, Any]) -> bool:
        """A's job: run in A's tenant context, or carrying A's data (a replay of A's input)."""
        return job["client_id"] == A or bool(strings_with_mark([job["input"], job["output"]]))

    def bindings_for(self, path: str) -> list[dict[str, str]]:
        """Every distinct assignment of A's real ids to the path's parameters."""
        wanted = path_parameters(path)
        seen: list[dict[str, str]] = []
        for binding in self.bindings:
            if set(wanted) <= set(binding):
                ids = {name: binding[name] for name in wanted}
                if ids not in seen:
                    seen.append(ids)
        return seen

    def leaked(self, response: Any, sent: str) -> list[str]:
        """A's markers in a response (body and headers) that the caller did not send itself."""
        text = response.get_data(as_text=True) + json.dumps(dict(response.headers))
        return sorted(m for m in self.markers if m in text and m not in sent)


def job_if_ended(client: Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    return job if job["status"] in ("success", "failure") else None


def build_world(app: Any, parked: Parked) -> World:
    """Seed tenant A (and B beside it) through the API; see the module docstring."""
    client = Client(app.test_client())
    world = World(client=client, parked=parked, spec=client.get("/openapi.json").get_json())
    seed_models(client)
    seed_tenant(client, A)
    seed_tenant(client, B)
    seed_a(world)
    seed_retrains(world)
    world.settle()
    collect(world)
    return world


def call(client: Client, method: str, url: str, body: Any = None, **kw: Any) -> Any:
    """One request that must succeed; its JSON."""
    r = client.request(method, url, json=body, **kw)
    assert r.status_code < 300, (method, url, r.status_code, r.get_data(as_text=True))
    return r.get_json() if r.status_code != 204 else None


def seed_models(client: Client) -> None:
    """m-shared and m-chain run `echo`; m-parked's jobs wait for their callback."""
    parked = {"type": "parked"}
    call(client, "POST", "/v2/models", model_body(SHARED))
    call(client, "POST", "/v2/models", model_body(CHAIN))
    handlers = {"training": parked, "inference": parked}
    call(client, "POST", "/v2/models", model_body(PARKED, handlers=handlers))
    for model_id in (SHARED, CHAIN, PARKED):
        activate(client, model_id)
    # A global subscription: whatever m-shared infers flows on to m-chain.
    chain = {
        "trigger_event": "inference_complete",
        "target_model_id": CHAIN,
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    call(client, "POST", f"/v2/models/{SHARED}/event-subscriptions", chain)


def seed_tenant(client: Client, client_id: str) -> None:
    """A client with an active domain whose `default` key points at m-shared v1."""
    domain = SHOPS if client_id == A else "d-beta"
    name = f"Acme {MARK} Holdings" if client_id == A else "Beta"
    call(client, "POST", "/v2/clients", {"client_id": client_id, "name": name})
    features = FEATURES if client_id == A else []
    body = {"domain_id": domain, "features": features}
    call(client, "POST", f"/v2/clients/{client_id}/domains", body)
    url = f"/v2/clients/{client_id}/domains/{domain}/assignments/default"
    call(client, "PUT", url, {"model_id": SHARED, "model_version": "1"})


def seed_a(world: World) -> None:
    """A's domains, services, assignments (with history), subscriptions and jobs, through
    A's own token: jobs run, called back with an output, still open, subscribed, and a
    training."""
    token = machine(A)

    def a(method: str, url: str, body: Any = None) -> Any:
        return call(world.client, method, url, body, token=token)

    domain = f"/v2/clients/{A}/domains/{SHOPS}"
    service = f"{domain}/service/{SHOP1}"
    # A's webhook endpoint, first: every event of A's below is in its delivery log (no
    # deliverer runs here, so they stay pending).
    hook = {"url": f"https://hooks-{MARK}.example.com/a", "events": ["*"], "description": MARK}
    a("POST", "/v2/webhooks", hook)
    call(
        world.client, "POST", f"/v2/clients/{A}/domains", {"domain_id": VAULT, "status": "inactive"}
    )
    revision = {
        "model_id": SHARED,
        "model_version": "1",
        "role": f"role-{MARK}",
        "settings": {"tier": f"settings-{MARK}"},
        "metadata": {"owner": f"metadata-{MARK}"},
    }
    parked = {"model_id": PARKED, "model_version": "1"}
    a("PUT", f"{domain}/assignments/default", revision)  # archives the first revision
    a("POST", f"{domain}/assignments", {"assignment_key": PRICING, **parked})
    features = {f"loyalty_{MARK}": f"gold-{MARK}"}
    init = a("POST", f"{domain}/service/init", {"service_id": SHOP1, "static_features": features})
    assert "job_id" in init, init
    a("POST", f"{domain}/service/init", {"service_id": SHOP2})
    a("PUT", f"{service}/assignments/default", revision)
    a("PUT", f"{service}/assignments/{PRICING}", parked)

    def run(key: str, note: str, **extra: Any) -> str:
        body = {"input": {"note": f"input-{MARK}-{note}"}, **extra}
        return a("POST", f"{key}/jobs", body)["job_id"]

    run(f"{domain}/assignments/default", "subscribed", subscribe=True)
    # A's own subscription passing the output of m-shared's inferences on (to m-parked, which
    # no one can delete while A's pricing key points at it).
    chain = {
        "trigger_event": "inference_complete",
        "target_model_id": PARKED,
        "target_action": "inference",
        "input_source": "trigger_output",
        "label": f"label-{MARK}",
    }
    a("POST", f"/v2/models/{SHARED}/event-subscriptions", chain)
    run(f"{service}/assignments/default", "service")
    world.open_job = run(f"{domain}/assignments/{PRICING}", "open")
    done = run(f"{service}/assignments/{PRICING}", "called-back")
    # A's backend calls back with its own callback token and an output of its own.
    callback = wait_for(lambda: world.parked.payloads.get(done))["callback"]
    output = {"status": "success", "output": {"answer": f"output-{MARK}-callback"}}
    url = callback["url"].removeprefix("http://pie.test")
    call(world.client, "POST", url, output, token=callback["token"])
    wait_for(lambda: world.parked.payloads.get(world.open_job))
    run(f"{service}/assignments/default", "training", job_type="training")


def seed_retrains(world: World) -> None:
    """B retrains m-shared through B's own assignment and starts a job that stays open; an
    operator activates B's new version, which replays A's subscribed input (`subscribe:
    true`). The version A trained stays `training`, awaiting activation."""
    world.settle()
    body = {"input": {"note": "beta-training"}, "job_type": "training"}
    domain = f"/v2/clients/{B}/domains/d-beta"
    trained = call(
        world.client, "POST", f"{domain}/assignments/default/jobs", body, token=machine(B)
    )
    # B has an open job too, so tests hold a callback token of another tenant's job.
    key = {"assignment_key": "parked", "model_id": PARKED, "model_version": "1"}
    call(world.client, "POST", f"{domain}/assignments", key, token=machine(B))
    url = f"{domain}/assignments/parked/jobs"
    job = call(world.client, "POST", url, {"input": {"note": "beta"}}, token=machine(B))
    world.b_open_job = job["job_id"]
    wait_for(lambda: world.parked.payloads.get(world.b_open_job))
    # An operator's job on the direct route (of no client), still open.
    operator = scoped("run_inference", "read_models")
    url = f"/v2/models/{PARKED}/versions/1/inference"
    job = call(world.client, "POST", url, {"input": {"note": "operator's"}}, token=operator)
    world.global_open_job = job["inference_job_id"]
    wait_for(lambda: world.parked.payloads.get(world.global_open_job))
    world.settle()
    version = call(world.client, "GET", f"/v2/jobs/{trained['job_id']}")["model_version"]
    url = f"/v2/models/{SHARED}/versions/{version}/new_status"
    call(world.client, "POST", url, {"status": "active"})


def collect(world: World) -> None:
    """A's path-parameter bindings, jobs, subscriptions and markers, as admin sees them."""
    world.bindings = discover_tenant(world.client)
    snapshot = world.snapshot()
    world.a_jobs = snapshot["jobs"]
    world.a_subscriptions = snapshot["subscriptions"]
    for job in world.a_jobs.values():
        version = {"model_id": job["model_id"], "model_version": job["model_version"]}
        world.bindings.append({**version, "job_id": job["job_id"]})
    for sub in world.a_subscriptions.values():
        world.bindings.append({"model_id": sub["source_model_id"], "subscription_id": sub["id"]})
    delivery_ids = set()
    for webhook_id in snapshot["webhooks"]:
        world.bindings.append({"webhook_id": webhook_id})
        url = f"/v2/webhooks/{webhook_id}/deliveries?page_size=1000"
        for delivery in call(world.client, "GET", url):
            world.bindings.append(
                {"webhook_id": webhook_id, "delivery_id": delivery["delivery_id"]}
            )
            delivery_ids.add(delivery["delivery_id"])
    global_job = {"model_id": PARKED, "model_version": "1", "job_id": world.global_open_job}
    world.bindings.append(global_job)
    # Server-assigned ids from A's own records only: a job's trigger names a global
    # subscription and possibly another tenant's parent job, which are not A's.
    world.markers = strings_with_mark(snapshot) | ids_in(snapshot["tenant"])
    world.markers |= set(world.a_jobs) | set(world.a_subscriptions) | set(snapshot["webhooks"])
    world.markers |= delivery_ids
    assert all(MARK in m or len(m) >= 32 for m in world.markers), world.markers


def discover_tenant(client: Client) -> list[dict[str, str]]:
    """A's client, domains, services and assignment keys, read as admin."""
    found = [{"client_id": A}]
    base = f"/v2/clients/{A}/domains"
    for domain in call(client, "GET", f"{base}?page_size=1000"):
        scope = {"client_id": A, "domain_id": domain["domain_id"]}
        found.append(scope)
        services = call(client, "GET", f"{base}/{domain['domain_id']}/services?page_size=1000")
        scopes = [scope] + [{**scope, "service_id": s["service_id"]} for s in services]
        found.extend(scopes[1:])
        for ids in scopes:
            url = fill("/v2/clients/{client_id}/domains/{domain_id}", ids)
            if "service_id" in ids:
                url += f"/service/{ids['service_id']}"
            revisions = call(client, "GET", f"{url}/assignments?include_archived=true")
            keys = sorted({r["assignment_key"] for r in revisions})
            found.extend({**ids, "assignment_key": key} for key in keys)
    return found


def served_spec() -> dict[str, Any]:
    """The /openapi.json an app serves (built on a throwaway database): for tests that are
    parametrized by operation, at collection time."""
    import tempfile

    from pie import create_app
    from pie import db as pie_db
    from tests.helpers import SECRET

    with tempfile.TemporaryDirectory(prefix="pie-spec-") as folder:
        app = create_app(
            {
                "TESTING": True,
                "PIE_DATABASE_URL": f"sqlite:///{folder}/pie.sqlite",
                "PIE_AUTO_MIGRATE": False,
                "PIE_JWT_SECRET": SECRET,
                "PIE_INSTANCE_PATH": folder,
                "PIE_LOAD_ENTRY_POINTS": False,
                "PIE_EMBEDDED_WORKER": False,
            },
            plugins=[Parked()],
        )
        try:
            return app.test_client().get("/openapi.json").get_json()
        finally:
            app.extensions["pie"].close()
            pie_db.close_all()
