"""A real `pie serve` process for crash tests: started, SIGKILLed, restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import requests

from tests.helpers import ADMIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        env: dict[str, str],
        workers: int = 1,
        log_path: str | None = None,
        threads: int | None = None,
    ):
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.workers = workers
        self.threads = threads
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {ADMIN}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pie",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *(["--threads", str(self.threads)] if self.threads else []),
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v2/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"pie serve exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("pie serve did not become healthy")

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers, no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
