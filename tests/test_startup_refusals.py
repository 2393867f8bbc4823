"""Start-up refuses an HS256 secret shorter than 32 bytes (RFC 7518 section 3.2), from
PIE_JWT_SECRET or from the secret file, with one clear line and nothing created."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

import pie
from tests.server import free_port
from tests.test_cli import pie as run_pie

SHORT = "14-bytes-secre"


def settings(tmp_path: Path, **extra: object) -> dict:
    return {
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_DATABASE_URL": f"sqlite:///{tmp_path}/db/pie.sqlite",
        "PIE_LOAD_ENTRY_POINTS": False,
        "PIE_EMBEDDED_WORKER": False,
        **extra,
    }


@pytest.mark.parametrize(
    ("secret", "size"), [(SHORT, 14), ("s" * 31, 31), ("é" * 15, 30), ("", None)]
)
def test_a_short_secret_is_refused_before_anything_is_created(tmp_path, secret, size):
    if not secret:  # the file PIE reads when PIE_JWT_SECRET is unset
        (tmp_path / "db").mkdir()
        (tmp_path / "db" / "pie-jwt-secret").write_text("short-secret\n")
    with pytest.raises(click.ClickException) as raised:  # pie.config.ConfigurationError
        pie.create_app(settings(tmp_path, PIE_JWT_SECRET=secret or None))
    message = raised.value.message
    assert "at least 32 bytes" in message
    if secret:
        assert message.startswith(f"PIE_JWT_SECRET is {size} bytes long")
        assert not (tmp_path / "db").exists() and not (tmp_path / "instance").exists()
    else:
        assert f"{tmp_path / 'db' / 'pie-jwt-secret'} is 12 bytes long" in message
        assert sorted(os.listdir(tmp_path / "db")) == ["pie-jwt-secret"]


@pytest.mark.parametrize("secret", ["s" * 32, "é" * 16])
def test_a_secret_of_32_bytes_is_accepted(tmp_path, secret):
    app = pie.create_app(settings(tmp_path, PIE_JWT_SECRET=secret))
    app.extensions["pie"].close()


@pytest.mark.parametrize("command", [["serve", "--port"], ["token", "--admin"], ["worker"]])
def test_the_commands_say_so_in_one_line(tmp_path, command):
    if command[-1] == "--port":
        command = [*command, str(free_port())]
    env = {
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_DATABASE_URL": "",
        "PIE_JWT_SECRET": SHORT,
    }
    result = run_pie(command, tmp_path, **env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        "Error: PIE_JWT_SECRET is 14 bytes long; an HS256 secret must be at least 32 bytes "
        "(RFC 7518 section 3.2). Make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("PIE_CLIENT_TIMEOUT_SECONDS", "0", "must be a number of seconds above 0"),
        ("PIE_CLIENT_TIMEOUT_SECONDS", "nan", "must be a number of seconds above 0"),
        ("PIE_SCHEMA_BUDGET_SECONDS", "two", "could not convert string to float"),
        ("PIE_MAX_BODY_BYTES", "1MB", "invalid literal for int()"),
    ],
)
def test_a_setting_pie_cannot_read_is_one_line_naming_it(tmp_path, name, value, why):
    """Was a ValueError traceback from the settings loader."""
    env = {"PIE_INSTANCE_PATH": str(tmp_path / "instance"), "PIE_DATABASE_URL": "", name: value}
    result = run_pie(["serve", "--port", str(free_port())], tmp_path, **env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {name} is {value!r}, which PIE cannot use: ") and why in line
    assert not (tmp_path / "instance").exists()
