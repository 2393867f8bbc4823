"""A plugin for shutdown tests: the in-process implementation `slow` sleeps `seconds` (from the
job input), then echoes the input. Loaded into `pie serve`/`pie worker` subprocesses through a
PIE_PLUGINS_PATH folder that holds a copy of this file."""

from __future__ import annotations

import time
from typing import Any

from pie import hookimpl


def slow(job_input: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(job_input.get("seconds", 2)))
    return job_input


@hookimpl
def pie_register_in_process_handlers(app: Any) -> dict[str, Any]:
    return {"slow": slow}
