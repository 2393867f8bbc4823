"""The `redis_list` handler type, registered with PIE through the `pie` entry point."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
import redis

from pie import HandlerType, hookimpl
from pie_redis_list import CANCELLED_TTL_SECONDS, JOBS, LIST_NAME, attempt_key, redis_url


class RedisListSchema(ma.Schema):
    list = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(LIST_NAME, error="1-100 letters, digits, _ . : -"),
        metadata={"description": "The Redis list (key pie:jobs:<list>) the workers pop"},
    )


class RedisListType(HandlerType):
    name = "redis_list"
    schema = RedisListSchema
    description = "Pushes the job payload on a Redis list for pie_redis_list workers."

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.redis = redis.Redis.from_url(
            redis_url(runtime.config), socket_timeout=5, socket_connect_timeout=5
        )

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        # An exception here (Redis unreachable) fails the attempt as a DispatchError, which
        # PIE retries per the model's job_policy.
        self.redis.rpush(JOBS + handler["list"], json.dumps(payload))
        return f"{handler['list']}/{payload['job_id']}.{payload['attempt']}"

    def cancel(
        self, handler: dict[str, Any], job: Any, external_id: str | None, reason: str
    ) -> None:
        self.redis.set(attempt_key(job.job_id, job.attempt), reason, ex=CANCELLED_TTL_SECONDS)

    def close(self) -> None:
        self.redis.close()


@hookimpl
def pie_register_handler_types(app: Any) -> list[type[HandlerType]]:
    return [RedisListType]
