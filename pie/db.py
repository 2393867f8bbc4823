"""The database: a peewee proxy chosen by URL, per-request connections, migrations, `pie db`."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import operator
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import click
import peewee
from flask import Flask
from flask.cli import AppGroup
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

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


class SerializedSqliteDatabase(PooledSqliteDatabase):
    """SQLite with write transactions queued on locks that wake the next writer at once.

    SQLite admits one writer; a second one waits in SQLite's busy handler, which polls with
    sleeps of up to 100 ms, so under load most of a writer's time is spent asleep. Here the
    threads of a process queue on a Python lock and the processes on an flock() of a file
    beside the database; the busy handler remains for anything else writing the file."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._lock_path = f"{database}.writelock" if database != ":memory:" else None
        self._writer = threading.Lock()
        self._holding = threading.local()
        self._lock_file: tuple[int, int] | None = None  # (pid, fd): reopened after a fork

    def _lock_fd(self) -> int | None:
        if self._lock_path is None:
            return None
        if self._lock_file is None or self._lock_file[0] != os.getpid():
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_file = (os.getpid(), fd)
        return self._lock_file[1]

    def begin(self, lock_type: str | None = None) -> None:
        self._writer.acquire()
        try:
            fd = self._lock_fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._writer.release()
            raise
        self._holding.value = fd if fd is not None else -1
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
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        if not path:
            raise click.UsageError(f"unsupported SQLite URL {url!r}: use sqlite:///path")
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
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


_SELECT_SQL: dict[tuple[Any, ...], str] = {}


def get_by(table: type[peewee.Model], /, **where: Any) -> Any:
    """The row whose columns equal `where` (a key lookup), or None. The hot read paths use
    this: the SQL is built once per table and backend, not on every request."""
    return _select_one(table, where, lock=False)


def lock_by(table: type[peewee.Model], /, **where: Any) -> Any:
    """`get_by`, holding the row until the transaction ends where the backend has row locks
    (Postgres); SQLite's IMMEDIATE transactions already serialise writers."""
    return _select_one(table, where, lock=bool(database.for_update))


def _select_one(table: type[peewee.Model], where: dict[str, Any], lock: bool) -> Any:
    rows = _select(table, where, lock=lock)
    return rows[0] if rows else None


def find_all(table: type[peewee.Model], /, order_by: tuple[str, ...], **where: Any) -> list:
    """Rows whose columns equal `where`, ordered by the named columns; cached SQL."""
    return _select(table, where, order_by=order_by)


def _select(
    table: type[peewee.Model],
    where: dict[str, Any],
    lock: bool = False,
    order_by: tuple[str, ...] = (),
) -> list:
    names = tuple(where)
    key = (table, names, type(database.obj), lock, order_by)
    sql = _SELECT_SQL.get(key)
    if sql is None:
        condition = functools.reduce(
            operator.and_, [getattr(table, name) == where[name] for name in names]
        )
        query = table.select().where(condition)
        if order_by:
            query = query.order_by(*[getattr(table, name) for name in order_by])
        sql = _SELECT_SQL[key] = (query.for_update() if lock else query).sql()[0]
    cursor = database.execute_sql(sql, [getattr(table, n).db_value(where[n]) for n in names])
    return [row_instance(table, row) for row in cursor.fetchall()]


def row_instance(table: type[peewee.Model], row: tuple[Any, ...]) -> Any:
    """A model instance from a `SELECT *`-ordered row, as peewee's cursor wrapper builds it
    (values through each field's python_value, nothing dirty) without its per-query setup
    of column and converter lookups, which costs more than a key lookup itself."""
    fields = _FIELDS.get(table)
    if fields is None:
        fields = _FIELDS[table] = [(f.name, f.python_value) for f in table._meta.sorted_fields]
    instance = table.__new__(table)
    instance.__data__ = {
        name: value if value is None else convert(value)
        for (name, convert), value in zip(fields, row, strict=True)
    }
    instance._dirty = set()
    instance.__rel__ = {}
    return instance


_FIELDS: dict[type[peewee.Model], list[tuple[str, Callable[[Any], Any]]]] = {}


_WRITE_SQL: dict[tuple[Any, ...], str] = {}


def _with_defaults(meta: Any, row: dict[str, Any]) -> dict[str, Any]:
    full = dict(row)
    for name, field in meta.fields.items():
        if name not in full and field.default is not None:
            full[name] = field.default() if callable(field.default) else field.default
    return full


def insert_rows(table: type[peewee.Model], rows: list[dict[str, Any]]) -> None:
    """INSERT rows with the same columns in one multi-row statement, defaults filled in.
    peewee's insert_many spends about half a millisecond per row building its SQL; this
    writes the VALUES list directly."""
    if not rows:
        return
    meta = table._meta
    full = [_with_defaults(meta, row) for row in rows]
    names = tuple(name for name in meta.sorted_field_names if name in full[0])
    if any(len(row) != len(names) for row in full):
        raise ValueError(f"insert_rows: every {table.__name__} row needs the same columns")
    db = database.obj
    columns = ", ".join(meta.fields[n].column_name.join(db.quote) for n in names)
    group = "(" + ", ".join([db.param] * len(names)) + ")"
    sql = f"INSERT INTO {meta.table_name.join(db.quote)} ({columns}) VALUES " + ", ".join(
        [group] * len(full)
    )
    converters = [(n, meta.fields[n].db_value) for n in names]
    database.execute_sql(sql, [convert(row[n]) for row in full for n, convert in converters])


def insert_row(table: type[peewee.Model], row: dict[str, Any]) -> Any:
    """INSERT one row, field defaults filled in, with the SQL built once per table, column
    set and backend; returns the new row as a model instance (auto ids filled in)."""
    meta = table._meta
    full = _with_defaults(meta, row)
    names = tuple(name for name in meta.sorted_field_names if name in full)
    key = ("insert", table, names, type(database.obj))
    sql = _WRITE_SQL.get(key)
    if sql is None:
        sql = _WRITE_SQL[key] = table.insert({meta.fields[n]: full[n] for n in names}).sql()[0]
    cursor = database.execute_sql(sql, [meta.fields[n].db_value(full[n]) for n in names])
    instance = table(**full)
    if meta.primary_key.name not in full:  # an auto id: RETURNING (Postgres) or lastrowid
        instance._pk = cursor.fetchone()[0] if " RETURNING " in sql else cursor.lastrowid
    return instance


def update_row(table: type[peewee.Model], values: dict[str, Any], **where: Any) -> int:
    """UPDATE … SET values WHERE columns equal `where`, with cached SQL; the row count."""
    meta = table._meta
    names = tuple(n for n in meta.sorted_field_names if n in values)  # peewee's SET order
    keys = tuple(where)
    key = ("update", table, names, keys, type(database.obj))
    sql = _WRITE_SQL.get(key)
    if sql is None:
        condition = functools.reduce(operator.and_, [getattr(table, k) == where[k] for k in keys])
        sql = _WRITE_SQL[key] = (
            table.update({meta.fields[n]: values[n] for n in names}).where(condition).sql()[0]
        )
    params = [meta.fields[n].db_value(values[n]) for n in names]
    params += [getattr(table, k).db_value(where[k]) for k in keys]
    return database.execute_sql(sql, params).rowcount


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

    app.cli.add_command(db_cli)


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
    return SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0


def upgrade() -> list[int]:
    """Apply pending migrations, each in its own transaction; safe to race from many processes."""
    from pie import migrations  # noqa: F401  (registers the numbered migrations)

    applied = []
    with database.connection_context():
        SchemaVersion.create_table(safe=True)
        for number, fn in enumerate(MIGRATIONS, start=1):
            with database.atomic():
                if is_postgres():
                    # Serialise concurrent upgraders; the lock ends with the transaction.
                    database.execute_sql("SELECT pg_advisory_xact_lock(7163)")
                if current_version() >= number:
                    continue
                fn(database.obj)
                SchemaVersion.create(version=number)
                applied.append(number)
                log.info("applied migration %d (%s)", number, fn.__name__)
    return applied


db_cli = AppGroup("db", help="Database commands.")


@db_cli.command("upgrade")
def upgrade_command() -> None:
    """Apply pending schema migrations."""
    applied = upgrade()
    click.echo(f"applied migrations: {applied}" if applied else "database is up to date")


@db_cli.command("version")
def version_command() -> None:
    """Print the schema version."""
    with database.connection_context():
        click.echo(str(current_version()))


@db_cli.command("recount")
def recount_command() -> None:
    """Rebuild the row counters behind list totals from the tables themselves."""
    from pie import counts

    with database.connection_context(), database.atomic():
        counts.recount(database.obj)
    click.echo("counters rebuilt")
