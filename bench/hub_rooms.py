"""Hub reads over many rooms: what one node pays per message as the rooms it watches grow.

A node reads every room that has a subscriber on it (hub/bus.py: one XREAD BLOCK over
all of them, or one per slot group on a cluster). docs/scaling.md, ceiling 3, needs
that cost at the room counts a node of a big deployment watches (thousands), which
bench/fanout (one room) cannot show.

One app node (`chatroom serve`) and a separate archiver, on the bench's Redis and
MariaDB (as bench/fanout), one reader account subscribed to N rooms (100 subscriptions
per socket, the per-connection limit), and one sender that sends `--rate` messages/s,
each to a room drawn at random among the N: every message has one receiver. For each N
(ascending; the rooms are made once and the reader subscribes to more as N grows):
node CPU per message, Redis CPU per message, and delivery latency.

    python bench/hub_rooms.py --rooms 10,1000,4000 --rate 200

The last line printed is one JSON object with a row per N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from _chatroom import (
    bot_token,
    chatroom_env,
    drop_bench_database,
    flush_bench_redis,
    fresh_backends,
    start_chatroom,
    wait_healthy,
)
from _servers import CpuMeter, ServerSet, machine_redis
from _stats import render_table

SUBSCRIPTIONS_PER_SOCKET = 100  # CHATROOM_MAX_SUBSCRIPTIONS_PER_CONNECTION's default


@dataclass
class Row:
    rooms: int
    rate: float
    sent: int
    delivered: int
    node_us_per_message: float
    redis_us_per_message: float | None
    node_cpu_percent: float
    p50_ms: float
    p99_ms: float


class Reader:
    """The sockets of the reader account: the send time of each message it received."""

    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.latencies_ms: list[float] = []
        self.delivered = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def subscribe(self, url: str, secret: str, rooms: list[str]) -> None:
        """Subscribe to `rooms`, on new sockets of up to 100 subscriptions each."""
        for start in range(0, len(rooms), SUBSCRIPTIONS_PER_SOCKET):
            batch = rooms[start : start + SUBSCRIPTIONS_PER_SOCKET]
            socket = await connect(url, additional_headers={"Authorization": f"Bearer {secret}"})
            for room in batch:
                await socket.send(json.dumps({"type": "subscribe", "room": room}))
            waiting = len(batch)
            while waiting:
                frame = json.loads(await socket.recv())
                if frame["type"] == "subscribed":
                    waiting -= 1
                elif frame["type"] == "error":
                    raise SystemExit(f"hub_rooms: subscribe refused: {frame}")
            self.sockets.append(socket)
            self._tasks.append(asyncio.create_task(self._read(socket)))

    async def _read(self, socket: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for text in socket:
                frame = json.loads(text)
                if frame["type"] == "message":
                    sent_ns = int(frame["body"].rpartition(" ")[2])
                    self.latencies_ms.append((time.monotonic_ns() - sent_ns) / 1e6)
                    self.delivered += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for socket in self.sockets:
            await socket.close()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


async def _step(
    rooms: list[str],
    rate: float,
    seconds: float,
    sender: ClientConnection,
    reader: Reader,
    meter_of: CpuMeter,
    redis_meter_of: CpuMeter | None,
) -> tuple[int, int, list[float], float | None, float]:
    """Send `rate` messages/s to random rooms for `seconds`; (sent, delivered, node CPU
    percents, Redis CPU percent, seconds measured)."""
    reader.latencies_ms.clear()
    delivered_before = reader.delivered
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(int(rate * elapsed) + 1 - sent):
            body = f"bench {time.monotonic_ns()}"
            frame = {"type": "send", "room": random.choice(rooms), "body": body}
            frame["client_id"] = f"h-{secrets.token_hex(6)}"
            await sender.send(json.dumps(frame))
            sent += 1
        await asyncio.sleep(0.002)
    deadline = time.monotonic() + 5.0
    while reader.delivered - delivered_before < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    measured = time.monotonic() - started
    node = meter_of.percent()
    redis = redis_meter_of.percent()[0] if redis_meter_of is not None else None
    return sent, reader.delivered - delivered_before, node, redis, measured


async def _drain_acks(sender: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in sender:
            pass


async def run(args: argparse.Namespace) -> dict[str, object]:
    log_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-hub-rooms-"))
    servers = ServerSet()
    redis = machine_redis()
    counts = sorted(args.rooms)
    most = counts[-1]
    run_id = secrets.token_hex(2)
    slugs = [f"hr{run_id}-{i}" for i in range(most)]
    rows: list[Row] = []
    try:
        with servers.running():
            data_dir = log_dir / "chatroom-data"
            data_dir.mkdir()
            sockets = most // SUBSCRIPTIONS_PER_SOCKET + 4
            env = chatroom_env(data_dir, connections_per_user=sockets)
            await fresh_backends(env)
            node, _archiver = start_chatroom(servers, log_dir, env, archiver="separate")
            await node.wait_listening()
            await wait_healthy(node)
            base = f"http://127.0.0.1:{node.port}"
            print(f"making {most} rooms", flush=True)
            reader_secret = await bot_token(base, "bench_rooms_reader", rooms=tuple(slugs))
            sender_secret = await bot_token(base, "bench_rooms_sender")
            url = f"ws://127.0.0.1:{node.port}/ws"
            reader = Reader()
            sender = await connect(
                url, additional_headers={"Authorization": f"Bearer {sender_secret}"}
            )
            acks = asyncio.create_task(_drain_acks(sender))
            watched = 0
            for count in counts:
                await reader.subscribe(url, reader_secret, slugs[watched:count])
                watched = count
                rooms = slugs[:count]
                await _step(rooms, args.rate, 2.0, sender, reader, CpuMeter([node]), None)
                await asyncio.sleep(1.0)
                sent, delivered, node_cpu, redis_cpu, measured = await _step(
                    rooms,
                    args.rate,
                    args.seconds,
                    sender,
                    reader,
                    CpuMeter([node]),
                    CpuMeter([redis]) if redis is not None else None,
                )
                per_message = 1e6 / max(sent, 1) * measured / 100.0
                row = Row(
                    rooms=count,
                    rate=args.rate,
                    sent=sent,
                    delivered=delivered,
                    node_us_per_message=round(node_cpu[0] * per_message, 1),
                    redis_us_per_message=(
                        round(redis_cpu * per_message, 1) if redis_cpu is not None else None
                    ),
                    node_cpu_percent=node_cpu[0],
                    p50_ms=_percentile(reader.latencies_ms, 0.5),
                    p99_ms=_percentile(reader.latencies_ms, 0.99),
                )
                rows.append(row)
                print(
                    f"  {count:6d} rooms: {sent} sent, {delivered} delivered, node "
                    f"{row.node_cpu_percent}% ({row.node_us_per_message} us/message), redis "
                    f"{row.redis_us_per_message} us/message, p50 {row.p50_ms} ms, "
                    f"p99 {row.p99_ms} ms",
                    flush=True,
                )
            acks.cancel()
            await sender.close()
            await reader.close()
    finally:
        with contextlib.suppress(Exception):
            await flush_bench_redis()
            await drop_bench_database()
        if args.keep_logs:
            print(f"server logs kept in {log_dir}", flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(
        render_table(
            ["rooms", "msg/s", "delivered", "node cpu %", "node us/msg", "redis us/msg", "p99 ms"],
            [
                [
                    r.rooms,
                    r.rate,
                    f"{r.delivered}/{r.sent}",
                    r.node_cpu_percent,
                    r.node_us_per_message,
                    r.redis_us_per_message,
                    r.p99_ms,
                ]
                for r in rows
            ],
        ),
        flush=True,
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": [asdict(r) for r in rows],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Hub reads over many rooms: node CPU per message")
    parser.add_argument(
        "--rooms",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[10, 1000, 4000],
        help="comma-separated room counts the node watches (default 10,1000,4000)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per room count")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    if min(args.rooms) < 1 or args.rate <= 0:
        parser.error("--rooms must be positive counts and --rate above 0")
    return args


def main() -> None:
    args = parse_args()
    try:
        line = uvloop.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
