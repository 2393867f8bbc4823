"""The reads that must not grow with the tables use an index (SQLite's query plans; on
Postgres the planner may prefer a scan of a tiny test table, so there the indexes must
exist). `python -m bench.scale` measures the same reads at 1,000,000 jobs."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from pie import migrations, rows
from pie.db import connection, database, is_postgres
from pie.services import job_search, jobs, processes, triggers
from pie.tables import Job, ModelVersion, RegisteredModel


def plan(query) -> str:
    sql, params = query.sql()
    rows = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


READS = {
    "a model's newest active version": lambda: triggers.newest_active_version_query("m"),
    "a version's jobs, newest first": lambda: (
        Job.select()
        .where((Job.model_id == "m") & (Job.model_version == "1"))
        .order_by(Job.job_id.desc())
        .paginate(10, 100)
    ),
    "the model list": lambda: (
        RegisteredModel.select()
        .order_by(RegisteredModel.created_at, RegisteredModel.id)
        .paginate(10, 100)
    ),
    # Every recovery pass, in every process: only claimed jobs are read, never the backlog.
    "owners of claims that have no process row": processes.orphan_owners,
    "a dead process's claims": lambda: Job.select(Job.job_id).where(
        processes.claims_of("p", "pending")
    ),
    "a model's versions": lambda: (
        ModelVersion.select()
        .where(ModelVersion.model == "m")
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .paginate(10, 100)
    ),
}


@pytest.mark.parametrize("name", READS)
def test_reads_that_must_not_grow_use_an_index(app, name):
    with connection():
        if is_postgres():
            pytest.skip("Postgres: see test_the_indexes_exist")
        found = plan(READS[name]())
        assert "USING INDEX" in found or "USING COVERING INDEX" in found, found
        assert "TEMP B-TREE" not in found, found  # no sort of every matching row


def test_a_completion_reads_its_job_version_and_subscribers_by_index(app):
    """The completion's one read (jobs.lock_for_completion): the job by its key, its version
    by its key, and the EXISTS over its model's subscriptions by their index."""
    with connection():
        if is_postgres():
            pytest.skip("Postgres: see test_the_indexes_exist")
        jobs.lock_for_completion("no-such-job")  # builds and caches the statement
        [(sql, constants)] = [
            value
            for key, value in rows._JOINED_SQL.items()
            if key[0] is Job and key[-1] is type(database.obj)
        ]
        found = " | ".join(
            str(row[-1])
            for row in database.execute_sql(
                f"EXPLAIN QUERY PLAN {sql}", [*constants, "j"]
            ).fetchall()
        )
    steps = [s for s in found.split(" | ") if s.startswith(("SCAN", "SEARCH"))]
    assert len(steps) == 3 and all(s.startswith("SEARCH") for s in steps), found
    assert any("subscriptions" in s and "INDEX" in s for s in steps), found


def test_the_indexes_exist(app):
    with connection():
        names = {
            index.name
            for table in ("model_versions", "jobs", "models")
            for index in database.get_indexes(table)
        }
    assert {"model_versions_newest_by_status", "model_versions_newest"} <= names, names
    assert "jobs_claimed_by" in names, names
    assert set(migrations.JOB_SEARCH_INDEXES) <= names, names


# GET /v2/jobs: each filter alone, some combinations, as an admin (one range) and as a tenant
# of two clients (a range per client key, merged).
T = datetime(2026, 1, 1)
SEARCH_VALUES = {
    "status": "success",
    "job_type": "training",
    "model_id": "m",
    "client_id": "acme",
    "parent_job_id": "p",
    "subscription_id": "s",
    "created_after": T,
    "created_before": T,
    "after": "01a00000-0000-7000-8000-000000000000",
}
SEARCHES = [
    (),
    *[(name,) for name in SEARCH_VALUES],
    ("model_id", "model_version"),
    ("model_id", "model_version", "status", "after"),
    ("status", "model_id", "created_before"),
    ("client_id", "status", "job_type"),
    ("parent_job_id", "status", "after"),
    ("subscription_id", "client_id"),
    ("job_type", "created_after", "created_before", "after"),
]


def search_filters(names: tuple[str, ...]) -> dict:
    return {name: SEARCH_VALUES.get(name, "1") for name in names}


def sorts_more_than_a_page(plan_text: str) -> bool:
    """SQLite sorts only what a range's subquery returned (a page), never a table's rows."""
    steps = plan_text.split(" | ")
    return any(
        "TEMP B-TREE" in step and not steps[i - 1].startswith("SCAN (subquery")
        for i, step in enumerate(steps)
    )


@pytest.mark.parametrize("tenant", [False, True], ids=["admin", "tenant"])
@pytest.mark.parametrize("names", SEARCHES, ids=lambda names: "+".join(names) or "none")
def test_a_job_search_page_reads_index_ranges_in_job_id_order(app, names, tenant):
    query = job_search.page_query(
        search_filters(names), 101, frozenset({"acme", "beta"}) if tenant else None
    )
    with connection():
        if is_postgres():
            sql, params = query.sql()
            with database.atomic():  # price scans and sorts out: an index must give the order
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    database.execute_sql(f"SET LOCAL {setting} = off")
                rows = database.execute_sql(f"EXPLAIN {sql}", params).fetchall()
            found = "\n".join(row[0] for row in rows)
            nodes = [row[0].strip().removeprefix("->").strip() for row in rows]
            assert "Index Scan" in found and "Seq Scan" not in found, found
            assert not [n for n in nodes if re.match(r"(Incremental )?Sort +\(", n)], found
            return
        found = plan(query)
    tables = [s for s in found.split(" | ") if s.startswith(("SCAN t", "SEARCH t"))]
    assert tables and all("USING INDEX" in s for s in tables), found
    assert not sorts_more_than_a_page(found), found


@pytest.mark.parametrize(
    "names, index",
    [
        (("status",), "jobs_search_status"),
        (("model_id",), "jobs_search_model"),
        (("model_id", "model_version"), "jobs_model_id_model_version_job_id"),
        (("client_id",), "jobs_search_client"),
        (("parent_job_id",), "jobs_search_parent"),
        (("subscription_id",), "jobs_search_subscription"),
        (("created_after", "created_before"), "sqlite_autoindex_jobs_1"),  # the primary key
    ],
)
def test_each_filter_has_its_own_index(app, names, index):
    with connection():
        if is_postgres():
            pytest.skip("Postgres: the planner picks by the table's statistics")
        found = plan(job_search.page_query(search_filters(names), 101))
    assert f"USING INDEX {index} " in found, found
