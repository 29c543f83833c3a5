"""Memory per idle connection: N sockets subscribed to one room of one node, nothing sent.

The node is `chatroom serve --no-archiver` on the bench's Redis and MariaDB database
(`BENCH_REDIS_URL`, `BENCH_DATABASE`, as bench/fanout.py). One socket subscribes first
(the room's shared state exists), then the node's RSS is read; the other N-1 subscribe,
and 2 s later the RSS is read again: the difference over N-1 is the figure, measured as
bench/fanout.py measures it, without the ramp that follows there (a minute instead of
several, for comparing builds: run it with `PYTHONPATH` pointing at each).

    python bench/idle_memory.py --clients 1000

The last line printed is one JSON object: `clients`, `kib_per_idle_connection`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import uvloop

from _chatroom import (
    bot_token,
    chatroom_env,
    drop_bench_database,
    flush_bench_redis,
    fresh_backends,
    start_node,
    wait_healthy,
)
from _load import BenchSocket, Tally, open_many, open_socket, raise_fd_limit
from _servers import ServerSet

ROOM = "idle"


async def subscribed(port: int, secret: str, tally: Tally) -> BenchSocket:
    def on_control(sock: BenchSocket, payload: bytes) -> None:
        if b'"subscribed"' in payload:
            sock.mark_ready()

    sock = await open_socket(
        "127.0.0.1",
        port,
        "/ws",
        {"Authorization": f"Bearer {secret}"},
        tally,
        receiver=True,
        on_control=on_control,
        timeout=30.0,
    )
    sock.send_text(json.dumps({"type": "subscribe", "room": ROOM}).encode())
    await asyncio.wait_for(sock.ready, 30.0)
    return sock


async def run(clients: int) -> dict[str, object]:
    raise_fd_limit()
    log_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-idle-"))
    (log_dir / "data").mkdir()
    env = chatroom_env(log_dir / "data", connections_per_user=clients + 10)
    servers = ServerSet()
    socks: list[BenchSocket] = []
    try:
        with servers.running():
            await fresh_backends(env)
            node = start_node(servers, log_dir, env)
            await node.wait_listening()
            await wait_healthy(node)
            secret = await bot_token(f"http://127.0.0.1:{node.port}", "bench_idle", rooms=(ROOM,))
            assert node.port is not None
            port = node.port
            tally = Tally()
            socks.append(await subscribed(port, secret, tally))
            await asyncio.sleep(1.0)
            before = node.rss_bytes()
            socks += await open_many(clients - 1, lambda _i: subscribed(port, secret, tally))
            await asyncio.sleep(2.0)
            after = node.rss_bytes()
    finally:
        for sock in socks:
            if sock.transport is not None:
                sock.transport.abort()
        await flush_bench_redis()
        await drop_bench_database()
        shutil.rmtree(log_dir, ignore_errors=True)
    return {
        "clients": clients,
        "kib_per_idle_connection": round((after - before) / (clients - 1) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Memory per idle connection of one node.")
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    if args.clients < 2:
        parser.error("--clients must be at least 2")
    try:
        line = uvloop.run(run(args.clients))
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
