"""A job's progress while `jobs run --wait` and `jobs watch` wait: one redrawn line on a
terminal, plain lines (one per change) when stderr is piped."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pie_client.types import Job


BAR = 20


class Progress:
    # The terminal whose progress line is drawn but not ended: an error ends it first.
    unfinished: TextIO | None = None

    @classmethod
    def end_line(cls) -> None:
        if cls.unfinished is not None:
            cls.unfinished.write("\n")
            cls.unfinished.flush()
            cls.unfinished = None

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.last: tuple[object, ...] | None = None

    def __call__(self, job: Job) -> None:
        state = (job.status, job.progress, job.progress_message, job.attempt)
        if state == self.last:
            return
        self.last = state
        if self.live:
            self.stream.write("\r\x1b[K" + self.bar(job) + ("\n" if job.ended else ""))
            Progress.unfinished = None if job.ended else self.stream
        else:
            self.stream.write(self.line(job) + "\n")
        self.stream.flush()

    def bar(self, job: Job) -> str:
        done = 1.0 if job.status == "success" else (job.progress or 0.0)
        filled = round(done * BAR)
        message = f" {job.progress_message}" if job.progress_message else ""
        return f"{job.job_id} {job.status:<8} [{'#' * filled}{'.' * (BAR - filled)}] " + (
            f"{done:4.0%}{message}"
        )

    def line(self, job: Job) -> str:
        parts = [f"job {job.job_id}", f"status={job.status}"]
        if job.progress is not None:
            parts.append(f"progress={job.progress:g}")
        if job.progress_message:
            parts.append(f"message={job.progress_message!r}")
        if job.attempt > 1:
            parts.append(f"attempt={job.attempt}")
        return " ".join(parts)
