"""Logs: JSON lines with a request id on every line of a request, one access line per request,
job ids on dispatch and completion lines, text format on request, and no credentials ever."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest

from pie import logs
from pie.db import connection
from pie.services import jobs, lifecycle
from pie.tables import Job, utcnow
from tests.helpers import (
    ADMIN,
    SECRET,
    activate,
    make_token,
    model_body,
    strict_json,
    wait_for_job,
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """PIE's own root handler (JSON) writing to a buffer; the root logger restored after."""
    root = logging.getLogger()
    level, handlers, show = root.level, list(root.handlers), warnings.showwarning
    stream = io.StringIO()
    logs.configure("json", "DEBUG", stream=stream)
    yield stream
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    warnings.showwarning = show


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_request_id_is_accepted_echoed_and_on_every_line(client, captured):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    r = client.get("/v2/models/m1", headers={"X-Request-ID": "req-42.a:b"})
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-42.a:b"
    mine = [line for line in lines(captured) if line.get("request_id") == "req-42.a:b"]
    access = [line for line in mine if line["logger"] == "pie.access"]
    assert len(access) == 1, mine
    assert access[0]["method"] == "GET"
    assert access[0]["route"] == "/v2/models/<model_id>"
    assert access[0]["status"] == 200
    assert isinstance(access[0]["duration_ms"], float) and access[0]["duration_ms"] >= 0
    assert access[0]["level"] == "INFO" and access[0]["time"].endswith("+00:00")


def test_access_lines_obey_the_access_loggers_level_and_filters(client, captured):
    """Operators silence or filter access lines on the `pie.access` logger as usual."""
    access = logging.getLogger("pie.access")

    def access_lines() -> list[dict]:
        return [line for line in lines(captured) if line["logger"] == "pie.access"]

    client.get("/v2/health")
    assert len(access_lines()) == 1
    access.setLevel(logging.WARNING)
    try:
        client.get("/v2/health")
        assert len(access_lines()) == 1
    finally:
        access.setLevel(logging.NOTSET)
    dropped: list[logging.LogRecord] = []

    def drop_health(record: logging.LogRecord) -> bool:
        if record.route == "/v2/health":  # type: ignore[attr-defined]
            dropped.append(record)
            return False
        return True

    access.addFilter(drop_health)
    try:
        client.get("/v2/health")
        client.get("/v2/models/nope")
    finally:
        access.removeFilter(drop_health)
    assert [line["route"] for line in access_lines()] == ["/v2/health", "/v2/models/<model_id>"]
    assert len(dropped) == 1 and dropped[0].getMessage() == "GET /v2/health 200"


def test_lines_logged_inside_a_request_carry_its_id(app, client, captured):
    """The completion line is written by the service while the callback request runs."""
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    with app.app_context(), connection():
        job = jobs.new_job(lifecycle.get_version("m1", "1"), "training", {})
    token = app.extensions["pie"].callback_token(job.job_id)
    r = client.post(
        f"/v2/models/m1/versions/1/jobs/{job.job_id}/complete",
        json={"status": "success", "output": {}},
        token=token,
        headers={"X-Request-ID": "cb-1"},
    )
    assert r.status_code == 200, r.get_json()
    completion = [line for line in lines(captured) if line["message"].startswith("job ")]
    assert completion and completion[0]["job_id"] == job.job_id
    assert completion[0]["request_id"] == "cb-1"
    assert completion[0]["status"] == "success"


@pytest.mark.parametrize("given", ["has space", "x" * 65, 'quote"d', "-leading-dash", ""])
def test_unusable_request_ids_are_replaced(client, captured, given):
    r = client.get("/v2/health", headers={"X-Request-ID": given} if given else {})
    generated = r.headers["X-Request-ID"]
    assert generated != given and len(generated) == 32 and int(generated, 16) >= 0
    assert any(line.get("request_id") == generated for line in lines(captured))


def test_each_request_gets_its_own_id(client):
    ids = {client.get("/v2/health").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3


def test_unmatched_paths_log_no_raw_path_as_route(client, captured):
    assert client.get("/v2/no/such/thing").status_code == 404
    access = [line for line in lines(captured) if line["logger"] == "pie.access"]
    assert access[-1]["route"] == "unmatched" and access[-1]["status"] == 404


def test_dispatch_and_completion_lines_carry_the_job_id(client, captured):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"x": 1}})
    job_id = r.get_json()["inference_job_id"]
    wait_for_job(client, job_id)
    about_job = [
        line
        for line in lines(captured)
        if job_id in line["message"] and line["logger"].startswith("pie.services")
    ]
    dispatched = [line for line in about_job if "dispatched to in_process" in line["message"]]
    completed = [line for line in about_job if "completed: success" in line["message"]]
    assert dispatched and completed, about_job
    assert all(line.get("job_id") == job_id for line in about_job), about_job
    assert dispatched[0]["handler_type"] == "in_process"


def test_text_format_is_human_readable_with_fields():
    stream = io.StringIO()
    handler_count = len(logging.getLogger().handlers)
    logs.configure("text", "INFO", stream=stream)
    try:
        token = logs.request_id_var.set("rid-7")
        logging.getLogger("pie.test").info("job %s done", "j1", extra={"job_id": "j1"})
        logs.request_id_var.reset(token)
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_pie", False)]:
            root.removeHandler(handler)
    assert len(logging.getLogger().handlers) == handler_count
    line = stream.getvalue().strip()
    assert "INFO" in line and "pie.test: job j1 done" in line
    assert "request_id=rid-7" in line and "job_id=j1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_configure_replaces_its_own_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        logs.configure("json", "INFO", stream=io.StringIO())
        logs.configure("json", "INFO", stream=io.StringIO())
        assert len([h for h in root.handlers if getattr(h, "_pie", False)]) == 1
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)


def test_formatters_redact_tokens_that_reach_a_message(captured):
    """Defence in depth: a JWT or bearer header inside an exception message is masked."""
    log = logging.getLogger("pie.test")
    try:
        raise RuntimeError(f"backend said: Authorization: Bearer {ADMIN}")
    except RuntimeError:
        log.exception("call failed with %s", ADMIN, extra={"detail": f"token={ADMIN}"})
    text = captured.getvalue()
    assert ADMIN not in text and ADMIN.split(".")[1] not in text
    assert text.count(logs.REDACTED) >= 3


def test_no_credentials_in_any_log_output(app, client, caplog, captured):
    """A whole job flow at DEBUG: in-process job, completion callback with a callback token,
    rejected tokens. Neither a token nor the signing secret appears in any captured output."""
    caplog.set_level(logging.DEBUG)
    forged = make_token(scope="streamline/admin", secret="another-secret-0123456789abcdefghij")
    expired = make_token(scope="streamline/admin", ttl=-60)
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"x": 1}})
    wait_for_job(client, r.get_json()["inference_job_id"])
    with app.app_context(), connection():
        job = jobs.new_job(lifecycle.get_version("m1", "1"), "inference", {"y": 2})
        Job.update(created_at=utcnow() - timedelta(minutes=5)).where(
            Job.job_id == job.job_id
        ).execute()
    callback = app.extensions["pie"].callback_token(job.job_id)
    path = f"/v2/models/m1/versions/1/jobs/{job.job_id}/complete"
    assert client.post(path, json={"status": "success", "output": {}}, token=callback).status_code
    assert client.get(f"/v2/jobs/{job.job_id}", token=callback).status_code == 200
    for bad in (forged, expired, "not-a-jwt", callback + "x"):
        assert client.get("/v2/models", token=bad).status_code == 401
    r = client.get("/v2/models", headers={"Authorization": f"Basic {SECRET}"}, token=None)
    assert r.status_code == 401
    assert caplog.records, "nothing was captured: the test would prove nothing"
    everything = caplog.text + captured.getvalue()
    everything += "".join(json.dumps(vars(record), default=str) for record in caplog.records)
    for secret in (ADMIN, callback, SECRET, forged, expired):
        assert secret not in everything
    for token in (ADMIN, callback, forged):
        assert token.split(".")[2] not in everything  # not even the signature on its own


@pytest.mark.parametrize("fmt, level", [("yaml", "INFO"), ("json", "LOUD")])
def test_unknown_format_or_level_is_a_clear_start_up_error(fmt, level):
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ValueError, match="PIE_LOG_"):
        logs.configure(fmt, level, stream=io.StringIO())
    assert logging.getLogger().handlers == handlers


def test_python_warnings_are_log_lines(captured, capsys):
    """PyJWT's InsecureKeyLengthWarning (or any Python warning) is a JSON line of the
    `py.warnings` logger, not plain text on stderr breaking the JSON stream."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        jwt.encode({"sub": "x"}, "5byte", algorithm="HS256")
        warnings.warn("something is deprecated", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
    found = [line for line in lines(captured) if line["logger"] == "py.warnings"]
    assert [(line["level"], line["category"]) for line in found] == [
        ("WARNING", "InsecureKeyLengthWarning"),
        ("WARNING", "DeprecationWarning"),
    ]
    assert found[0]["message"].startswith("InsecureKeyLengthWarning: The HMAC key is 5 bytes")
    assert found[1]["location"].startswith(__file__)


def test_a_warning_sent_to_a_chosen_stream_goes_there(captured):
    stream = io.StringIO()
    warnings.showwarning("to the stream", UserWarning, "f.py", 1, file=stream)
    assert "UserWarning: to the stream" in stream.getvalue()
    assert not [line for line in lines(captured) if line["logger"] == "py.warnings"]


def test_log_lines_stay_strict_json_with_non_finite_numbers(captured):
    log = logging.getLogger("pie.test")
    log.info("ratio", extra={"ratio": float("nan"), "sizes": [1.5, float("inf")]})
    (line,) = [strict_json(text) for text in captured.getvalue().splitlines() if "ratio" in text]
    assert (line["ratio"], line["sizes"]) == ("nan", [1.5, "inf"])


TENANT_VALUE = "tv-7f3a-tenant-value"


def test_no_tenant_value_reaches_a_line_above_debug(app, client, captured):
    """A tenant's inputs, outputs, errors, names and features are its data, not the
    operator's: a flow that puts one value everywhere a tenant can (names, a stored
    subscription input, job inputs, an output that violates its schema and so makes a
    warning quoting it, a failing job's error, refused bodies that quote it) logs it at DEBUG
    at most."""
    value = TENANT_VALUE
    contract = {"output_schema": {"type": "object", "properties": {"score": {"type": "number"}}}}
    body = model_body("m1", name=value, description=value)
    body["handler_contracts"] = {"inference": contract, "training": contract}
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "m1")
    r = client.post(
        "/v2/models/m1/event-subscriptions",
        json={
            "trigger_event": "training_complete",
            "target_model_id": "m1",
            "target_action": "inference",
            "input_source": "stored",
            "input": {"score": value},
        },
    )
    assert r.status_code == 201, r.get_json()
    assert client.post("/v2/clients", json={"client_id": "acme", "name": value}).status_code == 201
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"score": value}})
    job = wait_for_job(client, r.get_json()["inference_job_id"])
    assert job["warnings"] and value in job["warnings"][0]  # the violation quotes the value
    assert client.post("/v2/models/m1/new_version", json={}).status_code == 201
    r = client.post("/v2/models/m1/versions/2/training", json={"input": {"score": value}})
    wait_for_job(client, r.get_json()["training_job_id"])
    assert client.post("/v2/models", json=model_body(f"{value} !")).status_code == 400
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": value})
    assert r.status_code == 400

    records = lines(captured)
    assert any(line["level"] == "DEBUG" and value in json.dumps(line) for line in records)
    loud = [line for line in records if line["level"] != "DEBUG" and value in json.dumps(line)]
    assert not loud, loud
    assert any("violates its output_schema" in line["message"] for line in records)


@pytest.mark.parametrize(
    "value",
    [
        "x\n2026-11-30 00:00:00,000 INFO [1] pie.access: forged",
        "x\r\n2026-11-30 forged",
        "\x1b[2J\x1b[31mred",
        "right\u202eto-left",
        "line\u2028separator",
        "nul\x00 and \x85 and \x9b",
    ],
)
def test_text_lines_cannot_be_forged_or_paint_the_terminal(value):
    """Text format: a value with a newline, an ANSI escape, a bidi override or a separator,
    in a message, a field or an exception, stays inside its own line, escaped."""
    stream = io.StringIO()
    before = list(logging.getLogger().handlers)
    logs.configure("text", "INFO", stream=stream)
    log = logging.getLogger("pie.test")
    try:
        log.info("got %s", value, extra={"detail": value})
        try:
            raise ValueError(value)
        except ValueError:
            log.exception("failed on %s", value)
    finally:
        for handler in logging.getLogger().handlers[:]:
            if handler not in before:
                logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    rows = text.split("\n")[:-1]
    assert text.endswith("\n")
    heads = [row for row in rows if not row.startswith("    | ")]
    assert len(heads) == 2, rows  # the info line and the exception's first line
    assert all("pie.test: " in row for row in heads)
    for unsafe in "\r\x1b\u202e\u2028\x00\x85\x9b":
        assert unsafe not in text
    assert any(row.startswith("    | ValueError: ") for row in rows)
    assert f"got {logs.escape(value)} detail={logs.escape(value)}\n" in text
