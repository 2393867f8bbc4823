"""Trigger chains: every job one root event causes, across the whole chain of completions and
transitions that follows it, counts against a budget of PIE_MAX_TRIGGERED_JOBS — one budget
per owner of the subscriptions that start them (each client's own, and the global ones), so
no client's subscriptions can spend what the others' need.

A chain spans many transactions (each completion fires the next level), so the counts live
in rows of `trigger_budgets`, one per chain and owner, and every triggered job names its
chain in its `trigger` (`chain`). A firing holds the rows of the owners it needs, in the
owners' order, from its first read until its transaction ends (row locks on Postgres;
SQLite has one writer at a time), so sibling jobs completing at once take turns and never
both spend the same remaining budget.

The root event's own fan-out of global subscriptions writes no row: its jobs, and every job
after them in the chain, carry the number it started (`chain_jobs`), and the global row is
created from it when the chain goes on. Fan-outs of global subscriptions that go no further
(the common case) cost nothing; a root that starts a client's jobs, or is refused any,
writes that owner's row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pie.db import database
from pie.ids import uuid7
from pie.tables import TriggerBudget, utcnow

CHAIN = "chain"
ROOT_JOBS = "chain_jobs"
GLOBAL = ""  # the owner of the global subscriptions

_SQL: dict[tuple[str, type], str] = {}


def _sql(name: str) -> str:
    key = (name, type(database.obj))
    sql = _SQL.get(key)
    if sql is None:
        p = database.obj.param
        table = TriggerBudget._meta.table_name
        columns = '"chain_id", "owner", "jobs", "refused", "created_at"'
        sql = _SQL[key] = {
            # Create the row if this is the owner's first fire in the chain, else lock and
            # read it: one statement either way (a no-op DO UPDATE takes the row lock).
            "hold": f'INSERT INTO "{table}" ({columns}) VALUES ({p}, {p}, {p}, 0, {p}) '
            f'ON CONFLICT ("chain_id", "owner") DO UPDATE SET "jobs" = "{table}"."jobs" '
            'RETURNING "jobs", "refused"',
            "add": f'UPDATE "{table}" SET "jobs" = "jobs" + {p}, "refused" = "refused" + {p} '
            f'WHERE "chain_id" = {p} AND "owner" = {p}',
            "insert": f'INSERT INTO "{table}" ({columns}) VALUES ({p}, {p}, {p}, {p}, {p})',
        }[name]
    return sql


class Budget:
    """What one firing may still start in its chain, per owner of subscriptions; call
    inside the firing's transaction: `hold` the owners it needs, then `take` per job."""

    def __init__(self, parent_trigger: dict[str, Any] | None, limit: int) -> None:
        trigger = parent_trigger or {}
        self.limit = limit
        self.root = trigger.get(CHAIN) is None  # a root event (or a job from before chains)
        self.chain_id: str = trigger.get(CHAIN) or uuid7()
        self.seed = int(trigger.get(ROOT_JOBS) or 0)  # the root's global jobs
        self.used: dict[str, int] = {}  # owner -> jobs its subscriptions started before
        self.refused_before: dict[str, int] = {}
        self.taken: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def hold(self, owners: Iterable[str]) -> None:
        """Read, and hold until the transaction ends, the owners' counts — in the owners'
        order, so firings that need several rows never wait on each other in a cycle."""
        created = TriggerBudget.created_at.db_value(utcnow())
        for owner in sorted(set(owners) - set(self.used)):
            if self.root:
                self.used[owner], self.refused_before[owner] = 0, 0
                continue
            seed = self.seed if owner == GLOBAL else 0  # a client's root jobs have its row
            row = database.execute_sql(_sql("hold"), [self.chain_id, owner, seed, created])
            self.used[owner], self.refused_before[owner] = (int(n) for n in row.fetchone())

    def take(self, owner: str) -> bool:
        """Reserve one job of the owner's (held); False when its subscriptions have started
        `limit` jobs in this chain already."""
        if self.used[owner] + self.taken[owner] >= self.limit:
            self.refused[owner] += 1
            return False
        self.taken[owner] += 1
        return True

    def give_back(self, owner: str) -> None:
        """Return a reservation whose job could not be started after all."""
        self.taken[owner] -= 1

    def stamp(self, triggers: list[dict[str, Any]]) -> None:
        """Name the chain in each new job's trigger, with the root's global count."""
        root_jobs = self.taken[GLOBAL] if self.root else self.seed
        for trigger in triggers:
            trigger[CHAIN] = self.chain_id
            trigger[ROOT_JOBS] = root_jobs

    def save(self) -> None:
        """Record what this firing started and was refused, per owner (the root's global
        count travels in its jobs instead, unless it was refused some)."""
        for owner in sorted(set(self.taken) | set(self.refused)):
            taken, refused = self.taken[owner], self.refused[owner]
            if self.root and (owner != GLOBAL or refused):
                created = TriggerBudget.created_at.db_value(utcnow())
                params = [self.chain_id, owner, taken, refused, created]
                database.execute_sql(_sql("insert"), params)
            elif not self.root and (taken or refused):
                database.execute_sql(_sql("add"), [taken, refused, self.chain_id, owner])

    def first_refusals(self) -> dict[str, int]:
        """{owner: refused} for the owners whose budget this firing found spent for the
        first time in the chain (a chain's spent budget is worth one warning, not one per
        firing that finds it spent)."""
        return {
            owner: n for owner, n in self.refused.items() if n and not self.refused_before[owner]
        }
