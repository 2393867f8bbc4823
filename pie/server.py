"""Running PIE under gunicorn: several worker processes, threads in each."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class PieServer(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from pie import create_app

        # Each worker builds its own app after the fork: its own connections and threads.
        return create_app({"PIE_AUTO_MIGRATE": False})


def close_worker_app(server: Any, worker: Any) -> None:
    """Gunicorn `worker_exit`: stop background work; running in-process jobs finish first."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "pie" in getattr(app, "extensions", {}):
        app.extensions["pie"].close()


def run(bind: str, workers: int, threads: int) -> None:
    PieServer(
        {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": "-",
            "graceful_timeout": 30,
            "timeout": 60,
        }
    ).run()
