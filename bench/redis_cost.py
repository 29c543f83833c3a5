"""Redis cost per message: commands, network bytes, AOF bytes and memory per message sent.

Chatroom in its production shape (one `chatroom serve --no-archiver`, one `chatroom
archive`) on a Redis server of the bench's own (a private `redis-server`, AOF on with
`appendfsync everysec`, started on a free loopback port and removed after), so that
`INFO commandstats` counts Chatroom alone: the machine's shared Redis counts every
client of every database. SQL is MariaDB's database BENCH_DATABASE (dropped and migrated
afresh).

Each sender is its own user, subscribed to its room, and sends --messages in all with a
window of sends in flight (so the hub reads and delivers each message too), then the
bench waits for the archiver to empty the backlog. Before the load, an idle window of
the same length measures what the processes cost Redis with nothing sent (blocking reads
timing out, presence, leases): it is subtracted, pro rata, from the load's counts.

    python bench/redis_cost.py
    python bench/redis_cost.py --messages 20000 --senders 20 --rooms 10

The last line printed is one JSON object: `calls_per_message` (all commands, idle
subtracted) with the commands behind them, `net_in_bytes_per_message` /
`net_out_bytes_per_message` (Redis's own network counters), `aof_bytes_per_message`,
`redis_cpu_us_per_message` (Redis's own CPU, idle subtracted),
`used_memory_bytes_per_message` (used_memory grown per message sent, everything
included), and what it is made of: `stream_bytes_per_entry` (MEMORY USAGE of the room
streams per entry; the archiver keeps `archiver_hot_window` entries per stream) and
`client_id_key_bytes` (MEMORY USAGE of a send's idempotence key, one per message, kept
`client_id_ttl_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
import uvloop

from _servers import Server, ServerSet
from chatroom import redis_keys
from chatroom.loopback_ports import free_port

BODY = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. 0123456"


def _start_redis(servers: ServerSet, log_dir: Path, port: int) -> Server:
    argv = [
        shutil.which("redis-server") or "redis-server",
        *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(log_dir)),
        *("--aof-use-rdb-preamble", "no", "--auto-aof-rewrite-percentage", "0"),
    ]
    redis = Server("redis", argv, log_dir=log_dir, port=port)
    servers.add(redis)
    return redis


async def _snapshot(client: redis_asyncio.Redis) -> dict[str, Any]:
    info: dict[str, Any] = await client.info("all")
    calls = {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in info.items()
        if name.startswith("cmdstat_")
    }
    return {
        "calls": calls,
        "net_in": int(info["total_net_input_bytes"]),
        "net_out": int(info["total_net_output_bytes"]),
        "aof": int(info.get("aof_current_size", 0)),
        "memory": int(info["used_memory"]),
        "cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }


def _diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    calls = {
        name: n - before["calls"].get(name, 0)
        for name, n in after["calls"].items()
        if n - before["calls"].get(name, 0) > 0
    }
    # INFO itself is the bench's: one per snapshot.
    calls.pop("info", None)
    return {
        "calls": calls,
        **{k: after[k] - before[k] for k in ("net_in", "net_out", "aof", "memory", "cpu")},
    }


async def _sample_memory(client: redis_asyncio.Redis, pattern: str) -> float:
    """Mean MEMORY USAGE of up to 200 keys matching `pattern`."""
    sizes: list[int] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        sizes.append(int(await client.memory_usage(key, samples=0) or 0))
        if len(sizes) >= 200:
            break
    return round(sum(sizes) / len(sizes), 1) if sizes else 0.0


async def _stream_entry_bytes(client: redis_asyncio.Redis, rooms: list[str]) -> float:
    """MEMORY USAGE of the room streams (all their entries), per entry."""
    total = entries = 0
    for room in rooms:
        key = redis_keys.room_stream(room)
        total += int(await client.memory_usage(key, samples=0) or 0)
        entries += int(await client.xlen(key))
    return round(total / max(entries, 1), 1)


async def _sender(port: int, secret: str, room: str, count: int, window: int) -> int:
    import websockets

    acked = 0
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Authorization": f"Bearer {secret}"},
        max_size=None,
    ) as socket:
        await socket.send(json.dumps({"type": "subscribe", "room": room}))
        while json.loads(await socket.recv()).get("type") != "subscribed":
            pass
        sent = 0
        while sent < min(window, count):
            sent += 1
            await socket.send(
                json.dumps({"type": "send", "room": room, "body": BODY, "client_id": f"c{sent}"})
            )
        while acked < count:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "error":
                raise RuntimeError(f"send refused: {frame}")
            if frame.get("type") != "ack":
                continue
            acked += 1
            if sent < count:
                sent += 1
                await socket.send(
                    json.dumps(
                        {"type": "send", "room": room, "body": BODY, "client_id": f"c{sent}"}
                    )
                )
    return acked


async def run(args: argparse.Namespace) -> dict[str, object]:
    log_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-redis-cost-"))
    redis_port = args.redis_port or free_port()
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    # _chatroom reads BENCH_REDIS_URL when imported.
    from _chatroom import archive_status, bot_token, chatroom_env, fresh_backends, start_chatroom

    rooms = [f"cost-{i}-{secrets.token_hex(2)}" for i in range(args.rooms)]
    line: dict[str, object] = {
        "messages": args.messages,
        "senders": args.senders,
        "rooms": args.rooms,
        "body_chars": len(BODY),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    servers = ServerSet()
    try:
        with servers.running():
            redis_server = _start_redis(servers, log_dir, redis_port)
            await redis_server.wait_listening()
            version = subprocess.run(
                [redis_server.argv[0], "--version"], capture_output=True, text=True, check=False
            ).stdout.split()
            line["redis"] = " ".join(version[:3])
            data_dir = log_dir / "chatroom-data"
            data_dir.mkdir()
            env = chatroom_env(data_dir, connections_per_user=4)
            await fresh_backends(env)
            app, _archiver = start_chatroom(servers, log_dir, env, archiver="separate")
            await app.wait_listening()
            base = f"http://127.0.0.1:{app.port}"
            secrets_ = [await bot_token(base, "bench_cost_0", rooms=tuple(rooms))]
            for i in range(1, args.senders):
                secrets_.append(await bot_token(base, f"bench_cost_{i}"))
            client = redis_asyncio.Redis(port=redis_port)
            try:
                per_sender = args.messages // args.senders
                total = per_sender * args.senders
                await asyncio.sleep(2.0)  # the archiver and the hub settle
                # Idle: the processes on their own, for the load's expected length.
                idle_seconds = args.idle_seconds
                before = await _snapshot(client)
                await asyncio.sleep(idle_seconds)
                idle = _diff(await _snapshot(client), before)
                before = await _snapshot(client)
                started = time.monotonic()
                acked = await asyncio.gather(
                    *(
                        _sender(app.port or 0, secret, rooms[i % args.rooms], per_sender, 8)
                        for i, secret in enumerate(secrets_)
                    )
                )
                sent_seconds = time.monotonic() - started
                backlog: object = None
                polls = 0
                for _ in range(120):  # the archiver empties the backlog
                    await asyncio.sleep(0.5)
                    polls += 1
                    status = await archive_status(env)
                    totals = status.get("total")
                    backlog = totals.get("backlog") if isinstance(totals, dict) else None
                    if backlog == 0:
                        break
                # `chatroom status` calls are counted: subtract them with a second count.
                status_before = await _snapshot(client)
                await archive_status(env)
                status_cost = _diff(await _snapshot(client), status_before)
                load = _diff(await _snapshot(client), before)
                seconds = time.monotonic() - started
                key_bytes = await _sample_memory(client, f"{redis_keys.room_tag(rooms[0])}:sent:*")
                entry_bytes = await _stream_entry_bytes(client, rooms)
            finally:
                await client.aclose()
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)

    scale = seconds / idle_seconds
    per_message: dict[str, float] = {}
    for name, n in load["calls"].items():
        net = (
            n - idle["calls"].get(name, 0) * scale - status_cost["calls"].get(name, 0) * (polls + 1)
        )
        if net / total >= 0.005:
            per_message[name] = round(net / total, 3)
    line.update(
        {
            "acked": sum(acked),
            "sent_per_s": round(sum(acked) / sent_seconds),
            "backlog_left": backlog,
            "calls_per_message": round(sum(per_message.values()), 2),
            "commands_per_message": dict(sorted(per_message.items(), key=lambda kv: -kv[1])),
            "idle_calls_per_s": round(sum(idle["calls"].values()) / idle_seconds, 1),
            "net_in_bytes_per_message": round((load["net_in"] - idle["net_in"] * scale) / total),
            "net_out_bytes_per_message": round((load["net_out"] - idle["net_out"] * scale) / total),
            "aof_bytes_per_message": round(load["aof"] / total),
            "used_memory_bytes_per_message": round(load["memory"] / total),
            "client_id_key_bytes": key_bytes,
            "stream_bytes_per_entry": entry_bytes,
            "redis_cpu_us_per_message": round((load["cpu"] - idle["cpu"] * scale) / total * 1e6, 1),
        }
    )
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--redis-port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    line = uvloop.run(run(args))
    print(json.dumps(line), flush=True)
    sys.exit(0 if line.get("backlog_left") == 0 else 1)


if __name__ == "__main__":
    main()
