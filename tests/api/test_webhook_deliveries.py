"""Webhook delivery against real receivers on loopback, every request verified with the
`standardwebhooks` library: retries on the schedule and on Retry-After with one webhook-id
across attempts, 410 and a long failing streak disable the endpoint, the delivery log and
its filters, redelivery, the test event, secret rotation, one slow endpoint not holding up
another, and the metrics."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from pie.db import connection
from pie.tables import WebhookDelivery
from tests.helpers import assert_envelope, model_body, wait_for
from tests.plugins.test_http_handler import ok, receiver  # noqa: F401  (the fixture)
from tests.webhooks import (
    add_endpoint,
    answer,
    deliver,
    deliver_all,
    deliveries,
    hook_app,
    verified,
)


def make_event(client, model_id="m"):
    assert client.post("/v2/models", json=model_body(model_id)).status_code == 201


def seconds_until(timestamp: str) -> float:
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (when - datetime.now(UTC)).total_seconds()


def test_a_failed_attempt_is_retried_with_the_same_webhook_id(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    answers = iter([500, 502])
    recv = receiver(lambda r: answer(next(answers, 200))(r))
    hook = add_endpoint(client, recv.url)
    make_event(client)
    assert deliver(app) == 1
    (pending,) = deliveries(client, hook["webhook_id"])
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert pending["response_status"] == 500 and "500" in pending["error"]
    assert 0 < seconds_until(pending["next_attempt_at"]) <= 0.25  # the schedule's 0.2 s ± 10%
    time.sleep(0.25)
    deliver(app)
    time.sleep(0.25)
    deliver(app)
    (done,) = deliveries(client, hook["webhook_id"])
    assert done["status"] == "delivered" and done["attempts"] == 3
    assert [a["response_status"] for a in done["history"]] == [500, 502, 200]
    assert done["next_attempt_at"] is None and done["delivered_at"]
    assert all(a["latency_ms"] >= 0 for a in done["history"])
    events = verified(recv.received, hook["secret"])
    assert len(events) == 3 and len({e["type"] for e in events}) == 1
    assert {item.headers["webhook-id"] for item in recv.received} == {done["delivery_id"]}


def test_retry_after_replaces_the_schedule(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    answers = iter([(429, {"Retry-After": "2"})])
    recv = receiver(lambda r: answer(*next(answers, (200, {})))(r))
    hook = add_endpoint(client, recv.url)
    make_event(client)
    deliver(app)
    (pending,) = deliveries(client, hook["webhook_id"])
    assert 1.5 < seconds_until(pending["next_attempt_at"]) <= 2.0  # not the schedule's 0.2
    time.sleep(0.3)
    assert deliver(app) == 0  # not yet due
    time.sleep(max(0.0, seconds_until(pending["next_attempt_at"])) + 0.05)
    assert deliver(app) == 1
    assert deliveries(client, hook["webhook_id"])[0]["status"] == "delivered"
    verified(recv.received, hook["secret"])


def test_a_spent_schedule_fails_the_delivery(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app, PIE_WEBHOOK_RETRY_SCHEDULE=[0.0, 0.0])
    recv = receiver(answer(503))
    hook = add_endpoint(client, recv.url)
    make_event(client)
    deliver_all(app)
    (failed,) = deliveries(client, hook["webhook_id"])
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert len(recv.received) == 2
    assert client.get(f"/v2/webhooks/{hook['webhook_id']}").get_json()["status"] == "active"


def test_410_disables_the_endpoint(make_app, receiver, caplog):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(answer(410))
    hook = add_endpoint(client, recv.url)
    make_event(client, "m1")
    make_event(client, "m2")
    with caplog.at_level("WARNING"):
        deliver_all(app)
    endpoint = client.get(f"/v2/webhooks/{hook['webhook_id']}").get_json()
    assert endpoint["status"] == "disabled" and "410" in endpoint["disabled_reason"]
    assert any("webhook.disabled" in r.getMessage() for r in caplog.records)
    found = {d["status"] for d in deliveries(client, hook["webhook_id"])}
    assert "failed" in found and len(recv.received) <= 2  # at most the two in flight
    make_event(client, "m3")  # a disabled endpoint gets no new events
    assert len(deliveries(client, hook["webhook_id"])) == 2
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pie_webhooks_disabled_total{reason="the endpoint answered 410 Gone"}' in metrics


def test_an_endpoint_failing_past_the_period_is_disabled(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app, PIE_WEBHOOK_DISABLE_AFTER_SECONDS=0.5)
    recv = receiver(answer(500))
    hook = add_endpoint(client, recv.url)
    make_event(client)
    deliver(app)
    assert client.get(f"/v2/webhooks/{hook['webhook_id']}").get_json()["status"] == "active"
    time.sleep(0.6)
    deliver(app)
    endpoint = client.get(f"/v2/webhooks/{hook['webhook_id']}").get_json()
    assert endpoint["status"] == "disabled" and "failed for" in endpoint["disabled_reason"]
    # Re-enabled by a caller: its streak starts over and the pending delivery goes out.
    recv.answer = ok
    body = {"url": recv.url, "events": ["*"], "status": "active"}
    assert client.put(f"/v2/webhooks/{hook['webhook_id']}", json=body).status_code == 200
    time.sleep(0.25)
    deliver_all(app)
    assert deliveries(client, hook["webhook_id"])[0]["status"] == "delivered"


def test_the_delivery_log_filters_and_redelivery(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app, PIE_WEBHOOK_RETRY_SCHEDULE=[0.0])
    failing = {"on": True}
    recv = receiver(lambda r: answer(500 if failing["on"] else 200)(r))
    hook = add_endpoint(client, recv.url, ["model.created", "model.deleted"])
    make_event(client)
    deliver_all(app)
    failing["on"] = False
    assert client.delete("/v2/models/m").status_code == 204
    deliver_all(app)
    webhook_id = hook["webhook_id"]
    assert [d["event_type"] for d in deliveries(client, webhook_id)] == [
        "model.deleted",
        "model.created",
    ]
    (failed,) = deliveries(client, webhook_id, "?status=failed")
    assert failed["event_type"] == "model.created"
    assert [d["status"] for d in deliveries(client, webhook_id, "?event_type=model.deleted")] == [
        "delivered"
    ]
    assert_envelope(client.get(f"/v2/webhooks/{webhook_id}/deliveries?status=lost"), 400)
    one = client.get(f"/v2/webhooks/{webhook_id}/deliveries/{failed['delivery_id']}").get_json()
    assert one["payload"]["type"] == "model.created" and one["payload"]["data"]["id"] == "m"

    r = client.post(f"/v2/webhooks/{webhook_id}/deliveries/{failed['delivery_id']}/redeliver")
    assert r.status_code == 202 and r.get_json()["status"] == "pending"
    deliver_all(app)
    again = client.get(f"/v2/webhooks/{webhook_id}/deliveries/{failed['delivery_id']}").get_json()
    assert again["status"] == "delivered"
    assert [a["response_status"] for a in again["history"]] == [500, 200]
    sent = [i for i in recv.received if i.headers["webhook-id"] == failed["delivery_id"]]
    assert len(sent) == 2 and sent[0].body == sent[1].body  # the same event, the same id
    verified(sent, hook["secret"])
    missing = f"/v2/webhooks/{webhook_id}/deliveries/01a00000-0000-7000-8000-000000000000"
    assert_envelope(client.post(f"{missing}/redeliver"), 404)


def test_the_test_event_answers_with_the_attempts_outcome(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url, ["job.failed"])  # a test goes whatever the filter
    r = client.post(f"/v2/webhooks/{hook['webhook_id']}/test")
    assert r.status_code == 200
    result = r.get_json()
    assert result["status"] == "delivered" and result["response_status"] == 202
    assert result["event_type"] == "webhook.test" and result["attempts"] == 1
    (event,) = verified(recv.received, hook["secret"])
    assert event["type"] == "webhook.test"
    assert event["data"]["webhook_id"] == hook["webhook_id"]
    recv.answer = answer(500)
    failed = client.post(f"/v2/webhooks/{hook['webhook_id']}/test").get_json()
    assert failed["status"] == "pending" and failed["response_status"] == 500
    assert failed["next_attempt_at"] is not None


def test_rotation_signs_with_both_secrets_for_a_while(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url)
    rotated = client.post(f"/v2/webhooks/{hook['webhook_id']}/rotate-secret").get_json()
    make_event(client)
    deliver_all(app)
    (item,) = recv.received
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    verified([item], rotated["secret"])  # a receiver that has the new secret
    verified([item], hook["secret"])  # and one that still has the old


def test_a_slow_endpoint_does_not_hold_up_another(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app, PIE_WEBHOOK_WORKERS=2, PIE_WEBHOOK_ENDPOINT_CONCURRENCY=1)
    release = threading.Event()

    def slow(received):
        release.wait(10)
        return 200, {}, b""

    slow_recv, fast_recv = receiver(slow), receiver(ok)
    add_endpoint(client, slow_recv.url)
    fast = add_endpoint(client, fast_recv.url)
    for n in range(4):
        make_event(client, f"m{n}")
    deliverer = app.extensions["pie"].deliverer
    deliverer.start()  # the background loop, as in `pie serve`
    try:
        # The fast endpoint gets all four while the slow one's first request hangs: that
        # endpoint holds one request, not the pool.
        wait_for(lambda: len(fast_recv.received) == 4)
        # A delivery is recorded once its answer is back, just after the receiver saw it.
        wait_for(
            lambda: {d["status"] for d in deliveries(client, fast["webhook_id"])} == {"delivered"}
        )
        assert len(slow_recv.received) == 1
    finally:
        release.set()


def test_metrics_count_outcomes_and_the_queue(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(answer(500))
    add_endpoint(client, recv.url)
    make_event(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert "pie_webhook_queue_depth 1.0" in text
    assert "pie_webhook_oldest_pending_age_seconds" in text
    deliver(app)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'pie_webhook_deliveries_total{outcome="retry"}' in text
    with connection():
        WebhookDelivery.update(status="delivered").execute()
    assert "pie_webhook_queue_depth 0.0" in client.get("/metrics").get_data(as_text=True)


def test_an_unreadable_retry_after_counts_as_absent(make_app, receiver):  # noqa: F811
    """'²' is a digit to str.isdigit but not to float(): it raised inside the deliverer, the
    delivery was never recorded and was sent again forever (an attacker's review)."""
    app, client = hook_app(make_app)
    answers = iter([(503, {"Retry-After": "\u00b2"})])
    recv = receiver(lambda r: answer(*next(answers, (200, {})))(r))
    hook = add_endpoint(client, recv.url)
    make_event(client)

    assert deliver(app) == 1
    (pending,) = deliveries(client, hook["webhook_id"])
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert pending["response_status"] == 503
    assert seconds_until(pending["next_attempt_at"]) <= 0.25  # the schedule's, not a hint's


def test_test_events_cannot_hold_every_request_thread(make_app, receiver):  # noqa: F811
    """Test events are sent while the request waits: past two at once in a process, another
    is a 409 at once, so a tenant firing them at an endpoint that never answers cannot take
    the server's threads (an attacker's review: 12 of them held /v2/health for 29 s)."""
    app, client = hook_app(make_app)
    release = threading.Event()

    def slow(received):
        release.wait(20)
        return answer(200)(received)

    hook = add_endpoint(client, receiver(slow).url)
    path = f"/v2/webhooks/{hook['webhook_id']}/test"
    answers: list[int] = []
    firing = [
        threading.Thread(target=lambda: answers.append(client.post(path).status_code))
        for _ in range(2)
    ]
    for thread in firing:
        thread.start()
    wait_for(lambda: len(deliveries(client, hook["webhook_id"])) == 2)

    began = time.monotonic()
    refused = client.post(path)
    assert_envelope(refused, 409)
    assert "test events are being sent" in refused.get_json()["message"]
    assert time.monotonic() - began < 5
    release.set()
    for thread in firing:
        thread.join(30)
    assert answers == [200, 200]
    assert client.post(path).status_code == 200  # free again
