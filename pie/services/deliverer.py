"""The one module that sends webhook deliveries (issue 17): a thread per process wakes when
an event commits here, or every PIE_RECOVERY_INTERVAL_SECONDS, claims the due deliveries of
active endpoints (pie/services/deliveries.py) and sends each on a small pool, signed per
Standard Webhooks (pie.outbound.signing) and only where the destination guard lets it
(pie.outbound.guard, pie.outbound.client). One endpoint has at most
PIE_WEBHOOK_ENDPOINT_CONCURRENCY requests in flight per process, so a slow or failing
endpoint never holds the pool that the others' deliveries need."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from pie import config, db, metrics
from pie.config import ConfigurationError
from pie.errors import Conflict
from pie.outbound import client, dns, guard, signing
from pie.outbound.secretbox import SecretBox, generate_key, parse_key
from pie.secret_files import load_or_create_secret
from pie.services import deliveries, outbox, webhooks
from pie.tables import Webhook, WebhookDelivery

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024  # of an answer's body, read and dropped
LEASE_MARGIN_SECONDS = 30.0  # a claim outlasts its request by this much
MIN_PASS_GAP_SECONDS = 0.02  # passes start at most this often, however often woken
# Test events are sent on the request's thread: at most this many at once per process, so a
# caller firing them at an endpoint that never answers cannot hold every request thread.
TEST_FIRES_AT_ONCE = 2


class Deliverer:
    """Per app: the secret box, the guard's allowances and the sending pool."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.config
        self.runtime = runtime
        self.allowed = guard.Allowed.parse(settings.get("PIE_OUTBOUND_ALLOWED_HOSTS") or [])
        self.schedule = list(settings["PIE_WEBHOOK_RETRY_SCHEDULE"])
        self.timeout = float(settings["PIE_WEBHOOK_TIMEOUT_SECONDS"])
        self.connect_timeout = min(
            self.timeout, float(settings["PIE_HTTP_CONNECT_TIMEOUT_SECONDS"])
        )
        self.disable_after = float(settings["PIE_WEBHOOK_DISABLE_AFTER_SECONDS"])
        self.workers = int(settings["PIE_WEBHOOK_WORKERS"])
        self.per_endpoint = int(settings["PIE_WEBHOOK_ENDPOINT_CONCURRENCY"])
        self.lease = self.timeout + LEASE_MARGIN_SECONDS
        # One lookup per request at a time: the pool bounds the lookups' threads too.
        self.resolver = dns.Resolver(
            float(settings.get("PIE_OUTBOUND_DNS_TIMEOUT_SECONDS") or 5), limit=self.workers
        )
        self.interval = float(settings["PIE_RECOVERY_INTERVAL_SECONDS"])
        self._next_void = 0.0
        self._box: SecretBox | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._test_fires = threading.BoundedSemaphore(TEST_FIRES_AT_ONCE)
        self._pool: ThreadPoolExecutor | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        outbox.wake_on_commit(self._wake)

    # --- the key ------------------------------------------------------------------------

    @property
    def box(self) -> SecretBox:
        """PIE_WEBHOOK_SECRET_KEY, else the key generated beside the database (made at first
        use, mode 0600)."""
        if self._box is None:
            with self._lock:
                if self._box is None:
                    self._box = SecretBox(self._key())
        return self._box

    def _key(self) -> bytes:
        value = self.runtime.config.get("PIE_WEBHOOK_SECRET_KEY")
        if value:
            return parse_key(value)
        path = config.secret_path(self.runtime.config, config.WEBHOOK_KEY_FILE)
        try:
            return parse_key(load_or_create_secret(path, generate_key))
        except ValueError as exc:
            raise ConfigurationError(f"the webhook secret key in {path}: {exc}") from None

    # --- one pass -----------------------------------------------------------------------

    def deliver_once(self, wait_for_answers: bool = False) -> int:
        """Claim what is due and send it on the pool; with `wait_for_answers`, return once
        every request of this pass has been answered and recorded. How many were claimed."""
        owner = self.runtime.registration.ensure()
        with db.connection():
            if time.monotonic() >= self._next_void:  # a write: once an interval, not per wake
                deliveries.void_orphans()
                self._next_void = time.monotonic() + self.interval
            with self._lock:
                room = {k: max(0, self.per_endpoint - n) for k, n in self._in_flight.items()}
                free = self.workers * 2 - sum(self._in_flight.values())
            room["*"] = self.per_endpoint
            claimed = deliveries.claim_due(owner, self.lease, room, max(0, free))
        futures = [self._submit(row, owner) for row in claimed]
        if wait_for_answers:
            wait(futures)
        return len(claimed)

    def _submit(self, row: WebhookDelivery, owner: str | None) -> Future:
        with self._lock:
            self._in_flight[row.webhook_id] = self._in_flight.get(row.webhook_id, 0) + 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pie-webhook")
            return self._pool.submit(self._send_logged, row, owner)

    def _send_logged(self, row: WebhookDelivery, owner: str | None) -> None:
        try:
            with db.connection():
                self.send(row, owner)
        except Exception:  # a background thread must never die silently
            log.exception(
                "webhook delivery %s failed unexpectedly; the recovery of its claim sends it again",
                row.delivery_id,
                extra={"delivery_id": row.delivery_id, "webhook_id": row.webhook_id},
            )
        finally:
            with self._lock:
                left = self._in_flight.get(row.webhook_id, 1) - 1
                if left:
                    self._in_flight[row.webhook_id] = left
                else:
                    self._in_flight.pop(row.webhook_id, None)
            self._wake.set()  # room again: the next pass claims more of the backlog

    # --- one delivery -------------------------------------------------------------------

    def send(self, row: WebhookDelivery, owner: str | None) -> str | None:
        """Send one claimed delivery and record the attempt; its new status (None: the claim
        was lost, or the endpoint stopped receiving meanwhile)."""
        endpoint = Webhook.get_or_none(Webhook.webhook_id == row.webhook_id)
        testing = row.event_type == outbox.TEST_EVENT
        if endpoint is None or (endpoint.status != "active" and not testing):
            deliveries.release(row, owner)
            return None
        outcome = self.attempt(endpoint, row)
        status = deliveries.record(row, outcome, owner, self.schedule, self.disable_after)
        metrics.webhook_delivery(self._label(outcome, status))
        log.info(
            "webhook delivery %s (%s) to webhook %s: %s",
            row.delivery_id,
            row.event_type,
            row.webhook_id,
            outcome.response_status or outcome.error,
            extra={
                "delivery_id": row.delivery_id,
                "webhook_id": row.webhook_id,
                "status_code": outcome.response_status,
                "attempt": row.attempts,
                "latency_ms": round(outcome.latency_ms, 1),
            },
        )
        return status

    @staticmethod
    def _label(outcome: deliveries.Outcome, status: str | None) -> str:
        if outcome.ok:
            return "delivered"
        if status == "failed":
            return "failed"
        return "retry" if status == "pending" else "lost_claim"

    def attempt(self, endpoint: Webhook, row: WebhookDelivery) -> deliveries.Outcome:
        """One signed POST; its outcome, never an exception for what the endpoint does."""
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        body = row.body.encode("utf-8")
        try:  # sent only to the addresses the guard checked here
            secrets = webhooks.signing_secrets(endpoint, self.box)
            headers = signing.headers(secrets, row.delivery_id, body)
            destination = guard.check_url(endpoint.url, self.allowed)
            addresses = guard.resolve(destination, self.allowed, self.resolver)
            response = client.post(
                destination,
                addresses,
                body,
                headers,
                timeout=self.timeout,
                connect_timeout=self.connect_timeout,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except (dns.LookupFailed, client.SendError, ValueError, OSError) as exc:
            return deliveries.Outcome(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
        error = None
        if not 200 <= response.status < 300:
            error = f"the endpoint answered {response.status} {response.reason}"[:500]
        return deliveries.Outcome(
            response.status,
            elapsed(),
            error,
            deliveries.parse_retry_after(response.headers.get("retry-after")),
        )

    def test_fire(self, endpoint: Webhook) -> WebhookDelivery:
        """Send a `webhook.test` event to the endpoint now; the recorded delivery. A 409 when
        TEST_FIRES_AT_ONCE test events are already being sent by this process."""
        if not self._test_fires.acquire(blocking=False):
            raise Conflict(
                f"{TEST_FIRES_AT_ONCE} test events are being sent by this server already; "
                "send this one when they have ended"
            )
        try:
            owner = self.runtime.registration.ensure()
            with db.transaction():
                delivery_id = outbox.record_test(endpoint.webhook_id)
            row = WebhookDelivery.get(WebhookDelivery.delivery_id == delivery_id)
            if deliveries.claim_one(delivery_id, owner, self.lease):
                self.send(row, owner)
            return WebhookDelivery.get(WebhookDelivery.delivery_id == delivery_id)
        finally:
            self._test_fires.release()

    # --- the background thread ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pie-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            began = time.monotonic()
            try:
                self.deliver_once()
            except Exception:
                log.exception("webhook delivery pass failed; retrying")
            self._wake.wait(self.interval)
            # A burst of commits (or of answers) wakes one pass, not one each.
            self._stop.wait(max(0.0, began + MIN_PASS_GAP_SECONDS - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
