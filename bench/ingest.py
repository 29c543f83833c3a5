"""Ingest: messages per second one Chatroom node accepts (acks), with the archiver running.

50 sending clients, each its own user, subscribed to nothing, spread over 10 rooms; each
keeps a window of sends in flight (a new send for every ack), so the node runs flat out.
Chatroom runs in its production shape on this machine's services: Redis database 13 and
MariaDB database `chatroom_bench_fanout` (dropped and migrated afresh), one app node
(`chatroom serve --no-archiver`) and one `chatroom archive` process beside it (or the
archiver inside the node with --archiver inprocess). The load generator is this one
process on uvloop (see _load.py). After the measured window the bench waits for the
archiver to empty the backlog and reports how long that took.

    python bench/ingest.py
    python bench/ingest.py --clients 50 --rooms 10 --seconds 10 --window 32

The last line printed is one JSON object with `acked_per_s` (the target: at least 10,000
on the 2-core machine, load generator included), ack latency, errors, CPU and archiving.

`--ack-durability write|fsync` sets what an ack waits for (docs/reliability.md);
`--redis embedded` runs on the embedded Valkey of a fresh data folder instead of
BENCH_REDIS_URL (whose Redis may be one of your own, with AOF).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as redis_asyncio
import uvloop

from _chatroom import (
    REDIS_URL,
    SetupFailed,
    archive_status,
    bot_token,
    chatroom_env,
    drop_bench_database,
    flush_bench_redis,
    fresh_backends,
    start_chatroom,
    wait_healthy,
)
from _cluster import ClusterProcesses, local_cluster
from _load import BUCKET_NS, BUCKETS, BenchSocket, HandshakeError, Tally, open_socket
from _servers import (
    CpuMeter,
    Server,
    ServerFailed,
    ServerSet,
    SharedProcess,
    embedded_redis,
    machine_redis,
    own_cpu_seconds,
)
from _stats import percentile_ms
from _targets import PADDING

ACK_MARK = b"~a~"
REDIS_PORT = urlsplit(REDIS_URL).port or 6379


class Sender:
    """One sending client: a closed loop of `window` sends in flight."""

    def __init__(self, room: str, run: str, histogram: list[int]) -> None:
        self.room = room
        self.run = run
        self.histogram = histogram
        self.seq = 0
        self.acked = 0
        self.errors = 0
        self.last_error = b""
        self.sending = False
        self.sock: BenchSocket | None = None

    def send_one(self) -> None:
        assert self.sock is not None
        self.seq += 1
        client_id = f"~a~{time.monotonic_ns()}~{self.run}-{self.seq}"
        body = f"ingest {self.seq}: " + PADDING
        self.sock.send_text(
            json.dumps(
                {"type": "send", "room": self.room, "body": body, "client_id": client_id},
                separators=(",", ":"),
            ).encode()
        )

    def on_frame(self, sock: BenchSocket, payload: bytes) -> None:
        mark = payload.find(ACK_MARK)
        if b'"ack"' in payload and mark >= 0:
            start = mark + 3
            sent = int(payload[start : payload.find(b"~", start)])
            bucket = (time.monotonic_ns() - sent) // BUCKET_NS
            self.histogram[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
            self.acked += 1
        elif b'"error"' in payload:
            self.errors += 1
            self.last_error = payload
        else:
            return
        if self.sending:
            self.send_one()


async def command_calls(url: str) -> dict[str, int]:
    """Calls per command since Redis started (INFO commandstats), of the whole server."""
    client = redis_asyncio.Redis.from_url(url)
    try:
        found = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in found.items()}


def calls_per_message(
    before: dict[str, int], after: dict[str, int], acked: int
) -> dict[str, float]:
    """Redis commands per acked message over the window, the most frequent first."""
    per = {
        name: round((calls - before.get(name, 0)) / max(acked, 1), 3)
        for name, calls in after.items()
        if calls > before.get(name, 0)
    }
    return dict(sorted(per.items(), key=lambda item: -item[1]))


async def wait_archived(env: dict[str, str], acked: int, timeout: float) -> tuple[float, dict]:
    """Seconds until the backlog is empty and everything acked is in SQL, and the totals."""
    started = time.monotonic()
    total: dict[str, object] = {}
    while time.monotonic() - started < timeout:
        status = await archive_status(env)
        found = status.get("total")
        total = found if isinstance(found, dict) else {}
        backlog = total.get("backlog")
        archived = total.get("archived")
        if backlog == 0 and isinstance(archived, int) and archived >= acked:
            return round(time.monotonic() - started, 1), total
        await asyncio.sleep(0.5)
    return -1.0, total


async def run(args: argparse.Namespace) -> dict[str, object]:
    log_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-ingest-"))
    rooms = [f"ingest-{i}-{secrets.token_hex(2)}" for i in range(args.rooms)]
    run_id = secrets.token_hex(3)
    histogram = [0] * BUCKETS
    senders = [Sender(rooms[i % args.rooms], run_id, histogram) for i in range(args.clients)]
    servers = ServerSet()
    failed = ""
    line: dict[str, object] = {
        "clients": args.clients,
        "rooms": args.rooms,
        "window": args.window,
        "archiver": args.archiver,
        "workers": args.workers,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    try:
        with servers.running(), contextlib.ExitStack() as closing:
            data_dir = log_dir / "chatroom-data"
            data_dir.mkdir()
            env = chatroom_env(data_dir, connections_per_user=4)
            cluster = None
            if args.redis == "embedded":
                env.pop("CHATROOM_REDIS_URL", None)
            elif args.redis == "cluster":
                cluster = closing.enter_context(local_cluster())
                env["CHATROOM_REDIS_URL"] = cluster.url
                line["redis"] = "cluster of 3 masters"
            if args.ack_durability:
                env["CHATROOM_ACK_DURABILITY"] = args.ack_durability
            await fresh_backends(env)
            app, archiver = start_chatroom(
                servers, log_dir, env, archiver=args.archiver, workers=args.workers
            )
            await app.wait_listening()
            await wait_healthy(app)
            base = f"http://127.0.0.1:{app.port}"
            print(f"registering {args.clients} users (argon2id: a few seconds)", flush=True)
            secrets_ = [await bot_token(base, "bench_ingest_0", rooms=tuple(rooms))]
            gate = asyncio.Semaphore(8)  # sign-ups are argon2id-bound: a few at a time

            async def account(i: int) -> str:
                async with gate:
                    return await bot_token(base, f"bench_ingest_{i}")

            secrets_ += await asyncio.gather(*(account(i) for i in range(1, args.clients)))
            tally = Tally()
            for sender, secret in zip(senders, secrets_, strict=True):
                sender.sock = await open_socket(
                    "127.0.0.1",
                    app.port or 0,
                    "/ws",
                    {"Authorization": f"Bearer {secret}"},
                    tally,
                    receiver=False,
                    on_control=sender.on_frame,
                )
            metered: list[Server | SharedProcess] = [app] + ([archiver] if archiver else [])
            redis: SharedProcess | None = (
                embedded_redis(data_dir) if args.redis == "embedded" else machine_redis(REDIS_PORT)
            )
            if cluster is not None:
                redis = ClusterProcesses(cluster)
            print(
                f"{args.clients} senders over {args.rooms} rooms, {args.window} in flight each: "
                f"{args.warmup_seconds:g} s warm-up, {args.seconds:g} s measured",
                flush=True,
            )
            profiler = None
            if args.profile:
                profiler = servers.add(
                    Server(
                        "py-spy",
                        [
                            *("py-spy", "record", "--pid", str(app.pid), "--rate", "200"),
                            *(
                                "--format",
                                "speedscope" if args.profile.endswith(".json") else "raw",
                            ),
                            *("--output", args.profile),
                        ],
                        log_dir=log_dir,
                    )
                )
            for sender in senders:
                sender.sending = True
                for _ in range(args.window):
                    sender.send_one()
            await asyncio.sleep(args.warmup_seconds)
            for i in range(BUCKETS):
                histogram[i] = 0
            acked_before = sum(s.acked for s in senders)
            errors_before = sum(s.errors for s in senders)
            calls_before = await command_calls(REDIS_URL) if args.commandstats else {}
            meter = CpuMeter(metered)
            redis_meter = CpuMeter([redis]) if redis is not None else None
            own_before = own_cpu_seconds()
            started = time.monotonic()
            await asyncio.sleep(args.seconds)
            elapsed = time.monotonic() - started
            acked = sum(s.acked for s in senders) - acked_before
            calls_after = await command_calls(REDIS_URL) if args.commandstats else {}
            errors = sum(s.errors for s in senders) - errors_before
            cpu = meter.percent()
            redis_cpu = redis_meter.percent()[0] if redis_meter is not None else None
            generator = round(100.0 * (own_cpu_seconds() - own_before) / elapsed, 1)
            server_side = sum(cpu) + (redis_cpu or 0.0)  # node, archiver, Redis: % of a core
            cpu_us = round(server_side / 100.0 * elapsed / max(acked, 1) * 1e6, 1)
            # The app node alone (all its workers): what a core would ingest at 100 %.
            node_us = round(cpu[0] / 100.0 * elapsed / max(acked, 1) * 1e6, 1)
            if args.commandstats:
                per_message = calls_per_message(calls_before, calls_after, acked)
                line["redis_calls_per_msg"] = round(sum(per_message.values()), 2)
                line["redis_commands_per_msg"] = dict(list(per_message.items())[:8])
            for sender in senders:
                sender.sending = False
            if profiler is not None:
                profiler.stop(grace=30.0, sig=signal.SIGINT)  # py-spy writes its file on Ctrl-C
                print(f"profile of the node written to {args.profile}", flush=True)
            await asyncio.sleep(1.0)  # the last sends in flight get their acks
            acked_total = sum(s.acked for s in senders)
            line.update(
                {
                    "acked_per_s": round(acked / elapsed),
                    "ack_p50_ms": percentile_ms(histogram, 0.50),
                    "ack_p99_ms": percentile_ms(histogram, 0.99),
                    "errors": errors,
                    "server_cpu_percent": cpu[0],
                    "archiver_cpu_percent": cpu[1] if len(cpu) > 1 else None,
                    "generator_cpu_percent": generator,
                    "redis_cpu_percent": redis_cpu,
                    "server_cpu_us_per_msg": cpu_us,
                    "node_cpu_us_per_msg": node_us,
                    "per_node_core_per_s": round(1e6 / node_us) if node_us else None,
                    "redis": args.redis,
                    "ack_durability": args.ack_durability or "default",
                    "acked_total": acked_total,
                }
            )
            print(
                f"acked {acked / elapsed:,.0f} messages/s; ack p50 {line['ack_p50_ms']} ms, "
                f"p99 {line['ack_p99_ms']} ms; errors {errors}; cpu: node {cpu[0]}%, "
                f"archiver {line['archiver_cpu_percent']}%, Redis {redis_cpu}%, load generator "
                f"{generator}%",
                flush=True,
            )
            if errors:
                first = next(s.last_error for s in senders if s.errors)
                print(f"first error: {first.decode(errors='replace')[:300]}", flush=True)
            drain_s, total = await wait_archived(env, acked_total, args.archive_timeout)
            line["archive_drain_s"] = drain_s
            line["archived"] = total.get("archived")
            line["backlog_left"] = total.get("backlog")
            line["dead_letters"] = total.get("dead_letters")
            print(
                f"archiver: {total.get('archived')} archived of {acked_total} acked, backlog "
                f"empty {drain_s} s after the senders stopped"
                if drain_s >= 0
                else f"archiver: backlog {total.get('backlog')} still left after "
                f"{args.archive_timeout:g} s",
                flush=True,
            )
            for sender in senders:
                if sender.sock is not None and sender.sock.transport is not None:
                    sender.sock.transport.abort()
    except (ServerFailed, SetupFailed, HandshakeError, OSError, TimeoutError) as exc:
        failed = (str(exc) or type(exc).__name__).splitlines()[0]
        print(f"ingest failed: {exc}", flush=True)
        line["failure"] = failed
        line.setdefault("acked_per_s", 0)
    finally:
        with contextlib.suppress(Exception):
            if args.redis == "url":
                await flush_bench_redis()
            await drop_bench_database()
        if args.keep_logs or failed:
            print(f"server logs kept in {log_dir}", flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return line


def profile_format(path: str) -> str:
    return "speedscope" if path.endswith(".json") else "raw"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Messages/s one Chatroom node acks from many senders, archiver running."
    )
    parser.add_argument("--clients", type=int, default=50, help="senders, one user each")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--window", type=int, default=32, help="sends in flight per client")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument(
        "--archiver",
        choices=["separate", "inprocess"],
        default="separate",
        help="a `chatroom archive` process beside the node, or the node's own archiver",
    )
    parser.add_argument("--archive-timeout", type=float, default=90.0)
    parser.add_argument(
        "--workers", type=int, default=1, help="app-node processes (`chatroom serve --workers`)"
    )
    parser.add_argument(
        "--redis",
        choices=["url", "embedded", "cluster"],
        default="url",
        help="BENCH_REDIS_URL's Redis, the embedded Valkey of a fresh data folder, or a "
        "3-master Redis Cluster started for the run (bench/_cluster.py)",
    )
    parser.add_argument(
        "--ack-durability",
        choices=["write", "fsync"],
        help="what an ack waits for (CHATROOM_ACK_DURABILITY); default: Chatroom's own",
    )
    parser.add_argument(
        "--commandstats",
        action="store_true",
        help="Redis commands per acked message (INFO commandstats over the window): of the "
        "whole Redis server, so only meaningful on a Redis of the bench's own",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy samples the node while it is loaded: collapsed stacks "
        "(or speedscope JSON if FILE ends in .json)",
    )
    args = parser.parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    if args.clients < 1 or args.rooms < 1 or args.window < 1:
        parser.error("--clients, --rooms and --window must be at least 1")
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
