"""Webhooks: how fast events are delivered, and what the outbox costs the routes that write
events.

    python -m bench.webhooks [--events 2000] [--duration 3] [--rounds 3] [--clients 8]

Starts `pie serve` (SQLite, 2 workers, each with its deliverer) and a receiver on loopback
that answers 204 at once.

1. Delivery: EVENTS model.created events are written straight into the outbox (one global
   endpoint taking every event); the figure is events per second from the commit to the
   receiver having them all, and the oldest event's time to arrive.
2. Overhead: `POST …/new_status` (pending → training) and the completion callback, each
   request on a row of its own, driven by `--clients` keep-alive Python clients for
   `--duration` seconds, in three modes per round, in rotating order: no endpoint (no
   outbox rows), a paused endpoint (the outbox row is written, nothing is sent) and an
   active one (written and delivered while the load runs). Ratios are each mode's req/s to
   the same round's no-endpoint figure; medians over the rounds."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.http import ROOT, SECRET, Http, free_port, seed_database, start, wait_healthy

CACHE_SECONDS = 5.5  # each worker reads the endpoints at most every 5 s


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"


def seed_events(url: str, count: int) -> float:
    """Write `count` model.created events for every receiving endpoint, in one transaction;
    the time it committed."""
    from pie.db import database, open_database
    from pie.services import outbox

    database.initialize(open_database(url))
    with database.connection_context():
        events = [(None, lambda n=n: {"id": f"bench-{n}"}) for n in range(count)]
        with database.atomic():
            outbox.emit_each("model.created", events)
        committed = time.monotonic()
    database.close_all()
    return committed


def drive(port: int, token: str, paths: list[list[str]], body: dict, seconds: float) -> float:
    """Requests per second: one keep-alive client per list of paths, each path once."""
    done = [0] * len(paths)
    stop = time.monotonic() + seconds
    payload = json.dumps(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for path in paths[index]:
            if time.monotonic() >= stop:
                break
            connection.request("POST", path, body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                raise RuntimeError(f"{path}: {response.status}")
            done[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(paths))]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - began)


def set_mode(api: Http, webhook_id: str, mode: str, url: str) -> None:
    status = {"none": "disabled", "paused": "paused", "active": "active"}[mode]
    code, _, _ = api.call(
        "PUT", f"/v2/webhooks/{webhook_id}", {"url": url, "events": ["*"], "status": status}
    )
    assert code == 200, code
    time.sleep(CACHE_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pie-bench-webhooks-"))
    port, url = free_port(), f"sqlite:///{folder}/pie.sqlite"
    env = {
        "PIE_DATABASE_URL": url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(folder),
        "PIE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "PIE_WEBHOOK_ENDPOINT_CONCURRENCY": "8",
        # The callbacks' jobs belong to a handler type that is not loaded: recovery must
        # leave them pending (as PIE_EMBEDDED_WORKER=0 does in bench.http).
        "PIE_DISPATCH_GRACE_SECONDS": "86400",
    }
    command = [sys.executable, "-m", "pie", "serve", "--port", str(port), "--workers", "2"]
    server = start(command, env, folder / "pie.log")
    receiver = Receiver()
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health")
        sys.path.insert(0, str(ROOT))
        from pie.auth import TokenVerifier

        token = TokenVerifier(SECRET).mint({"sub": "bench", "scope": "streamline/admin"}, 7200)
        api = Http(f"http://127.0.0.1:{port}", token)
        handlers = {"training": {"type": "in_process", "value": "echo"}}
        handlers["inference"] = handlers["training"]
        api.call(
            "POST", "/v2/models", {"id": "m", "name": "m", "description": "", "handlers": handlers}
        )
        api.call("POST", "/v2/models/m/versions/1/new_status", {"status": "active"})
        code, hook, _ = api.call("POST", "/v2/webhooks", {"url": receiver.url, "events": ["*"]})
        assert code == 201, hook
        webhook_id = hook["webhook_id"]
        time.sleep(CACHE_SECONDS)

        # 1. Delivery throughput.
        base = receiver.count
        committed = seed_events(url, args.events)
        first = None
        while receiver.count - base < args.events:
            if first is None and receiver.count > base:
                first = time.monotonic() - committed
            time.sleep(0.01)
        elapsed = time.monotonic() - committed
        print(
            f"delivery: {args.events} events in {elapsed:.2f} s = {args.events / elapsed:.0f} "
            f"events/s (first after {1000 * (first or 0):.0f} ms; 2 workers x "
            "PIE_WEBHOOK_ENDPOINT_CONCURRENCY=8, one endpoint)"
        )

        # 2. Overhead on the writing routes.
        modes = ["none", "paused", "active"]
        runs = len(modes) * args.rounds
        per_client = 4000
        seed_database(url, args.clients, per_client, runs)
        figures: dict[str, dict[str, list[float]]] = {
            route: {mode: [] for mode in modes} for route in ("new_status", "complete")
        }
        run = 0
        for round_no in range(args.rounds):
            order = modes[round_no % 3 :] + modes[: round_no % 3]
            for mode in order:
                set_mode(api, webhook_id, mode, receiver.url)
                status_paths = [
                    [
                        f"/v2/models/m/versions/b{run}-{t}-{n}/new_status"
                        for n in range(1, per_client + 1)
                    ]
                    for t in range(args.clients)
                ]
                job_paths = [
                    [
                        f"/v2/models/m/versions/1/jobs/cb{run}-{t}-{n}/complete"
                        for n in range(1, per_client + 1)
                    ]
                    for t in range(args.clients)
                ]
                figures["new_status"][mode].append(
                    drive(port, token, status_paths, {"status": "training"}, args.duration)
                )
                figures["complete"][mode].append(
                    drive(
                        port,
                        token,
                        job_paths,
                        {"status": "success", "output": {"ok": True}},
                        args.duration,
                    )
                )
                run += 1
        print(f"{'route':<14}{'mode':<9}{'req/s':>8}{'ratio':>8}   range over {args.rounds} rounds")
        for route, by_mode in figures.items():
            for mode in modes:
                ratios = [x / y for x, y in zip(by_mode[mode], by_mode["none"], strict=True)]
                print(
                    f"{route:<14}{mode:<9}{statistics.median(by_mode[mode]):>8.0f}"
                    f"{statistics.median(ratios):>8.2f}   {min(ratios):.2f}-{max(ratios):.2f}"
                )
        print(f"receiver got {receiver.count} deliveries in all")
    finally:
        server.terminate()
        server.wait(30)
        receiver.server.shutdown()


if __name__ == "__main__":
    main()
