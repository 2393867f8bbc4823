"""pie.services.jobs.same_json: when a repeated completion carries the recorded JSON
(contract section 6.3; the HTTP behaviour is in tests/api/test_jobs.py)."""

import json

import pytest

from pie.services.jobs import same_json

NAN = float("nan")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (None, None),
        ({}, {}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (1, 1.0),
        (0, -0.0),
        (10**23, 10**23),
        ({"x": [1, {"y": 2.5, "z": None}]}, {"x": [1.0, {"z": None, "y": 2.5}]}),
        (True, True),
        ("é", "é"),
        ({"v": NAN}, json.loads('{"v": NaN}')),  # Python's json reads and writes NaN
    ],
)
def test_the_same_json(first, second):
    assert same_json(first, second) and same_json(second, first)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (None, {}),
        ({}, []),
        (1, True),
        (0, False),
        (1.0, True),
        (1, "1"),
        (None, 0),
        ("", None),
        ([1, 2], [2, 1]),
        ([1], [1, 1]),
        ({"a": 1}, {"a": 1, "b": None}),
        ({"a": 1}, {"b": 1}),
        (10**23, 10**23 + 1),
        (2**53 + 1, float(2**53)),  # compared exactly, not as doubles
        ({"a": [{"b": 1}]}, {"a": [{"b": 2}]}),
        (NAN, 1.0),
    ],
)
def test_different_json(first, second):
    assert not same_json(first, second) and not same_json(second, first)


def nested(inner: list, depth: int = 100_000) -> list:
    for _ in range(depth):
        inner = [inner]
    return inner


def test_deep_nesting_does_not_overflow_the_stack():
    assert same_json(nested([]), nested([]))
    assert not same_json(nested([]), nested([1]))
