"""The client against the served OpenAPI document: every operation has a method in
pie_client.operations, that method sends that operation's method and path, and its result
type has every field of the response schema (nested records included)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from pie_client import Client
from pie_client.operations import OPERATIONS
from pie_client.records import Record
from pie_client.transport import Transport

HTTP_METHODS = ("get", "post", "put", "delete", "patch")


@pytest.fixture(scope="module")
def document(make_module_app: Any) -> dict[str, Any]:
    return make_module_app().test_client().get("/openapi.json").get_json()


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), route)
        for route, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def properties(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema's properties: through $ref, array items and allOf/anyOf/oneOf."""
    schema = resolve(document, schema)
    if schema.get("type") == "array" or "items" in schema:
        return properties(document, schema.get("items", {}))
    found = dict(schema.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            if resolve(document, part).get("type") != "null":
                found.update(properties(document, part))
    return found


def missing_fields(document: dict[str, Any], schema: dict[str, Any], record: type[Record]) -> list:
    """Schema properties the record lacks, as `Record.field` (nested records checked too)."""
    missing = []
    for name, sub in properties(document, schema).items():
        if name not in record.field_names():
            missing.append(f"{record.__name__}.{name}")
        elif name in record.NESTED:
            missing += missing_fields(document, sub, record.NESTED[name])
    return missing


def response_schemas(document: dict[str, Any], method: str, route: str) -> list[dict]:
    responses = document["paths"][route][method.lower()]["responses"]
    return [
        response["content"]["application/json"]["schema"]
        for status, response in responses.items()
        if status.startswith("2") and "content" in response
    ]


def test_every_operation_has_a_client_method(document: dict[str, Any]) -> None:
    served = operations(document)
    assert sorted(served - set(OPERATIONS)) == [], "operations without a client method"
    assert sorted(set(OPERATIONS) - served) == [], "client methods for no served operation"


def test_every_response_field_is_in_its_result_type(document: dict[str, Any]) -> None:
    missing = []
    for (method, route), (_, _, record) in OPERATIONS.items():
        for schema in response_schemas(document, method, route):
            assert record is not None, f"{method} {route} answers a body the table ignores"
            missing += [f"{method} {route}: {m}" for m in missing_fields(document, schema, record)]
    assert missing == []


def test_the_checks_see_a_missing_field(document: dict[str, Any]) -> None:
    """The field check itself: a record without a field of Job's schema is caught."""
    from dataclasses import dataclass

    @dataclass(kw_only=True)
    class Partial(Record):
        job_id: str

    job = {"$ref": "#/components/schemas/Job"}
    assert "Partial.status" in missing_fields(document, job, Partial)


class Sent(Exception):
    """Raised by the recording transport instead of sending."""


class Recorder(Transport):
    def __init__(self) -> None:
        super().__init__("http://pie.invalid", "token")
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, path: str, params: Any = None, body: Any = None) -> Any:
        self.sent.append((method, path))
        raise Sent


def placeholder(parameter: inspect.Parameter) -> Any:
    text = str(parameter.annotation)
    if "JSON" in text or "dict" in text:
        return {}
    return [] if "list" in text else "x"


def arguments(function: Any, route: str) -> tuple[list[Any], dict[str, Any]]:
    """Values for the required parameters, and service_id for a service-scoped route."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.default is not parameter.empty:
            continue
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
            args.append(placeholder(parameter))
        elif parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = placeholder(parameter)
    service = inspect.signature(function).parameters.get("service_id")
    if "{service_id}" in route and service is not None and service.kind is service.KEYWORD_ONLY:
        kwargs["service_id"] = "x"
    return args, kwargs


@pytest.mark.parametrize(("method", "route"), sorted(OPERATIONS))
def test_each_method_sends_its_operation(method: str, route: str) -> None:
    client = Client("http://pie.invalid", "token")
    recorder = Recorder()
    attribute, name, _ = OPERATIONS[(method, route)]
    owner = getattr(client, attribute) if attribute else client
    owner.transport = recorder
    if not attribute:
        client.transport = recorder
    function = getattr(owner, name)
    args, kwargs = arguments(function, route)
    with pytest.raises(Sent):
        result = function(*args, **kwargs)
        iter(result).__next__()  # a list call sends its first request when iterated
    pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(route))
    assert len(recorder.sent) == 1
    assert recorder.sent[0][0] == method
    assert re.fullmatch(pattern, recorder.sent[0][1]), recorder.sent[0][1]
