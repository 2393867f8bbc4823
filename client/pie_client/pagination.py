"""Lazy iteration over PIE's lists: page numbers (`page`, `X-Pagination: {"next_page": …}`)
and the cursor of `GET /v2/jobs` (`after`, `X-Pagination: {"next_after": …}`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pie_client.transport import Response, Transport

T = TypeVar("T")


def pagination(response: Response) -> dict[str, Any]:
    try:
        value = json.loads(response.headers.get("x-pagination") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class Pager(Generic[T]):
    """Iterates over every item of a list, fetching each page only when it is reached."""

    def __init__(
        self,
        transport: Transport,
        path: str,
        build: Callable[[dict[str, Any]], T],
        params: dict[str, Any] | None = None,
        page_size: int = 100,
        cursor: bool = False,
    ) -> None:
        self.transport = transport
        self.path = path
        self.build = build
        self.params = {**(params or {}), "page_size": page_size}
        self.cursor = cursor
        self.total: int | None = None  # known after the first page of a page-number list

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page

    def pages(self) -> Iterator[list[T]]:
        position: Any = None if self.cursor else 1
        while True:
            key = "after" if self.cursor else "page"
            response = self.transport.request("GET", self.path, {**self.params, key: position})
            yield [self.build(item) for item in response.data or []]
            meta = pagination(response)
            self.total = meta.get("total", self.total)
            position = meta.get("next_after") if self.cursor else meta.get("next_page")
            if not position:
                return

    def first(self, count: int | None = None) -> list[T]:
        """The first `count` items (all of them when None), reading only the pages needed."""
        found: list[T] = []
        if count == 0:
            return found
        for item in self:
            found.append(item)
            if count is not None and len(found) >= count:
                break
        return found
