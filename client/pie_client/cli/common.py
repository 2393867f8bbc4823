"""What every command shares: the connection options, reading JSON arguments, and turning
the client's exceptions into one error line and a stable exit code."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from pie_client.client import Client

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# Exit codes scripts can rely on (README, "The Python client and the `pie` command").
EXIT_OK = 0
EXIT_ERROR = 1  # anything else: a 5xx, an unexpected status, a bad config file
EXIT_USAGE = 2  # click's own: a missing or malformed argument
EXIT_NOT_FOUND = 3  # 404
EXIT_PERMISSION = 4  # 401, 403
EXIT_VALIDATION = 5  # 400, 413, 422
EXIT_CONFLICT = 6  # 409
EXIT_CONNECTION = 7  # the server could not be reached
EXIT_JOB_FAILED = 8  # `--wait` / `watch`: the job ended with `failure`
EXIT_TIMEOUT = 9  # `--wait` / `watch`: the job had not ended within --timeout

STATUS_EXITS = {
    400: EXIT_VALIDATION,
    401: EXIT_PERMISSION,
    403: EXIT_PERMISSION,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
    413: EXIT_VALIDATION,
    422: EXIT_VALIDATION,
}
FORMATS = ("table", "json", "yaml")


def api_command(function: F) -> F:
    """The options every API command takes, and its errors reported as exit codes."""

    def wrapper(
        profile: str | None, url: str | None, token: str | None, output: str | None, **kwargs: Any
    ) -> Any:
        click.get_current_context().obj = {
            "profile": profile,
            "url": url,
            "token": token,
            "output": output,
        }
        with reported_errors():
            return function(**kwargs)

    wrapper.__name__, wrapper.__doc__ = function.__name__, function.__doc__
    for option in reversed(CONNECTION_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


CONNECTION_OPTIONS = (
    click.option("--profile", default=None, help="A profile saved by `pie login`."),
    click.option("--url", default=None, help="The server [default: PIE_URL, the profile]."),
    click.option("--token", default=None, help="A bearer token [default: PIE_TOKEN, the profile]."),
    click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format [default: table on a terminal, else json].",
    ),
)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """A client exception becomes one `error: …` line on stderr and its exit code."""
    from pie_client import errors

    try:
        yield
    except errors.ApiError as exc:
        fail(exc, STATUS_EXITS.get(exc.status, EXIT_ERROR))
    except errors.PieConnectionError as exc:
        fail(exc, EXIT_CONNECTION)
    except errors.JobTimeout as exc:
        fail(exc, EXIT_TIMEOUT)
    except OSError as exc:  # a -f file that cannot be read, a config file not written
        if exc.filename is not None and exc.strerror:
            files = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
            exc = OSError(f"{files}: {exc.strerror}")
        fail(exc, EXIT_ERROR)
    except ValueError as exc:
        fail(exc, EXIT_ERROR)


def fail(exc: Exception, code: int) -> NoReturn:
    from pie_client.cli.progress import Progress

    Progress.end_line()  # not after a half-drawn progress bar
    click.echo(f"error: {exc}", err=True)
    sys.exit(code)


def client() -> Client:
    """The client for this command's connection options."""
    from pie_client.client import Client

    options = click.get_current_context().obj or {}
    return Client(options.get("url"), options.get("token"), profile=options.get("profile"))


def output_format() -> str:
    chosen = (click.get_current_context().obj or {}).get("output")
    return chosen or ("table" if sys.stdout.isatty() else "json")


def read_document(source: str) -> Any:
    """JSON (or YAML) from a file, or `-` for stdin."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return parse_text(text, source)


def json_argument(value: str) -> Any:
    """A JSON value given inline, or `@file` (`@-`: stdin)."""
    if value.startswith("@"):
        return read_document(value[1:])
    return parse_text(value, "the argument")


def parse_text(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "["):  # meant as JSON: say what is wrong as JSON
            raise click.BadParameter(f"{source} is not valid JSON: {exc}") from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{source} is neither JSON nor YAML: {exc}") from exc


def json_object(value: str, option: str = "--input") -> dict[str, Any]:
    """The JSON object an option gives (inline, or `@file`); anything else is a usage error
    naming the option and what it held."""
    found = json_argument(value)
    if not isinstance(found, dict):
        held = "text that is not JSON" if isinstance(found, str) else f"a JSON {_kind(found)}"
        raise click.BadParameter(f"expected a JSON object, got {held}", param_hint=f"'{option}'")
    return found


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {list: "array", int: "number", float: "number"}.get(type(value), type(value).__name__)


def body_call(function: Callable[..., T], *args: Any, body: Any, source: str) -> T:
    """`function(*args, **body)`; a body that is not an object, or names a field the call
    does not take, is a validation error (exit 5) naming the fields."""
    import inspect

    if not isinstance(body, dict):
        fail(ValueError(f"{source}: expected a JSON object"), EXIT_VALIDATION)
    accepted = inspect.signature(function).parameters
    unknown = sorted(set(body) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        fail(ValueError(f"{source}: unknown field(s) {', '.join(unknown)}"), EXIT_VALIDATION)
    missing = sorted(
        name
        for name, p in list(accepted.items())[len(args) :]
        if p.default is p.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and name not in body
    )
    if missing:
        fail(ValueError(f"{source}: missing field(s) {', '.join(missing)}"), EXIT_VALIDATION)
    return function(*args, **body)


def split_version(target: str) -> tuple[str, str | None]:
    """`MODEL@VERSION` -> (model, version); `MODEL` -> (model, None)."""
    model, _, version = target.partition("@")
    return model, version or None
