"""pie.schemas.common.Schema's dump loop (every test also cross-checks it in conftest): the
cases no current schema exercises."""

from __future__ import annotations

import marshmallow as ma
from pie.schemas.common import Schema


class Inner(Schema):
    x = ma.fields.String()
    y = ma.fields.String(data_key="why")
    z = ma.fields.Integer(dump_default=7)
    method = ma.fields.Method("shout")

    def shout(self, obj):
        return str(ma.utils.get_value(obj, "x")).upper()


def test_a_copy_with_only_rebuilds_the_plan():
    inner = Inner()
    assert inner.dump({"x": "a", "y": "b"}) == {"x": "a", "why": "b", "z": 7, "method": "A"}

    class Outer(Schema):
        child = ma.fields.Nested(inner, only=("x",))

    assert Outer().dump({"child": {"x": "a", "y": "b"}}) == {"child": {"x": "a"}}
    assert inner.dump({"x": "c"}) == {"x": "c", "z": 7, "method": "C"}


def test_inline_kinds_fall_back_to_their_fields_for_other_values():
    """Strings, timestamps and nested schemas are output inline only for the values whose
    output is the value itself (or its isoformat); the rest go through the field."""
    from datetime import UTC, datetime, timedelta, timezone

    from pie.schemas.common import Timestamp

    class Leaf(Schema):
        s = ma.fields.String()

    class Hooked(Schema):
        s = ma.fields.String()

        @ma.post_dump
        def tag(self, data, **kwargs):
            return {**data, "hooked": True}

    class Mixed(Schema):
        s = ma.fields.String()
        t = Timestamp()
        leaf = ma.fields.Nested(Leaf)
        leaves = ma.fields.Nested(Leaf, many=True)
        hooked = ma.fields.Nested(Hooked)

    class Sub(str):
        pass

    aware = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    data = {
        "s": 12,
        "t": aware,
        "leaf": {"s": Sub("x")},
        "leaves": [{"s": "a"}, {"s": None}],
        "hooked": {"s": "h"},
    }
    expected = {
        "s": "12",
        "t": "2026-01-02T01:04:05.000006Z",
        "leaf": {"s": "x"},
        "leaves": [{"s": "a"}, {"s": None}],
        "hooked": {"s": "h", "hooked": True},
    }
    assert Mixed().dump(data) == expected
    assert type(Mixed().dump(data)["leaf"]["s"]) is str
    nones = {"s": None, "t": None, "leaf": None, "leaves": None, "hooked": None}
    assert Mixed().dump(nones) == nones
    assert Mixed().dump({"t": datetime(2026, 1, 2, tzinfo=UTC).replace(tzinfo=None)}) == {
        "t": "2026-01-02T00:00:00.000000Z"
    }


def test_peewee_rows_dump_their_columns_and_foreign_keys(app):
    from pie.db import connection
    from pie.tables import ModelVersion, RegisteredModel

    class VersionOut(Schema):
        model_id = ma.fields.String()
        version = ma.fields.String()
        metadata = ma.fields.Dict()
        missing = ma.fields.String()

    handlers = {"training": {"type": "in_process", "value": "echo"}}
    with connection():
        RegisteredModel.create(id="m", name="m", description="", handlers=handlers, metadata={})
        row = ModelVersion.create(model="m", version="1", metadata={"a": 1}, handlers=handlers)
        assert VersionOut().dump(row) == {"model_id": "m", "version": "1", "metadata": {"a": 1}}
        del row.__data__["version"]  # peewee reads an absent column as None
        assert VersionOut().dump(row)["version"] is None


def test_objects_and_dicts_and_many_dump_like_marshmallow():
    class Thing:
        x, y = "a", None

    assert Inner(many=True).dump([{"x": "a"}, Thing()]) == [
        {"x": "a", "z": 7, "method": "A"},
        {"x": "a", "why": None, "z": 7, "method": "A"},
    ]
