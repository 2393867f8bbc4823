"""The hookspec/hookimpl markers and the pie_* hook specifications, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from flask import Flask

    from pie.handler_types import HandlerType

hookspec = pluggy.HookspecMarker("pie")
hookimpl = pluggy.HookimplMarker("pie")


@hookspec
def pie_register_handler_types(app: Flask) -> list[type[HandlerType]]:
    """Return HandlerType classes; each `name` becomes a handler `type` value."""


@hookspec
def pie_register_in_process_handlers(app: Flask) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Return `{name: callable}`; the callable takes the job input and returns a JSON object."""
