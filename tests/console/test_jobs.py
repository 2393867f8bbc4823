"""The jobs pages: GET /v2/jobs's filters as a form, the live rows, a job's page, and cancel
with the API's checks."""

from __future__ import annotations

import re

from tests.api.test_job_search import ACME, BETA
from tests.console.helpers import signed_in
from tests.helpers import ADMIN, make_token, scoped


def listed(page: str) -> list[str]:
    return re.findall(r'<a href="/ui/jobs/[^"]+"><code>([^<]+)</code>', page)


def acme(world, scope="streamline/read_models"):
    return signed_in(world.client.raw.application, make_token(client_id=ACME, scope=scope))


def test_the_list_filters_as_get_v2_jobs_does(world, statements):
    token = scoped("read_models")
    console = signed_in(world.client.raw.application, token)
    statements.clear()
    page = console.text("/ui/jobs?status=success&model_id=m1&parent_job_id=&job_type=")
    assert len(statements) == 1
    api = world.client.get("/v2/jobs?status=success&model_id=m1", token=token).get_json()
    assert api and all(job["job_id"] in page for job in api)
    assert world.ids["a1"] not in page  # acme's: not this token's
    assert world.ids["d2"] not in page  # a failure
    children = console.text(f"/ui/jobs?parent_job_id={world.ids['d1']}")
    assert listed(children) == [world.ids["t1"]]


def test_bad_filters_are_a_400_page(world):
    console = signed_in(world.client.raw.application, ADMIN)
    response = console.get("/ui/jobs?status=nope")
    assert response.status_code == 400 and "status" in response.get_data(as_text=True)
    assert console.get("/ui/jobs?model_version=1").status_code == 400


def test_the_rows_poll_with_the_same_filters(world):
    console = signed_in(world.client.raw.application, ADMIN)
    page = console.text("/ui/jobs?job_type=training")
    assert 'hx-get="/ui/jobs/rows?job_type=training"' in page
    rows = console.text("/ui/jobs/rows?job_type=training")
    assert rows.lstrip().startswith('<tbody id="job-rows"')
    assert listed(rows) == [world.ids["tr"]]


def test_paging_by_cursor(world):
    console = signed_in(world.client.raw.application, ADMIN)
    from pie.console import jobs as console_jobs

    size, console_jobs.PAGE_SIZE = console_jobs.PAGE_SIZE, 3
    try:
        first = console.text("/ui/jobs?model_id=m1")
        assert 'rel="next"' in first
        after = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        assert "model_id=m1" in after
        second = console.text(after)
        assert "<code>" in second
    finally:
        console_jobs.PAGE_SIZE = size


def test_a_tenant_sees_its_own_and_global_jobs_only(world):
    console = acme(world)
    page = listed(console.text("/ui/jobs"))
    assert world.ids["a1"] in page and world.ids["d1"] in page
    assert world.ids["b1"] not in page
    assert console.get(f"/ui/jobs?client_id={BETA}").status_code == 403
    assert console.get(f"/ui/jobs/{world.ids['b1']}").status_code == 403
    assert console.get(f"/ui/jobs/{world.ids['b1']}/live").status_code == 403


def test_the_job_page(world, statements):
    console = signed_in(world.client.raw.application, scoped("read_models"))
    statements.clear()
    page = console.text(f"/ui/jobs/{world.ids['t1']}")
    assert len(statements) == 1
    assert world.ids["d1"] in page  # started by
    assert "Timeline" in page and "created" in page and "dispatched to <code>parked</code>" in page
    assert "Cancel this job" not in page  # read_models only
    done = console.text(f"/ui/jobs/{world.ids['d2']}")
    assert "status-failure" in done and "hx-trigger" not in done.split('id="job-live"')[1][:300]
    assert console.get("/ui/jobs/0190d5e2-0000-7000-8000-000000000000").status_code == 404


def test_cancel_with_the_apis_checks(world):
    app_ = world.client.raw.application
    job_id = world.ids["t1"]  # started, parked: a job of no client
    tenant = acme(world, "streamline/read_models streamline/run_inference")
    assert "Cancel this job" not in tenant.text(f"/ui/jobs/{job_id}")  # global: not a tenant's
    assert tenant.post(f"/ui/jobs/{job_id}/cancel").status_code == 403
    reader = signed_in(app_, scoped("read_models"))
    assert reader.post(f"/ui/jobs/{job_id}/cancel").status_code == 403
    operator = signed_in(app_, scoped("read_models", "run_inference"))
    assert "Cancel this job" in operator.text(f"/ui/jobs/{job_id}")
    response = operator.post(f"/ui/jobs/{job_id}/cancel")
    assert response.status_code == 303 and response.headers["Location"] == f"/ui/jobs/{job_id}"
    job = world.client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "Cancelled"
    assert operator.post(f"/ui/jobs/{job_id}/cancel").status_code == 409
    assert "Cancel this job" not in operator.text(f"/ui/jobs/{job_id}")


def test_a_tenant_cancels_its_own_job(world):
    job_id = world.ids["ta1"]
    tenant = acme(world, "streamline/read_models streamline/run_inference")
    assert world.client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "started"
    assert "Cancel this job" in tenant.text(f"/ui/jobs/{job_id}")
    assert tenant.post(f"/ui/jobs/{job_id}/cancel").status_code == 303
    assert world.client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "failure"
