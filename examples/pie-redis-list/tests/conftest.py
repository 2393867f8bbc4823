"""Fixtures of the plugin's own tests; PIE's (pie_app, pie_client, pie_jobs, pie_live_app...)
come from its pytest plugin, installed with pie-registry."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from pie_redis_list import JOBS, redis_url


@pytest.fixture(scope="session")
def redis_connection() -> Iterator[redis.Redis]:
    """The Redis server the plugin and workers use (PIE_REDIS_LIST_URL, else local)."""
    connection = redis.Redis.from_url(redis_url(), socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.RedisError as exc:
        if os.environ.get("PIE_REQUIRE_BROKERS") == "1":
            pytest.fail(f"Redis at {redis_url()} is needed: {exc}")
        pytest.skip(f"no Redis at {redis_url()}: {exc}")
    yield connection
    connection.close()


@pytest.fixture
def list_name(redis_connection: redis.Redis) -> Iterator[str]:
    """A list of this test's own, removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    redis_connection.delete(JOBS + name)
