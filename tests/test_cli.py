"""The `pie` command as a user meets it, run as a real process: help and version without
side effects or the app's imports, scopes checked, and `pie serve` saying where it listens
(a banner on a terminal, a JSON line otherwise) or why it cannot."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from flask import Flask

from pie import config, logs, scopes
from tests.server import free_port

PIE = str(Path(sys.executable).with_name("pie"))  # the installed console script
HEAVY = ("flask", "werkzeug", "peewee", "marshmallow", "boto3", "gunicorn", "jsonschema")


def pie(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the installed `pie` command (the console script beside this Python)."""
    command = [PIE, *args]
    environ = {**os.environ, **env}
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def isolated(tmp_path: Path) -> dict[str, str]:
    """Settings that point every file PIE could create into tmp_path/instance."""
    return {"PIE_INSTANCE_PATH": str(tmp_path / "instance"), "PIE_DATABASE_URL": ""}


def test_help_lists_pies_commands_and_none_of_flasks(empty, tmp_path):
    result = pie(["--help"], empty, **isolated(tmp_path))
    assert result.returncode == 0, result.stderr
    for command in ("serve", "worker", "token", "db", "plugins", "openapi"):
        assert f"\n  {command} " in result.stdout
    for flask_option in ("--env-file", "--app", "--debug", "list-config-prefixes"):
        assert flask_option not in result.stdout
    assert result.stderr == ""  # no migration lines, no log lines


def test_version_is_the_installed_distributions(empty, tmp_path):
    for flag in ("--version", "-V"):
        result = pie([flag], empty, **isolated(tmp_path))
        assert result.returncode == 0
        assert result.stdout == f"pie {version('pie-registry')}\n"


def test_help_version_and_token_create_nothing(empty, tmp_path):
    env = {**isolated(tmp_path), "PIE_JWT_SECRET": "s" * 48}
    for args in (["--help"], ["--version"], ["token", "--help"], ["token", "--admin"]):
        result = pie(args, empty, **env)
        assert result.returncode == 0, (args, result.stderr)
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["token", "--admin"]])
def test_quick_commands_do_not_import_the_app(args, empty, tmp_path):
    """What makes them instant: none of the heavy libraries is imported (the timing itself is
    bench/cli.py's job)."""
    probe = (
        "import sys\n"
        "from pie.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    env = {**os.environ, **isolated(tmp_path), "PIE_JWT_SECRET": "s" * 48}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=empty, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_token_rejects_an_unknown_scope_and_names_the_valid_ones(empty, tmp_path):
    result = pie(["token", "--scope", "bogus"], empty, PIE_JWT_SECRET="s" * 48)
    assert result.returncode == 2
    assert "unknown scope 'bogus'" in result.stderr
    assert all(name in result.stderr for name in scopes.GRANTS)
    assert result.stdout == ""


def test_token_help_lists_every_scope_with_what_it_grants(empty):
    result = pie(["token", "--help"], empty)
    for name, grants in scopes.GRANTS.items():
        assert f"{name:<15} {grants}" in result.stdout


def test_token_accepts_scopes_with_and_without_their_prefix(empty):
    import jwt

    secret = "s" * 48
    result = pie(
        ["token", "--scope", "read_models", "--scope", "streamline/run_training"],
        empty,
        PIE_JWT_SECRET=secret,
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["scope"] == "streamline/read_models streamline/run_training"


def test_the_default_instance_folder_is_flasks():
    """config.default_instance_path works out Flask's default without building an app."""
    assert config.default_instance_path() == Flask("pie").instance_path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://pie:s3cret@db:5432/pie", "postgresql://pie:***@db:5432/pie"),
        ("postgresql://db/pie", "postgresql://db/pie"),
        ("sqlite:////srv/pie.sqlite", "sqlite:////srv/pie.sqlite"),
    ],
)
def test_a_printed_database_url_hides_its_password(url, shown):
    assert config.redacted_url(url) == shown


def test_logs_are_text_on_a_terminal_and_json_elsewhere():
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.default_format(Terminal()) == "text"
    assert logs.default_format(io.StringIO()) == "json"


# --- pie serve ------------------------------------------------------------------------------


def serve_env(tmp_path: Path) -> dict[str, str]:
    return {**isolated(tmp_path), "PIE_EMBEDDED_WORKER": "0", "PIE_LOG_FORMAT": ""}


def test_a_busy_port_is_one_clear_error(tmp_path, empty):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = pie(["serve", "--port", str(port)], empty, **serve_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: the port is already in use (another pie "
        "serve?). Stop that program or choose another --port."
    )
    assert time.monotonic() - started < 20  # no gunicorn retry loop (five 1 s retries)
    assert not (tmp_path / "instance").exists()  # checked before anything was created


def test_an_unknown_host_is_one_clear_error(tmp_path, empty):
    result = pie(["serve", "--host", "no-such-host.invalid"], empty, **serve_env(tmp_path))
    assert result.returncode == 1
    assert "cannot listen on no-such-host.invalid:8000: unknown address" in result.stderr


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_serve_logs_where_it_listens_as_json_off_a_terminal(tmp_path, empty):
    """Also: without --workers, one worker process per CPU core plus one."""
    port = free_port()
    proc = subprocess.Popen(
        [PIE, "serve", "--port", str(port)],
        cwd=empty,
        env={**os.environ, **serve_env(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = None
        while line is None and time.monotonic() < deadline:
            raw = proc.stderr.readline()
            assert raw, "pie serve exited before it listened"
            record = json.loads(raw)  # every line is JSON
            if record["message"].startswith("listening on"):
                line = record
    finally:
        stop(proc)
    url = f"http://127.0.0.1:{port}"
    assert line["url"] == url and line["docs_url"] == f"{url}/docs"
    assert line["console_url"] == f"{url}/ui"
    assert line["database"] == f"sqlite:///{tmp_path}/instance/pie.sqlite"
    assert line["bind"] == f"127.0.0.1:{port}"
    assert line["workers"] == (os.cpu_count() or 1) + 1 and line["threads"] == 4


def test_serve_shows_a_banner_on_a_terminal(tmp_path, empty):
    port = free_port()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [PIE, "serve", "--port", str(port), "--workers", "1"],
        cwd=empty,
        env={**os.environ, **serve_env(tmp_path)},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Press Ctrl+C to stop." not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    seen += os.read(leader, 4096)
                except OSError:  # the terminal closed: pie serve ended
                    break
    finally:
        stop(proc)
        os.close(leader)
    text = seen.decode().replace("\r\n", "\n")
    url = f"http://127.0.0.1:{port}"
    assert f"is listening on {url}" in text, text
    assert f"API docs   {url}/docs" in text
    assert f"console    {url}/ui" in text
    assert f"database   sqlite:///{tmp_path}/instance/pie.sqlite" in text
    assert not any(line.startswith("{") for line in text.splitlines())  # text logs, not JSON


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_a_port_out_of_range_is_refused_before_anything_is_created(port, tmp_path, empty):
    result = pie(["serve", "--port", port], empty, **serve_env(tmp_path))
    assert result.returncode == 2
    assert f"Invalid value for '--port': {port} is not in the range 1<=x<=65535" in result.stderr
    assert not (tmp_path / "instance").exists()
