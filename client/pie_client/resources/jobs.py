"""`client.jobs`: start inference and training, read, list, wait for, cancel; and the two
calls a handler makes (complete, heartbeat)."""

from __future__ import annotations

import time
from collections.abc import Callable

from pie_client.errors import JobTimeout, UnprocessableError
from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import (
    JSON,
    CompletionResult,
    HeartbeatResult,
    InferenceStarted,
    Job,
    TrainingStarted,
)

OnUpdate = Callable[[Job], None]


class Jobs(Resource):
    def get(self, job_id: str) -> Job:
        return self._call("GET", path("jobs", job_id), Job.from_dict)

    def list(
        self,
        *,
        status: str | None = None,
        job_type: str | None = None,
        model_id: str | None = None,
        model_version: str | None = None,
        client_id: str | None = None,
        parent_job_id: str | None = None,
        subscription_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        page_size: int = 100,
    ) -> Pager[Job]:
        """Every job matching the filters, newest first (`GET /v2/jobs`, paged by cursor)."""
        params = fields(
            status=status,
            job_type=job_type,
            model_id=model_id,
            model_version=model_version,
            client_id=client_id,
            parent_job_id=parent_job_id,
            subscription_id=subscription_id,
            created_after=created_after,
            created_before=created_before,
        )
        return self._list(path("jobs"), Job.from_dict, page_size, params, cursor=True)

    def list_for_version(
        self,
        model_id: str,
        version: str,
        *,
        status: str | None = None,
        job_type: str | None = None,
        page_size: int = 100,
    ) -> Pager[Job]:
        url = path("models", model_id, "versions", version, "jobs")
        params = fields(status=status, job_type=job_type)
        return self._list(url, Job.from_dict, page_size, params)

    def infer(
        self, model_id: str, version: str, input: JSON, *, subscribe: bool = False
    ) -> InferenceStarted:
        url = path("models", model_id, "versions", version, "inference")
        body = {"input": input, **({"subscribe": True} if subscribe else {})}
        return self._call("POST", url, InferenceStarted.from_dict, body)

    def train(self, model_id: str, version: str, input: JSON) -> TrainingStarted:
        url = path("models", model_id, "versions", version, "training")
        return self._call("POST", url, TrainingStarted.from_dict, {"input": input})

    def run(
        self,
        model_id: str,
        input: JSON,
        *,
        version: str | None = None,
        subscribe: bool = False,
        wait: bool = False,
        timeout: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Job:
        """Start an inference (on the newest active version unless one is named) and return
        the job: as it is now, or once it has ended when `wait` is set."""
        version = version or self.newest_active_version(model_id)
        job_id = self.infer(model_id, version, input, subscribe=subscribe).inference_job_id
        if wait:
            return self.wait(job_id, timeout=timeout, on_update=on_update)
        return self.get(job_id)

    def newest_active_version(self, model_id: str) -> str:
        from pie_client.resources.versions import Versions

        for found in Versions(self.transport).list(model_id):
            if found.status == "active":
                return found.version
        raise UnprocessableError(422, f"model {model_id!r} has no active version", None)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        interval: float = 1.0,
        on_update: OnUpdate | None = None,
    ) -> Job:
        """Poll until the job ends (success or failure) and return it; `on_update` sees each
        read. Polls quickly at first, then every `interval` seconds; JobTimeout past `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.05
        while True:
            job = self.get(job_id)
            if on_update:
                on_update(job)
            if job.ended:
                return job
            if deadline is not None and time.monotonic() + pause > deadline:
                raise JobTimeout(job_id, timeout or 0)
            time.sleep(pause)
            pause = min(pause * 2, interval)

    def cancel(self, job_id: str) -> Job:
        return self._call("POST", path("jobs", job_id, "cancel"), Job.from_dict)

    def complete(
        self,
        model_id: str,
        version: str,
        job_id: str,
        *,
        status: str,
        output: JSON | None = None,
        error: JSON | None = None,
    ) -> CompletionResult:
        """Report a job's outcome (a handler's call, with its callback token)."""
        url = path("models", model_id, "versions", version, "jobs", job_id, "complete")
        body = fields(status=status, output=output, error=error)
        return self._call("POST", url, CompletionResult.from_dict, body)

    def heartbeat(
        self,
        model_id: str,
        version: str,
        job_id: str,
        *,
        progress: float | None = None,
        message: str | None = None,
    ) -> HeartbeatResult:
        """Report progress (a handler's call); ConflictError once the job has ended."""
        url = path("models", model_id, "versions", version, "jobs", job_id, "heartbeat")
        body = fields(progress=progress, message=message)
        return self._call("POST", url, HeartbeatResult.from_dict, body)
