"""Third-party handler types and the plugin manager's start-up rules: a type registered through
`create_app(plugins=...)` is documented, validates models with its own schema and runs jobs;
duplicate, wrong and misspelled registrations stop start-up; plugins can be disabled."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import jwt
import marshmallow as ma
import pytest
from click.testing import CliRunner

import pie.cli
from pie import DispatchDeferred, HandlerType, hookimpl
from pie.plugin_manager import PluginError
from tests.helpers import (
    SECRET,
    Client,
    activate,
    assert_envelope,
    model_body,
    wait_for,
    wait_for_job,
)

LAMBDA = {"type": "lambda", "arn": "arn:aws:lambda:us-east-1:123456789012:function:scorer"}
ECS = {"type": "ecs_task", "value": "ml/scorer:1"}


class QueueSchema(ma.Schema):
    queue = ma.fields.String(required=True, metadata={"description": "Name of the queue"})


class Queue:
    """A third-party backend: an in-memory queue the test drains; `defer`/`fail` make the next
    dispatches raise."""

    def __init__(self, known: tuple[str, ...] = ("scoring",)) -> None:
        self.known = known
        self.sent: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.defer = 0
        self.fail: Exception | None = None
        self.attempts = 0


def queue_plugin(queue: Queue, name: str = "queue-plugin") -> Any:
    """A plugin object registering a `queue` handler type bound to `queue`."""

    class QueueHandlerType(HandlerType):
        name = "queue"
        schema = QueueSchema
        description = "Puts the job payload on an in-memory queue."

        def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
            if handler["queue"] in queue.known:
                return {}
            return {"queue": [f"no queue named {handler['queue']!r}"]}

        def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
            queue.attempts += 1
            if queue.defer:
                queue.defer -= 1
                raise DispatchDeferred("the queue is paused")
            if queue.fail is not None:
                raise queue.fail
            queue.sent.append((handler, payload))
            return f"{handler['queue']}-{len(queue.sent)}"

    class QueuePlugin:
        @hookimpl
        def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
            return [QueueHandlerType]

    plugin = QueuePlugin()
    plugin.name = name  # the name PIE_DISABLED_PLUGINS refers to
    return plugin


def types_plugin(*values: Any) -> Any:
    """A plugin whose pie_register_handler_types returns `values` as they are."""

    class Plugin:
        @hookimpl
        def pie_register_handler_types(self, app: Any) -> list[Any]:
            return list(values)

    return Plugin()


def handler_type(type_name: str, schema: Any = QueueSchema) -> type[HandlerType]:
    attributes: dict[str, Any] = {"name": type_name, "dispatch": lambda self, h, job, p: None}
    if schema is not None:
        attributes["schema"] = schema
    return type(f"{type_name.title()}Type", (HandlerType,), attributes)


def handlers(handler: dict[str, Any]) -> dict[str, Any]:
    return {"training": handler, "inference": handler}


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def queue_client(make_app: Any, queue: Queue) -> Client:
    return Client(make_app(plugins=[queue_plugin(queue)]).test_client())


def start_inference(client: Client, model_id: str = "m1", job_input: Any = None) -> str:
    body = {"input": {"n": 1} if job_input is None else job_input}
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json=body)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def create_queue_model(client: Client, queue_name: str = "scoring") -> None:
    r = client.post("/v2/models", json=model_body(handlers=handlers(queue_handler(queue_name))))
    assert r.status_code == 201, r.get_json()
    activate(client, "m1")


def queue_handler(queue_name: str = "scoring") -> dict[str, str]:
    return {"type": "queue", "queue": queue_name}


# --- a third-party handler type ---------------------------------------------------------


def test_a_third_party_type_runs_a_job_end_to_end(queue_client, queue):
    create_queue_model(queue_client)
    job_input = {"text": "hello", "n": [1, 2]}

    job_id = start_inference(queue_client, job_input=job_input)
    job = wait_for_job(queue_client, job_id, ("started", "success", "failure"))

    assert job["status"] == "started", job
    assert job["handler_type"] == "queue" and job["external_id"] == "scoring-1"
    ((handler, payload),) = queue.sent
    assert handler == queue_handler()
    assert payload["job_id"] == job_id and payload["input"] == job_input
    assert payload["job_type"] == "inference"
    assert (payload["model_id"], payload["model_version"]) == ("m1", "1")
    assert set(payload["context"]) == {
        "client_id",
        "domain_id",
        "service_id",
        "assignment_id",
        "trigger",
    }

    callback = payload["callback"]
    assert callback["url"].endswith(f"/v2/models/m1/versions/1/jobs/{job_id}/complete")
    r = queue_client.post(
        urlsplit(callback["url"]).path,
        json={"status": "success", "output": {"answer": 42}},
        token=callback["token"],
    )
    assert r.status_code == 200, r.get_json()
    done = wait_for_job(queue_client, job_id)
    assert done["status"] == "success" and done["output"] == {"answer": 42}


def test_the_callback_follows_the_public_url_and_the_token_ttl(make_app, queue):
    config = {
        "PIE_PUBLIC_URL": "https://pie.example.org/api/",
        "PIE_CALLBACK_TOKEN_TTL_SECONDS": 90,
    }
    client = Client(make_app(config, plugins=[queue_plugin(queue)]).test_client())
    create_queue_model(client)

    job_id = start_inference(client)
    wait_for(lambda: queue.sent)

    callback = queue.sent[0][1]["callback"]
    assert (
        callback["url"]
        == f"https://pie.example.org/api/v2/models/m1/versions/1/jobs/{job_id}/complete"
    )
    claims = jwt.decode(callback["token"], SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90


def test_a_training_job_reaches_the_backend_as_training(queue_client, queue):
    r = queue_client.post("/v2/models", json=model_body(handlers=handlers(queue_handler())))
    assert r.status_code == 201, r.get_json()

    r = queue_client.post("/v2/models/m1/versions/1/training", json={"input": {"epochs": 2}})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["training_job_id"]
    wait_for(lambda: queue.sent)

    payload = queue.sent[0][1]
    assert (payload["job_id"], payload["job_type"]) == (job_id, "training")
    assert payload["input"] == {"epochs": 2}
    r = queue_client.post(
        urlsplit(payload["callback"]["url"]).path,
        json={"status": "failure", "error": {"message": "diverged"}},
        token=payload["callback"]["token"],
    )
    assert r.status_code == 200, r.get_json()
    job = wait_for_job(queue_client, job_id)
    assert job["status"] == "failure" and job["error"] == {"message": "diverged"}


def test_a_triggered_job_carries_its_trigger_in_the_payload_context(queue_client, queue):
    echo = {"type": "in_process", "value": "echo"}
    r = queue_client.post("/v2/models", json=model_body("source", handlers=handlers(echo)))
    assert r.status_code == 201, r.get_json()
    activate(queue_client, "source")
    create_queue_model(queue_client)
    subscription = {
        "trigger_event": "inference_complete",
        "target_model_id": "m1",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    r = queue_client.post("/v2/models/source/event-subscriptions", json=subscription)
    assert r.status_code == 201, r.get_json()
    subscription_id = r.get_json()["id"]

    parent_id = start_inference(queue_client, "source", {"k": "v"})
    wait_for(lambda: queue.sent)

    payload = queue.sent[0][1]
    assert payload["input"] == {"k": "v"} and payload["model_id"] == "m1"
    assert payload["context"]["trigger"] == {
        "subscription_id": subscription_id,
        "parent_job_id": parent_id,
        "depth": 1,
    }


def test_the_openapi_document_lists_the_type_in_the_handler_one_of(queue_client):
    spec = queue_client.get("/openapi.json").get_json()

    schemas = spec["components"]["schemas"]
    queue_schema = next(
        s
        for s in schemas.values()
        if s.get("properties", {}).get("type", {}).get("enum") == ["queue"]
    )
    assert set(queue_schema["required"]) == {"type", "queue"}
    assert queue_schema["properties"]["queue"]["type"] == "string"
    for side in ("training", "inference"):
        assert schemas["Handlers"]["properties"][side] == {"$ref": "#/components/schemas/Handler"}
        field = schemas["Handler"]
        refs = [option["$ref"] for option in field["oneOf"]]
        assert len(refs) == 6
        assert field["discriminator"]["propertyName"] == "type"
        mapping = field["discriminator"]["mapping"]
        assert set(mapping) == {"lambda", "ecs_task", "in_process", "http", "celery", "queue"}
        assert schemas[mapping["queue"].rsplit("/", 1)[-1]] == queue_schema
        assert sorted(refs) == sorted(mapping.values())


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ({"type": "queue"}, "json.handlers.inference.queue: Missing data for required field."),
        ({"type": "queue", "queue": 5}, "json.handlers.inference.queue: Not a valid string."),
        ({"type": "queue", "queue": "scoring", "arn": "x"}, "json.handlers.inference.arn"),
        ({"type": "queue", "queue": "elsewhere"}, "no queue named 'elsewhere'"),
        ({"type": "queues", "queue": "scoring"}, "json.handlers.inference.type"),
    ],
    ids=["missing-field", "wrong-type", "unknown-field", "check-rejects", "unknown-type"],
)
def test_models_using_the_type_are_validated_by_its_schema(queue_client, handler, expected):
    r = queue_client.post("/v2/models", json=model_body(handlers=handlers(handler)))

    body = assert_envelope(r, 400)
    assert expected in body["message"]


def test_a_handler_without_a_type_lists_the_types_plugins_registered(queue_client):
    r = queue_client.post("/v2/models", json=model_body(handlers=handlers({"queue": "scoring"})))

    message = assert_envelope(r, 400)["message"]
    assert "json.handlers.training.type: Missing data for required field. " in message
    assert "Known handler types: celery, ecs_task, http, in_process, lambda, queue." in message


def test_a_dispatch_error_fails_the_job_with_its_message(queue_client, queue):
    create_queue_model(queue_client)
    queue.fail = RuntimeError("queue 'scoring' is full")

    job = wait_for_job(queue_client, start_inference(queue_client))

    assert job["status"] == "failure", job
    assert "queue 'scoring' is full" in job["error"]["message"]
    assert job["external_id"] is None


def test_a_dispatch_error_without_a_message_names_its_class(queue_client, queue):
    create_queue_model(queue_client)
    queue.fail = TimeoutError()

    job = wait_for_job(queue_client, start_inference(queue_client))

    assert job["error"]["message"] == "dispatch to 'queue' failed: TimeoutError", job


def test_a_deferred_dispatch_leaves_the_job_pending_for_recovery(make_app, queue):
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 0}, plugins=[queue_plugin(queue)])
    client = Client(app.test_client())
    create_queue_model(client)
    queue.defer = 1

    job_id = start_inference(client)
    wait_for(lambda: queue.attempts >= 1)
    assert client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "pending"
    assert queue.sent == []

    # The recovery loop (not running in tests) dispatches it once the deferral released it.
    wait_for(lambda: app.extensions["pie"].dispatcher.recover_once() == 1)

    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "started" and job["external_id"] == "scoring-1"
    assert [payload["job_id"] for _, payload in queue.sent] == [job_id]


# --- start-up rules ---------------------------------------------------------------------


@pytest.mark.parametrize("taken", ["lambda", "ecs_task", "in_process"])
def test_a_type_name_taken_by_a_built_in_stops_start_up(make_app, taken):
    with pytest.raises(PluginError, match=taken):
        make_app(plugins=[types_plugin(handler_type(taken))])


def test_two_plugins_registering_the_same_type_name_stop_start_up(make_app):
    with pytest.raises(PluginError, match="queue"):
        make_app(plugins=[queue_plugin(Queue(), "one"), queue_plugin(Queue(), "two")])


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {"name": "queue"},
        "queue",
        QueueSchema,
        handler_type("queue")(None),
        type("LookAlike", (), {"name": "queue", "schema": QueueSchema}),
    ],
    ids=["object", "dict", "str", "schema-class", "instance", "look-alike-class"],
)
def test_a_value_that_is_not_a_handler_type_stops_start_up(make_app, value):
    with pytest.raises(PluginError):
        make_app(plugins=[types_plugin(value)])


def test_a_type_name_close_to_a_built_in_is_documented_apart_or_rejected_clearly(make_app):
    try:
        app = make_app(plugins=[types_plugin(handler_type("in-process"))])
    except PluginError as exc:  # a clear start-up error is an acceptable answer too
        assert "in-process" in str(exc)
        return
    client = Client(app.test_client())
    handler = {"type": "in-process", "queue": "scoring"}
    r = client.post("/v2/models", json=model_body(handlers=handlers(handler)))
    assert r.status_code == 201, r.get_json()
    spec = client.get("/openapi.json").get_json()
    mapping = spec["components"]["schemas"]["Handler"]["discriminator"]["mapping"]
    assert mapping["in-process"] != mapping["in_process"]


def test_a_handler_type_without_a_schema_stops_start_up(make_app):
    with pytest.raises(PluginError, match="schema"):
        make_app(plugins=[types_plugin(handler_type("queue", schema=None))])


def test_a_misspelled_hook_stops_start_up(make_app):
    class Misspelled:
        @hookimpl
        def pie_register_handler_typez(self, app: Any) -> list[Any]:
            return [handler_type("queue")]

    with pytest.raises(PluginError, match="pie_register_handler_typez"):
        make_app(plugins=[Misspelled()])


def test_disabled_plugins_remove_their_types(make_app):
    client = Client(make_app({"PIE_DISABLED_PLUGINS": ["ecs_task"]}).test_client())

    body = assert_envelope(client.post("/v2/models", json=model_body(handlers=handlers(ECS))), 400)
    message = body["message"]
    assert (
        "Unknown handler type 'ecs_task'. Known handler types: celery, http, in_process, lambda."
        in message
    )
    r = client.post("/v2/models", json=model_body("m2", handlers=handlers(LAMBDA)))
    assert r.status_code == 201, r.get_json()
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert set(schemas["Handler"]["discriminator"]["mapping"]) == {
        "celery",
        "lambda",
        "in_process",
        "http",
    }


def test_disabled_plugins_come_from_a_comma_separated_variable(make_app, monkeypatch, queue):
    monkeypatch.setenv("PIE_DISABLED_PLUGINS", "ecs_task, queue-plugin")
    client = Client(make_app(plugins=[queue_plugin(queue)]).test_client())

    for handler in (ECS, queue_handler()):
        r = client.post("/v2/models", json=model_body(handlers=handlers(handler)))
        assert_envelope(r, 400)
    r = client.post("/v2/models", json=model_body(handlers=handlers(LAMBDA)))
    assert r.status_code == 201, r.get_json()


def test_pie_plugins_lists_plugins_types_and_implementations(database_url, tmp_path):
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "PIE_DISABLED_PLUGINS": None,
    }

    result = CliRunner().invoke(pie.cli.main, ["plugins"], env=env)

    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert {"name": "lambda", "module": "pie.plugins.aws_lambda"} in listed["plugins"]
    assert {"name": "ecs_task", "module": "pie.plugins.ecs_task"} in listed["plugins"]
    assert {"name": "in_process", "module": "pie.plugins.in_process"} in listed["plugins"]
    assert listed["handler_types"] == ["celery", "ecs_task", "http", "in_process", "lambda"]
    assert listed["in_process_handlers"] == ["echo"]


def test_pie_plugins_leaves_out_disabled_plugins(database_url, tmp_path):
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "PIE_DISABLED_PLUGINS": "in_process",
    }

    result = CliRunner().invoke(pie.cli.main, ["plugins"], env=env)

    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert "in_process" not in {p["name"] for p in listed["plugins"]}
    assert listed["handler_types"] == ["celery", "ecs_task", "http", "lambda"]
    assert listed["in_process_handlers"] == []


def test_a_handler_type_without_dispatch_stops_start_up(make_app):
    from pie import HandlerType, hookimpl
    from pie.plugin_manager import PluginError

    class NoDispatch(HandlerType):
        name = "nodispatch"
        schema = ma.Schema

    class Plugin:
        @hookimpl
        def pie_register_handler_types(self, app):
            return [NoDispatch]

    with pytest.raises(PluginError, match="does not implement dispatch"):
        make_app(plugins=[Plugin()])
