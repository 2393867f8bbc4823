"""pie.contracts, the one place user JSON Schemas are checked and applied: its keywords agree
with jsonschema's, it never retrieves anything, and its budget spans a unit of work."""

from __future__ import annotations

import contextlib
import gc
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pie import config, contracts
from pie.contracts import budget, document
from pie.contracts import quote as quote_module
from pie.contracts.quote import LIMIT, quote
from pie.contracts.validator import Validator, validator_for

ROOT = Path(__file__).resolve().parents[2]

# Schemas exercising the keywords PIE evaluates itself, checked against jsonschema's own.
REPLACED_KEYWORDS = [
    {"additionalProperties": False, "properties": {"a": {}}},
    {"additionalProperties": {"type": "integer"}, "patternProperties": {"^x": {}}},
    {"additionalProperties": False, "patternProperties": {"^x": {}, "b$": {}}},
    {"enum": [1, "a", None, [1, {"a": True}], {"x1": [0.5]}, False]},
    {"enum": [1.0, True, "1", [], {}]},
    {"const": {"a": [1, "b"]}},
    {"const": 0},
    {"const": None},
    {"uniqueItems": True},
    {"uniqueItems": False},
    {"multipleOf": 0.5},
    {"multipleOf": 3},
    {"pattern": "^a+b?$"},
    {"patternProperties": {"^a": {"type": "string"}, "[0-9]": {"type": "integer"}}},
    {"prefixItems": [{"type": "integer"}], "unevaluatedItems": False},
    {"prefixItems": [{}], "contains": {"type": "string"}, "unevaluatedItems": {"type": "null"}},
    {"items": {"type": "integer"}, "unevaluatedItems": False},
    {
        "if": {"prefixItems": [{"type": "integer"}]},
        "then": {"prefixItems": [{}, {"type": "string"}]},
        "else": {"prefixItems": [{"type": "string"}]},
        "unevaluatedItems": False,
    },
    {"allOf": [{"prefixItems": [{}, {}]}], "anyOf": [{"contains": {}}], "unevaluatedItems": False},
    {
        "$defs": {"p": {"prefixItems": [{"type": "boolean"}]}},
        "$ref": "#/$defs/p",
        "unevaluatedItems": False,
    },
    {"properties": {"a": {}}, "unevaluatedProperties": False},
    {"patternProperties": {"^x": {"type": "integer"}}, "unevaluatedProperties": {"type": "string"}},
    {"additionalProperties": {"type": "integer"}, "unevaluatedProperties": False},
    {
        "dependentSchemas": {"a": {"properties": {"b": {}}}},
        "properties": {"a": {}},
        "unevaluatedProperties": False,
    },
    {
        "oneOf": [
            {"properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {}}, "required": ["b"]},
        ],
        "anyOf": [{"properties": {"x1": {}}}],
        "unevaluatedProperties": False,
    },
    {
        "if": {"properties": {"a": {"const": 1}}, "required": ["a"]},
        "then": {"properties": {"b": {}}},
        "else": {"properties": {"x1": {}}},
        "unevaluatedProperties": False,
    },
    {
        "$defs": {"o": {"properties": {"a": {}}}},
        "$ref": "#/$defs/o",
        "unevaluatedProperties": False,
    },
    {
        "$id": "urn:example:tree",
        "type": "object",
        "properties": {"a": {"$ref": "#"}, "b": {"type": "array", "items": {"$ref": "#"}}},
        "unevaluatedProperties": False,
    },
    {"type": "integer"},
    {"type": ["string", "null", "array"]},
    {"minLength": 1},
    {"minLength": 2, "maxLength": 3},
    {"maxLength": 0},
    {"minItems": 1, "maxItems": 2},
    {"maxItems": 0},
    {"minProperties": 2, "maxProperties": 3},
    {"minProperties": 1},
    {"maxProperties": 0},
    {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    {"oneOf": [{"type": "integer"}, {"type": "number"}, {"type": "array"}, {}]},
    {"oneOf": [{"minItems": 1}, {"maxItems": 1}]},
    {"not": {"type": "integer"}},
    {"not": {"items": {"type": "string"}}},
    {"items": False},
    {"prefixItems": [{}], "items": False},
    {"prefixItems": [{}, {}], "items": {"type": "string"}},
    {"contains": {"type": "string"}},
    {"contains": {"type": "integer"}, "minContains": 2, "maxContains": 3},
    {"properties": {"a": False}, "additionalProperties": {"not": {}}},
    {"allOf": [False, {"type": "string"}], "anyOf": [False]},
    {"enum": [[1, [2]], {"a": {"b": 1.0}}, "x1"]},
    {"const": [1, {"a": None}]},
]

KEYS = st.sampled_from(["a", "b", "x1", "xb", "1", "aab"])
SCALARS = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.5, 1.0, 1.5, 3.0]) | KEYS
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def errors(validator: Any, instance: Any) -> list[tuple[list[Any], str]]:
    return sorted((list(e.absolute_path), e.message) for e in validator.iter_errors(instance))


@contextlib.contextmanager
def whole_quotes() -> Iterator[None]:
    """Messages quote values whole, as jsonschema's do (see the tests of `quote` below)."""
    limit = quote_module.LIMIT
    quote_module.LIMIT = 10**9
    try:
        yield
    finally:
        quote_module.LIMIT = limit


@pytest.mark.parametrize("schema", REPLACED_KEYWORDS, ids=lambda s: ",".join(sorted(s)))
@settings(max_examples=150, deadline=None)
@given(instance=JSON)
def test_replaced_keywords_agree_with_jsonschema(schema, instance):
    assert document.problems(schema) == []
    with whole_quotes():
        ours = errors(validator_for(schema), instance)
    assert ours == errors(Draft202012Validator(schema), instance)


LEGITIMATE = {
    "local $defs": {"$defs": {"n": {"type": "integer"}}, "items": {"$ref": "#/$defs/n"}},
    "anchor": {"$defs": {"n": {"$anchor": "num", "type": "integer"}}, "items": {"$ref": "#num"}},
    "absolute reference to an embedded $id": {
        "$defs": {"n": {"$id": "urn:example:num", "type": "integer"}},
        "items": {"$ref": "urn:example:num"},
    },
    "root $id and a relative reference to an embedded one": {
        "$id": "https://example.com/root.json",
        "$defs": {"n": {"$id": "num.json", "type": "integer"}},
        "items": {"$ref": "num.json"},
    },
    "reference to a property's schema": {
        "properties": {"a": {"type": "integer"}, "b": {"$ref": "#/properties/a"}}
    },
    "recursion through items": {"type": "array", "items": {"$ref": "#"}},
    "$dynamicRef tree": {
        "$dynamicAnchor": "node",
        "type": "array",
        "items": {"$dynamicRef": "#node"},
    },
    "an older dialect at the root": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "items": {"type": "integer"},
    },
    "2020-12 named inside": {
        "items": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "integer"}
    },
}


@pytest.mark.parametrize("name", LEGITIMATE)
def test_references_inside_the_document_work_as_in_jsonschema(name):
    schema = LEGITIMATE[name]
    assert contracts.schema_problems(schema) == []
    for instance in ([1, 2], [1, "x"], [[1], [[2, "y"]]], "no"):
        with whole_quotes():
            ours = errors(validator_for(schema), instance)
        assert ours == errors(Draft202012Validator(schema), instance), instance
        assert len(contracts.violations(schema, instance)) == len(ours)


def test_a_dollar_schema_never_swaps_the_validator():
    validator = validator_for({"type": "string"})
    for dialect in ("http://json-schema.org/draft-07/schema#", document.DIALECT):
        assert type(validator.evolve(schema={"$schema": dialect})) is Validator


def test_nothing_is_ever_retrieved():
    schema = {"$ref": "http://127.0.0.1:9/schema.json"}
    with pytest.raises(Exception, match="Unresolvable"):
        list(validator_for(schema).iter_errors(1))
    assert "does not resolve" in contracts.schema_problems(schema)[0]
    assert "the schema cannot be applied" in contracts.violations(schema, 1)[0]


def test_multiple_of_beyond_the_range_of_floats():
    huge = 10**400
    assert contracts.violations({"multipleOf": 0.5}, huge) == []
    assert contracts.violations({"multipleOf": 0.7}, huge + 1) != []
    assert contracts.violations({"multipleOf": huge}, 1.5) == [
        "input: 1.5 is not a multiple of " + str(huge)
    ]


def test_the_budget_spans_a_unit_of_work():
    slow = {"pattern": "^(a|aa)+$"}
    value = "a" * 5000 + "!"
    with contracts.limits(0.35, 65536):
        found = [contracts.violations(slow, value) for _ in range(20)]
        assert "took too long" in found[0][0]
        assert "PIE_SCHEMA_BUDGET_SECONDS" in found[-1][0]
        assert contracts.violations({"type": "string"}, value)[0].endswith(
            "(PIE_SCHEMA_BUDGET_SECONDS)"
        )
    with contracts.limits(0.35, 65536):  # a new unit of work starts afresh
        assert "took too long" in contracts.violations(slow, value)[0]


def test_the_budget_counts_only_schema_work():
    with contracts.limits(0.2, 65536):
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:  # CPU spent elsewhere in the request
            pass
        assert contracts.violations({"type": "integer"}, 1) == []


def test_a_budget_exceeded_while_checking_is_not_remembered():
    schema = {"pattern": "^(a|aa)+$", "default": "a" * 5000 + "!"}
    with contracts.limits(0.0, 65536):
        assert "PIE_SCHEMA_BUDGET_SECONDS" in contracts.schema_problems({"minimum": 7})[0]
    assert contracts.schema_problems({"minimum": 7}) == []
    assert contracts.schema_problems(schema) == []


def test_the_defaults_are_the_documented_settings():
    settings_ = config.load({})
    assert settings_["PIE_SCHEMA_BUDGET_SECONDS"] == budget.DEFAULT_BUDGET_SECONDS
    assert settings_["PIE_SCHEMA_MAX_BYTES"] == contracts.DEFAULT_MAX_SCHEMA_BYTES
    readme = (ROOT / "README.md").read_text()
    assert "PIE_SCHEMA_BUDGET_SECONDS" in readme and "PIE_SCHEMA_MAX_BYTES" in readme


SCHEMA_LIBRARIES = re.compile(r"^\s*(?:import|from)\s+(?:jsonschema|referencing)\b", re.MULTILINE)


def test_only_pie_contracts_touches_the_schema_libraries():
    """Every user schema goes through pie.contracts: nothing else imports jsonschema or
    referencing, so no second, unguarded way to apply a schema can appear unnoticed."""
    outside = [
        str(path.relative_to(ROOT))
        for folder in ("pie", "plugins", "schemas")
        for path in (ROOT / folder).rglob("*.py")
        if "contracts" not in path.relative_to(ROOT).parts
        and SCHEMA_LIBRARIES.search(path.read_text())
    ]
    assert outside == []


REFS = st.sampled_from(
    [
        "#",
        "#/$defs/a",
        "#/$defs/b",
        "#a",
        "#b",
        "#/properties/x",
        "#/items",
        "#/allOf/0",
        "#/enum",
        "#/$defs/a/properties/x",
        "urn:x",
        "urn:x#/$defs/a",
        "urn:x#a",
        "x.json",
        "http://127.0.0.1:9/x.json",
        "#/title/0",
    ]
)
IDS = st.sampled_from(["urn:x", "urn:y", "http://e.example/", "sub/", "x.json", "urn:x#"])


def schemas(inner: Any) -> Any:
    keyword = st.one_of(
        st.tuples(st.just("$ref"), REFS),
        st.tuples(st.just("$dynamicRef"), REFS),
        st.tuples(st.just("$id"), IDS),
        st.tuples(st.sampled_from(["$anchor", "$dynamicAnchor"]), st.sampled_from(["a", "b"])),
        st.tuples(st.just("type"), st.sampled_from(["object", "array", "string", "integer"])),
        st.tuples(st.sampled_from(["not", "if", "then", "else", "items", "contains"]), inner),
        st.tuples(
            st.sampled_from(["additionalProperties", "unevaluatedProperties", "unevaluatedItems"]),
            inner,
        ),
        st.tuples(
            st.sampled_from(["allOf", "anyOf", "oneOf", "prefixItems"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
        st.tuples(
            st.sampled_from(["properties", "$defs", "dependentSchemas"]),
            st.dictionaries(st.sampled_from(["a", "b", "x"]), inner, max_size=3),
        ),
        st.tuples(
            st.just("patternProperties"),
            st.dictionaries(st.sampled_from(["^x", "a+$", "(b|bb)+$"]), inner, max_size=2),
        ),
        st.tuples(st.just("pattern"), st.sampled_from(["^a", "(a|aa)+$", "[0-9]"])),
        st.tuples(st.sampled_from(["uniqueItems"]), st.booleans()),
        st.tuples(st.just("enum"), st.lists(SCALARS, min_size=1, max_size=3)),
        st.tuples(st.just("multipleOf"), st.sampled_from([0.5, 2, 10**400])),
        st.tuples(
            st.just("$schema"),
            st.sampled_from([document.DIALECT, "http://json-schema.org/draft-07/schema#"]),
        ),
    )
    return st.booleans() | st.lists(keyword, max_size=5).map(dict)


SCHEMAS = st.recursive(st.booleans() | st.just({}), lambda inner: schemas(inner), max_leaves=10)


@settings(max_examples=1000, deadline=None)
@given(schema=SCHEMAS, instance=JSON)
def test_no_schema_and_value_raise(schema, instance):
    """Whatever a schema holds, checking it and applying it give strings, never an
    exception (an exception would be a 500); an accepted schema applies without one."""
    with contracts.limits(0.5, 65536):
        problems = contracts.schema_problems(schema)
        found = contracts.violations(schema, instance)
    assert all(isinstance(p, str) for p in problems + found)
    if not problems:
        assert not any("cannot be applied" in f or "nests too deeply" in f for f in found), found


@settings(max_examples=500, deadline=None)
@given(value=JSON)
def test_a_value_is_quoted_as_repr_shows_it_up_to_the_limit(value):
    """A short value as repr shows it; a longer one (the strategy makes some past 200
    characters: a CI run found one) as repr's first 200 characters and '...'."""
    shown = repr(value)
    expected = shown if len(shown) <= LIMIT else shown[:LIMIT] + "..."
    assert quote(value) == expected


BIG = [
    "x" * 1_000_000,
    list(range(300_000)),
    {f"k{i}": [i] * 10 for i in range(50_000)},
    [[[[[["deep"] * 50] * 50] * 50] * 50]],
    10**4000,
]


@pytest.mark.parametrize("value", BIG, ids=["string", "list", "object", "nested", "integer"])
def test_a_large_value_is_quoted_in_bounded_time_and_length(value):
    start = time.thread_time()
    quoted = quote(value)
    assert len(quoted) <= LIMIT + 3 and quoted.endswith("...")
    assert time.thread_time() - start < 0.01


def test_checked_schemas_are_kept_by_size():
    """Up to 256 checked schemas were kept, each up to 64 KiB of JSON and about twenty times
    that in memory: a few requests could make a worker keep hundreds of megabytes."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for n in range(40):
            assert contracts.schema_problems({"enum": [[i, n] for i in range(6000)]}) == []
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert kept < 20 << 20, kept  # 32 MB before; the 1 MiB of JSON kept takes about 14 MB
