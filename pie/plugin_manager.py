"""Building the plugin manager (built-ins, plugin folders, entry points, explicit plugins) and
collecting types."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import marshmallow as ma
import pluggy
from flask import Flask

from pie import hookspecs
from pie.handler_types import HandlerType

# Built-in plugins, registered exactly as third-party ones are: name -> module.
DEFAULT_PLUGINS: dict[str, str] = {
    "lambda": "pie.plugins.aws_lambda",
    "ecs_task": "pie.plugins.ecs_task",
    "in_process": "pie.plugins.in_process",
    "http": "pie.plugins.http_handler",
    "celery": "pie.plugins.celery_handler",  # offers its type only with the `celery` extra
}
ENTRY_POINT_GROUP = "pie"


class PluginError(RuntimeError):
    """A plugin set that cannot start: duplicate names, wrong values, misspelled hooks."""


def build_plugin_manager(
    plugins: Iterable[Any] = (),
    disabled: Iterable[str] = (),
    entry_points: bool = True,
    plugins_path: Iterable[str] | None = None,
) -> pluggy.PluginManager:
    """Built-ins, then the plugin folders (`plugins_path`, by default PIE_PLUGINS_PATH from the
    environment), then entry points, then `plugins`; disabled names are skipped everywhere."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS.items():
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    if plugins_path is None:
        from pie import config

        plugins_path = config.load()["PIE_PLUGINS_PATH"]
    load_plugin_folders(pm, plugins_path)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.metadata["Name"] if ep.dist else "an installed distribution"
            _register(pm, ep.name, f"entry point {ep.name} = {ep.value} of {dist}", ep.load)
    for plugin in plugins:
        name = getattr(plugin, "name", None) or getattr(plugin, "__name__", None)
        if name is None or not pm.is_blocked(name):
            where = f"{name or plugin!r} passed to create_app"
            _register(pm, name, where, lambda plugin=plugin: plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    check_unmarked(pm)
    return pm


def check_unmarked(pm: pluggy.PluginManager) -> None:
    """A plugin defining a hook function without @hookimpl would be silently ignored."""
    hooks = {name for name in vars(hookspecs) if name.startswith("pie_")}
    for plugin in pm.get_plugins():
        for attr in sorted(hooks):
            fn = getattr(plugin, attr, None)
            if callable(fn) and pm.parse_hookimpl_opts(plugin, attr) is None:
                raise PluginError(
                    f"plugin {pm.get_name(plugin)}: {attr} is not marked @hookimpl "
                    "(from pie import hookimpl), so PIE would never call it"
                )


def load_plugin_folders(pm: pluggy.PluginManager, folders: Iterable[str]) -> None:
    """Register what each folder holds: the `pie` entry points of distributions installed there
    (`pip install --target FOLDER ...`) and every other top-level module or package (`*.py`,
    `name/__init__.py`), named after the module. Works the same inside the single binary."""
    folders = [os.path.abspath(folder) for folder in folders]
    for folder in folders:
        if not os.path.isdir(folder):
            raise PluginError(f"plugin folder {folder} (PIE_PLUGINS_PATH) is not a directory")
        if folder not in sys.path:
            # Appended, so a plugin module never shadows PIE's own or the standard library's.
            sys.path.append(folder)
    importlib.invalidate_caches()  # the folders may have changed since the last import
    for folder in folders:
        installed: set[str] = set()
        for dist in importlib.metadata.distributions(path=[folder]):
            installed |= _top_level_names(dist)
            for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
                where = f"entry point {ep.value} of {dist.metadata['Name']} in {folder}"
                _register(pm, ep.name, where, ep.load)
        for name, path in _plugin_modules(folder):
            if name not in installed:
                _register(pm, name, path, lambda name=name, path=path: _import(name, path))


def _plugin_modules(folder: str) -> Iterator[tuple[str, str]]:
    """(module name, file) of each top-level module and package in `folder`, by name."""
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        name, ext = os.path.splitext(entry)
        if os.path.isdir(path):
            name, path = entry, os.path.join(path, "__init__.py")
            if not os.path.isfile(path):
                continue
        elif ext != ".py":
            continue
        if name.isidentifier() and not name.startswith("_"):
            yield name, path


def _top_level_names(dist: importlib.metadata.Distribution) -> set[str]:
    """The top-level modules a distribution installed, so they are not loaded as plugins."""
    names = set((dist.read_text("top_level.txt") or "").split())
    for file in dist.files or ():
        top = file.parts[0]
        names.add(top[: -len(".py")] if top.endswith(".py") else top)
    return names


def _import(name: str, path: str) -> Any:
    module = importlib.import_module(name)
    found = getattr(module, "__file__", None)
    if not (found and os.path.exists(found) and os.path.samefile(found, path)):
        raise PluginError(
            f"plugin {path}: the module name {name!r} is already taken by {found}; rename it"
        )
    return module


def _register(
    pm: pluggy.PluginManager, name: str | None, where: str, load: Callable[[], Any]
) -> None:
    """Import and register one plugin; any failure names it."""
    if name is not None and pm.is_blocked(name):
        return  # disabled: not even imported
    if name is not None and pm.has_plugin(name):
        raise PluginError(f"plugin {where}: the name {name!r} is already registered")
    try:
        plugin = load()
        if pm.is_registered(plugin):
            raise PluginError(
                f"plugin {where}: already registered as {pm.get_name(plugin)!r} (installed "
                "plugins load through their entry point; do not pass them again)"
            )
        pm.register(plugin, name=name)
    except PluginError:
        raise
    except Exception as exc:  # an import error, a broken hook signature, a duplicate module
        raise PluginError(f"plugin {where} failed to load: {type(exc).__name__}: {exc}") from exc


def _results(pm: pluggy.PluginManager, hook: str, app: Flask) -> Iterator[tuple[str, Any]]:
    """(plugin name, result) of each implementation of `hook`, in registration order; an
    implementation that raises stops start-up naming its plugin."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            result = impl.function(*[{"app": app}[arg] for arg in impl.argnames])
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name}: {hook} raised {type(exc).__name__}: {exc}"
            ) from exc
        yield impl.plugin_name, result


def collect_handler_types(pm: pluggy.PluginManager, app: Flask) -> dict[str, type[HandlerType]]:
    """Every registered HandlerType by name; duplicates and non-HandlerTypes stop start-up,
    naming the plugin."""
    found: dict[str, type[HandlerType]] = {}
    owners: dict[str, str] = {}
    for plugin, result in _results(pm, "pie_register_handler_types", app):
        if not isinstance(result, list | tuple | type(None)):
            raise PluginError(
                f"plugin {plugin}: pie_register_handler_types returned {result!r}, "
                "not a list of HandlerType classes"
            )
        for cls in result or ():
            check_handler_type(plugin, cls)
            if cls.name in found:
                raise PluginError(
                    f"plugin {plugin}: handler type {cls.name!r} is already registered by "
                    f"plugin {owners[cls.name]}"
                )
            found[cls.name], owners[cls.name] = cls, plugin
    return found


def check_handler_type(plugin: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, HandlerType)):
        raise PluginError(
            f"plugin {plugin}: pie_register_handler_types returned {cls!r}, not a HandlerType "
            "subclass"
        )
    if not getattr(cls, "name", None) or not getattr(cls, "schema", None):
        raise PluginError(
            f"plugin {plugin}: handler type {cls.__name__} needs a `name` and a `schema`"
        )
    if not (isinstance(cls.schema, type) and issubclass(cls.schema, ma.Schema)):
        raise PluginError(
            f"plugin {plugin}: handler type {cls.__name__}: `schema` must be a marshmallow "
            f"Schema class, not {cls.schema!r}"
        )
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(
            f"plugin {plugin}: handler type {cls.__name__} does not implement {missing}"
        )


def collect_in_process_handlers(
    pm: pluggy.PluginManager, app: Flask
) -> dict[str, Callable[[dict[str, Any]], Any]]:
    found: dict[str, Callable[[dict[str, Any]], Any]] = {}
    owners: dict[str, str] = {}
    for plugin, result in _results(pm, "pie_register_in_process_handlers", app):
        if not isinstance(result, dict | type(None)):
            raise PluginError(
                f"plugin {plugin}: pie_register_in_process_handlers returned {result!r}, "
                "not a dict of name: callable"
            )
        for name, fn in (result or {}).items():
            if not callable(fn):
                raise PluginError(f"plugin {plugin}: in-process handler {name!r} is not callable")
            if name in found:
                raise PluginError(
                    f"plugin {plugin}: in-process handler {name!r} is already registered by "
                    f"plugin {owners[name]}"
                )
            found[name], owners[name] = fn, plugin
    return found


def describe(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(name, module) of every loaded plugin, for `pie plugins`."""
    return sorted(
        (pm.get_name(p) or "?", getattr(p, "__name__", type(p).__name__)) for p in pm.get_plugins()
    )
