"""Make (or bring up to date) the virtual environment `.venv` in this clone, with PIE and its
client (client/) installed in editable mode; `--test` adds the test dependencies, pinned by
constraints.txt.

    python3 packaging/bootstrap.py && .venv/bin/pie serve
    python3 packaging/bootstrap.py --test && .venv/bin/python -m pytest -q

Only the standard library is used, so it runs on any Python 3.11+, including Debian's and
Ubuntu's own (which refuse `pip install` outside a virtual environment, PEP 668, and often come
without `ensurepip`: then pip itself is fetched from the package index into the environment)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMUM = (3, 11)
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", action="store_true", help="also install the test dependencies")
    parser.add_argument("--path", default=str(ROOT / ".venv"), help="where [default: .venv]")
    args = parser.parse_args()
    if sys.version_info < MINIMUM:
        found = ".".join(map(str, sys.version_info[:3]))
        sys.exit(f"PIE needs Python 3.11 or newer; {sys.executable} is {found}.")
    path = Path(args.path)
    python = path / "bin" / "python"
    if not has_pip(python):
        create(path)
    target = ".[test]" if args.test else "."
    what = "PIE, its client and test dependencies" if args.test else "PIE and its client"
    print(f"installing {what} into {path} (a minute or two the first time)", flush=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # The client distribution (client/, `pie-client`) goes in beside the server: its verbs
    # (`pie login`, `pie models …`) join the server's `pie` command.
    command += ["-e", target, "-e", "./client", *(["-c", "constraints.txt"] if args.test else [])]
    # setuptools warns on every editable install of a project whose packages sit at its top
    # level ("folders … may take precedence during imports"): true of every such project and
    # nothing to act on here, so it is not shown.
    quiet = {**os.environ, "PYTHONWARNINGS": "ignore:Editable installation"}
    status = subprocess.call(command, cwd=ROOT, env=quiet)
    if status == 0:
        print(f"installed; {path}/bin/pie is the pie command", flush=True)
    return status


def has_pip(python: Path) -> bool:
    if not python.exists():
        return False
    probe = [str(python), "-m", "pip", "--version"]
    return subprocess.call(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def has_ensurepip() -> bool:
    """Debian and Ubuntu ship ensurepip separately, in their python3-venv package."""
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        return False
    return True


def create(path: Path) -> None:
    # Symbolic links to the interpreter, as `python3 -m venv` makes them: a system update of
    # Python reaches the environment too.
    symlinks = os.name != "nt"
    if has_ensurepip():
        print(f"creating {path}", flush=True)
        venv.EnvBuilder(clear=True, symlinks=symlinks, with_pip=True).create(path)
        return
    print(f"creating {path} (this Python has no ensurepip: fetching pip from {INDEX})")
    venv.EnvBuilder(clear=True, symlinks=symlinks, with_pip=False).create(path)
    try:
        install_pip(path / "bin" / "python")
    except (OSError, ValueError) as exc:  # URLError is an OSError
        reason = getattr(exc, "reason", exc)
        sys.exit(
            f"could not fetch pip from {INDEX}: {reason}\n"
            "Set PIP_INDEX_URL (and PIP_CERT for a private certificate authority) to an index "
            "you can reach, or install your system's python3-venv package, and run this again."
        )


def install_pip(python: Path) -> None:
    """Install the newest pip wheel from the index into the environment: a pip wheel can run
    itself (`python pip.whl/pip install pip.whl`), so nothing else is needed."""
    wheel_name, url, sha256 = newest_pip_wheel()
    with tempfile.TemporaryDirectory() as folder:
        wheel = Path(folder) / wheel_name
        data = fetch(urllib.request.Request(url))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"the download of {url} does not match its published sha256")
        wheel.write_bytes(data)
        subprocess.check_call(
            [str(python), f"{wheel}/pip", "install", "--quiet", "--no-index", str(wheel)]
        )


def fetch(request: urllib.request.Request) -> bytes:
    """The response body; PIP_CERT names a CA bundle to trust, as it does for pip."""
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        return response.read()


def newest_pip_wheel() -> tuple[str, str, str]:
    """(file name, URL, sha256) of the newest released pip wheel, from the index's JSON simple
    API (PEP 691)."""
    request = urllib.request.Request(f"{INDEX}/pip/", headers={"Accept": SIMPLE_JSON})
    files = json.loads(fetch(request))["files"]
    wheels = [
        (release, f)
        for f in files
        if f["filename"].endswith("-py3-none-any.whl")
        and not f.get("yanked")
        and "sha256" in f.get("hashes", {})
        and (release := release_number(f["filename"].split("-")[1]))
    ]
    _, newest = max(wheels, key=lambda pair: pair[0])
    url = urllib.request.urljoin(f"{INDEX}/pip/", newest["url"])
    return newest["filename"], url, newest["hashes"]["sha256"]


def release_number(version: str) -> tuple[int, ...] | None:
    """(26, 0, 1) for "26.0.1"; None for a pre-release or development version."""
    parts = version.split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else None


if __name__ == "__main__":
    sys.exit(main())
