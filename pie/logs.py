"""Logging: JSON or text lines on stderr, a request id on each, one access line per request."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import re
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only when it is a short, plain token (no spaces, quotes, newlines).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# Defence in depth: no code logs credentials, but a JWT or a bearer header in an exception
# message still never reaches the output.
SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
)
REDACTED = "[redacted]"

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pie_request_id", default=None
)
access_log = logging.getLogger("pie.access")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def redact(text: str) -> str:
    # Either alternative of SECRETS needs "eyJ" or a "bearer" in some case: when neither is
    # there (nearly every line), skip the regex scan.
    if "eyJ" not in text and "bearer" not in text.lower():
        return text
    return SECRETS.sub(REDACTED, text)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being handled on its thread (if any)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a call passed with `extra=` (job_id, route, status, …)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_") and value is not None
    }


# Strict: a NaN or an infinity in a field would make the line something JSON parsers refuse.
_ENCODE = json.JSONEncoder(default=str, allow_nan=False).encode


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (at any depth) turned into its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "process": record.process,
        }
        for key, value in record.__dict__.items():  # the `extra=` fields, as `extras` finds
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                line[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        try:
            return _ENCODE(line)
        except ValueError:  # NaN or infinity in a field
            return _ENCODE(_finite(line))


# What a value may not bring into a text line: C0 and C1 controls (a newline forging a line,
# an ANSI escape repainting the operator's terminal), line and paragraph separators, and the
# bidirectional overrides that make a line read in another order than it was written.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape(text: str) -> str:
    """`text` with every unsafe character written as its Python escape (`\\n`, `\\x1b`)."""
    if text.isascii() and text.isprintable():  # nearly every line: nothing to replace
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """Human-readable lines, the structured fields appended as key=value. Whatever a value
    holds, a record is one line, then its traceback with every line indented: nothing a
    client sends can start a line of its own or reach the terminal as a control sequence."""

    def format(self, record: logging.LogRecord) -> str:
        head = (
            f"{self.formatTime(record)} {record.levelname} [{record.process}] {record.name}: "
            f"{record.getMessage()}"
        )
        fields = " ".join(f"{key}={value}" for key, value in extras(record).items())
        text = escape(f"{head} {fields}" if fields else head)
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for block in extra:
            text += "".join(f"\n    | {escape(line)}" for line in block.splitlines())
        return redact(text)


FORMATS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (CLI runners swap it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> IO[str]:  # type: ignore[override]
        return sys.stderr


def default_format(stream: IO[str] | None = None) -> str:
    """Text for a person at a terminal, JSON lines for everything else (files, pipes, log
    collectors)."""
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "json"


def current_format() -> str | None:
    """The format of PIE's handler on the root logger, if it installed one."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_pie", False):
            return handler._pie_format  # type: ignore[attr-defined]
    return None


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: IO[str] | None = None,
    line: str | None = None,
) -> None:
    """warnings.showwarning once PIE configured logging: a Python warning (PyJWT's
    InsecureKeyLengthWarning, a DeprecationWarning) is a WARNING record of the `py.warnings`
    logger — a JSON line like any other — instead of text written to stderr."""
    if file is not None:  # a caller that asked for a particular stream gets it
        with contextlib.suppress(OSError):  # as warnings does: the stream may be closed
            file.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    logging.getLogger("py.warnings").warning(
        "%s: %s",
        category.__name__,
        message,
        extra={"category": category.__name__, "location": f"{filename}:{lineno}"},
    )


def configure(fmt: str | None = None, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log record to one handler on the root logger (replacing the one a previous
    call installed), formatted as JSON lines or text (None: `default_format`), and Python
    warnings with them."""
    fmt = fmt or default_format(stream)
    if fmt.lower() not in FORMATS:
        raise ValueError(f"PIE_LOG_FORMAT is {fmt!r}; use one of: {', '.join(FORMATS)}")
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ValueError(f"PIE_LOG_LEVEL is {level!r}; use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_pie", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(FORMATS[fmt.lower()]())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(level.upper())  # also for loggers with their own level (gunicorn's)
    handler._pie = True  # type: ignore[attr-defined]
    handler._pie_format = fmt.lower()  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    warnings.showwarning = show_warning


def _start_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.pie_request_started = time.perf_counter()
    g.pie_request_id_token = request_id_var.set(request_id)


def route_label() -> str:
    """The URL rule that matched (`/v2/models/<model_id>`), never the raw path."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def _finish_request(response: Response) -> Response:
    request_id = request_id_var.get()
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    if not access_log.isEnabledFor(logging.INFO):
        return response
    started = g.get("pie_request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    method, route, status = request.method, route_label(), response.status_code
    # What access_log.info() does, less finding the calling source line (a third of the
    # cost of a line, and meaningless for an access line): handlers and filters still apply.
    record = access_log.makeRecord(
        access_log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s",
        (method, route, status),
        None,
        extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
    )
    access_log.handle(record)
    return response


def _end_request(exc: BaseException | None) -> None:
    token = g.pop("pie_request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def init_app(app: Flask) -> None:
    """Request ids and access lines; PIE's log handler too, unless the root logger already has
    someone else's (a host application's logging setup, a test runner's capture)."""
    root = logging.getLogger()
    if all(getattr(handler, "_pie", False) for handler in root.handlers):
        configure(app.config["PIE_LOG_FORMAT"], app.config["PIE_LOG_LEVEL"])
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
