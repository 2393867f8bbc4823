"""Meta-tests: the README documents every hook with its exact signature, and the CI script
runs the README's test command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from pie import hookspecs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


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
    missing = [sig for sig in hook_signatures().values() if f"`{sig}`" not in README]
    assert not missing, f"README lacks these hook signatures: {missing}"


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()
