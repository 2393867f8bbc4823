"""The CPU budget for JSON Schema work: one per request, shared by all its validations."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_BUDGET_SECONDS = 2.0
# The clock is read every this many units of work: a keyword evaluation is one unit, or one per
# item of the array or object it looks at (some keywords go through all of them).
CLOCK_EVERY = 32


class BudgetExceeded(Exception):
    """The request has spent its schema budget."""


@dataclass
class Budget:
    """CPU seconds of schema evaluation one request may spend, across all its validations."""

    seconds: float = DEFAULT_BUDGET_SECONDS
    spent: float = 0.0
    deadline: float = float("inf")  # thread CPU time at which the running evaluation stops
    ticks: int = 0

    def tick(self, units: int = 1) -> None:
        self.ticks += units
        if self.ticks >= CLOCK_EVERY:
            self.ticks = 0
            if time.thread_time() > self.deadline:
                raise BudgetExceeded

    def remaining(self) -> float:
        return self.deadline - time.thread_time()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if self.deadline != float("inf"):  # inside an evaluation already: it is measuring
            yield
            return
        started = time.thread_time()
        if self.spent >= self.seconds:
            raise BudgetExceeded
        self.deadline = started + self.seconds - self.spent
        try:
            yield
        finally:
            self.spent += time.thread_time() - started
            self.deadline = float("inf")


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("pie_schema_budget")


def start_budget(seconds: float) -> contextvars.Token:
    """Give the current request (or unit of work) a fresh budget; `end_budget` undoes it."""
    return _budget.set(Budget(seconds))


def end_budget(token: contextvars.Token) -> None:
    _budget.reset(token)


@contextlib.contextmanager
def metered() -> Iterator[Budget]:
    """Run an evaluation against the current budget (a fresh default one when none is set)."""
    budget = _budget.get(None)
    token = None if budget is not None else _budget.set(budget := Budget())
    try:
        with budget.running():
            yield budget
    finally:
        if token is not None:
            _budget.reset(token)


def tick(units: int = 1) -> None:
    """Count `units` of work against the current budget (none outside an evaluation)."""
    budget = _budget.get(None)
    if budget is not None:
        budget.tick(units)


def remaining() -> float:
    """CPU seconds left in the running evaluation (infinite outside one)."""
    budget = _budget.get(None)
    return float("inf") if budget is None else budget.remaining()
