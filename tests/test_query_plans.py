"""The reads that must not grow with the tables use an index (SQLite's query plans; on
Postgres the planner may prefer a scan of a tiny test table, so there the indexes must
exist). `python -m bench.scale` measures the same reads at 1,000,000 jobs."""

from __future__ import annotations

import pytest

from pie.db import connection, database, is_postgres
from pie.services import processes, triggers
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


def test_the_indexes_exist(app):
    with connection():
        names = {
            index.name
            for table in ("model_versions", "jobs", "models")
            for index in database.get_indexes(table)
        }
    assert {"model_versions_newest_by_status", "model_versions_newest"} <= names, names
    assert "jobs_claimed_by" in names, names
