"""Building the plugin manager (built-ins, entry points, explicit plugins) and collecting types."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

import pluggy
from flask import Flask

from pie import hookspecs
from pie.handler_types import HandlerType

# Built-in plugins, registered exactly as third-party ones are: name -> module.
DEFAULT_PLUGINS: dict[str, str] = {
    "lambda": "plugins.aws_lambda",
    "ecs_task": "plugins.ecs_task",
    "in_process": "plugins.in_process",
}
ENTRY_POINT_GROUP = "pie"


class PluginError(RuntimeError):
    """A plugin set that cannot start: duplicate names, wrong values, misspelled hooks."""


def build_plugin_manager(
    plugins: Iterable[Any] = (), disabled: Iterable[str] = (), entry_points: bool = True
) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS.items():
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        name = getattr(plugin, "name", None) or getattr(plugin, "__name__", None)
        if name is None or not pm.is_blocked(name):
            pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return pm


def collect_handler_types(pm: pluggy.PluginManager, app: Flask) -> dict[str, type[HandlerType]]:
    """Every registered HandlerType by name; duplicates and non-HandlerTypes stop start-up."""
    found: dict[str, type[HandlerType]] = {}
    for result in pm.hook.pie_register_handler_types(app=app):
        for cls in result or ():
            if not (isinstance(cls, type) and issubclass(cls, HandlerType)):
                raise PluginError(f"pie_register_handler_types returned {cls!r}, not a HandlerType")
            if not getattr(cls, "name", None) or not getattr(cls, "schema", None):
                raise PluginError(f"handler type {cls.__name__} needs a `name` and a `schema`")
            if cls.name in found:
                raise PluginError(f"handler type {cls.name!r} is registered twice")
            found[cls.name] = cls
    return found


def collect_in_process_handlers(
    pm: pluggy.PluginManager, app: Flask
) -> dict[str, Callable[[dict[str, Any]], Any]]:
    found: dict[str, Callable[[dict[str, Any]], Any]] = {}
    for result in pm.hook.pie_register_in_process_handlers(app=app):
        for name, fn in (result or {}).items():
            if not callable(fn):
                raise PluginError(f"in-process handler {name!r} is not callable")
            if name in found:
                raise PluginError(f"in-process handler {name!r} is registered twice")
            found[name] = fn
    return found


def describe(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(name, module) of every loaded plugin, for `pie plugins`."""
    return sorted(
        (pm.get_name(p) or "?", getattr(p, "__name__", type(p).__name__)) for p in pm.get_plugins()
    )
