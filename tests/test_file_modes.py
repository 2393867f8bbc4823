"""The files that hold every tenant's data are the owner's alone: the SQLite database, its
-wal and -shm files and the write-lock file are created 0600, the instance folder 0700 when
PIE creates it, whatever the umask; an existing world-readable database is logged."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator

import pytest

import pie
from tests.helpers import Client, model_body


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask of a typical login shell, under which plain files come out 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def make(tmp_path, **extra):
    return pie.create_app(
        {
            "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
            "PIE_DATABASE_URL": "",  # the default: SQLite in the instance folder
            "PIE_LOAD_ENTRY_POINTS": False,
            "PIE_EMBEDDED_WORKER": False,
            **extra,
        }
    )


def test_the_database_and_its_companions_are_owner_only(tmp_path, loose_umask):
    app = make(tmp_path)
    instance = tmp_path / "instance"
    client = Client(app.test_client(), token=None)
    token = app.extensions["pie"].verifier.mint({"scope": "streamline/admin"}, 60)
    assert client.post("/v2/models", json=model_body(), token=token).status_code == 201
    files = sorted(os.listdir(instance))
    assert files == [
        "pie-jwt-secret",
        "pie.sqlite",
        "pie.sqlite-shm",
        "pie.sqlite-wal",
        "pie.sqlite.writelock",
    ]
    assert {name: mode(instance / name) for name in files} == dict.fromkeys(files, 0o600)
    assert mode(instance) == 0o700
    app.extensions["pie"].close()


def test_a_database_folder_pie_creates_is_owner_only(tmp_path, loose_umask):
    """A PIE_DATABASE_URL in a folder of its own (the secret file is created beside it)."""
    app = make(tmp_path, PIE_DATABASE_URL=f"sqlite:///{tmp_path}/data/pie.sqlite")
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "pie.sqlite") == 0o600
    app.extensions["pie"].close()


def test_an_existing_database_keeps_its_mode_and_is_reported(tmp_path, loose_umask, caplog):
    """PIE does not change the mode of a file it did not create (the operator may share it
    on purpose), but says that other users can read it."""
    make(tmp_path).extensions["pie"].close()
    database = tmp_path / "instance" / "pie.sqlite"
    os.chmod(database, 0o644)
    with caplog.at_level(logging.WARNING, logger="pie.db"):
        make(tmp_path).extensions["pie"].close()
    assert mode(database) == 0o644
    assert any(
        "readable or writable by other users (mode 644)" in r.getMessage() for r in caplog.records
    ), caplog.text
