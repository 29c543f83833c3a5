"""Redis clients with explicit timeouts, retries, TCP keepalive and a pool that waits.

Each client's pool is bounded and blocking: when every connection is busy (a storm of
sockets opening or closing at once), a command waits up to `POOL_WAIT_S` for one to come
free instead of failing at once with "Too many connections".
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from chatroom import redis_keys
from chatroom.redis_cluster import connect_cluster, is_cluster_url

# A blocking read (XREAD BLOCK, a pub/sub wait) still unanswered this long after its own
# block time ends is on a hung connection: half-open after a failover, a NAT timeout or
# a paused VM. Nothing else bounds it, since blocking clients have no socket timeout.
READ_HANG_S = 10.0

# How long a command waits for a free connection of its client's pool before it fails
# ("No connection available"): as long as a command may take itself.
POOL_WAIT_S = 10.0

# TCP keepalive: the kernel finds a dead peer after 30 s idle + 3 probes 5 s apart, even
# on an idle connection (the OS default waits two hours before its first probe).
_KEEPALIVE = {
    name: value
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


def read_limit_s(block_ms: int | None) -> float:
    """How long a read that blocks up to `block_ms` may take before it counts as hung."""
    return READ_HANG_S + (block_ms or 0) / 1000


def keepalive_options(url: str) -> dict[str, Any]:
    """TCP keepalive for a TCP URL; nothing for a unix socket, which refuses the option."""
    if urlsplit(url).scheme not in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        return {}
    options = {getattr(socket, name): value for name, value in _KEEPALIVE.items()}
    return {"socket_keepalive": True, "socket_keepalive_options": options}


def connect(
    url: str, *, blocking: bool = False, max_connections: int = 64, retries: int = 2
) -> Redis:
    """A client for `url`.

    `blocking=True` is for XREAD/XREADGROUP with BLOCK and pub/sub: no socket read
    timeout, since redis-py's would otherwise fire before a long BLOCK ends; the callers
    bound each read themselves (`read_limit_s`). Retries are on: every command Chatroom
    sends is idempotent or made so (appends go through a script keyed by client_id,
    group reads re-read their own pending entries after any error). At most
    `max_connections` are open; a command beyond them waits for one (`POOL_WAIT_S`).
    `retries=0` is for a caller that retries itself and must know whether a failed
    command was ever sent (the stream writer: an error while connecting means not).
    """
    if is_cluster_url(url):
        # Keys of a cluster carry slot groups (redis_keys.py): one process talks to one
        # kind of Redis, so the layout is the process's.
        redis_keys.use_cluster_layout(True)
        return connect_cluster(
            url,
            blocking=blocking,
            max_connections=max_connections,
            retries=retries,
            socket_options=keepalive_options(url),
        )
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=retries)
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=POOL_WAIT_S,
        socket_timeout=None if blocking else 10.0,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        max_connections=max_connections,
        **keepalive_options(url),
    )
    return Redis.from_pool(pool)


# Script calls per pipeline of `script_calls`: packing and parsing a pipeline of a
# thousand calls holds the event loop for tens of milliseconds (the heartbeat's did, a
# p99 spike for every socket of the node); 200 at a time keep each hold short.
SCRIPT_CALLS_PER_PIPELINE = 200

ScriptCall = tuple[AsyncScript, list[Any], list[Any]]  # script, keys, args


async def script_calls(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each script call's reply, in order: in pipelines (not transactions) of
    SCRIPT_CALLS_PER_PIPELINE calls, one round trip each."""
    replies: list[Any] = []
    for start in range(0, len(calls), SCRIPT_CALLS_PER_PIPELINE):
        async with redis.pipeline(transaction=False) as pipe:
            for script, keys, args in calls[start : start + SCRIPT_CALLS_PER_PIPELINE]:
                await script(keys=keys, args=args, client=pipe)
            replies += await pipe.execute()
    return replies
