"""The cached-SQL row helpers (pie/rows.py) against peewee's own queries: the same values,
types and behaviour for every table the hot paths read."""

from __future__ import annotations

from datetime import datetime

import pytest

from pie.db import connection, transaction
from pie.ids import uuid7
from pie.rows import (
    find_all,
    get_by,
    get_with,
    insert_row,
    insert_rows,
    lock_by,
    update_row,
    update_rows,
)
from pie.tables import Job, ModelVersion, RegisteredModel, utcnow

HANDLERS = {"training": {"type": "in_process", "value": "echo"}}


@pytest.fixture
def rows(app):
    with connection():
        now = utcnow()
        RegisteredModel.create(
            id="m", name="m", description="", handlers=HANDLERS, metadata={"k": [1, "two"]}
        )
        ModelVersion.create(model="m", version="1", metadata={}, handlers=HANDLERS)
        job = insert_row(
            Job,
            {
                "job_id": uuid7(),
                "job_type": "inference",
                "model_id": "m",
                "model_version": "1",
                "input": {"nested": {"a": [1, 2.5, None, True]}, "text": "ünï"},
                "handler_type": "in_process",
                "handler": HANDLERS["training"],
                "client_id": "acme",
                "claimed_until": now,
                "created_at": now,
            },
        )
        yield job.job_id


@pytest.mark.parametrize(
    ("table", "where"),
    [
        (RegisteredModel, {"id": "m"}),
        (ModelVersion, {"model": "m", "version": "1"}),
        (Job, {"model_id": "m"}),
    ],
)
def test_get_by_builds_what_peewee_builds(rows, table, where):
    with connection():
        ours = get_by(table, **where)
        theirs = table.get(*[getattr(table, name) == value for name, value in where.items()])
        assert ours.__data__ == theirs.__data__
        assert {k: type(v) for k, v in ours.__data__.items()} == {
            k: type(v) for k, v in theirs.__data__.items()
        }
        assert not ours._dirty
        assert get_by(table, **{name: "nope" for name in where}) is None


def test_get_with_reads_a_row_and_its_parent_as_peewee_does(rows):
    with connection():
        version, model = get_with(ModelVersion, RegisteredModel, model="m", version="1")
        stored_version = ModelVersion.get(
            (ModelVersion.model == "m") & (ModelVersion.version == "1")
        )
        stored_model = RegisteredModel.get(RegisteredModel.id == "m")
        for ours, theirs in [(version, stored_version), (model, stored_model)]:
            assert type(ours) is type(theirs) and ours.__data__ == theirs.__data__
            assert {k: type(v) for k, v in ours.__data__.items()} == {
                k: type(v) for k, v in theirs.__data__.items()
            }
            assert not ours._dirty
        assert get_with(ModelVersion, RegisteredModel, model="m", version="2") is None
        assert get_with(ModelVersion, RegisteredModel, model="nope", version="1") is None


def test_rows_convert_json_and_datetimes_and_follow_foreign_keys(rows):
    with connection():
        job = get_by(Job, job_id=rows)
        assert job.input == {"nested": {"a": [1, 2.5, None, True]}, "text": "ünï"}
        assert isinstance(job.created_at, datetime) and isinstance(job.claimed_until, datetime)
        assert job.output is None and job.warnings == []
        version = get_by(ModelVersion, model="m", version="1")
        assert version.model_id == "m"
        assert version.model.metadata == {"k": [1, "two"]}  # the lazy foreign-key load works


def test_instances_save_like_peewee_instances(rows):
    with connection():
        job = get_by(Job, job_id=rows)
        job.status = "started"
        assert job._dirty == {"status"}
        job.save()
        assert Job.get_by_id(rows).status == "started"
        assert update_row(Job, {"status": "success"}, job_id=rows) == 1
        with transaction():
            assert lock_by(Job, job_id=rows).status == "success"


def test_find_all_orders_and_filters(rows):
    with connection():
        for version in ("3", "2"):
            ModelVersion.create(model="m", version=version, metadata={}, handlers=HANDLERS)
        found = find_all(ModelVersion, order_by=("version",), model="m")
        assert [v.version for v in found] == ["1", "2", "3"]
        assert find_all(ModelVersion, order_by=("version",), model="none") == []


def job_row(n: int, **extra) -> dict:
    return {
        "job_id": f"j{n:03d}",
        "job_type": "inference",
        "model_id": "m",
        "model_version": "1",
        "input": {"n": n, "text": "ünï 'quoted' \"double\""},
        "handler_type": "in_process",
        "handler": HANDLERS["training"],
        "trigger": {"depth": 1},
        "created_at": utcnow(),
        **extra,
    }


def test_insert_rows_stores_what_peewee_insert_many_stores(rows):
    with connection():
        ours = [job_row(n, client_id=None if n % 2 else "acme") for n in range(250)]
        theirs = [{**row, "job_id": "p" + row["job_id"]} for row in ours]
        insert_rows(Job, ours)
        Job.insert_many(theirs).execute()
        for row in ours:
            mine, peewees = Job.get_by_id(row["job_id"]), Job.get_by_id("p" + row["job_id"])
            assert {**mine.__data__, "job_id": "p" + mine.job_id} == peewees.__data__
        assert mine.warnings == [] and mine.status == "pending"  # field defaults filled in
        insert_rows(Job, [])  # nothing to do


def test_insert_rows_refuses_rows_with_different_columns(rows):
    with connection(), pytest.raises(ValueError, match="same columns"):
        insert_rows(Job, [job_row(1), job_row(2, client_id="acme")])


def test_update_rows_stores_what_peewee_updates_store(rows):
    """Many rows, each its own values (JSON, datetimes, NULL), by one prepared statement."""
    with connection(), transaction():
        ours = [job_row(n) for n in range(30)]
        theirs = [{**row, "job_id": "p" + row["job_id"]} for row in ours]
        insert_rows(Job, ours + theirs)
        when = utcnow()
        changes = [
            {"output": {"n": n, "ü": [1.5, None]}, "error": None, "completed_at": when}
            for n in range(30)
        ]
        update_rows(
            Job,
            [{"job_id": r["job_id"], **c} for r, c in zip(ours, changes, strict=True)],
            "job_id",
        )
        for row, change in zip(theirs, changes, strict=True):
            Job.update(**change).where(Job.job_id == row["job_id"]).execute()
        for row in ours:
            mine, peewees = Job.get_by_id(row["job_id"]), Job.get_by_id("p" + row["job_id"])
            assert {**mine.__data__, "job_id": "p" + mine.job_id} == peewees.__data__
        assert mine.output == {"n": 29, "ü": [1.5, None]}
        update_rows(Job, [], "job_id")  # nothing to do
