"""Rows by key with SQL built once: the hot paths' reads and writes.

peewee builds SQL for every query and sets up its cursor wrapper per query, which costs more
than a key lookup itself; these helpers cache the SQL per table, column set and backend and
build rows directly (tested against peewee's own rows in tests/services/test_db_rows.py)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import peewee

from pie.db import database

_SELECT_SQL: dict[tuple[Any, ...], str] = {}


def equal(table: type[peewee.Model], where: dict[str, Any]) -> Any:
    """peewee's condition that each named column equals its value (for building SQL once)."""
    return functools.reduce(operator.and_, [getattr(table, n) == where[n] for n in where])


def _params(table: type[peewee.Model], where: dict[str, Any]) -> list[Any]:
    """The values of `where` as the database stores them, in `where`'s order."""
    return [getattr(table, n).db_value(value) for n, value in where.items()]


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


def get_with(
    table: type[peewee.Model], parent: type[peewee.Model], /, **where: Any
) -> tuple[Any, Any] | None:
    """The row of `table` whose columns equal `where` and the `parent` row its foreign key
    points at, read in one statement (cached SQL), or None when there is no such row."""
    names = tuple(where)
    key = ("with", table, parent, names, type(database.obj))
    sql = _SELECT_SQL.get(key)
    if sql is None:
        (foreign_key,) = [f for f, model in table._meta.refs.items() if model is parent]
        query = (
            table.select(table, parent)
            .join(parent, on=(foreign_key == parent._meta.primary_key))
            .where(equal(table, where))
        )
        sql = _SELECT_SQL[key] = query.sql()[0]
    cursor = database.execute_sql(sql, _params(table, where))
    row = cursor.fetchone()
    if row is None:
        return None
    split = len(table._meta.sorted_fields)
    return row_instance(table, row[:split]), row_instance(parent, row[split:])


_JOINED_SQL: dict[tuple, tuple[str, list[Any]]] = {}


def lock_with_columns(
    table: type[peewee.Model], others: tuple[Any, ...], on: dict[str, str], /, **where: Any
) -> tuple[Any, list[Any]] | None:
    """`lock_by`'s row of `table`, and the values of `others` in the row of another table
    its `on` columns ({other table column: table column}) match (None where there is none):
    one statement (cached SQL), where the reads would be several. `others` are fields of
    that table, or expressions (a correlated EXISTS, say) built once by the caller, whose
    identity keys the cached SQL; the first must be a field. Returns the row and the values
    in `others`' order, or None when there is no row."""
    names = tuple(where)
    key = (table, tuple(map(id, others)), tuple(on.items()), names, type(database.obj))
    cached = _JOINED_SQL.get(key)
    if cached is None:
        joined = others[0].model
        condition = functools.reduce(
            operator.and_,
            [getattr(joined, mine) == getattr(table, theirs) for mine, theirs in on.items()],
        )
        query = (
            table.select(table, *others)
            .join(joined, peewee.JOIN.LEFT_OUTER, on=condition)
            .where(equal(table, where))
        )
        if database.for_update:
            query = query.for_update(of=table)
        sql, params = query.sql()
        # The expressions' own parameters come first (the select list), then the key's.
        cached = _JOINED_SQL[key] = (sql, params[: len(params) - len(where)])
    sql, constants = cached
    row = database.execute_sql(sql, [*constants, *_params(table, where)]).fetchone()
    if row is None:
        return None
    width = len(table._meta.sorted_fields)
    values = [
        column.python_value(value)
        if value is not None and isinstance(column, peewee.Field)
        else value
        for column, value in zip(others, row[width:], strict=True)
    ]
    return row_instance(table, row[:width]), values


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
        query = table.select().where(equal(table, where))
        if order_by:
            query = query.order_by(*[getattr(table, name) for name in order_by])
        sql = _SELECT_SQL[key] = (query.for_update() if lock else query).sql()[0]
    cursor = database.execute_sql(sql, _params(table, where))
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


def update_rows(table: type[peewee.Model], rows: list[dict[str, Any]], key: str) -> None:
    """The same UPDATE for many rows, each found by its `key` column and given the other
    columns of its dict, through one prepared statement (executemany): peewee builds each
    query's SQL, about 0.2 ms a row, which a 10,000-row change would spend holding the write
    lock."""
    if not rows:
        return
    meta = table._meta
    names = tuple(n for n in meta.sorted_field_names if n in rows[0] and n != key)
    cache_key = ("update", table, names, (key,), type(database.obj))
    sql = _WRITE_SQL.get(cache_key)
    if sql is None:
        sql = _WRITE_SQL[cache_key] = (
            table.update({meta.fields[n]: rows[0][n] for n in names})
            .where(equal(table, {key: rows[0][key]}))
            .sql()[0]
        )
    converters = [meta.fields[n].db_value for n in (*names, key)]
    params = [
        [convert(row[n]) for n, convert in zip((*names, key), converters, strict=True)]
        for row in rows
    ]
    database.cursor().executemany(sql, params)


def update_row(table: type[peewee.Model], values: dict[str, Any], **where: Any) -> int:
    """UPDATE … SET values WHERE columns equal `where`, with cached SQL; the row count."""
    meta = table._meta
    names = tuple(n for n in meta.sorted_field_names if n in values)  # peewee's SET order
    keys = tuple(where)
    key = ("update", table, names, keys, type(database.obj))
    sql = _WRITE_SQL.get(key)
    if sql is None:
        sql = _WRITE_SQL[key] = (
            table.update({meta.fields[n]: values[n] for n in names})
            .where(equal(table, where))
            .sql()[0]
        )
    params = [meta.fields[n].db_value(values[n]) for n in names]
    params += _params(table, where)
    return database.execute_sql(sql, params).rowcount
