"""The worker side of pie-redis-list: pop payloads, run a function, report to PIE.

    python -m pie_redis_list.worker scoring mymodels:score

runs `mymodels.score(input) -> output` (a JSON object) for each job queued on the list
`scoring`, and POSTs the outcome to the job's callback URL with its callback token. An
exception fails the job (`retryable` when the exception has `retryable = True`). Jobs PIE has
cancelled or timed out are skipped. It needs no PIE server code: only redis and the standard
library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import redis

from pie_redis_list import JOBS, attempt_key, redis_url

log = logging.getLogger("pie_redis_list.worker")


def outcome(function: Callable[[Any], Any], job_input: Any) -> dict[str, Any]:
    try:
        return {"status": "success", "output": function(job_input)}
    except Exception as exc:
        body: dict[str, Any] = {
            "status": "failure",
            "error": {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__},
        }
        if getattr(exc, "retryable", False):
            body["error"]["retryable"] = True  # tried again while the job policy allows
        return body


def post(payload: dict[str, Any], body: dict[str, Any], timeout: float) -> int:
    """POST the outcome once; the HTTP status, or 0 when no answer came."""
    request = urllib.request.Request(
        payload["callback"]["url"],
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {payload['callback']['token']}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:  # refused, reset, timed out
        log.warning("job %s: no answer from PIE: %s", payload["job_id"], exc)
        return 0


def report(
    payload: dict[str, Any], body: dict[str, Any], tries: int = 5, timeout: float = 10
) -> int:
    """Send the outcome: again, with backoff, on no answer or a 5xx; a 409 means the job had
    already ended (nothing to do). A 4xx that refuses the outcome itself (an output that is
    not a JSON object, say) is reported as a failure instead, so the job does not wait for
    its deadline. The last status, or 0."""
    status = 0
    for attempt in range(tries):
        status = post(payload, body, timeout)
        if status and status < 500:
            break
        time.sleep(min(2**attempt, 30))
    if status in (400, 422) and body["status"] == "success":
        log.error("job %s: PIE refused the output (HTTP %s)", payload["job_id"], status)
        error = {"type": "InvalidOutput", "message": f"PIE refused the output: HTTP {status}"}
        return report(payload, {"status": "failure", "error": error}, tries, timeout)
    if status not in (200, 409):
        log.error("job %s: the outcome was not recorded (HTTP %s)", payload["job_id"], status)
    return status


def run_one(
    connection: redis.Redis, payload: dict[str, Any], function: Callable, tries: int = 5
) -> int | None:
    """Run one popped job unless PIE ended its attempt; the callback's status, or None."""
    job_id, attempt = payload["job_id"], payload["attempt"]
    if connection.exists(attempt_key(job_id, attempt)):
        log.info("job %s attempt %s was ended by PIE; skipped", job_id, attempt)
        return None
    return report(payload, outcome(function, payload["input"]), tries)


def work(
    list_name: str,
    function: Callable[[Any], Any],
    *,
    url: str | None = None,
    stop: threading.Event | None = None,
    poll_seconds: float = 1.0,
    tries: int = 5,
) -> None:
    """Pop and run jobs from `list_name` until `stop` is set; `tries`: sends of an outcome
    PIE does not answer (1, 2, 4, ... s apart)."""
    stop = stop or threading.Event()
    connection = redis.Redis.from_url(url or redis_url())
    try:
        while not stop.is_set():
            try:
                item = connection.blpop([JOBS + list_name], timeout=poll_seconds)
            except redis.RedisError as exc:  # Redis restarting: wait, then pop again
                log.warning("Redis: %s", exc)
                stop.wait(poll_seconds)
                continue
            if item is None:
                continue
            try:
                status = run_one(connection, json.loads(item[1]), function, tries)
                log.info("reported a job: HTTP %s", status)
            except Exception:  # a malformed item, say: log it and go on with the next
                log.exception("could not run a job popped from %s", list_name)
    finally:
        connection.close()


def load_function(spec: str) -> Callable[[Any], Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("list", help="the list named in the model's handler")
    parser.add_argument("function", help="module:function taking the input, returning output")
    parser.add_argument("--url", help="Redis URL (default: PIE_REDIS_LIST_URL or local)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    work(args.list, load_function(args.function), url=args.url)


if __name__ == "__main__":
    main()
