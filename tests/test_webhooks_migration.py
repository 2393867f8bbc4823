"""Migration 13 on a database from before webhooks (upgraded to migration 12, with models and
jobs): the tables and the index of due deliveries appear, nothing else changes, and the
endpoints and their events work on the upgraded database."""

from __future__ import annotations

from pie import db as pie_db
from pie import migrations
from pie.db import SchemaVersion, connection, database
from pie.tables import WEBHOOK_TABLES
from tests.helpers import Client, activate, model_body, wait_for_job


def test_upgrade_adds_the_webhook_tables(make_app):
    number = pie_db.MIGRATIONS.index(migrations.create_webhooks) + 1
    app = make_app({"PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"]})
    admin = Client(app.test_client())
    assert admin.post("/v2/models", json=model_body("m")).status_code == 201
    activate(admin, "m")
    job = admin.post("/v2/models/m/versions/1/inference", json={"input": {"a": 1}}).get_json()
    wait_for_job(admin, job["inference_job_id"])
    with connection():  # the database as it was before webhooks
        for table in reversed(WEBHOOK_TABLES):
            database.drop_tables([table])
        SchemaVersion.delete().where(SchemaVersion.version >= number).execute()
        assert pie_db.current_version() == number - 1

    assert pie_db.upgrade() == list(range(number, len(pie_db.MIGRATIONS) + 1))

    with connection():
        assert all(database.table_exists(t._meta.table_name) for t in WEBHOOK_TABLES)
        indexes = {index.name for index in database.get_indexes("webhook_deliveries")}
    assert "webhook_deliveries_due" in indexes
    assert admin.get(f"/v2/jobs/{job['inference_job_id']}").get_json()["output"] == {"a": 1}
    r = admin.post("/v2/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["*"]})
    assert r.status_code == 201
    assert admin.post("/v2/models", json=model_body("n")).status_code == 201
    webhook_id = r.get_json()["webhook_id"]
    (delivery,) = admin.get(f"/v2/webhooks/{webhook_id}/deliveries").get_json()
    assert delivery["event_type"] == "model.created"
