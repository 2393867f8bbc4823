"""List totals come from trigger-kept counters (pie/counts.py): they must equal a COUNT(*)
of the rows after every kind of write — PIE's own, an operator's SQL, concurrent writers on
several connections — and the list routes must not count rows themselves."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

import pie.cli
from pie import counts, migrations
from pie import db as pie_db
from pie.db import SchemaVersion, connection, database, is_postgres
from pie.ids import uuid7
from pie.tables import Job, JobCount, utcnow
from tests.helpers import (
    SECRET,
    Implementations,
    activate,
    make_token,
    model_body,
    wait_for,
    wait_for_job,
)


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app(plugins=[impls])
    yield app
    impls.release.set()


def counted() -> dict[tuple, int]:
    """Counter sums per key (zero sums left out)."""
    rows = database.execute_sql(
        "SELECT model_id, model_version, job_type, status, client_key, SUM(n) FROM job_counts "
        "GROUP BY model_id, model_version, job_type, status, client_key"
    ).fetchall()
    return {tuple(row[:5]): int(row[5]) for row in rows if int(row[5])}


def actual() -> dict[tuple, int]:
    rows = database.execute_sql(
        "SELECT model_id, model_version, job_type, status, COALESCE(client_id, ''), COUNT(*) "
        "FROM jobs GROUP BY model_id, model_version, job_type, status, COALESCE(client_id, '')"
    ).fetchall()
    return {tuple(row[:5]): int(row[5]) for row in rows}


def assert_counts_match() -> None:
    with connection():
        assert counted() == actual()
        models = database.execute_sql("SELECT COUNT(*) FROM models").fetchone()[0]
        assert counts.model_total() == models


def raw_job(model_id: str, status: str = "pending", client_id: str | None = None) -> dict:
    return {
        "job_id": uuid7(),
        "job_type": "inference",
        "model_id": model_id,
        "model_version": "1",
        "status": status,
        "input": {},
        "warnings": [],
        "client_id": client_id,
        "handler_type": "in_process",
        "handler": {"type": "in_process", "value": "echo"},
        "created_at": utcnow(),
    }


def test_counters_follow_every_write_through_the_api(client):
    for name in ("a", "b", "c"):
        body = model_body(
            name,
            handlers={
                "training": {"type": "in_process", "value": "echo"},
                "inference": {"type": "in_process", "value": "hold" if name == "b" else "echo"},
            },
        )
        assert client.post("/v2/models", json=body).status_code == 201
        activate(client, name)
    subscription = {
        "trigger_event": "inference_complete",
        "target_model_id": "c",
        "target_action": "inference",
        "input_source": "stored",
        "input": {"chained": True},
    }
    assert client.post("/v2/models/a/event-subscriptions", json=subscription).status_code == 201
    done = [
        client.post("/v2/models/a/versions/1/inference", json={"input": {"n": n}}).get_json()[
            "inference_job_id"
        ]
        for n in range(3)
    ]
    held = client.post("/v2/models/b/versions/1/inference", json={"input": {}}).get_json()
    for job_id in done:
        wait_for_job(client, job_id)
    wait_for_job(client, held["inference_job_id"], statuses=("started",))

    def triggered_done() -> bool:  # the counters and the rows are read in two statements
        jobs = client.get("/v2/models/c/versions/1/jobs").get_json()
        return len(jobs) == 3 and all(job["status"] == "success" for job in jobs)

    wait_for(triggered_done)
    assert_counts_match()
    with connection():
        assert counts.job_total("b", "1", status="started") == 1
        assert counts.job_total("c", "1", job_type="inference") == 3  # fired by subscription
    assert client.delete("/v2/models/c").status_code in (200, 204)
    assert_counts_match()


def test_counters_follow_hand_written_sql(app):
    with connection():
        Job.insert_many([raw_job("m"), raw_job("m", client_id="t1"), raw_job("n")]).execute()
        first = Job.select().order_by(Job.job_id).first()
        Job.update(status="success").where(Job.job_id == first.job_id).execute()
        Job.update(client_id="t2").where(Job.client_id == "t1").execute()
        Job.update(model_version="2").where(Job.model_id == "n").execute()
        Job.update(warnings=["no key column changed"]).execute()
        assert_counts_match()
        assert counts.job_total("m", "1") == 2
        assert counts.job_total("m", "1", clients=[]) == 1
        assert counts.job_total("m", "1", clients=["t2"]) == 2
        assert counts.job_total("n", "2", status="pending", job_type="inference") == 1
        Job.delete().where(Job.model_id == "m").execute()
        assert_counts_match()
        assert counts.job_total("m", "1") == 0
        if is_postgres():
            database.execute_sql("TRUNCATE jobs")
            assert counts.job_total("n", "2") == 0
        assert_counts_match()


def test_counters_stay_exact_under_concurrent_writers(app):
    """Threads on their own connections (on Postgres, different counter shards) insert and
    update jobs of one version at once."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer() -> None:
        try:
            with connection():
                barrier.wait(timeout=30)
                for _ in range(20):
                    with database.atomic():
                        row = raw_job("hot")
                        Job.insert(row).execute()
                        Job.update(status="started").where(Job.job_id == row["job_id"]).execute()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert_counts_match()
    with connection():
        assert counts.job_total("hot", "1", status="started") == 120
        assert counts.job_total("hot", "1", status="pending") == 0


def test_db_recount_rebuilds_counters_from_the_rows(app, database_url, tmp_path):
    with connection():
        Job.insert_many([raw_job("m"), raw_job("m", status="success")]).execute()
        JobCount.update(n=JobCount.n + 40).execute()  # counters gone wrong by hand
        assert counts.job_total("m", "1") != 2
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    result = CliRunner().invoke(pie.cli.main, ["db", "recount"], env=env)
    assert result.exit_code == 0, result.output
    assert "counters rebuilt" in result.output
    assert_counts_match()
    with connection():
        assert counts.job_total("m", "1") == 2


def test_upgrade_counts_rows_that_predate_the_counters(make_app, monkeypatch):
    """A database at schema 4 (no counters) with jobs and models: migration 5 counts them."""
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[:4])
    make_app()
    with connection():
        assert pie_db.current_version() == 4
        Job.insert_many([raw_job("old"), raw_job("old", status="failure")]).execute()
        database.execute_sql(
            "INSERT INTO models (id, name, description, handlers, metadata, status, "
            "max_int_version, created_at, updated_at) "
            "VALUES ('old', 'old', '', '{}', '{}', 'active', 1, '2026-01-01', '2026-01-01')"
        )
    monkeypatch.undo()
    assert pie_db.upgrade()[0] == 5
    assert_counts_match()
    with connection():
        assert counts.job_total("old", "1") == 2
        assert counts.model_total() == 1


def test_list_totals_do_not_count_rows(client, statements):
    """The mechanism itself: no COUNT over jobs or models on a list request."""
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    for n in range(3):
        client.post("/v2/models/m/versions/1/inference", json={"input": {"n": n}})
    statements.clear()
    for path, total in (
        ("/v2/models/m/versions/1/jobs?page_size=2", 3),
        ("/v2/models/m/versions/1/jobs?job_type=inference&status=success", None),
        ("/v2/models", 1),
    ):
        r = client.get(path)
        assert r.status_code == 200, r.get_json()
        if total is not None:
            assert json.loads(r.headers["X-Pagination"])["total"] == total
    assert statements
    assert not [sql for sql in statements if "COUNT(" in sql.upper()]


def test_tenant_totals_count_only_visible_jobs(client):
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    with connection():
        Job.insert_many(
            [raw_job("m", client_id="acme"), raw_job("m", client_id="other"), raw_job("m")]
        ).execute()
    token = make_token(scope="streamline/read_models", client_id="acme")
    r = client.get("/v2/models/m/versions/1/jobs", token=token)
    assert r.status_code == 200, r.get_json()
    assert len(r.get_json()) == 2
    assert json.loads(r.headers["X-Pagination"])["total"] == 2


def test_a_hand_written_empty_client_counts_like_no_tenant(client):
    """ "" is no valid client id, but SQL may write it: list and total both treat it as none."""
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    with connection():
        Job.insert_many([raw_job("m", client_id=""), raw_job("m", client_id="other")]).execute()
    token = make_token(scope="streamline/read_models", client_id="acme")
    r = client.get("/v2/models/m/versions/1/jobs", token=token)
    assert [job["client_id"] for job in r.get_json()] == [""]
    assert json.loads(r.headers["X-Pagination"])["total"] == 1


def test_sqlite_insert_or_replace_keeps_counts(app):
    with connection():
        if is_postgres():
            pytest.skip("SQLite's REPLACE")
        row = raw_job("m")
        Job.insert(row).execute()
        Job.insert({**row, "status": "success"}).on_conflict_replace().execute()
        assert_counts_match()
        assert counts.job_total("m", "1") == 1


def test_fold_moves_ended_backends_counters_into_shard_zero(app):
    with connection():
        if not is_postgres():
            assert counts.fold(database.obj) == 0  # one shard on SQLite: nothing to fold
            return
        Job.insert_many([raw_job("m"), raw_job("m"), raw_job("m", status="success")]).execute()
        ended = 2**31 - 7  # no live backend has this pid
        database.execute_sql("UPDATE job_counts SET shard = %s WHERE status = 'pending'", (ended,))
        database.execute_sql(
            "INSERT INTO job_counts VALUES ('m', '1', 'inference', 'pending', '', 0, 5)"
        )
        database.execute_sql("UPDATE model_counts SET shard = %s", (ended,))
        database.execute_sql("UPDATE job_counts SET n = n - 5 WHERE shard = %s", (ended,))
        before = (counts.job_total("m", "1"), counts.job_total("m", "1", status="pending"))
        assert counts.fold(database.obj) > 0
        assert (counts.job_total("m", "1"), counts.job_total("m", "1", "pending")) == before
        shards = {row[0] for row in database.execute_sql("SELECT shard FROM job_counts")}
        assert ended not in shards
        assert_counts_match()


def test_postgres_triggers_work_from_a_session_with_another_search_path(app, database_url):
    """An operator's psql session (default search_path) writing PIE's schema-qualified
    tables still updates the counters."""
    if not is_postgres():
        pytest.skip("Postgres")
    from tests.conftest import POSTGRES_URL, TEST_SCHEMA

    other = pie_db.open_database(POSTGRES_URL, max_connections=1)
    other.connect()
    try:
        row = raw_job("psql")
        other.execute_sql(
            f'INSERT INTO "{TEST_SCHEMA}".jobs (job_id, job_type, model_id, model_version, '
            "status, input, warnings, handler_type, handler, created_at, dispatch_attempts) "
            "VALUES (%s, 'inference', 'psql', '1', 'pending', '{}', '[]', 'in_process', '{}', "
            "now(), 0)",
            (row["job_id"],),
        )
    finally:
        other.close_all()
    assert_counts_match()
    with connection():
        assert counts.job_total("psql", "1") == 1


# Migration 13's row triggers for job inserts and deletes, as a database from before
# migration 14 has them.
ROW_TRIGGERS = [
    "DROP TRIGGER jobs_counted_insert ON jobs",
    "DROP TRIGGER jobs_counted_delete ON jobs",
    "CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs "
    "FOR EACH ROW EXECUTE FUNCTION pie_count_job()",
    "CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs "
    "FOR EACH ROW EXECUTE FUNCTION pie_count_job()",
]


def per_row(trigger: str) -> bool:
    """Whether a trigger on jobs fires per row (bit 0 of pg_trigger.tgtype), not per statement."""
    (tgtype,) = database.execute_sql(
        "SELECT tgtype FROM pg_trigger WHERE tgname = %s AND tgrelid = 'jobs'::regclass",
        (trigger,),
    ).fetchone()
    return bool(tgtype & 1)


def test_postgres_counts_job_inserts_and_deletes_once_per_statement(app):
    """A fan-out's multi-row INSERT, and a bulk DELETE, under several keys and clients: each
    statement's jobs are counted by key, on this connection's shard, exactly."""
    if not is_postgres():
        pytest.skip("Postgres: SQLite has row triggers only")
    with connection():
        assert not per_row("jobs_counted_insert") and not per_row("jobs_counted_delete")
        assert per_row("jobs_counted_update")  # UPDATE OF: transition tables not allowed
        rows = [raw_job("fan") for _ in range(150)]
        rows += [raw_job("fan", client_id="t1") for _ in range(7)]
        rows += [raw_job("fan", status="success") for _ in range(3)]
        Job.insert_many(rows).execute()
        assert counts.job_total("fan", "1") == 160
        assert counts.job_total("fan", "1", clients=[]) == 153
        assert counts.job_total("fan", "1", status="success") == 3
        assert_counts_match()
        Job.delete().where((Job.model_id == "fan") & (Job.status == "pending")).execute()
        assert counts.job_total("fan", "1") == 3
        Job.delete().where(Job.job_id == "no such job").execute()  # counts nothing
        assert_counts_match()


def test_upgrade_to_statement_counters_keeps_counts_exact(make_app, monkeypatch):
    """Migration 14 on a database counting job inserts and deletes per row (migration 13):
    the counts before stay, and the writes after are counted once per statement."""
    if not is_postgres():
        pytest.skip("Postgres")
    number = pie_db.MIGRATIONS.index(migrations.count_job_statements) + 1
    make_app()
    with connection():
        for statement in ROW_TRIGGERS:
            database.execute_sql(statement)
        SchemaVersion.delete().where(SchemaVersion.version >= number).execute()
        assert per_row("jobs_counted_insert")
        Job.insert_many([raw_job("old") for _ in range(4)]).execute()
        assert counts.job_total("old", "1") == 4
    assert pie_db.upgrade() == [number]
    with connection():
        assert not per_row("jobs_counted_insert") and not per_row("jobs_counted_delete")
        Job.insert_many([raw_job("old") for _ in range(5)]).execute()
        Job.delete().where(Job.job_id.in_([r.job_id for r in Job.select().limit(2)])).execute()
        assert counts.job_total("old", "1") == 7
        assert_counts_match()
