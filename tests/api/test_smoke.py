from tests.helpers import assert_envelope, model_body


def test_health_is_public(anon):
    r = anon.get("/v2/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_model_roundtrip(client):
    r = client.post("/v2/models", json=model_body())
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["id"] == "m1" and body["status"] == "pending" and body["latest_version"] == "1"
    r = client.get("/v2/models/m1")
    assert r.status_code == 200
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "training"})
    assert r.status_code == 200, r.get_json()
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "active"})
    assert r.status_code == 200
    assert r.get_json()["model"]["status"] == "active"
    assert r.get_json()["triggered_events"] == []


def test_bad_handler_is_400(client):
    body = model_body(handlers={"training": {"type": "lambda"}, "inference": {"type": "nope"}})
    r = client.post("/v2/models", json=body)
    b = assert_envelope(r, 400)
    assert "json.handlers.training.arn: Missing data for required field." in b["message"]
