"""Numbered schema migrations; each runs once, in its own transaction, recorded by number."""

from __future__ import annotations

from datetime import timedelta

import peewee

from pie import config, counts, ownership, tables
from pie.db import migration
from pie.rows import update_rows


@migration
def create_registry(db: peewee.Database) -> None:
    db.create_tables(tables.REGISTRY_TABLES, safe=True)


@migration
def create_jobs(db: peewee.Database) -> None:
    db.create_tables(tables.JOB_TABLES, safe=True)


@migration
def create_subscriptions(db: peewee.Database) -> None:
    db.create_tables(tables.SUBSCRIPTION_TABLES, safe=True)


@migration
def create_tenancy(db: peewee.Database) -> None:
    db.create_tables(tables.TENANCY_TABLES, safe=True)
    # One active revision per key and scope, enforced by the database itself.
    db.execute_sql(
        'CREATE UNIQUE INDEX IF NOT EXISTS "assignments_one_active" ON "assignments" '
        '("client_id", "domain_id", "scope", "assignment_key") WHERE "status" = \'active\''
    )


@migration
def count_rows(db: peewee.Database) -> None:
    # List totals from trigger-kept counters instead of COUNT(*) over the whole table.
    counts.install(db)


@migration
def index_versions_by_status(db: peewee.Database) -> None:
    # A model's newest active version (every fan-out, inference on a subscription) and its
    # version list, without reading every version of a model that has many.
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "model_versions_newest_by_status" ON "model_versions" '
        '("model_id", "status", "created_at", "id")'
    )
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "model_versions_newest" ON "model_versions" '
        '("model_id", "created_at", "id")'
    )


@migration
def own_subscriptions(db: peewee.Database) -> None:
    # A subscription made for a tenant (`subscribe: true` through an assignment) belongs to
    # it. (A database created after this change has the columns from migration 3 already.)
    present = {column.name for column in db.get_columns("event_subscriptions")}
    for name in tables.TENANT_FIELDS:
        if name not in present:
            db.execute_sql(f'ALTER TABLE "event_subscriptions" ADD COLUMN "{name}" VARCHAR(128)')
    ownership.own_replays()


@migration
def count_trigger_chains(db: peewee.Database) -> None:
    # The jobs each root event has caused so far (PIE_MAX_TRIGGERED_JOBS). Migration 9
    # replaces the table; the one created here is the one it replaces.
    db.execute_sql(
        'CREATE TABLE IF NOT EXISTS "trigger_chains" ("chain_id" VARCHAR(36) NOT NULL '
        'PRIMARY KEY, "jobs" BIGINT NOT NULL, "created_at" TIMESTAMP NOT NULL)'
    )


@migration
def budget_chains_per_owner(db: peewee.Database) -> None:
    # Each owner's subscriptions (a client's, or the global ones) have their own budget in a
    # chain, so one client cannot spend the others'. The counts so far become the global
    # ones' (a chain in flight keeps what it has spent).
    db.create_tables(tables.CHAIN_TABLES, safe=True)
    db.execute_sql(
        'INSERT INTO "trigger_budgets" ("chain_id", "owner", "jobs", "refused", "created_at") '
        'SELECT "chain_id", \'\', "jobs", 0, "created_at" FROM "trigger_chains"'
    )
    db.execute_sql('DROP TABLE "trigger_chains"')
    # What a client owns of one model's subscriptions (PIE_MAX_CLIENT_SUBSCRIPTIONS).
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "event_subscriptions_owned" ON "event_subscriptions" '
        '("client_id", "source_model_id")'
    )


JOB_CONTROL_COLUMNS = {
    "jobs": {
        "policy": "TEXT",
        "attempt": "INTEGER NOT NULL DEFAULT 1",
        "attempts": "TEXT",
        "deadline_at": "TIMESTAMP",
        "heartbeat_at": "TIMESTAMP",
        "progress": "DOUBLE PRECISION",
        "progress_message": "TEXT",
        "expires_at": "TIMESTAMP",
    },
    "models": {"job_policy": "TEXT"},
    "model_versions": {"job_policy": "TEXT"},
}


# Search indexes of GET /v2/jobs (pie/services/job_search.py): with the primary key (job_id)
# and (model_id, model_version, job_id), each filter's rows are a range of one index, in
# job_id order. Only triggered jobs go in the two partial ones: a direct job pays for neither.
JOB_SEARCH_INDEXES = {
    "jobs_search_status": '("status", "job_id")',
    "jobs_search_model": '("model_id", "job_id")',
    # The client key of pie/services/job_search.py: no client is "", NULL or not.
    "jobs_search_client": '(COALESCE("client_id", \'\'), "job_id")',
    "jobs_search_parent": '("parent_job_id", "job_id") WHERE "parent_job_id" IS NOT NULL',
    "jobs_search_subscription": (
        '("subscription_id", "job_id") WHERE "subscription_id" IS NOT NULL'
    ),
}


@migration
def control_jobs(db: peewee.Database) -> None:
    # Deadlines, heartbeats, retries and a policy per model (issue 15). A database created
    # after this change has the columns from migrations 1 and 2 already.
    for table, columns in JOB_CONTROL_COLUMNS.items():
        present = {column.name for column in db.get_columns(table)}
        for name, kind in columns.items():
            if name not in present:
                db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}')
    # The recovery loop's search for started jobs past their deadline or heartbeat.
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "jobs_status_expires_at" ON "jobs" ("status", "expires_at")'
    )
    # Jobs running during the upgrade get a deadline PIE_JOB_TIMEOUT_SECONDS from now (not
    # from when they started: a long training must not be cut off by the upgrade itself).
    deadline = tables.utcnow() + timedelta(seconds=config.load()["PIE_JOB_TIMEOUT_SECONDS"])
    tables.Job.update(deadline_at=deadline, expires_at=deadline).where(
        (tables.Job.status == "started") & tables.Job.deadline_at.is_null()
    ).execute()


@migration
def register_processes(db: peewee.Database) -> None:
    # The processes that claim jobs, and the owner of each claim: the claims of a process
    # whose heartbeat lapsed are voided at once instead of after their lease. (A database
    # created after this change has jobs.claimed_by from migration 2 already.)
    db.create_tables(tables.PROCESS_TABLES, safe=True)
    if "claimed_by" not in {column.name for column in db.get_columns("jobs")}:
        db.execute_sql('ALTER TABLE "jobs" ADD COLUMN "claimed_by" VARCHAR(36)')
    # Only claimed jobs (pending or running ones; completion clears the owner) are indexed.
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "jobs_claimed_by" ON "jobs" ("claimed_by") '
        'WHERE "claimed_by" IS NOT NULL'
    )


@migration
def index_jobs_for_search(db: peewee.Database) -> None:
    # What a triggered job's `trigger` names becomes columns (a database created after this
    # change has them from migration 2 already), filled in for the jobs there are.
    present = {column.name for column in db.get_columns("jobs")}
    for name in tables.TRIGGER_COLUMNS:
        if name not in present:
            db.execute_sql(f'ALTER TABLE "jobs" ADD COLUMN "{name}" VARCHAR(36)')
    _fill_trigger_columns()
    for name, columns in JOB_SEARCH_INDEXES.items():
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "jobs" {columns}')


def _fill_trigger_columns(batch: int = 1000) -> None:
    """Copy what each triggered job's `trigger` names into its columns, a batch of jobs at a
    time in job_id order: in Python, as the backends' JSON functions differ. A value no job or
    subscription id can be (written by hand) is left out rather than failing the upgrade."""
    job, last = tables.Job, ""
    while True:
        found = list(
            job.select(job.job_id, job.trigger)
            .where(job.trigger.is_null(False) & (job.job_id > last))
            .order_by(job.job_id)
            .limit(batch)
            .tuples()
        )
        if not found:
            return
        update_rows(
            job,
            [{"job_id": job_id, **_named(trigger)} for job_id, trigger in found],
            key="job_id",
        )
        last = found[-1][0]


def _named(trigger: object) -> dict[str, str | None]:
    named = trigger if isinstance(trigger, dict) else {}
    return {
        name: value if isinstance(value := named.get(name), str) and len(value) <= 36 else None
        for name in tables.TRIGGER_COLUMNS
    }


@migration
def create_webhooks(db: peewee.Database) -> None:
    # Webhook endpoints and their outbox / delivery log (issue 17). Only open deliveries
    # are in the partial indexes the deliverer reads: each active endpoint's due ones (a
    # paused endpoint's backlog is never scanned), and those claimed.
    db.create_tables(tables.WEBHOOK_TABLES, safe=True)
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "webhook_deliveries_due" ON "webhook_deliveries" '
        '("webhook_id", "next_attempt_at") WHERE "status" = \'pending\''
    )
    db.execute_sql(
        'CREATE INDEX IF NOT EXISTS "webhook_deliveries_claimed" ON "webhook_deliveries" '
        '("claimed_by") WHERE "claimed_by" IS NOT NULL'
    )


@migration
def count_job_statements(db: peewee.Database) -> None:
    # Postgres: job inserts and deletes counted once per statement (a fan-out's multi-row
    # INSERT was one counter update per row, all on the same counter row).
    counts.count_job_statements(db)
