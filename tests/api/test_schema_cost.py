"""What one request can make the server spend through a JSON Schema, in memory as well as CPU
(issue 14, the attacker's retest): patterns are bounded before they are compiled, registration
checks never leave the budget, and a violation costs a bounded amount however large the value."""

from __future__ import annotations

import contextlib
import re
import resource
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pie.db import connection
from pie.tables import ModelVersion, RegisteredModel
from tests.helpers import Client, activate, assert_envelope, model_body

C = "/v2/clients/acme"
MB = 1 << 20
STATUS = Path("/proc/self/status")


@contextlib.contextmanager
def address_space(extra: int = 1 << 30) -> Iterator[None]:
    """Caps this process's address space at what it maps now plus `extra` bytes: code that
    allocates without bound gets a MemoryError instead of the machine's memory."""
    if not STATUS.exists():
        pytest.skip("needs /proc/self/status")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(re.search(r"VmSize:\s+(\d+) kB", STATUS.read_text())[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """The most memory Python allocated inside the block, above what it held at its start
    (bounded by `address_space`, so a regression fails instead of exhausting the machine)."""
    peak: list[int] = []
    with address_space():
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        try:
            yield lambda: peak[0]
        finally:
            peak.append(tracemalloc.get_traced_memory()[1] - start)
            tracemalloc.stop()


@pytest.fixture
def acme(make_app) -> Client:
    """A client with a budget large enough that only the limits under test stop the work."""
    client = Client(make_app({"PIE_SCHEMA_BUDGET_SECONDS": 20}).test_client())
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "A"}).status_code == 201
    return client


def feature(schema: Any, name: str = "f") -> dict[str, Any]:
    return {"name": name, "mandatory": False, "json_schema": schema}


def model_taking(client: Client, model_id: str, value_schema: Any) -> None:
    schema = {"type": "object", "properties": {"v": value_schema}}
    contracts = {"inference": {"input_schema": schema}}
    r = client.post("/v2/models", json=model_body(model_id, handler_contracts=contracts))
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def infer(client: Client, model_id: str, value: Any) -> Any:
    return client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": {"v": value}})


# --- patterns are bounded before they are compiled -------------------------------------------

EXPANDING = {
    "a counted repeat of three million": "a{3000000}",
    "the largest count regex takes": "d{4294967294}",
    "an open-ended count": "a{3000000,}",
    "nested repeats": "(?:a{1000}){1000}",
    "three levels of repeats": "(?:(?:a{100}){100}){100}",
    "many repeats in a row": "a{1000}" * 20,
    "a repeat inside a scoped flag group": "(?i:a{999}){999}",
    "after a comment holding a bracket": "(?#[)a{5000}",
}
PLACES = {
    "pattern": lambda p: {"type": "string", "pattern": p},
    "patternProperties": lambda p: {"patternProperties": {p: {}}},
    "propertyNames": lambda p: {"propertyNames": {"pattern": p}},
    "a pattern in $defs": lambda p: {"$defs": {"x": {"pattern": p}}},
}


@pytest.mark.parametrize("place", PLACES)
def test_a_pattern_that_would_expand_is_refused_before_it_is_compiled(acme, place):
    """`regex` expands counted repeats when it compiles: `a{3000000}` took 800 MB that stayed,
    `d{4294967294}` (14 bytes) ran into the OOM killer."""
    for name, pattern in EXPANDING.items():
        body = {"features": [feature(PLACES[place](pattern))]}
        with peak_memory() as peak:
            r = acme.post(f"{C}/domains", json=body)
        message = assert_envelope(r, 422)["message"]
        assert "cannot be used" in message and (
            "repeats more than 1,000 times" in message or "10,000 elements" in message
        ), (name, message)
        assert peak() < 20 * MB, (name, peak())


def test_a_stored_pattern_is_bounded_again_when_applied(client):
    """A schema written before these checks (or by hand) is refused when applied, without
    compiling its pattern."""
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    contracts = {"inference": {"input_schema": {"properties": {"v": {"pattern": "d{4294967294}"}}}}}
    with connection():
        RegisteredModel.update(handler_contracts=contracts).execute()
        ModelVersion.update(handler_contracts=contracts).execute()
    with peak_memory() as peak:
        r = infer(client, "m", "d")
    assert "the schema cannot be applied" in assert_envelope(r, 422)["message"]
    assert peak() < 20 * MB


def test_usual_patterns_are_accepted(acme):
    usual = [
        r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        r"^(?:[a-zA-Z0-9-]{1,63}\.){1,127}[a-zA-Z]{2,63}$",  # a host name
        r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$",
        r"^\p{Lu}\p{Ll}{0,99}$",  # a Unicode property: ECMA-262 has it, Python's re does not
        r"^(?P<user>[^@\s]{1,64})@(?<host>[^@\s]{1,255})$",
        r"[]a]|[^]]|[[:alpha:]]|\{3000000}",  # literal brackets and braces
    ]
    features = [feature({"type": "string", "pattern": p}, f"f{i}") for i, p in enumerate(usual)]
    r = acme.post(f"{C}/domains", json={"domain_id": "d1", "features": features})
    assert r.status_code == 201, r.get_json()


# --- every part of a registration check is inside the budget ---------------------------------


def test_the_metaschema_check_never_compiles_a_pattern_with_python_re(make_app):
    """jsonschema's `regex` format compiled each pattern with Python's re, outside the budget:
    57 KB of case-insensitive classes cost 18 s of CPU. Patterns go through the bounded check
    only (which also takes what the `regex` engine takes, such as \\p{L})."""
    client = Client(make_app({"PIE_SCHEMA_BUDGET_SECONDS": 0.5}).test_client())
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "A"}).status_code == 201
    slow = "(?i)a" + "[\\x00-\\U0010ffff]" * 3000
    start = time.thread_time()
    r = client.post(f"{C}/domains", json={"features": [feature({"pattern": slow})]})
    assert "51,005 characters long, over 1,000" in assert_envelope(r, 422)["message"]
    assert time.thread_time() - start < 2
    body = {"domain_id": "d1", "features": [feature({"pattern": r"\p{L}"})]}
    r = client.post(f"{C}/domains", json=body)
    assert r.status_code == 201, r.get_json()


# --- a violation costs a bounded amount, however large the value -----------------------------

BLOB = "A" * 900_000


@pytest.mark.parametrize(
    "branches",
    [
        pytest.param([{"enum": [0]}] * 5000, id="anyOf of 5,000 enums"),
        pytest.param([False, {"type": "integer"}, {"maxLength": 1}, {"not": {}}] * 1250, id="mix"),
    ],
)
@pytest.mark.parametrize("keyword", ["anyOf", "oneOf"])
def test_branches_over_a_large_value_take_bounded_memory(acme, keyword, branches):
    """Each failing branch quoted the whole value in its message, and anyOf/oneOf kept every
    branch's errors: 5,000 branches over 900 KB made 1.2 GB."""
    model_taking(acme, "m", {keyword: branches})
    with peak_memory() as peak:
        r = infer(acme, "m", BLOB)
    message = assert_envelope(r, 422)["message"]
    assert "is not valid under any of the given schemas" in message and len(message) < 2000
    assert peak() < 50 * MB, peak()


def test_every_message_quotes_a_bounded_part_of_the_value(acme):
    value = {f"k{i}": [BLOB[:1000]] * 15 for i in range(60)}  # 900 KB
    schemas = [
        {"allOf": [False] * 40},
        {"type": "string"},
        {"maxProperties": 1},
        {"not": {}},
        {"enum": [1]},
        {"additionalProperties": {"items": False}},
        {"additionalProperties": False},
        {"propertyNames": {"maxLength": 1}},
    ]
    model_taking(acme, "m", {"allOf": schemas})
    with peak_memory() as peak:
        r = infer(acme, "m", value)
    assert peak() < 20 * MB, peak()  # 51 errors quoting 900 KB each: 75 MB
    message = assert_envelope(r, 422)["message"]
    assert len(message) < 50 * 600 and "further violations not listed" in message


def test_unique_items_is_not_slowed_by_numbers_with_equal_hashes(acme):
    """Python hashes k·(2^61−1) to the same value for every k: a set of them is quadratic."""
    model_taking(acme, "m", {"type": "array", "uniqueItems": True})
    value = [k * (2**61 - 1) for k in range(30_000)]  # 900 KB
    start = time.thread_time()
    r = infer(acme, "m", value)
    assert r.status_code == 202, r.get_json()
    assert time.thread_time() - start < 3  # 11 s before
    assert_envelope(infer(acme, "m", [*value[:10], value[3]]), 422)


def test_keywords_over_large_values_read_the_clock_often_enough(make_app):
    """The clock was read every 32 keywords: 32 × uniqueItems over 100,000 items overshot a
    0.1 s budget by most of a second."""
    client = Client(make_app({"PIE_SCHEMA_BUDGET_SECONDS": 0.1}).test_client())
    model_taking(client, "m", {"allOf": [{"uniqueItems": True}] * 60})
    start = time.thread_time()
    r = infer(client, "m", list(range(100_000)))  # 690 KB
    assert "PIE_SCHEMA_BUDGET_SECONDS" in assert_envelope(r, 422)["message"]
    print("ELAPSED", time.thread_time() - start)
    assert time.thread_time() - start < 0.6


# --- JSON Schema patterns are ECMA-262's -----------------------------------------------------


def test_dollar_matches_only_at_the_end_of_the_string(client):
    """In ECMA-262 `$` is the end of the string; Python's also matches before a final newline,
    so "^[a-z]+$" let "abc\\n" through."""
    model_taking(
        client,
        "m",
        {
            "type": "object",
            "properties": {"id": {"pattern": "^[a-z]+$"}},
            "patternProperties": {"^x$": {}},
            "additionalProperties": False,
        },
    )
    assert infer(client, "m", {"id": "abc", "x": 1}).status_code == 202
    message = assert_envelope(infer(client, "m", {"id": "abc\n"}), 422)["message"]
    assert "does not match" in message
    assert_envelope(infer(client, "m", {"x\n": 1}), 422)
    model_taking(client, "lines", {"pattern": "(?m)^b$"})  # multi-line mode, asked for
    assert infer(client, "lines", "a\nb\nc").status_code == 202


def test_references_that_fan_out_stop_at_the_budget_in_bounded_memory(make_app):
    """Each definition refers to the next twice: 2^22 evaluations. The budget stops them, and
    anyOf no longer keeps the errors of every branch it tried meanwhile (48 MB in 3 s)."""
    client = Client(make_app({"PIE_SCHEMA_BUDGET_SECONDS": 3}).test_client())
    at = "#/properties/v/$defs"  # model_taking puts this schema at properties/v
    defs: dict[str, Any] = {f"a{i}": {"anyOf": [{"$ref": f"{at}/a{i + 1}"}] * 2} for i in range(22)}
    defs["a22"] = {"type": "string"}
    model_taking(client, "m", {"$defs": defs, "$ref": f"{at}/a0"})
    with peak_memory() as peak:
        r = infer(client, "m", 1)
    assert "PIE_SCHEMA_BUDGET_SECONDS" in assert_envelope(r, 422)["message"]
    assert peak() < 20 * MB, peak()
