"""A least-recently-used cache bounded by the total size of what it holds, and by count."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class SizedCache:
    """Values by key; past `capacity` (the sum of the sizes given to `put`) or `count`
    entries, the least recently used go."""

    def __init__(self, capacity: int, count: int) -> None:
        self.capacity, self.count = capacity, count
        self.lock = threading.Lock()
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.size = 0

    def get(self, key: Hashable) -> Any | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = (value, size)
            self.size += size
            while len(self.entries) > 1 and (
                self.size > self.capacity or len(self.entries) > self.count
            ):
                self.size -= self.entries.popitem(last=False)[1][1]
