"""Row counters for list totals, kept by database triggers.

A list's `X-Pagination` total used to be a COUNT(*) over every matching row, which grows with
the table. Instead, triggers on `jobs` and `models` keep `job_counts` and `model_counts` in
the same transaction as the row change (any writer: PIE, an operator's SQL, a bulk load), and
a total is the sum of a handful of counter rows.

On Postgres each backend writes to its own shard (its pid), so no two transactions ever
share a counter row: writers never wait on one another and cannot deadlock. `fold` (run by
the recovery loop) moves the rows of backends that have ended into shard 0, so a total stays
a sum over the live connections. SQLite has one writer at a time, so one shard (0).

On Postgres, inserts and deletes of jobs are counted once per statement, over its transition
table: a fan-out's multi-row INSERT of N jobs (mostly under one key) is one counter change,
not N changes of the same row. SQLite has row triggers only.
"""

from __future__ import annotations

from collections.abc import Iterable

import peewee

from pie.tables import JobCount, ModelCount

FOLD_LOCK = 7164  # advisory lock: one folder at a time
JOB_KEY = ("model_id", "model_version", "job_type", "status", "client_key")
# The job columns a counter key is made of; an UPDATE of any other column leaves counts alone.
JOB_KEY_COLUMNS = ("model_id", "model_version", "job_type", "status", "client_id")


def _upsert_job(row: str, delta: str, shard: str) -> str:
    """One counter change for the job `row` (NEW or OLD)."""
    values = ", ".join(
        [f"{row}.model_id", f"{row}.model_version", f"{row}.job_type", f"{row}.status"]
        + [f"COALESCE({row}.client_id, '')", shard, delta]
    )
    key = ", ".join((*JOB_KEY, "shard"))
    return (
        f"INSERT INTO job_counts ({key}, n) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET n = job_counts.n + {delta}"
    )


def _upsert_model(delta: str, shard: str) -> str:
    return (
        f"INSERT INTO model_counts (shard, n) VALUES ({shard}, {delta}) "
        f"ON CONFLICT (shard) DO UPDATE SET n = model_counts.n + {delta}"
    )


def _key_changed() -> str:
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in JOB_KEY_COLUMNS)


def sqlite_triggers() -> list[str]:
    changed = _key_changed().replace("IS DISTINCT FROM", "IS NOT")
    columns = ", ".join(JOB_KEY_COLUMNS)
    return [
        "CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs BEGIN "
        f"{_upsert_job('NEW', '1', '0')}; END",
        f"CREATE TRIGGER jobs_counted_update AFTER UPDATE OF {columns} ON jobs "
        f"WHEN {changed} BEGIN "
        f"{_upsert_job('OLD', '-1', '0')}; {_upsert_job('NEW', '1', '0')}; END",
        "CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs BEGIN "
        f"{_upsert_job('OLD', '-1', '0')}; END",
        f"CREATE TRIGGER models_counted_insert AFTER INSERT ON models BEGIN "
        f"{_upsert_model('1', '0')}; END",
        f"CREATE TRIGGER models_counted_delete AFTER DELETE ON models BEGIN "
        f"{_upsert_model('-1', '0')}; END",
    ]


# The functions find PIE's tables through the search_path they were created with, whatever
# the writing session's search_path (an operator's psql, a bulk load).
PINNED = "SET search_path FROM CURRENT"


def postgres_triggers() -> list[str]:
    shard = "pg_backend_pid()"
    columns = ", ".join(JOB_KEY_COLUMNS)
    return [
        "CREATE OR REPLACE FUNCTION pie_count_job() RETURNS trigger LANGUAGE plpgsql "
        f"{PINNED} AS $$ "
        "BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {_upsert_job('OLD', '-1', shard)}; END IF; "
        f"IF TG_OP <> 'DELETE' THEN {_upsert_job('NEW', '1', shard)}; END IF; "
        "RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION pie_count_model() RETURNS trigger LANGUAGE plpgsql "
        f"{PINNED} AS $$ "
        "BEGIN "
        f"IF TG_OP = 'INSERT' THEN {_upsert_model('1', shard)}; "
        f"ELSE {_upsert_model('-1', shard)}; END IF; "
        "RETURN NULL; END $$",
        # TRUNCATE skips row triggers: empty the counters with the table.
        "CREATE OR REPLACE FUNCTION pie_count_truncated() RETURNS trigger LANGUAGE plpgsql "
        f"{PINNED} AS $$ "
        "BEGIN EXECUTE 'DELETE FROM ' || quote_ident(TG_ARGV[0]); RETURN NULL; END $$",
        *job_statement_triggers(),
        # Transition tables cannot go with a column list (UPDATE OF), and most updates of a
        # job (claims, leases, heartbeats) change no key: updates stay counted per row.
        f"CREATE TRIGGER jobs_counted_update AFTER UPDATE OF {columns} ON jobs "
        f"FOR EACH ROW WHEN ({_key_changed()}) EXECUTE FUNCTION pie_count_job()",
        "CREATE TRIGGER jobs_counted_truncate AFTER TRUNCATE ON jobs "
        "FOR EACH STATEMENT EXECUTE FUNCTION pie_count_truncated('job_counts')",
        "CREATE TRIGGER models_counted AFTER INSERT OR DELETE ON models "
        "FOR EACH ROW EXECUTE FUNCTION pie_count_model()",
        "CREATE TRIGGER models_counted_truncate AFTER TRUNCATE ON models "
        "FOR EACH STATEMENT EXECUTE FUNCTION pie_count_truncated('model_counts')",
    ]


def _upsert_jobs_of(rows: str, sign: str) -> str:
    """One counter change per key among the jobs of the transition table `rows`."""
    key = ", ".join((*JOB_KEY, "shard"))
    return (
        f"INSERT INTO job_counts ({key}, n) SELECT model_id, model_version, job_type, status, "
        f"COALESCE(client_id, ''), pg_backend_pid(), {sign}COUNT(*) FROM {rows} "
        "GROUP BY 1, 2, 3, 4, 5 "
        f"ON CONFLICT ({key}) DO UPDATE SET n = job_counts.n + excluded.n"
    )


def job_statement_triggers() -> list[str]:
    """Postgres: the jobs' insert and delete counters, once per statement (replacing the
    row triggers of the same names, which migration 14 drops)."""
    return [
        "CREATE OR REPLACE FUNCTION pie_count_jobs_inserted() RETURNS trigger "
        f"LANGUAGE plpgsql {PINNED} AS $$ "
        f"BEGIN {_upsert_jobs_of('inserted', '')}; RETURN NULL; END $$",
        "CREATE OR REPLACE FUNCTION pie_count_jobs_deleted() RETURNS trigger "
        f"LANGUAGE plpgsql {PINNED} AS $$ "
        f"BEGIN {_upsert_jobs_of('deleted', '-')}; RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS jobs_counted_insert ON jobs",
        "CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs "
        "REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION pie_count_jobs_inserted()",
        "DROP TRIGGER IF EXISTS jobs_counted_delete ON jobs",
        "CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs "
        "REFERENCING OLD TABLE AS deleted "
        "FOR EACH STATEMENT EXECUTE FUNCTION pie_count_jobs_deleted()",
    ]


def count_job_statements(db: peewee.Database) -> None:
    """Migration 14: count job inserts and deletes per statement on Postgres (no change on
    SQLite). Replacing the triggers inside the migration's transaction, no write in between
    goes uncounted or is counted twice."""
    if isinstance(db, peewee.PostgresqlDatabase):
        for statement in job_statement_triggers():
            db.execute_sql(statement)


def install(db: peewee.Database) -> None:
    """Create the counter tables and their triggers, then count what is already there."""
    db.create_tables([JobCount, ModelCount], safe=True)
    postgres = isinstance(db, peewee.PostgresqlDatabase)
    for statement in postgres_triggers() if postgres else sqlite_triggers():
        db.execute_sql(statement)
    recount(db)


def recount(db: peewee.Database) -> None:
    """Rebuild every counter from the rows themselves (run inside a transaction). Used when
    the counters are installed and by `pie db recount`, after hand edits that bypassed the
    triggers (e.g. disabling them for a bulk load)."""
    if isinstance(db, peewee.PostgresqlDatabase):
        # Hold out writers until the new counts commit, so none is counted twice or lost.
        db.execute_sql("LOCK TABLE jobs, models IN SHARE MODE")
    db.execute_sql("DELETE FROM job_counts")
    db.execute_sql("DELETE FROM model_counts")
    key = ", ".join((*JOB_KEY, "shard"))
    db.execute_sql(
        f"INSERT INTO job_counts ({key}, n) SELECT model_id, model_version, job_type, status, "
        "COALESCE(client_id, ''), 0, COUNT(*) FROM jobs "
        "GROUP BY model_id, model_version, job_type, status, COALESCE(client_id, '')"
    )
    db.execute_sql("INSERT INTO model_counts (shard, n) SELECT 0, COUNT(*) FROM models")


def fold(db: peewee.Database) -> int:
    """Postgres: move the counter rows of backends that have ended into shard 0 (a no-op on
    SQLite); returns how many shard-0 rows it wrote. One folder at a time; concurrent writers are
    unaffected (they write their own live shards)."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return 0
    key = ", ".join(JOB_KEY)
    with db.atomic():
        if not db.execute_sql("SELECT pg_try_advisory_xact_lock(%s)", (FOLD_LOCK,)).fetchone()[0]:
            return 0
        dead = "shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity)"
        jobs = db.execute_sql(
            f"WITH gone AS (DELETE FROM job_counts WHERE {dead} RETURNING {key}, n) "
            f"INSERT INTO job_counts ({key}, shard, n) "
            f"SELECT {key}, 0, SUM(n) FROM gone GROUP BY {key} ORDER BY {key} "
            f"ON CONFLICT ({key}, shard) DO UPDATE SET n = job_counts.n + excluded.n"
        ).rowcount
        models = db.execute_sql(
            f"WITH gone AS (DELETE FROM model_counts WHERE {dead} RETURNING n) "
            "INSERT INTO model_counts (shard, n) SELECT 0, SUM(n) FROM gone HAVING COUNT(*) > 0 "
            "ON CONFLICT (shard) DO UPDATE SET n = model_counts.n + excluded.n"
        ).rowcount
    return jobs + models


def job_total(
    model_id: str,
    model_version: str,
    status: str | None = None,
    job_type: str | None = None,
    clients: Iterable[str] | None = None,
) -> int:
    """How many of a version's jobs match; `clients` (None: all) limits them to jobs with no
    tenant or one of these tenants."""
    query = JobCount.select(peewee.fn.COALESCE(peewee.fn.SUM(JobCount.n), 0)).where(
        (JobCount.model_id == model_id) & (JobCount.model_version == model_version)
    )
    if status:
        query = query.where(JobCount.status == status)
    if job_type:
        query = query.where(JobCount.job_type == job_type)
    if clients is not None:
        query = query.where(JobCount.client_key.in_(["", *clients]))
    return int(query.scalar())


def model_total() -> int:
    return int(ModelCount.select(peewee.fn.COALESCE(peewee.fn.SUM(ModelCount.n), 0)).scalar())
