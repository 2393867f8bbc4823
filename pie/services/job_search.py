"""Finding jobs of any model (GET /v2/jobs): newest first, by filters, a page at a time after a
cursor (the last job id seen), in one statement whose every part is a range of one index in
job_id order (the indexes of migration 12), so a deep page costs what the first does.

A tenant's token sees jobs of no client and its own clients' jobs. Each client key is a
range of the client index, so such a page reads the newest matching jobs of each range and
keeps the newest of those: however few of the table's jobs the caller may see, no range is
read past one page."""

from __future__ import annotations

import functools
import operator
from datetime import datetime, timedelta
from typing import Any

import peewee

from pie.ids import first_uuid7_at
from pie.tables import Job

EQUAL_FILTERS = (
    "status",
    "job_type",
    "model_id",
    "model_version",
    "parent_job_id",
    "subscription_id",
)
# A job's client, "" for none (NULL, or "" written by hand), as migration 12 indexes it: one
# equality per client key, so each is a range in job_id order (an IS NULL is not, to
# Postgres's planner). The "" is SQL text, not a parameter, so that SQLite matches the index.
CLIENT_KEY = peewee.fn.COALESCE(Job.client_id, peewee.SQL("''"))
EPOCH = datetime(1970, 1, 1)
# Job ids are UUIDv7, whose first 48 bits are the time they were made, in milliseconds: a
# creation-time filter is also a range of job ids, widened by this much on each side, for
# what may set a job's created_at apart from its id's time (ids made ahead of the clock in
# bursts of more than 4,096 a millisecond, or while the clock stepped back); `created_at`
# itself then decides.
CLOCK_SLACK_MS = 5_000


def find_jobs(
    filters: dict[str, Any], page_size: int, visible_clients: frozenset[str] | None = None
) -> tuple[list[Job], str | None]:
    """One page of the jobs that match `filters` (see EQUAL_FILTERS, `created_after`,
    `created_before`, and `after`: only jobs older than that job id), newest first, and the
    cursor of the next page (None on the last). `visible_clients` (None: all) limits jobs
    launched for a client to those clients' when `filters` names no client; the caller has
    checked access to one it names."""
    found = list(page_query(filters, page_size + 1, visible_clients))
    if len(found) > page_size:
        return found[:page_size], found[page_size - 1].job_id
    return found, None


def page_query(
    filters: dict[str, Any], limit: int, visible_clients: frozenset[str] | None = None
) -> Any:
    """The statement that reads a page (`limit` rows at most)."""
    conditions = _conditions(filters)
    ranges = [
        _newest(conditions + client, limit)
        for client in _client_ranges(filters.get("client_id"), visible_clients)
    ]
    if len(ranges) == 1:
        return ranges[0]
    # UNION ALL (the ranges are disjoint) of each range's newest `limit` jobs, then the
    # newest of those: at most `limit` rows read from each range, whatever the depth.
    merged = functools.reduce(operator.add, ranges)
    return merged.order_by(peewee.SQL('"job_id"').desc()).limit(limit)


def _newest(conditions: list[Any], limit: int) -> Any:
    query = Job.select().where(*conditions) if conditions else Job.select()
    return query.order_by(Job.job_id.desc()).limit(limit)


def _client_ranges(client_id: str | None, visible: frozenset[str] | None) -> list[list[Any]]:
    """One condition list per client key the page reads: one when a client is named or
    every client is visible."""
    if client_id is not None:
        return [[CLIENT_KEY == client_id]]
    if visible is None:
        return [[]]
    return [[CLIENT_KEY == key] for key in ["", *sorted(visible)]]


def _conditions(filters: dict[str, Any]) -> list[Any]:
    conditions = [
        getattr(Job, name) == filters[name]
        for name in EQUAL_FILTERS
        if filters.get(name) is not None
    ]
    if filters.get("after") is not None:
        conditions.append(Job.job_id < filters["after"])
    before, after = filters.get("created_before"), filters.get("created_after")
    if before is not None:
        conditions.append(Job.created_at < before)
        conditions.append(Job.job_id < first_uuid7_at(_ms(before) + CLOCK_SLACK_MS + 1))
    if after is not None:
        conditions.append(Job.created_at > after)
        conditions.append(Job.job_id >= first_uuid7_at(_ms(after) - CLOCK_SLACK_MS))
    return conditions


def _ms(moment: datetime) -> int:
    """Milliseconds since 1970 of a naive UTC datetime (any year: no overflow)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def children(
    parent_ids: list[str], limit: int, visible_clients: frozenset[str] | None = None
) -> list[Job]:
    """The jobs that completions of `parent_ids` started (their `parent_job_id`), oldest
    first, as callers who see `visible_clients` (None: all) see them: jobs of no client and
    those clients' own."""
    query = Job.select().where(Job.parent_job_id.in_(parent_ids))
    if visible_clients is not None:
        query = query.where(CLIENT_KEY.in_(["", *sorted(visible_clients)]))
    return list(query.order_by(Job.job_id).limit(limit))
