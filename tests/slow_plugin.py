"""A plugin for shutdown and crash tests: the in-process implementation `slow` sleeps `seconds`
(from the job input; SLOW_PLUGIN_SECONDS in the environment overrides it), then echoes the
input. With SLOW_PLUGIN_RUNS set, each run first appends a line `<pid> <job input n>` to that
file. Loaded into `pie serve`/`pie worker` subprocesses through a PIE_PLUGINS_PATH folder that
holds a copy of this file."""

from __future__ import annotations

import os
import time
from typing import Any

from pie import hookimpl


def slow(job_input: dict[str, Any]) -> dict[str, Any]:
    runs = os.environ.get("SLOW_PLUGIN_RUNS")
    if runs:
        with open(runs, "a") as record:
            record.write(f"{os.getpid()} {job_input.get('n')}\n")
    time.sleep(float(os.environ.get("SLOW_PLUGIN_SECONDS") or job_input.get("seconds", 2)))
    return job_input


@hookimpl
def pie_register_in_process_handlers(app: Any) -> dict[str, Any]:
    return {"slow": slow}
