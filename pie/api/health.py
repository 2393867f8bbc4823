"""GET /v2/health: public liveness and database reachability."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, jsonify
from flask.views import MethodView

from pie.api.base import Blueprint
from pie.db import database
from pie.schemas.common import ALWAYS_FALSE

blp = Blueprint("health", __name__, url_prefix="/v2", description="Service health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ok", "unavailable"]})
    database = ma.fields.String(required=True, metadata={"enum": ["ok", "unavailable"]})
    version = ma.fields.String(required=True)


class UnhealthySchema(HealthSchema):
    success = ma.fields.Boolean(required=True, metadata=ALWAYS_FALSE)
    message = ma.fields.String(required=True)


def database_reachable() -> bool:
    try:
        database.execute_sql("SELECT 1")
        return True
    except Exception:  # any failure to reach it is "unavailable", never a 500
        return False


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=UnhealthySchema, description="The database is unreachable")
    def get(self) -> Any:
        """Report whether PIE and its database are up"""
        version = current_app.config["PIE_VERSION"]
        if database_reachable():
            return {"status": "ok", "database": "ok", "version": version}
        body = UnhealthySchema().dump(
            {
                "success": False,
                "message": "the database is unavailable",
                "status": "unavailable",
                "database": "unavailable",
                "version": version,
            }
        )
        return jsonify(body), 503  # a Response: not re-dumped with the 200 schema
