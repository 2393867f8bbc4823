"""What an install of PIE puts into site-packages: one top-level import name, `pie` (the
repository's plugins/ and schemas/ are installed as pie.plugins and pie.schemas)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_FOLDERS = (".git", ".venv", "build", "dist", "instance", "*.egg-info", "__pycache__")
# Where each folder of the repository is installed.
INSTALLED_AS = {"pie": "pie", "schemas": "pie/schemas", "plugins": "pie/plugins"}


def source_modules() -> set[str]:
    """Every Python file of the repository's installed folders, by its path in a wheel."""
    return {
        f"{INSTALLED_AS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in INSTALLED_AS
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_the_wheel_claims_only_the_pie_import_name(tmp_path):
    # Built from a copy: pip builds in the source tree, which must stay as it was.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_FOLDERS))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("pie_registry-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    folders = {name.split("/")[0] for name in names}
    top_level = {folder for folder in folders if not folder.endswith(".dist-info")}
    assert top_level == {"pie"}
    # Every module, packages added later included (setup.cfg lists packages one by one).
    assert source_modules() - set(names) == set()
    assert "pie/schemas/common.py" in names
    assert "pie/plugins/aws_lambda.py" in names
    assert "pie/static/swagger-ui/swagger-ui-bundle.js" in names  # the /docs page's assets
    assert "pie/console/static/htmx.min.js" in names  # the console's files and templates
    assert "pie/console/templates/base.html" in names
    assert not [name for name in names if name.endswith(".map")]
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_the_repository_folders_import_under_pie():
    import pie.plugins.in_process
    import pie.schemas.common

    assert Path(pie.schemas.common.__file__).parent == ROOT / "schemas"
    assert Path(pie.plugins.in_process.__file__).parent == ROOT / "plugins"


def test_no_module_imports_the_source_trees_top_level_names():
    """schemas/ and plugins/ are pie.schemas and pie.plugins once installed: an import of the
    bare names works from a checkout's root and nowhere else."""
    import re

    root = Path(__file__).resolve().parent.parent
    bare = re.compile(r"^\s*(from|import)\s+(schemas|plugins)(\.|\s|$)", re.M)
    offenders = [
        str(path.relative_to(root))
        for folder in ("pie", "plugins", "schemas")
        for path in (root / folder).rglob("*.py")
        if bare.search(path.read_text())
    ]
    assert not offenders, offenders
