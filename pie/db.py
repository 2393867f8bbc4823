"""The database: a peewee proxy chosen by URL, per-request connections, migrations."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import click
import peewee
from flask import Flask
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from pie.config import sqlite_path
from pie.writer_lock import WriterLock

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()
MIN_SQLITE = (3, 35)

# SQLite: WAL lets readers run beside one writer; the busy timeout makes writers queue instead
# of failing; IMMEDIATE transactions take the write lock up front, so two writers never
# deadlock upgrading a read lock.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 30000,
    # An INSERT OR REPLACE's implicit delete then fires delete triggers (the row counters').
    "recursive_triggers": 1,
}


# Statements that never write; any other outside a transaction takes the write locks.
_READS = ("SELECT", "PRAGMA", "EXPLAI")


class SerializedSqliteDatabase(PooledSqliteDatabase):
    """SQLite with write transactions queued on locks that wake the next writer at once.

    SQLite admits one writer; a second one waits in SQLite's busy handler, which polls with
    sleeps of up to 100 ms, so under load most of a writer's time is spent asleep. Here the
    threads of a process queue on a Python lock (pie/writer_lock.py: a job's start and its
    completion ahead of new work) and the processes on an flock() of a file beside the
    database; the busy handler remains for anything else writing the file."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._lock_path = f"{database}.writelock" if database != ":memory:" else None
        self._writer = WriterLock()
        self._holding = threading.local()
        self._lock_file: tuple[int, int] | None = None  # (pid, fd): reopened after a fork

    def _lock_fd(self) -> int | None:
        if self._lock_path is None:
            return None
        if self._lock_file is None or self._lock_file[0] != os.getpid():
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_file = (os.getpid(), fd)
            # Closed with the database object: a process that opens many databases (a test
            # suite, one app after another) would otherwise run out of descriptors.
            weakref.finalize(self, os.close, fd)
        return self._lock_file[1]

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """A write outside a transaction (an autocommit UPDATE: a claim, a lease renewal)
        queues on the same locks as a transaction, not in SQLite's sleeping busy handler."""
        if self.in_transaction() or sql.lstrip()[:6].upper() in _READS:
            return super().execute_sql(sql, params)
        self._acquire()
        try:
            return super().execute_sql(sql, params)
        finally:
            self._release()

    def _acquire(self) -> None:
        self._writer.acquire()
        try:
            fd = self._lock_fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._writer.release()
            raise
        self._holding.value = fd if fd is not None else -1

    def begin(self, lock_type: str | None = None) -> None:
        self._acquire()
        try:
            super().begin(lock_type)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        fd = getattr(self._holding, "value", None)
        if fd is None:
            return
        self._holding.value = None
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._writer.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()


def open_database(url: str, max_connections: int = 32) -> peewee.Database:
    """Build (not connect) the database named by a `sqlite:///…` or `postgresql://…` URL."""
    parsed = urlparse(url)
    pool = {"max_connections": max_connections, "stale_timeout": 300, "timeout": 30}
    if parsed.scheme == "sqlite":
        if peewee.sqlite3.sqlite_version_info < MIN_SQLITE:  # the library peewee uses
            raise click.UsageError(
                f"SQLite {peewee.sqlite3.sqlite_version} is too old: PIE needs 3.35 or newer "
                "(UPDATE … RETURNING)"
            )
        path = sqlite_path(url)
        if not path:
            raise click.UsageError(f"unsupported SQLite URL {url!r}: use sqlite:///path")
        if path != ":memory:":
            create_private_file(path)
        return SerializedSqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            lock_type="IMMEDIATE",
            check_same_thread=False,
            **pool,
        )
    if parsed.scheme in ("postgres", "postgresql"):
        return PooledPostgresqlDatabase(
            unquote(parsed.path.lstrip("/")),
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname,
            port=parsed.port,
            **{"connect_timeout": 5, **dict(parse_qsl(parsed.query))},  # e.g. sslmode, options
            **pool,
        )
    raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")


def create_private_file(path: str) -> None:
    """Create the SQLite file empty and owner-only (0600), in a folder created owner-only
    (0700), before SQLite opens it: the file holds every tenant's data, and SQLite gives its
    -wal and -shm files the database file's mode. An existing file keeps its mode; one that
    other users can read is logged."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if mode & 0o077:
        log.warning(
            "the database file %s is readable or writable by other users (mode %o); "
            "`chmod 600` it and its -wal and -shm files",
            path,
            mode & 0o777,
        )


@contextmanager
def connection() -> Iterator[None]:
    """A connection for a background thread: opened if needed, closed only if opened here."""
    opened = database.is_closed()
    if opened:
        database.connect()
    try:
        yield
    finally:
        if opened and not database.is_closed():
            database.close()


def close_all() -> None:
    """Close every pooled connection (app shutdown, tests)."""
    if database.obj is not None:
        database.close_all() if hasattr(database.obj, "close_all") else database.close()


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def transaction() -> Any:
    """A transaction, or nothing when one is already open: joining the caller's transaction
    costs no SAVEPOINT statements, and any error still rolls the whole of it back."""
    return database.atomic() if not database.in_transaction() else contextlib.nullcontext()


def init_app(app: Flask) -> None:
    """Bind the proxy to this app's database and close each request's connection."""
    url = app.config["PIE_DATABASE_URL"]
    database.initialize(open_database(url, app.config["PIE_DB_MAX_CONNECTIONS"]))

    # Connections open lazily on the first query (peewee's autoconnect), so a request that
    # needs no database never touches the pool, and health can report an outage itself.
    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()


# --- migrations -------------------------------------------------------------------------

MIGRATIONS: list[Callable[[peewee.Database], None]] = []


def migration(fn: Callable[[peewee.Database], None]) -> Callable[[peewee.Database], None]:
    """Register the next numbered migration (numbers follow definition order)."""
    MIGRATIONS.append(fn)
    return fn


class SchemaVersion(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    applied_at = peewee.DateTimeField(constraints=[peewee.SQL("DEFAULT CURRENT_TIMESTAMP")])

    class Meta:
        database = database
        table_name = "pie_schema_version"


def current_version() -> int:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return 0
    return _applied_version()


def _applied_version() -> int:
    return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0


def upgrade() -> list[int]:
    """Apply pending migrations, each in its own transaction; safe to race from many processes."""
    from pie import migrations  # noqa: F401  (registers the numbered migrations)

    applied = []
    with database.connection_context():
        SchemaVersion.create_table(safe=True)
        if _applied_version() >= len(MIGRATIONS):
            return applied  # up to date: versions only grow, so no lock is needed to know
        for number, fn in enumerate(MIGRATIONS, start=1):
            with database.atomic():
                if is_postgres():
                    # Serialise concurrent upgraders; the lock ends with the transaction.
                    database.execute_sql("SELECT pg_advisory_xact_lock(7163)")
                if _applied_version() >= number:
                    continue
                fn(database.obj)
                SchemaVersion.create(version=number)
                applied.append(number)
                log.info("applied migration %d (%s)", number, fn.__name__)
    return applied
