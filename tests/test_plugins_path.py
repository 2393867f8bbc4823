"""PIE_PLUGINS_PATH: plugin folders whose modules and packages (and the `pie` entry points of
distributions installed there) are registered like entry-point plugins, named after the
module; broken ones stop start-up naming the file; disabled ones are not even imported."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import pie.cli
from pie.plugin_manager import PluginError, build_plugin_manager, describe
from tests.helpers import SECRET, Client, activate, assert_envelope, model_body, wait_for_job

PLUGIN = """
import marshmallow as ma
from pie import HandlerType, hookimpl


class OutboxSchema(ma.Schema):
    outbox = ma.fields.String(required=True)


class OutboxHandlerType(HandlerType):
    name = "TYPE_NAME"
    schema = OutboxSchema

    def dispatch(self, handler, job, payload):
        return "outbox:" + job.job_id


@hookimpl
def pie_register_handler_types(app):
    return [OutboxHandlerType]


@hookimpl
def pie_register_in_process_handlers(app):
    return {"IMPL_NAME": lambda job_input: {k: str(v).upper() for k, v in job_input.items()}}
"""
EXPLODES = 'raise RuntimeError("this module must not be imported")\n'


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty plugin folder; sys.path and the modules imported from it are restored after."""
    path = tmp_path / "pie-plugins"
    path.mkdir()
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PIE_PLUGINS_PATH", raising=False)
    yield path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(path)):
            del sys.modules[name]


def unique(prefix: str) -> str:
    """Module names are process-wide, so every test uses its own."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_plugin(path: Path, type_name: str = "outbox", impl_name: str = "shout") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLUGIN.replace("TYPE_NAME", type_name).replace("IMPL_NAME", impl_name))
    return path


def both(handler: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"training": handler, "inference": handler}


def test_a_folder_module_registers_a_handler_type_and_an_implementation(
    make_app, folder, monkeypatch
):
    name = unique("outbox_plugin")
    write_plugin(folder / f"{name}.py")
    monkeypatch.setenv("PIE_PLUGINS_PATH", str(folder))
    app = make_app()
    client = Client(app.test_client())

    assert (name, name) in describe(app.extensions["pie"].pm)
    r = client.post(
        "/v2/models", json=model_body(handlers=both({"type": "in_process", "value": "shout"}))
    )
    assert r.status_code == 201, r.get_json()
    activate(client, "m1")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"text": "hi"}})
    job = wait_for_job(client, r.get_json()["inference_job_id"])
    assert job["status"] == "success" and job["output"] == {"text": "HI"}, job
    outbox = {"type": "outbox", "outbox": "scoring"}
    r = client.post("/v2/models", json=model_body("m2", handlers=both(outbox)))
    assert r.status_code == 201, r.get_json()
    r = client.post("/v2/models", json=model_body("m3", handlers=both({"type": "outbox"})))
    assert "outbox" in assert_envelope(r, 400)["message"]  # the plugin's schema applies


def test_pie_plugins_lists_folder_plugins(database_url, folder, tmp_path):
    name = unique("listed_plugin")
    write_plugin(folder / f"{name}.py")
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "PIE_DISABLED_PLUGINS": None,
        "PIE_PLUGINS_PATH": f"{tmp_path / 'empty'}, {folder}",
    }
    (tmp_path / "empty").mkdir()

    result = CliRunner().invoke(pie.cli.main, ["plugins"], env=env)

    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {"name": name, "module": name} in listed["plugins"]
    assert listed["handler_types"] == [
        "celery",
        "ecs_task",
        "http",
        "in_process",
        "lambda",
        "outbox",
    ]
    assert listed["in_process_handlers"] == ["echo", "shout"]


def test_packages_load_and_private_modules_and_other_files_do_not(folder):
    name = unique("packaged_plugin")
    write_plugin(folder / name / "__init__.py")
    (folder / "_helper.py").write_text(EXPLODES)
    (folder / "not-a-module-name.py").write_text(EXPLODES)
    (folder / "notes.txt").write_text(EXPLODES)
    (folder / "no_init").mkdir()
    (folder / "no_init" / "module.py").write_text(EXPLODES)

    pm = build_plugin_manager(entry_points=False, plugins_path=[str(folder)])

    assert [n for n, _ in describe(pm)] == sorted(
        ["celery", "ecs_task", "http", "in_process", "lambda", name]
    )
    assert pm.get_plugin(name).__file__ == str(folder / name / "__init__.py")


@pytest.mark.parametrize(
    "source",
    ["raise RuntimeError('boom at import')\n", "def broken(:\n", "import pie_no_such_module\n"],
    ids=["raises", "syntax-error", "missing-import"],
)
def test_a_module_that_fails_to_import_stops_start_up_naming_the_file(
    make_app, folder, monkeypatch, source
):
    path = folder / f"{unique('broken')}.py"
    path.write_text(source)
    monkeypatch.setenv("PIE_PLUGINS_PATH", str(folder))

    with pytest.raises(PluginError) as excinfo:
        make_app()

    assert str(path) in str(excinfo.value)


def test_a_hook_with_a_wrong_signature_stops_start_up_naming_the_file(folder):
    path = folder / f"{unique('wrong_signature')}.py"
    path.write_text(
        "from pie import hookimpl\n\n"
        "@hookimpl\n"
        "def pie_register_handler_types(app, surplus):\n"
        "    return []\n"
    )

    with pytest.raises(PluginError, match="surplus") as excinfo:
        build_plugin_manager(entry_points=False, plugins_path=[str(folder)])

    assert str(path) in str(excinfo.value)


def test_a_disabled_folder_plugin_is_skipped_without_being_imported(make_app, folder, monkeypatch):
    broken, working = unique("disabled_broken"), unique("disabled_working")
    (folder / f"{broken}.py").write_text(EXPLODES)
    write_plugin(folder / f"{working}.py")
    monkeypatch.setenv("PIE_PLUGINS_PATH", str(folder))

    app = make_app({"PIE_DISABLED_PLUGINS": [broken, working]})

    assert broken not in sys.modules and working not in sys.modules
    runtime = app.extensions["pie"]
    assert sorted(runtime.handler_types) == ["celery", "ecs_task", "http", "in_process", "lambda"]
    assert sorted(runtime.in_process_handlers) == ["echo"]


@pytest.mark.parametrize("name", ["json", "in_process"], ids=["stdlib-module", "built-in-plugin"])
def test_a_name_already_taken_stops_start_up_naming_the_file(folder, name):
    path = write_plugin(folder / f"{name}.py")

    with pytest.raises(PluginError, match=name) as excinfo:
        build_plugin_manager(entry_points=False, plugins_path=[str(folder)])

    assert str(path) in str(excinfo.value)


def test_a_name_in_two_folders_stops_start_up(folder):
    name = unique("twice")
    write_plugin(folder / "a" / f"{name}.py")
    write_plugin(folder / "b" / f"{name}.py", type_name="other", impl_name="other")

    with pytest.raises(PluginError, match="already registered") as excinfo:
        build_plugin_manager(plugins_path=[str(folder / "a"), str(folder / "b")])

    assert str(folder / "b" / f"{name}.py") in str(excinfo.value)


def test_distributions_installed_in_a_folder_load_their_entry_points_only(folder):
    """`pip install --target FOLDER pie-acme` leaves the plugin, its dependencies and their
    *.dist-info; only the `pie` entry points become plugins, not every module there."""
    package, dependency = unique("pie_acme"), unique("acme_dependency")
    write_plugin(folder / package / "__init__.py", type_name="acme", impl_name="acme_shout")
    (folder / f"{dependency}.py").write_text(EXPLODES)
    plugin_info = folder / "pie_acme-1.0.dist-info"
    plugin_info.mkdir()
    (plugin_info / "METADATA").write_text("Metadata-Version: 2.1\nName: pie-acme\nVersion: 1.0\n")
    (plugin_info / "entry_points.txt").write_text(f"[pie]\nacme = {package}\n")
    (plugin_info / "top_level.txt").write_text(f"{package}\n")
    dependency_info = folder / "acme_dependency-2.0.dist-info"
    dependency_info.mkdir()
    (dependency_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-dependency\nVersion: 2.0\n"
    )
    (dependency_info / "RECORD").write_text(
        f"{dependency}.py,,\nacme_dependency-2.0.dist-info/METADATA,,\n"
    )

    pm = build_plugin_manager(entry_points=False, plugins_path=[str(folder)])

    assert [n for n, _ in describe(pm)] == [
        "acme",
        "celery",
        "ecs_task",
        "http",
        "in_process",
        "lambda",
    ]
    assert ("acme", package) in describe(pm)
    assert dependency not in sys.modules


def test_a_folder_that_does_not_exist_stops_start_up(tmp_path, folder):
    missing = tmp_path / "no-such-folder"

    with pytest.raises(PluginError, match=str(missing)):
        build_plugin_manager(entry_points=False, plugins_path=[str(missing)])
