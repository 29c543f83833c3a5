"""Redis clients with explicit timeouts and retries."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry


def connect(url: str, *, blocking: bool = False, max_connections: int = 64) -> Redis:
    """A client for `url`.

    `blocking=True` is for XREAD/XREADGROUP with BLOCK: no socket read timeout, since
    redis-py's would otherwise fire before a long BLOCK ends. Retries are on: every
    command Chatroom sends is idempotent or made so (appends go through a script keyed
    by client_id, group reads re-read their own pending entries after any error).
    """
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=2)
    return Redis.from_url(
        url,
        socket_timeout=None if blocking else 10.0,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        max_connections=max_connections,
    )
