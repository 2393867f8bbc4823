"""Trigger chains: every job one root event causes, across the whole chain of completions and
transitions that follows it, counts against one budget (PIE_MAX_TRIGGERED_JOBS).

A chain spans many transactions (each completion fires the next level), so the count lives
in a row per chain, `trigger_chains`, and every triggered job names its chain in its
`trigger` (`chain`). A firing holds that row from its first read until its transaction ends
(a row lock on Postgres; SQLite has one writer at a time), so sibling jobs completing at
once take turns and never both spend the same remaining budget.

The root event's own fan-out writes no row: its jobs carry the number it started
(`chain_jobs`), and the row is created from it when one of them fires in turn. Fan-outs
that go no further (the common case) cost nothing."""

from __future__ import annotations

from typing import Any

from pie.db import database
from pie.ids import uuid7
from pie.tables import TriggerChain, utcnow

CHAIN = "chain"
ROOT_JOBS = "chain_jobs"

_SQL: dict[tuple[str, type], str] = {}


def _sql(name: str) -> str:
    key = (name, type(database.obj))
    sql = _SQL.get(key)
    if sql is None:
        p = database.obj.param
        table = TriggerChain._meta.table_name
        sql = _SQL[key] = {
            # Create the row if this is the chain's first fire past its root, else lock and
            # read it: one statement either way (a no-op DO UPDATE takes the row lock).
            "hold": f'INSERT INTO "{table}" ("chain_id", "jobs", "created_at") '
            f'VALUES ({p}, {p}, {p}) ON CONFLICT ("chain_id") '
            f'DO UPDATE SET "jobs" = "{table}"."jobs" RETURNING "jobs"',
            "add": f'UPDATE "{table}" SET "jobs" = "jobs" + {p} WHERE "chain_id" = {p}',
        }[name]
    return sql


class Budget:
    """What one firing may still start in its chain; call inside the firing's transaction."""

    def __init__(self, parent_trigger: dict[str, Any] | None, limit: int) -> None:
        trigger = parent_trigger or {}
        self.limit = limit
        self.root = trigger.get(CHAIN) is None  # a root event (or a job from before chains)
        self.chain_id: str = trigger.get(CHAIN) or uuid7()
        self.seed = int(trigger.get(ROOT_JOBS) or 0)
        self.used: int | None = 0 if self.root else None  # read on the first take
        self.taken = 0
        self.refused = 0

    def take(self) -> bool:
        """Reserve one job; False when the chain has started `limit` jobs already."""
        if self.used is None:
            created = TriggerChain.created_at.db_value(utcnow())
            row = database.execute_sql(_sql("hold"), [self.chain_id, self.seed, created])
            self.used = int(row.fetchone()[0])
        if self.used + self.taken >= self.limit:
            self.refused += 1
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        """Return a reservation whose job could not be started after all."""
        self.taken -= 1

    def stamp(self, triggers: list[dict[str, Any]]) -> None:
        """Name the chain in each new job's trigger (and, at the root, the jobs started)."""
        for trigger in triggers:
            trigger[CHAIN] = self.chain_id
            if self.root:
                trigger[ROOT_JOBS] = self.taken

    def save(self) -> None:
        """Record what this firing started (the root's count travels in its jobs instead)."""
        if self.taken and not self.root:
            database.execute_sql(_sql("add"), [self.taken, self.chain_id])
