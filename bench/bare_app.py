"""The ceiling: a bare Flask + peewee + SQLite app on the same WSGI server as PIE, reading one
row by key and inserting one row, returning JSON. Run by bench/http.py."""

from __future__ import annotations

import json
import os
import uuid

import peewee
from flask import Flask, jsonify, request
from playhouse.pool import PooledSqliteDatabase

from pie.db import SQLITE_PRAGMAS

database = PooledSqliteDatabase(
    os.environ["BARE_DB"],
    pragmas=SQLITE_PRAGMAS,
    lock_type="IMMEDIATE",
    check_same_thread=False,
    max_connections=32,
)


class Item(peewee.Model):
    id = peewee.CharField(primary_key=True)
    name = peewee.TextField()
    body = peewee.TextField()

    class Meta:
        database = database


app = Flask(__name__)


@app.teardown_request
def close(exc: BaseException | None) -> None:
    if not database.is_closed():
        database.close()


@app.get("/items/<item_id>")
def read(item_id: str):
    item = Item.get_or_none(Item.id == item_id)
    if item is None:
        return jsonify({"message": "not found"}), 404
    return jsonify({"id": item.id, "name": item.name, "body": json.loads(item.body)})


@app.post("/items")
def insert():
    data = request.get_json()
    item = Item.create(
        id=str(uuid.uuid4()), name=data.get("name", ""), body=json.dumps(data.get("body", {}))
    )
    return jsonify({"id": item.id, "name": item.name}), 201


def setup() -> None:
    with database.connection_context():
        database.create_tables([Item], safe=True)
        Item.insert(
            id="item-1", name="one", body=json.dumps({"a": 1})
        ).on_conflict_ignore().execute()
