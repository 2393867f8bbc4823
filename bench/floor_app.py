"""The framework's floor: bench/bare_app.py's insert written on the design card's framework
(Flask + flask-smorest + marshmallow: a MethodView whose body is loaded by an arguments
schema and whose answer is dumped by a response schema) with none of PIE's own work: no
authentication, tenancy, access log, metrics, request ids, contract checks or writer lock.
What any write route on this framework costs at least; bench.inprocess's `floor-insert`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import marshmallow as ma
from flask import Flask
from flask.views import MethodView
from flask_smorest import Api, Blueprint

from bench.bare_app import Item, close, setup

__all__ = ["app", "setup"]


class ItemIn(ma.Schema):
    name = ma.fields.String(load_default="")
    body = ma.fields.Dict(load_default=dict)


class ItemOut(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()


app = Flask(__name__)
app.config.update(API_TITLE="floor", API_VERSION="1", OPENAPI_VERSION="3.1.0")
app.teardown_request(close)
blueprint = Blueprint("items", __name__)


@blueprint.route("/items")
class Items(MethodView):
    @blueprint.arguments(ItemIn)
    @blueprint.response(201, ItemOut)
    def post(self, data: dict[str, Any]) -> Item:
        return Item.create(id=str(uuid.uuid4()), name=data["name"], body=json.dumps(data["body"]))


Api(app).register_blueprint(blueprint)


@app.get("/health")
def health() -> str:  # for the benchmark to wait on
    return "ok"
