"""What a plugin author gets wrong, and what PIE says: every start-up refusal names the plugin
(or type) at fault and says what to do; plugin settings reach the handler type from the
environment; a dispatch that never returns cannot hold up shutdown. From a plugin author's
review of the plugin kit (issue 16)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import marshmallow as ma
import pytest

from pie import HandlerType, create_app, hookimpl
from pie.plugin_manager import PluginError
from pie.testing import PieClient


class Schema(ma.Schema):
    queue = ma.fields.String(required=True)


def handler_type(type_name: str = "spool", **attributes: Any) -> type[HandlerType]:
    body = {"name": type_name, "schema": Schema, "dispatch": lambda self, h, job, p: None}
    return type("SpoolType", (HandlerType,), {**body, **attributes})


def plugin(name: str, **hooks: Any) -> Any:
    """A plugin object named `name` whose hooks return what `hooks` gives (marked)."""
    attributes = {
        hook: hookimpl(lambda self, app, value=value: value) for hook, value in hooks.items()
    }
    instance = type(f"Plugin_{name}", (), attributes)()
    instance.name = name
    return instance


def start(pie_make_app: Any, *plugins: Any, **config: Any) -> Any:
    return pie_make_app(config, list(plugins))


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        (
            {"pie_register_handler_types": handler_type()},
            "plugin spooler: pie_register_handler_types returned .*, not a list",
        ),
        (
            {"pie_register_handler_types": [handler_type(schema=Schema())]},
            "plugin spooler: handler type SpoolType: `schema` must be a marshmallow Schema class",
        ),
        (
            {"pie_register_handler_types": [object]},
            "plugin spooler: .* not a HandlerType subclass",
        ),
        (
            {"pie_register_handler_types": [handler_type("http")]},
            "plugin spooler: handler type 'http' is already registered by plugin http",
        ),
        (
            {"pie_register_in_process_handlers": ["echo"]},
            "plugin spooler: pie_register_in_process_handlers returned .*, not a dict",
        ),
        (
            {"pie_register_in_process_handlers": {"echo": lambda job_input: {}}},
            "plugin spooler: in-process handler 'echo' is already registered by plugin in_process",
        ),
    ],
)
def test_a_wrong_registration_stops_start_up_naming_the_plugin(pie_make_app, hooks, message):
    with pytest.raises(PluginError, match=message):
        start(pie_make_app, plugin("spooler", **hooks))


def test_a_hook_that_raises_stops_start_up_naming_the_plugin(pie_make_app):
    class Broken:
        name = "broken"

        @hookimpl
        def pie_register_handler_types(self, app: Any) -> list:
            raise KeyError("SPOOL_DIR")

    with pytest.raises(PluginError, match="plugin broken: pie_register_handler_types raised Key"):
        start(pie_make_app, Broken())


def test_a_hook_without_hookimpl_stops_start_up(pie_make_app):
    class Unmarked:
        name = "unmarked"

        def pie_register_handler_types(self, app: Any) -> list:
            return [handler_type()]

    with pytest.raises(
        PluginError, match="plugin unmarked: pie_register_handler_types is not marked @hookimpl"
    ):
        start(pie_make_app, Unmarked())


def test_a_type_that_cannot_start_names_itself(pie_make_app):
    def connect(self: Any, runtime: Any) -> None:
        raise ConnectionError("spool server down")

    broken = plugin("spooler", pie_register_handler_types=[handler_type(__init__=connect)])

    with pytest.raises(
        PluginError,
        match="handler type 'spool' .* failed to start: ConnectionError: spool server down",
    ):
        start(pie_make_app, broken)


def test_passing_an_installed_plugin_again_says_so(pie_make_app):
    import pie.plugins.http_handler as http

    with pytest.raises(PluginError, match="already registered as 'http'"):
        start(pie_make_app, http)


def test_an_entry_point_that_fails_to_import_names_itself(pie_make_app, tmp_path, monkeypatch):
    """A real installed distribution's metadata (a .dist-info on sys.path) whose `pie` entry
    point names a module that does not exist."""
    info = tmp_path / "pie_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pie-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pie]\nbroken = pie_broken_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(
        PluginError,
        match="plugin entry point broken = pie_broken_missing of "
        "pie-broken failed to load: ModuleNotFoundError",
    ):
        pie_make_app({"PIE_LOAD_ENTRY_POINTS": True})


def test_disabled_plugins_may_be_given_as_the_environment_writes_them(pie_make_app):
    app = pie_make_app({"PIE_DISABLED_PLUGINS": "celery, lambda"})

    assert app.config["PIE_DISABLED_PLUGINS"] == ["celery", "lambda"]
    assert "lambda" not in app.extensions["pie"].handler_types


def test_a_setting_given_as_a_string_is_checked_as_its_variable_is(pie_make_app):
    from pie.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="PIE_JOB_MAX_ATTEMPTS is '0'"):
        pie_make_app({"PIE_JOB_MAX_ATTEMPTS": "0"})


def test_plugin_settings_reach_the_type_from_the_environment(tmp_path, monkeypatch):
    """Any PIE_* variable PIE does not know is a plugin's: it is in runtime.config as is."""
    seen: dict[str, Any] = {}

    def remember(self: Any, runtime: Any) -> None:
        seen["dir"] = runtime.config.get("PIE_SPOOL_DIR")

    monkeypatch.setenv("PIE_SPOOL_DIR", "/var/spool/pie")
    monkeypatch.setenv("PIE_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {"PIE_LOAD_ENTRY_POINTS": False},
        plugins=[plugin("spooler", pie_register_handler_types=[handler_type(__init__=remember)])],
    )
    try:
        assert seen == {"dir": "/var/spool/pie"}
        assert app.config["PIE_SPOOL_DIR"] == "/var/spool/pie"
    finally:
        app.extensions["pie"].close()


def test_a_dispatch_that_never_returns_does_not_hold_up_shutdown(pie_make_app, caplog):
    release = threading.Event()

    def dispatch(self: Any, handler: Any, job: Any, payload: Any) -> None:
        release.wait(60)

    blocked = plugin("spooler", pie_register_handler_types=[handler_type(dispatch=dispatch)])
    app = start(pie_make_app, blocked, PIE_SHUTDOWN_GRACE_SECONDS=1)
    client = PieClient(app)
    from pie.testing import Jobs

    jobs = Jobs(client)
    jobs.register_model({"type": "spool", "queue": "q"})
    jobs.run_inference()
    time.sleep(0.2)  # the dispatch thread is inside dispatch now

    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        app.extensions["pie"].close()
    took = time.monotonic() - began
    release.set()

    assert took < 10, took  # bounded by the 1 s grace, not the 60 s wait
    assert "1 dispatch(es) still running" in caplog.text
