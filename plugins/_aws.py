"""boto3 clients for the AWS handler types: one per (service, region), honouring
PIE_AWS_ENDPOINT_URL and bounded timeouts so a dead endpoint fails a job instead of hanging."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}
)


class AwsClients:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def region(self, fallback: str | None = None) -> str:
        return self.settings.get("PIE_AWS_REGION") or fallback or "us-east-1"

    def get(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:  # boto3's session is not thread-safe while it builds a client
            if key not in self._clients:
                self._clients[key] = boto3.session.Session().client(
                    service,
                    region_name=region,
                    config=CLIENT_CONFIG,
                    endpoint_url=self.settings.get("PIE_AWS_ENDPOINT_URL") or None,
                )
            return self._clients[key]
