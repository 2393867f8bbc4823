"""schemas.common.Schema's dump loop (every test also cross-checks it in conftest): the
cases no current schema exercises."""

from __future__ import annotations

import marshmallow as ma

from schemas.common import Schema


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


def test_objects_and_dicts_and_many_dump_like_marshmallow():
    class Thing:
        x, y = "a", None

    assert Inner(many=True).dump([{"x": "a"}, Thing()]) == [
        {"x": "a", "z": 7, "method": "A"},
        {"x": "a", "why": None, "z": 7, "method": "A"},
    ]
