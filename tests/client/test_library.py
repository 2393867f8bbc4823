"""The client library against a real `pie serve`: every resource, paging over several pages,
`wait` on an in-process job, cancel and heartbeat on a slow one."""

from __future__ import annotations

from typing import Any

import pytest
from pie_client import Client, ConflictError
from pie_client.types import Delivery, Job, Model, Webhook

from tests.client.conftest import ECHO, SLOW, active_model, unique
from tests.helpers import scoped
from tests.server import ServerProcess


def counting(api: Client) -> list[str]:
    """The paths of the requests the client sends from now on."""
    sent: list[str] = []
    request = api.transport.request

    def recorded(method: str, path: str, params: Any = None, body: Any = None) -> Any:
        sent.append(path)
        return request(method, path, params, body)

    api.transport.request = recorded  # type: ignore[method-assign]
    return sent


def test_models(api: Client) -> None:
    model_id = unique("m")
    created = api.models.create(
        id=model_id,
        name="M",
        description="d",
        handlers={"training": ECHO, "inference": ECHO},
        metadata={"team": "a"},
    )
    assert isinstance(created, Model)
    assert (created.id, created.status, created.latest_version) == (model_id, "pending", "1")
    assert api.models.get(model_id).metadata == {"team": "a"}
    updated = api.models.update(
        model_id, name="M2", description="d2", handlers={"training": ECHO, "inference": ECHO}
    )
    assert updated.name == "M2"
    policy = {"inference": {"timeout_seconds": 60}}
    changed = api.models.set_job_policy(model_id, policy)
    assert changed.job_policy is not None
    assert changed.job_policy["inference"]["timeout_seconds"] == 60
    assert model_id in {m.id for m in api.models.list()}
    api.models.delete(model_id)
    assert model_id not in {m.id for m in api.models.list()}


def test_versions(api: Client) -> None:
    model_id = active_model(api)
    made = api.versions.create(model_id, description="retrained", feature_schema=None)
    assert (made.model.id, made.version.version, made.version.status) == (model_id, "2", "pending")
    moved = api.versions.set_status(model_id, "2", "training")
    assert moved.version.status == "training" and moved.triggered_events == []
    assert [v.version for v in api.versions.list(model_id)] == ["2", "1"]
    assert api.versions.get(model_id, "2").description == "retrained"


def test_pages_are_read_lazily_and_all_of_them(api: Client) -> None:
    model_id = active_model(api)
    for n in range(5):
        api.versions.create(model_id, version=f"v{n}")
    sent = counting(api)
    pager = api.versions.list(model_id, page_size=2)
    assert sent == []  # nothing is read before the first item is asked for
    assert len(pager.first(1)) == 1 and len(sent) == 1
    versions = list(api.versions.list(model_id, page_size=2))
    assert len(versions) == 6 and len(set(v.version for v in versions)) == 6
    assert len(sent) == 1 + 3  # three pages of 2
    assert [len(page) for page in api.versions.list(model_id, page_size=4).pages()] == [4, 2]


def test_run_and_wait_on_an_in_process_job(api: Client) -> None:
    model_id = active_model(api)
    seen: list[str] = []
    job = api.jobs.run(
        model_id,
        {"text": "hello"},
        wait=True,
        timeout=30,
        on_update=lambda j: seen.append(j.status),
    )
    assert isinstance(job, Job)
    assert (job.status, job.output, job.model_version) == ("success", {"text": "hello"}, "1")
    assert seen[-1] == "success"
    started = api.jobs.infer(model_id, "1", {"n": 1})
    assert api.jobs.wait(started.inference_job_id, timeout=30).output == {"n": 1}
    assert api.jobs.get(job.job_id).job_id == job.job_id


def test_training_and_the_version_job_list(api: Client) -> None:
    model_id = active_model(api)
    api.versions.create(model_id)
    started = api.jobs.train(model_id, "2", {"epochs": 1})
    job = api.jobs.wait(started.training_job_id, timeout=30)
    assert (job.job_type, job.status) == ("training", "success")
    for n in range(3):
        api.jobs.infer(model_id, "1", {"n": n})
    listed = list(api.jobs.list_for_version(model_id, "1", job_type="inference", page_size=2))
    assert len(listed) == 3


def test_the_jobs_cursor_walks_every_page(api: Client) -> None:
    model_id = active_model(api)
    ids = [api.jobs.infer(model_id, "1", {"n": n}).inference_job_id for n in range(5)]
    sent = counting(api)
    found = [job.job_id for job in api.jobs.list(model_id=model_id, page_size=2)]
    assert found == ids[::-1]  # newest first, no repeats, none skipped
    assert len(sent) == 3
    assert len(api.jobs.list(model_id=model_id, model_version="1", page_size=2).first(3)) == 3


def test_cancel_and_heartbeat_a_running_job(api: Client) -> None:
    model_id = active_model(api, SLOW)
    job_id = api.jobs.infer(model_id, "1", {"seconds": 30}).inference_job_id
    job = api.jobs.get(job_id)
    while job.status == "pending":
        job = api.jobs.get(job_id)
    beat = api.jobs.heartbeat(model_id, "1", job_id, progress=0.5, message="half")
    assert (beat.job_id, beat.status) == (job_id, "started")
    assert api.jobs.get(job_id).progress == 0.5
    cancelled = api.jobs.cancel(job_id)
    assert cancelled.status == "failure" and cancelled.error["type"] == "Cancelled"
    with pytest.raises(ConflictError):
        api.jobs.cancel(job_id)
    with pytest.raises(ConflictError):
        api.jobs.heartbeat(model_id, "1", job_id, progress=0.9)


def test_completion_by_a_handler(api: Client) -> None:
    model_id = active_model(api, SLOW)
    job_id = api.jobs.infer(model_id, "1", {"seconds": 5}).inference_job_id
    result = api.jobs.complete(model_id, "1", job_id, status="success", output={"ok": True})
    assert (result.job_id, result.status, result.triggered_events) == (job_id, "success", [])


def test_subscriptions(api: Client) -> None:
    source, target = active_model(api), active_model(api)
    made = api.subscriptions.create(
        source,
        trigger_event="inference_complete",
        target_model_id=target,
        target_action="inference",
        input_source="stored",
        input={"x": 1},
        label="l",
    )
    assert (made.source_model_id, made.status, made.input) == (source, "active", {"x": 1})
    assert api.subscriptions.get(source, made.id).label == "l"
    assert [s.id for s in api.subscriptions.list(source)] == [made.id]
    assert api.subscriptions.update(source, made.id, status="paused").status == "paused"
    api.subscriptions.delete(source, made.id)
    assert list(api.subscriptions.list(source)) == []


def test_tenancy(api: Client, server: ServerProcess) -> None:
    model_id = active_model(api)
    client_id = unique("c")
    assert api.clients.create(client_id, "Acme").status == "active"
    assert api.clients.update(client_id, name="Acme Ltd").name == "Acme Ltd"
    assert api.clients.get(client_id).client_id == client_id
    assert client_id in {c.client_id for c in api.clients.list(page_size=1)}
    tenant = Client(
        server.url,
        scoped(
            "read_domains",
            "manage_domains",
            "init_services",
            "run_inference",
            "read_models",
            client_id=client_id,
        ),
    )
    region = {
        "name": "region",
        "json_schema": {"enum": ["eu", "us"], "default": "eu"},
        "mandatory": True,
    }
    domain = tenant.domains.create(client_id, domain_id="shops", features=[region])
    assert [f.name for f in domain.features] == ["region"]
    assert tenant.domains.update(client_id, "shops", status="active").status == "active"
    assert tenant.domains.get(client_id, "shops").domain_id == "shops"
    assert [d.domain_id for d in tenant.domains.list(client_id)] == ["shops"]
    assert [f.name for f in tenant.features.list(client_id, "shops")] == ["region"]
    report = tenant.features.replace(client_id, "shops", [region])
    assert report.unchanged_services == [] and report.features[0].mandatory is True

    made = tenant.assignments.create(
        client_id, "shops", "default", model_id=model_id, model_version="1"
    )
    assert (made.assignment_key, made.status) == ("default", "active")
    init = tenant.services.init(client_id, "shops", "shop-1", static_features={})
    assert init.service_id == "shop-1" and init.job_id
    assert tenant.jobs.wait(init.job_id, timeout=30).output == {"region": "eu"}
    service = tenant.services.get(client_id, "shops", "shop-1")
    assert service.resolved_features == {"region": "eu"}
    assert [s.service_id for s in tenant.services.list(client_id, "shops")] == ["shop-1"]
    changed = tenant.services.update(client_id, "shops", "shop-1", static_features={"region": "us"})
    assert changed.resolved_features == {"region": "us"}
    assert tenant.services.reinit_all(client_id, "shops").dispatched_services == ["shop-1"]

    again = tenant.assignments.put(
        client_id, "shops", "default", model_id=model_id, model_version="1", role="main"
    )
    assert again.role == "main"
    current = tenant.assignments.get(client_id, "shops", "default")
    assert current.assignment_id == again.assignment_id
    assert len(list(tenant.assignments.revisions(client_id, "shops", "default", page_size=1))) == 2
    assert len(list(tenant.assignments.list(client_id, "shops", include_archived=True))) == 2
    started = tenant.assignments.run_job(client_id, "shops", "default", {"text": "hi"})
    assert tenant.jobs.wait(started.job_id, timeout=30).client_id == client_id

    own = tenant.assignments.put(
        client_id, "shops", "own", model_id=model_id, model_version="1", service_id="shop-1"
    )
    assert own.service_id == "shop-1"
    assert [
        a.assignment_key for a in tenant.assignments.list(client_id, "shops", service_id="shop-1")
    ] == ["own"]
    tenant.services.delete(client_id, "shops", "shop-1")
    assert list(tenant.services.list(client_id, "shops")) == []


def test_health(api: Client) -> None:
    health = api.health()
    assert (health.status, health.database) == ("ok", "ok")


def test_webhooks(api: Client) -> None:
    made = api.webhooks.create(url="https://hooks.example.com/pie", events=["model.created"])
    assert isinstance(made, Webhook) and made.secret and made.secret.startswith("whsec_")
    assert api.webhooks.get(made.webhook_id).secret is None  # shown only when made
    assert made.webhook_id in [w.webhook_id for w in api.webhooks.list()]
    api.models.create(
        id=unique("m"), name="M", description="d", handlers={"training": ECHO, "inference": ECHO}
    )
    (delivery,) = list(api.webhooks.deliveries(made.webhook_id, event_type="model.created"))
    assert isinstance(delivery, Delivery) and delivery.payload
    assert delivery.payload["type"] == "model.created"
    rotated = api.webhooks.rotate_secret(made.webhook_id)
    assert rotated.secret and rotated.secret != made.secret
    paused = api.webhooks.update(
        made.webhook_id, url="https://hooks.example.com/pie", events=["*"], status="paused"
    )
    assert paused.status == "paused" and paused.events == ["*"]
    api.webhooks.delete(made.webhook_id)
    assert made.webhook_id not in [w.webhook_id for w in api.webhooks.list()]
