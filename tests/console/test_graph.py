"""The chain graph (a layered SVG of models and subscriptions) and a job's tree of triggered
jobs, with what each token may see."""

from __future__ import annotations

import re
from types import SimpleNamespace

from pie.console import layout
from tests.api.test_job_search import ACME, BETA
from tests.console.helpers import signed_in
from tests.helpers import ADMIN, make_token, model_body, scoped


def model(model_id, status="active"):
    return SimpleNamespace(id=model_id, name=model_id, status=status)


def sub(sub_id, source, target, status="active"):
    return SimpleNamespace(id=sub_id, source_model_id=source, target_model_id=target, status=status)


def test_layers_follow_the_chain_and_survive_cycles():
    links = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "a"), ("d", "d")]
    assert layout.layers(["a", "b", "c", "d"], links) == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_the_drawing_places_each_model_once_and_routes_every_link():
    models = [model(m) for m in ("a", "b", "c", "lonely")]
    subs = [sub("1", "a", "b"), sub("2", "a", "b", "stale"), sub("3", "b", "a"), sub("4", "c", "c")]
    subs.append(sub("5", "a", "gone"))
    drawing = layout.draw(models, subs)
    spots = {(n.x, n.y) for n in drawing.nodes}
    assert len(spots) == 4  # no two models on one spot
    by_id = {n.id: n for n in drawing.nodes}
    assert by_id["b"].x > by_id["a"].x
    assert [e.sub.id for e in drawing.edges] == ["1", "2", "3", "4"]
    assert all(e.path.startswith("M") for e in drawing.edges)
    assert drawing.edges[0].path != drawing.edges[1].path  # two links of one pair apart
    assert drawing.incomplete == ["5"]
    assert drawing.width >= max(n.x for n in drawing.nodes) + layout.NODE_W


def test_the_graph_page_draws_models_and_subscriptions(world, statements):
    client = world.client
    client.post("/v2/models", json=model_body("m3"))
    stale = {
        "trigger_event": "training_complete",
        "target_model_id": "m3",
        "target_action": "training",
        "input_source": "stored",
        "input": {},
    }
    paused = client.post("/v2/models/m2/event-subscriptions", json=stale).get_json()
    client.put(f"/v2/models/m2/event-subscriptions/{paused['id']}", json={"status": "paused"})
    console = signed_in(client.raw.application, scoped("read_models"))
    statements.clear()
    page = console.text("/ui/graph?model=m2")
    assert len(statements) == 2  # the models, the subscriptions
    assert "<svg" in page and page.count('class="node') == 3
    assert 'class="edge active"' in page and 'class="edge paused"' in page
    assert f'href="/ui/models/m1#sub-{world.subscription}"' in page
    assert "inference_complete →</tspan>" in page and "inference · trigger_output</tspan>" in page
    assert 'class="node active focus"' in page


def test_a_tenant_sees_global_links_and_its_own_only(world):
    client = world.client
    own = {
        "trigger_event": "inference_complete",
        "target_model_id": "m1",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    beta = make_token(client_id=BETA, scope="streamline/read_models streamline/manage_models")
    r = client.post("/v2/models/m2/event-subscriptions", json=own, token=beta)
    assert r.status_code == 201, r.get_json()
    beta_sub = r.get_json()["id"]
    acme = signed_in(
        client.raw.application, make_token(client_id=ACME, scope="streamline/read_models")
    )
    page = acme.text("/ui/graph")
    assert world.subscription in page and beta_sub not in page
    assert beta_sub in signed_in(client.raw.application, ADMIN).text("/ui/graph")


def test_the_job_tree(world, statements):
    console = signed_in(world.client.raw.application, ADMIN)
    statements.clear()
    page = console.text(f"/ui/jobs/{world.ids['d1']}/tree")
    assert len(statements) == 3  # the job, its children, their (no) children
    assert world.ids["t1"] in page and world.ids["d2"] not in page
    assert re.search(r"1 job started", page)


def test_the_graph_page_finds_a_jobs_tree(world):
    console = signed_in(world.client.raw.application, ADMIN)
    assert 'action="/ui/graph/tree"' in console.text("/ui/graph")
    response = console.get(f"/ui/graph/tree?job_id=+{world.ids['d1']}+")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/ui/jobs/{world.ids['d1']}/tree"
    assert console.get("/ui/graph/tree?job_id=").status_code == 400


def test_a_tenant_cannot_see_another_tenants_tree(world):
    app_ = world.client.raw.application
    acme = signed_in(app_, make_token(client_id=ACME, scope="streamline/read_models"))
    assert world.ids["ta1"] in acme.text(f"/ui/jobs/{world.ids['a1']}/tree")
    assert acme.get(f"/ui/jobs/{world.ids['b1']}/tree").status_code == 403
    assert acme.get("/ui/jobs/0190d5e2-0000-7000-8000-000000000000/tree").status_code == 404
