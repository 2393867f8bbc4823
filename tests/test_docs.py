"""Meta-tests: the README and the plugin guide document every hook with its exact signature,
the guide every HandlerType member and every fixture of pie.testing, and the CI script runs the
README's test command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pie.testing.plugin
from pie import hookspecs
from pie.handler_types import HandlerType

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GUIDE = (ROOT / "docs" / "plugins.md").read_text()


def hook_signatures() -> dict[str, str]:
    found = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("pie_"):
            signature = str(inspect.signature(fn)).replace("'", "")
            found[name] = f"{name}{signature}"
    return found


def test_there_are_hooks():
    assert set(hook_signatures()) >= {
        "pie_register_handler_types",
        "pie_register_in_process_handlers",
    }


def test_every_hook_is_documented_with_its_signature():
    for name, text in (("README", README), ("docs/plugins.md", GUIDE)):
        missing = [sig for sig in hook_signatures().values() if f"`{sig}`" not in text]
        assert not missing, f"{name} lacks these hook signatures: {missing}"


def test_the_guide_documents_every_member_of_handler_type():
    members = [
        name
        for name in [*HandlerType.__annotations__, *vars(HandlerType)]
        if not name.startswith("_") or name == "__init__"
    ]
    assert {"name", "schema", "dispatch", "cancel", "__init__"} <= set(members)
    missing = [name for name in members if f"**`{name}" not in GUIDE]
    assert not missing, f"docs/plugins.md lacks these HandlerType members: {missing}"


def test_the_guide_documents_every_fixture_of_pie_testing():
    fixtures = [
        name
        for name, value in vars(pie.testing.plugin).items()
        if name.startswith("pie_") and "fixture" in type(value).__name__.lower()
    ]
    assert len(fixtures) >= 7, fixtures
    missing = [name for name in fixtures if f"| `{name}` |" not in GUIDE]
    assert not missing, f"docs/plugins.md lacks these pie.testing fixtures: {missing}"


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()
