"""Redis Cluster: the URL that names one, its client, and what differs from one server.

`redis+cluster://host:port,host:port[/?options]` (or `rediss+cluster://` for TLS) names
a cluster by some of its nodes; the client learns the rest (CLUSTER SLOTS) and follows
MOVED/ASK redirects, failovers included. Database 0 only: a cluster has no other.

The client is redis-py's asyncio `RedisCluster` with one addition: a pipeline whose
EVALSHA found its script missing on a shard (a new cluster, a restarted or promoted
master: script caches are neither persisted nor replicated) loads every script the
client registered on every master and runs those commands again. A single Redis's
pipeline does this by itself (SCRIPT EXISTS first); the cluster's does not.

Every key a script or a pipeline touches together lives in one slot (redis_keys.py);
commands that span rooms (the hub's XREAD, the archiver's XREADGROUP) are split by the
callers into one command per slot group.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ClusterDownError, NoScriptError, ResponseError
from redis.retry import Retry

SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def startup_nodes(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a cluster URL; a missing port is 6379."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    netloc = parts.netloc.rpartition("@")[2]
    nodes = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "6379"
        if not host or not port.isdigit():
            raise ValueError(f"a cluster node must look like host:port, not {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has database 0 only")
    return nodes


def _credentials(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" not in netloc:
        return {}
    userinfo = netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    found: dict[str, Any] = {}
    if user:
        found["username"] = unquote(user)
    if password:
        found["password"] = unquote(password)
    return found


class ScriptReloadingPipeline(ClusterPipeline):
    """A cluster pipeline that takes EVALSHA (redis-py blocks its method in a cluster
    pipeline, though it routes it by its keys: every script here keeps to one slot),
    and loads missing scripts and runs their commands again."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> ClusterPipeline:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def __await__(self) -> Generator[Any, None, ClusterPipeline]:
        # A Script called with `client=pipe` awaits the pipeline its EVALSHA returns; the
        # cluster pipeline's own __await__ re-initializes it, dropping what was queued.
        return self._itself().__await__()

    async def _itself(self) -> ClusterPipeline:
        return self

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        queue = list(self._execution_strategy._command_queue)  # type: ignore[attr-defined]
        results: list[Any] = await super().execute(False, allow_redirections)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            client = cast(ChatroomCluster, self.cluster_client)
            await client.load_scripts()
            again = ScriptReloadingPipeline(client)  # type: ignore[abstract]
            for i in missing:
                again.execute_command(*queue[i].args, **queue[i].kwargs)
            for i, result in zip(missing, await again.execute(False), strict=True):
                results[i] = result
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class ChatroomCluster(RedisCluster):
    """RedisCluster that remembers its scripts, to load them on a master that lacks them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scripts: list[AsyncScript] = []

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        registered = super().register_script(script)
        self._scripts.append(registered)
        return registered

    async def load_scripts(self) -> None:
        """Load every registered script on every master (SCRIPT LOAD goes to them all)."""
        for script in self._scripts:
            await self.script_load(script.script)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)
        return ScriptReloadingPipeline(self)  # type: ignore[abstract]


def connect_cluster(
    url: str, *, blocking: bool, max_connections: int, retries: int, socket_options: dict[str, Any]
) -> Redis:
    """A cluster client for `url` (see redis_client.connect for the options' meaning).
    Typed as `Redis`: the commands Chatroom sends are the same on both."""
    nodes = [ClusterNode(host, port) for host, port in startup_nodes(url)]
    options = dict(parse_qsl(urlsplit(url).query))
    client = ChatroomCluster(
        startup_nodes=nodes,
        ssl=urlsplit(url).scheme == "rediss+cluster",
        socket_timeout=None if blocking else 10.0,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=max(retries, 1)),
        max_connections=max_connections,
        require_full_coverage=options.get("require_full_coverage", "true") != "false",
        **_credentials(url),
        **socket_options,
    )
    return cast(Redis, client)


def masters(client: Redis) -> list[ClusterNode]:
    return cast(RedisCluster, client).get_primaries()


async def master_of(client: Redis, key: str) -> ClusterNode:
    """The master that holds `key` (the slots learnt first, on a new client)."""
    cluster = cast(RedisCluster, client)
    if cluster._initialize:
        await cluster.initialize()
    return owner(client, key)


def owner(client: Redis, key: str) -> ClusterNode:
    """The master that holds `key`, by the slots known."""
    node = cast(RedisCluster, client).get_node_from_key(key)
    if node is None:
        raise ClusterDownError(f"no master holds the slot of {key}")
    return node


async def on_each_master(client: Redis, *command: Any) -> dict[str, Any]:
    """`command` on every master, by node name ("host:port")."""
    cluster = cast(RedisCluster, client)
    if cluster._initialize:
        await cluster.initialize()
    answers: dict[str, Any] = {}
    for node in cluster.get_primaries():
        try:
            answers[node.name] = await cluster.execute_command(*command, target_nodes=node)
        except ResponseError as exc:
            answers[node.name] = exc
    return answers


async def drop_idle_connections(client: Redis) -> None:
    """Close the idle connections of every node (a hung read's, back from use)."""
    cluster = cast(RedisCluster, client)
    for node in cluster.get_nodes():
        idle = list(node._free)
        node._free.clear()
        for connection in idle:
            if connection in node._connections:
                node._connections.remove(connection)
            await connection.disconnect()


async def refresh_slots(client: Redis) -> None:
    """Ask the cluster again which master holds which slots (after a failover)."""
    await cast(RedisCluster, client).nodes_manager.initialize()


async def node_client(client: Redis, key: str, **options: Any) -> Redis:
    """A plain client to the master that owns `key`'s slot (for a sharded subscription)."""
    node = await master_of(client, key)
    kept = ("username", "password", "socket_connect_timeout", "socket_keepalive")
    kwargs = {k: v for k, v in node.connection_kwargs.items() if k in kept or k.startswith("ssl")}
    kwargs["socket_keepalive_options"] = node.connection_kwargs.get("socket_keepalive_options")
    kwargs.update(options)
    return Redis(host=node.host, port=int(node.port), **kwargs)
