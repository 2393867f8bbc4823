"""Server-assigned ids: UUIDv7 text, unique and time-ordered."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = [0, 0]  # last millisecond, last 12-bit sequence


def uuid7() -> str:
    """RFC 9562 UUIDv7; monotonic within this process (a counter breaks same-millisecond ties)."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            seq = _last[1] + 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
        else:
            seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _last[0], _last[1] = ms, seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


MAX_MS = (1 << 48) - 1  # the largest time a UUIDv7 holds


def first_uuid7_at(ms: int) -> str:
    """The smallest UUIDv7 text of millisecond `ms` (clamped to what a UUIDv7 holds): every
    id made at or after `ms` sorts at or after it, every id made before it sorts before."""
    ms = min(max(ms, 0), MAX_MS)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62)))
