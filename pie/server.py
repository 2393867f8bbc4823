"""Running PIE under gunicorn: several worker processes, threads in each, metrics shared
through files, graceful shutdown within PIE_SHUTDOWN_GRACE_SECONDS."""

from __future__ import annotations

import contextlib
import errno
import gc
import glob
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gunicorn.util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.workers import gthread
from gunicorn.workers.gthread import ThreadWorker

from pie.accept_balance import BalancedAccept, Board, close_when_crowded, give_slot
from pie.errors import envelope
from pie.slow_clients import ClientTimeout, DeadlineSocket

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FIRST_BYTE_WAIT_SECONDS = 0.05
NEWER_SETTINGS = {"control_socket_disable"}
# Held back from a new worker between its fork and its own handlers (see PieArbiter).
STOP_SIGNALS = {signal.SIGINT, signal.SIGQUIT, signal.SIGTERM}


class PieArbiter(Arbiter):
    """gunicorn's master. A worker forked moments before a stop signal still ran the
    master's handlers until it installed its own, which only queue the signal for a main loop
    the worker never runs: a Ctrl+C, and the master's SIGQUIT after it, were lost, and the
    worker served on until the master killed it at the end of the grace period. The stop
    signals are blocked across the fork; the worker unblocks them once its handlers are in
    place (PieWorker.init_signals), and a signal that came meanwhile is handled then."""

    def spawn_worker(self) -> int:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().spawn_worker()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


class PieServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in NEWER_SETTINGS and key not in self.cfg.settings:
                continue  # an older gunicorn without it
            self.cfg.set(key, value)

    def run(self) -> None:
        try:
            PieArbiter(self).run()
        except RuntimeError as e:  # as gunicorn's own run: a bad setting, a taken address
            print(f"\nError: {e}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load(self) -> Any:
        from pie import create_app, metrics

        # Each worker builds its own app after the fork: its own connections and threads.
        app = create_app({"PIE_AUTO_MIGRATE": False, "PIE_PROCESS_KIND": "serve"})
        metrics.SERVER_WORKERS.set(1)
        if app.config["PIE_EMBEDDED_WORKER"]:
            # Now, not at the first request: an idle server must still recover jobs. The loop
            # registers this worker (never the master) in the process registry.
            app.extensions["pie"].start_background()
        settle_heap()
        return app


def settle_heap() -> None:
    """Collect what building the app left behind, then freeze the rest (modules, the app,
    its schemas and tables: tens of thousands of objects that live as long as the worker)
    out of the garbage collector's reach. Its full collections then scan only what requests
    create: one over the whole heap stopped every thread of the worker for ~120 ms on the
    2-core bench machine, which a request caught behind it paid in full."""
    gc.collect()
    gc.freeze()


class GunicornLogger(Logger):
    """Gunicorn's own messages go through the root handler PIE installed (JSON or text), and
    gunicorn writes no access log: PIE's access line replaces it."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """A client that was too slow is one INFO line, not a traceback ("Socket error
        processing request")."""
        error = sys.exc_info()[1]
        if isinstance(error, ClientTimeout):
            self.error_log.info("%s; connection closed", error)
            return
        super().exception(msg, *args, **kwargs)


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error` speaking PIE's envelope instead of an HTML page: the
    answers gunicorn gives itself to requests it cannot parse (a bad request line or header
    400, a long URL 414, large headers 431, an unmet Expect 417, an unknown
    Transfer-Encoding 501) reach clients that expect JSON."""
    message = f"{reason}: {mesg}" if mesg else reason
    body = json.dumps(envelope(message), separators=(",", ":")).encode("ascii")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


class PieWorker(BalancedAccept, ThreadWorker):
    """gunicorn's gthread worker; on SIGTERM the app starts closing at once, while gunicorn
    drains the in-flight requests: no queued in-process job starts after the signal. Its own
    error pages are the JSON envelope. It takes new connections in turn with its siblings
    (pie.accept_balance)."""

    closing: threading.Thread | None = None
    quitting = False
    client_timeout: float = 10.0  # PIE_CLIENT_TIMEOUT_SECONDS, set by `run` before the fork

    def handle(self, conn: Any) -> Any:
        """One request of a connection, on a pool thread: its client socket gets deadlines
        (pie.slow_clients) — a slow or stalled client no longer holds the thread for ever."""
        if not conn.initialized and not conn.data_ready:
            # gunicorn 27 hands each new connection to a pool thread, which waited up to 5 s
            # for its first byte before giving it back to the event loop: one silent
            # connection a second kept every thread waiting. A moment here, then the event
            # loop waits for it (and closes it after the keep-alive timeout).
            if not conn.wait_for_data(FIRST_BYTE_WAIT_SECONDS):
                return gthread._DEFER
        if not self.cfg.is_ssl:  # PIE does not terminate TLS; a proxy in front does
            if not isinstance(conn.sock, DeadlineSocket):
                conn.sock = DeadlineSocket(conn.sock, self.client_timeout)
            conn.sock.begin_request()
        return super().handle(conn)

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held since the fork

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGINT/SIGQUIT: quick shutdown, once. Ctrl+C at a terminal signals every process of
        the group and the master then sends its workers SIGQUIT as well; a second run of this
        handler inside the first one's thread-pool shutdown waited forever on the lock the
        first held, until the master's SIGKILL 30 s later."""
        if self.quitting:
            return
        self.quitting = True
        super().handle_quit(sig, frame)

    def init_process(self) -> None:
        # gunicorn's handle_error writes through this module function (looked up per call);
        # the worker process is PIE's alone. tests/test_server_edges.py proves every page.
        gunicorn.util.write_error = write_json_error
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        begin_closing(self)


def begin_closing(worker: Any) -> threading.Thread | None:
    """Close the worker's app on a thread (once): stop the recovery loop and dispatching;
    running in-process jobs finish, queued ones stay pending for recovery."""
    app = getattr(worker, "wsgi", None)
    closing = getattr(worker, "closing", None)
    if closing is None and app is not None and "pie" in getattr(app, "extensions", {}):
        closing = threading.Thread(target=app.extensions["pie"].close, name="pie-close")
        closing.daemon = True  # the master's kill at the end of the grace period ends it
        closing.start()
        worker.closing = closing
    return closing


def close_worker_app(server: Any, worker: Any) -> None:
    """Gunicorn `worker_exit` (after the in-flight requests): wait for the app to close. The
    master kills the worker when PIE_SHUTDOWN_GRACE_SECONDS run out."""
    closing = begin_closing(worker)
    if closing is not None:
        closing.join()


def forget_worker(server: Any, worker: Any) -> None:
    """Gunicorn `child_exit` (in the master): drop a dead worker's live-gauge files."""
    from prometheus_client import multiprocess

    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)


@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """PROMETHEUS_MULTIPROC_DIR for this server's processes: the operator's (emptied of a
    previous run's files) or a temporary one, removed when the master exits. Must be entered
    before anything imports prometheus_client."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        remove_orphaned_metrics_directories()
    path = given or tempfile.mkdtemp(prefix=f"pie-metrics-{os.getpid()}-")
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    os.environ[MULTIPROC_ENV] = path
    master = os.getpid()
    try:
        yield path
    finally:
        # Workers are forked inside this block and unwind through it too; only the master
        # may remove the directory.
        if os.getpid() == master and not given:
            shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_metrics_directories() -> list[str]:
    """Remove the temporary metrics directories of `pie serve` masters that died without
    cleaning up (SIGKILL, a power cut): those named for a process that no longer exists and
    owned by this user. Returns what it removed."""
    removed = []
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "pie-metrics-*-*")):
        pid = os.path.basename(path).split("-")[2]
        try:
            if not pid.isdigit() or os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its master is gone
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:  # vanished meanwhile, or a process of another user: not ours to judge
            continue
    return removed


def check_bindable(host: str, port: int) -> str | None:
    """None when a server can listen on host:port now; otherwise why not, in one sentence
    (gunicorn itself would retry a busy port for five seconds and then exit with rc 1)."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot listen on {where}: unknown address {host!r} ({exc})"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {where}: the port is already in use (another pie serve?)."
                    " Stop that program or choose another --port."
                )
            if exc.errno == errno.EACCES:
                return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
            return f"cannot listen on {where}: {exc.strerror or exc}"
    return None


def announcer(
    bind: str, public_url: str, database: str, workers: int, threads: int, banner: bool
) -> Callable[[Any], None]:
    """Gunicorn `when_ready` (the master, once it listens): say where PIE listens, where its
    docs are and which database it uses — as a banner for a person at a terminal, else as one
    log line with those fields."""

    def when_ready(server: Any) -> None:
        from pie import __version__

        docs = f"{public_url}/docs"
        if banner:
            sys.stderr.write(
                f"\nPIE {__version__} is listening on {public_url} ({bind})\n"
                f"  API docs   {docs}\n"
                f"  console    {public_url}/ui\n"
                f"  database   {database}\n"
                f"  workers    {workers} processes, {threads} threads each\n"
                "Press Ctrl+C to stop.\n\n"
            )
            sys.stderr.flush()
            return
        log.info(
            "listening on %s",
            public_url,
            extra={
                "bind": bind,
                "url": public_url,
                "docs_url": docs,
                "console_url": f"{public_url}/ui",
                "database": database,
                "workers": workers,
                "threads": threads,
            },
        )

    return when_ready


def options(
    bind: str,
    workers: int,
    threads: int,
    grace_seconds: float,
    when_ready: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    settings = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": PieWorker,
        "accesslog": None,
        "errorlog": "-",
        "logger_class": GunicornLogger,
        # SIGTERM: stop accepting, finish in-flight requests and running jobs; after the grace
        # period the master kills what is left, and recovery picks up its jobs.
        "graceful_timeout": math.ceil(grace_seconds),
        "timeout": 60,
        # Files (the docs' assets) go out through the socket's writes, which carry the client
        # deadlines, not through os.sendfile on its descriptor, which would bypass them.
        "sendfile": False,
        "pre_fork": give_slot,
        "pre_request": close_when_crowded,
        "worker_exit": close_worker_app,
        "child_exit": forget_worker,
        # gunicorn's control socket has one default path per user, which several `pie serve`
        # processes on one host would share; PIE does not use it.
        "control_socket_disable": True,
    }
    if when_ready is not None:
        settings["when_ready"] = when_ready
    return settings


def run(
    bind: str,
    workers: int,
    threads: int,
    grace_seconds: float = 30,
    public_url: str | None = None,
    database: str = "",
    client_timeout: float = 10.0,
) -> None:
    from pie import logs

    PieWorker.client_timeout = client_timeout
    PieWorker.board = Board()
    url = public_url or f"http://{bind}"
    banner = sys.stderr.isatty() and logs.current_format() == "text"
    ready = announcer(bind, url, database, workers, threads, banner)
    PieServer(options(bind, workers, threads, grace_seconds, ready)).run()
