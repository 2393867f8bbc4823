"""The `http` handler type: PIE POSTs the job's payload, signed per Standard Webhooks, to a
URL its model names.

`callback` mode: a 2xx answer means the receiver has the job (it is started); the outcome
comes later through the callback URL in the payload. `sync` mode: a 2xx answer with a JSON
object is the job's output; anything else fails the attempt, with the status and the first
characters of the body. A failure of either kind is a DispatchError, retried by the job's
policy like any other. Requests go only where the destination guard (pie.outbound.guard)
lets them, to the address it checked, never following a redirect, bounded in time and size;
a destination it refuses fails the job at once (DestinationRefused, never retried), while a
host name that cannot be resolved now (PIE_OUTBOUND_DNS_TIMEOUT_SECONDS) is a DispatchError.

Requests run on a small pool of their own (PIE_HTTP_WORKERS), so a slow receiver never
holds PIE's dispatch threads: the type starts jobs itself (`starts_itself`)."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import marshmallow as ma

from pie import DispatchDeferred, HandlerType, hookimpl, jsonio
from pie.config import ConfigurationError
from pie.errors import PieError
from pie.outbound import client, dns, guard, signing

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024  # more than this is not read; in sync mode, a failure
EXCERPT_CHARS = 200  # of a failing answer's body, in the job's error
# A sync-mode job is started with a lease this much longer than its request may take, so a
# process that dies mid-request has its job re-run by recovery.
LEASE_MARGIN_SECONDS = 30.0


class HttpHandlerSchema(ma.Schema):
    url = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=guard.MAX_URL_LENGTH),
        metadata={
            "description": "http(s) URL PIE POSTs the signed job payload to",
            "example": "https://models.example.com/pie/jobs",
        },
    )
    mode = ma.fields.String(
        load_default="callback",
        validate=ma.validate.OneOf(["callback", "sync"]),
        metadata={
            "description": "callback: a 2xx answer starts the job, the outcome comes by "
            "callback; sync: a 2xx JSON object answer is the job's output",
            "default": "callback",
        },
    )


class HttpDispatchError(Exception):
    """Why an http dispatch failed, in words fit for the job's error."""


def excerpt(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


class HttpHandlerType(HandlerType):
    name = "http"
    schema = HttpHandlerSchema
    description = "A signed (Standard Webhooks) POST of the payload to a URL; callback or sync."
    starts_itself = True

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        config = runtime.config
        try:
            self.allowed = guard.Allowed.parse(config.get("PIE_OUTBOUND_ALLOWED_HOSTS") or [])
        except ValueError as exc:
            raise ConfigurationError(f"PIE_OUTBOUND_ALLOWED_HOSTS: {exc}") from None
        try:
            self._secrets = signing.parse_secrets(config.get("PIE_OUTBOUND_SIGNING_SECRETS") or [])
        except ValueError as exc:
            raise ConfigurationError(f"PIE_OUTBOUND_SIGNING_SECRETS: {exc}") from None
        self.connect_timeout = float(config.get("PIE_HTTP_CONNECT_TIMEOUT_SECONDS") or 5)
        self.timeouts = {
            "callback": float(config.get("PIE_HTTP_CALLBACK_TIMEOUT_SECONDS") or 10),
            "sync": float(config.get("PIE_HTTP_SYNC_TIMEOUT_SECONDS") or 30),
        }
        self.workers = int(config.get("PIE_HTTP_WORKERS") or 8)
        # One lookup per request at a time, so the pool's size bounds the lookups too (and
        # the threads of lookups that hang past their timeout).
        self.resolver = dns.Resolver(
            float(config.get("PIE_OUTBOUND_DNS_TIMEOUT_SECONDS") or 5), limit=self.workers
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._queued = 0

    # --- registration -------------------------------------------------------------------

    def check(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        """A URL that is not a well-formed http(s) URL (a 400)."""
        try:
            guard.parse_url(handler["url"])
        except guard.InvalidURL as exc:
            return {"url": [f"{exc}."]}
        return {}

    def refusals(self, handler: dict[str, Any]) -> dict[str, list[str]]:
        """A URL whose destination the guard refuses whatever DNS says (a 422; no lookup)."""
        try:
            guard.check_url(handler["url"], self.allowed)
        except guard.DestinationRefused as exc:
            return {"url": [f"{exc}."]}
        return {}

    # --- secrets ------------------------------------------------------------------------

    def signing_secrets(self) -> list[str]:
        """PIE_OUTBOUND_SIGNING_SECRETS, else the secret generated beside the database."""
        if self._secrets:
            return self._secrets
        from pie import config
        from pie.secret_files import load_or_create_secret

        with self._lock:
            if not self._secrets:
                path = config.secret_path(self.runtime.config, config.SIGNING_SECRET_FILE)
                secret = load_or_create_secret(path, signing.generate_secret)
                try:
                    signing.secret_key(secret)
                except ValueError as exc:
                    raise HttpDispatchError(f"the signing secret in {path}: {exc}") from None
                self._secrets = [secret]
        return self._secrets

    # --- dispatch -----------------------------------------------------------------------

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        """Queue the request on this type's pool; the webhook id is the external id."""
        msg_id = f"{job.job_id}.{job.attempt}"
        with self._lock:
            if self._closed:
                raise DispatchDeferred("the http request pool is shutting down")
            if self._queued >= 4 * self.workers:
                raise DispatchDeferred(f"{self._queued} http requests are waiting already")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pie-http")
            self._queued += 1
            self._pool.submit(self.run, dict(handler), job, payload, msg_id)
        return msg_id

    def run(self, handler: dict[str, Any], job: Any, payload: dict[str, Any], msg_id: str) -> None:
        try:
            self.send(handler, job, payload, msg_id)
        except PieError as exc:  # ended meanwhile: cancelled, timed out, completed
            log.info("http job %s: outcome not recorded: %s", job.job_id, exc.message)
        except Exception as exc:  # a bug or a database error: fail the attempt if it can be
            log.exception("http job %s could not be sent or recorded", job.job_id)
            try:
                self.fail(job, f"{type(exc).__name__}: {exc}")
            except Exception:
                log.warning("http job %s: left for the recovery loop", job.job_id)
        finally:
            with self._lock:
                self._queued -= 1

    def send(self, handler: dict[str, Any], job: Any, payload: dict[str, Any], msg_id: str) -> None:
        job_id, attempt, mode = job.job_id, job.attempt, handler.get("mode") or "callback"
        if self._closed:
            return  # shutting down before it was sent: left pending for recovery
        if self.runtime.ended_attempts({job_id: attempt}):
            return  # cancelled while it waited here
        # The dispatch claim protects the request from here, however long it waited in line
        # (a claim that lapsed meanwhile may have been re-dispatched: receivers deduplicate
        # on webhook-id, the same for both sends of an attempt).
        lease = float(self.runtime.config.get("PIE_DISPATCH_LEASE_SECONDS") or 60)
        self.runtime.renew_leases({job_id: attempt}, lease)
        timeout = self.timeouts[mode]
        body = jsonio.dumps(payload).encode("utf-8")
        try:  # refused before the job is started; sent to the addresses checked here
            headers = signing.headers(self.signing_secrets(), msg_id, body)
            destination = guard.check_url(handler["url"], self.allowed)
            addresses = guard.resolve(destination, self.allowed, self.resolver)
        except guard.DestinationRefused as exc:
            return self.refuse(job, str(exc))
        except (dns.LookupFailed, HttpDispatchError, OSError) as exc:
            return self.fail(job, f"{type(exc).__name__}: {exc}")
        if mode == "sync":
            lease = timeout + self.connect_timeout + LEASE_MARGIN_SECONDS
            if not self.runtime.mark_started(job_id, msg_id, lease_seconds=lease, job=job):
                return  # another copy runs it, or it ended
        try:
            response = client.post(
                destination,
                addresses,
                body,
                headers,
                timeout=timeout,
                connect_timeout=self.connect_timeout,
                max_bytes=MAX_RESPONSE_BYTES,
            )
            output = self.outcome(mode, response)
        except (client.SendError, HttpDispatchError) as exc:
            return self.fail(job, f"{type(exc).__name__}: {exc}")
        if mode == "sync":
            self.runtime.complete_job(job_id, "success", output=output, attempt=attempt)
        else:
            self.runtime.mark_started(job_id, msg_id, job=job)
        log.info(
            "http job %s: %s answered %d",
            job_id,
            handler["url"],
            response.status,
            extra={"job_id": job_id, "status_code": response.status, "mode": mode},
        )

    @staticmethod
    def outcome(mode: str, response: client.Response) -> dict[str, Any] | None:
        """The output of a sync answer (None in callback mode); HttpDispatchError when the
        answer is a failure."""
        if not 200 <= response.status < 300:
            where = ""
            if 300 <= response.status < 400 and response.headers.get("location"):
                where = f" to {response.headers['location'][:200]} (redirects are not followed)"
            raise HttpDispatchError(
                f"the receiver answered {response.status} {response.reason}{where}: "
                f"{excerpt(response.body)!r}"
            )
        if mode != "sync":
            return None
        if response.truncated:
            raise HttpDispatchError(
                f"the receiver's answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )
        try:
            output = jsonio.parse_body(response.body)
        except (json.JSONDecodeError, PieError, ValueError) as exc:
            why = exc.message if isinstance(exc, PieError) else str(exc)
            raise HttpDispatchError(
                f"the receiver answered {response.status} with a body that is not JSON "
                f"({why}): {excerpt(response.body)!r}"
            ) from None
        if not isinstance(output, dict):
            raise HttpDispatchError(
                f"the receiver answered {response.status} with JSON that is not an object: "
                f"{excerpt(response.body)!r}"
            )
        return output

    def fail(self, job: Any, message: str) -> None:
        """The attempt's failure, a DispatchError retried by the job's policy."""
        self.end(job, "DispatchError", f"dispatch to 'http' failed: {message}", retryable=True)

    def refuse(self, job: Any, reason: str) -> None:
        """The job's failure, at once: the guard refuses its destination, which no retry
        changes (until an operator changes PIE_OUTBOUND_ALLOWED_HOSTS)."""
        self.end(job, "DestinationRefused", f"dispatch to 'http' refused: {reason}", False)

    def end(self, job: Any, error_type: str, message: str, retryable: bool) -> None:
        log.warning(
            "job %s: %s",
            job.job_id,
            message,
            extra={"job_id": job.job_id, "handler_type": "http", "error_type": error_type},
        )
        self.runtime.complete_job(
            job.job_id,
            "failure",
            error={"type": error_type, "message": message},
            attempt=job.attempt,
            retryable=retryable,
        )

    def cancel(
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        """Nothing to stop: PIE cannot reach into the receiver. A receiver learns that the job
        ended from its heartbeat (409) or its completion (409)."""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True)


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [HttpHandlerType]
