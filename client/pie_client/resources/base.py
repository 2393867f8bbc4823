"""What every resource shares: path building and the transport's calls, returning records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from pie_client.pagination import Pager
from pie_client.transport import Transport

T = TypeVar("T")


def path(*segments: str) -> str:
    """`/v2/…` from path segments, each percent-encoded (an id never adds a segment)."""
    return "/v2/" + "/".join(quote(str(segment), safe="") for segment in segments)


def fields(**values: Any) -> dict[str, Any]:
    """A request body from the arguments that were given (None means: not sent)."""
    return {name: value for name, value in values.items() if value is not None}


class Resource:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _call(
        self,
        method: str,
        url: str,
        build: Callable[[dict[str, Any]], T],
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> T:
        return build(self.transport.request(method, url, params, body).data)

    def _delete(self, url: str) -> None:
        self.transport.request("DELETE", url)

    def _list(
        self,
        url: str,
        build: Callable[[dict[str, Any]], T],
        page_size: int = 100,
        params: dict[str, Any] | None = None,
        cursor: bool = False,
    ) -> Pager[T]:
        return Pager(self.transport, url, build, params, page_size, cursor)
