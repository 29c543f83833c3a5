"""Fan-out: N clients in one room, the send rate ramped until the server cannot keep up.

Four targets, one after the other in one run, each a single server process on 127.0.0.1
with uvloop: Chatroom (`chatroom serve` + a separate `chatroom archive`, on Redis db 13 and
MariaDB `chatroom_bench_fanout`), the raw ceiling (a bare `websockets` broadcast server),
python-socketio with its AsyncRedisManager, and Django Channels with channels_redis.

For each target: N receivers join the room (the server's RSS is read before and after:
memory per idle connection), then a few senders (members of the room too) send at a fixed
rate for a few seconds per step, the rate growing by --factor each step. A step is held
when every message reached every receiver and the p99 send-to-receive latency is at most
--p99-limit-ms. After the first failed step (retried once: the machine is shared) one step
between the last held rate and the failed one is tried. The load generator is this one
process: every connection on one uvloop event loop (see _load.py for why it is cheap).

    python bench/fanout.py --clients 1000
    python bench/fanout.py --clients 200 --targets chatroom,raw
    python bench/fanout.py --clients 1000 --targets chatroom --nodes 2 [--redis-cluster]

With `--nodes N` Chatroom runs N `chatroom serve` processes on the same Redis and SQL,
and members and senders are spread over them (member i on node i mod N): a message sent
on one node reaches the other's subscribers through the room stream, as behind a proxy.
Memory per idle connection and CPU per delivery then count all the nodes.

The last line printed is one JSON object: Chatroom's figures unprefixed (`deliveries_per_s`,
`lost`, `p99_ms`, `kib_per_idle_connection`, ...), the peers' prefixed (`raw_...`,
`socketio_...`, `channels_...`), and the ratios Chatroom / peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from _chatroom import SetupFailed, drop_bench_database, flush_bench_redis, use_redis
from _cluster import ClusterProcesses, local_cluster
from _load import BenchSocket, HandshakeError, Tally, open_many, raise_fd_limit
from _servers import (
    CpuMeter,
    Server,
    ServerFailed,
    ServerSet,
    SharedProcess,
    machine_redis,
    own_cpu_seconds,
)
from _stats import percentile_ms, render_table
from _targets import TARGETS, ChatroomTarget, Target

# The ramp stops closing in once the failed rate is within this factor of the held one.
CLOSE_ENOUGH = 1.25


@dataclass
class Step:
    number: int
    rate: float  # messages per second offered
    sent: int = 0
    seconds: float = 0.0
    delivered: int = 0
    expected: int = 0
    lost: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    ack_p99_ms: float | None = None  # send to ack, where the target acks (Chatroom)
    server_cpu: list[float] = field(default_factory=list)
    generator_cpu: float = 0.0
    redis_cpu: float | None = None
    server_us_per_delivery: float | None = None  # CPU of the serving process per delivery
    send_errors: int = 0
    disconnected: int = 0
    held: bool = False
    why: str = ""

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


@dataclass
class Outcome:
    target: str
    key: str
    clients: int
    kib_per_idle_connection: float | None = None
    steps: list[Step] = field(default_factory=list)
    failure: str = ""

    @property
    def best(self) -> Step | None:
        held = [s for s in self.steps if s.held]
        return max(held, key=lambda s: s.deliveries_per_s) if held else None

    @property
    def busiest_lossless(self) -> Step | None:
        """The step with the most deliveries/s that lost nothing, held or not."""
        lossless = [s for s in self.steps if not s.lost and s.server_us_per_delivery]
        return max(lossless, key=lambda s: s.deliveries_per_s) if lossless else None


async def run_step(
    target: Target,
    receivers: list[BenchSocket],
    senders: list[BenchSocket],
    tally: Tally,
    number: int,
    rate: float,
    args: argparse.Namespace,
    redis: SharedProcess | None,
) -> Step:
    step = Step(number, rate)
    tally.reset(number)
    if target.ack_histogram:
        target.ack_histogram[:] = [0] * len(target.ack_histogram)
    for sock in receivers:
        sock.received = 0
    errors_before = sum(s.errors for s in senders)
    meter = CpuMeter(target.metered)
    redis_meter = CpuMeter([redis]) if redis is not None else None
    own_before = own_cpu_seconds()
    started = time.monotonic()
    sent = 0
    count = len(senders)
    # Slow steps last long enough to carry a few messages; fast ones --step-seconds.
    duration = min(max(args.step_seconds, args.min_messages / rate), args.max_step_seconds)
    # Send on a 2 ms tick, catching up on whatever a busy loop delayed: the offered rate holds.
    while (elapsed := time.monotonic() - started) < duration:
        due = math.floor(rate * elapsed) + 1 - sent
        for _ in range(due):
            which = sent % count
            senders[which].send_text(target.send_payload(which, number, sent))
            sent += 1
        await asyncio.sleep(0.002)
    step.seconds = time.monotonic() - started
    step.sent = sent
    step.expected = sent * len(receivers)
    drain_until = time.monotonic() + args.drain_seconds
    while tally.delivered < step.expected and time.monotonic() < drain_until:
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - started
    step.server_cpu = meter.percent()
    step.redis_cpu = redis_meter.percent()[0] if redis_meter is not None else None
    step.generator_cpu = round(100.0 * (own_cpu_seconds() - own_before) / elapsed, 1)
    step.delivered = tally.delivered
    if step.delivered:
        node_cpu_s = sum(step.server_cpu[: len(target.nodes)]) / 100.0 * elapsed
        step.server_us_per_delivery = round(node_cpu_s / step.delivered * 1e6, 1)
    step.lost = sum(max(0, sent - sock.received) for sock in receivers)
    step.p50_ms = percentile_ms(tally.histogram, 0.50)
    step.p99_ms = percentile_ms(tally.histogram, 0.99)
    step.max_ms = percentile_ms(tally.histogram, 1.0)
    step.ack_p99_ms = percentile_ms(target.ack_histogram, 0.99) if target.ack_histogram else None
    step.send_errors = sum(s.errors for s in senders) - errors_before
    gone = [s for s in [*receivers, *senders] if s.closed.done()]
    step.disconnected = len(gone)
    codes = sorted({str(s.close_code or "no close frame") for s in gone})
    reasons = []
    if step.lost:
        reasons.append(f"{step.lost} deliveries lost")
    if step.send_errors:
        reasons.append(f"{step.send_errors} send errors")
    if step.disconnected:
        reasons.append(f"{step.disconnected} clients disconnected ({', '.join(codes)})")
    if step.p99_ms is None or step.p99_ms > args.p99_limit_ms:
        reasons.append(f"p99 {step.p99_ms} ms > {args.p99_limit_ms:g} ms")
    step.held = not reasons
    step.why = "; ".join(reasons) or "held"
    return step


async def quiet(tally: Tally, seconds: float = 5.0) -> None:
    """Let a backlog from a failed step drain before the next one starts."""
    tally.reset(-1)
    deadline = time.monotonic() + seconds
    last = -1
    while time.monotonic() < deadline and tally.stale != last:
        last = tally.stale
        await asyncio.sleep(0.5)


def step_line(target: Target, step: Step) -> str:
    cpu = "+".join(f"{c:.0f}" for c in step.server_cpu)
    return (
        f"  [{target.key or 'chatroom'}] step {step.number:2d}: {step.rate:8.1f} msg/s "
        f"-> {step.deliveries_per_s:9.0f} deliveries/s  p50 {step.p50_ms} ms  "
        f"p99 {step.p99_ms} ms  "
        + (f"ack p99 {step.ack_p99_ms} ms  " if step.ack_p99_ms is not None else "")
        + f"server cpu {cpu}% ({step.server_us_per_delivery} us/delivery)  "
        f"redis cpu {step.redis_cpu}%  "
        f"generator cpu {step.generator_cpu:.0f}%  "
        f"{step.why}"
    )


async def measure(
    target: Target, servers: ServerSet, args: argparse.Namespace, redis: SharedProcess | None
) -> Outcome:
    outcome = Outcome(target.name, target.key, args.clients)
    print(f"{target.name}: starting", flush=True)
    await target.start(servers, args.clients, args.senders)
    assert target.server is not None
    for node in target.nodes:
        print(f"  server pid {node.pid}, port {node.port}", flush=True)
    tally = Tally()
    receivers: list[BenchSocket] = []
    senders: list[BenchSocket] = []
    profiler: Server | None = None
    try:
        # The first member on each node sets up the room's shared state there; the rest
        # are what we weigh.
        first = min(len(target.nodes), args.clients - 1)
        for index in range(first):
            receivers.append(await target.open_member(index, tally, sender=False))
        await asyncio.sleep(1.0)
        rss_before = target.rss_bytes()
        receivers += await open_many(
            args.clients - first,
            lambda i: target.open_member(i + first, tally, sender=False),
        )
        await asyncio.sleep(2.0)
        rss_after = target.rss_bytes()
        idle = max(args.clients - first, 1)
        outcome.kib_per_idle_connection = round((rss_after - rss_before) / idle / 1024, 1)
        print(
            f"  {args.clients} members joined; {outcome.kib_per_idle_connection} KiB of server "
            "memory per idle connection",
            flush=True,
        )
        if args.profile and isinstance(target, TARGETS[args.profile_target]):
            profiler = profile(servers, target, args)
        senders = list(
            await asyncio.gather(
                *(target.open_member(i, tally, sender=True) for i in range(args.senders))
            )
        )
        await asyncio.sleep(0.5)
        rate = max(args.start_deliveries / args.clients, 0.5)
        # An unrecorded warm-up at the first rate: first-use costs are not a verdict.
        warm = argparse.Namespace(**{**vars(args), "step_seconds": 2.0, "min_messages": 0})
        await run_step(target, receivers, senders, tally, -2, rate, warm, redis)
        await quiet(tally)
        last_held: float | None = None
        failed_at: float | None = None
        retried = False
        budget_end = time.monotonic() + args.budget_seconds
        number = 0
        while number < args.max_steps and time.monotonic() < budget_end:
            target.check_alive()
            step = await run_step(target, receivers, senders, tally, number, rate, args, redis)
            outcome.steps.append(step)
            print(step_line(target, step), flush=True)
            number += 1
            if step.disconnected:
                break
            if step.held:
                last_held = rate
                retried = False
                if failed_at is None:
                    rate *= args.factor
                elif failed_at / rate < CLOSE_ENOUGH:
                    break  # held just below the rate that failed: done
                else:
                    rate = math.sqrt(rate * failed_at)  # close in on the rate that failed
                continue
            await quiet(tally)
            if not retried:
                retried = True  # one noisy step on a shared machine is not a verdict
                continue
            retried = False
            failed_at = rate if failed_at is None else min(failed_at, rate)
            if last_held is None:
                # Nothing held yet: the start was too fast for this target; walk down.
                rate /= args.factor**2
                if rate < args.min_rate:
                    break
                continue
            if failed_at / last_held < CLOSE_ENOUGH:
                break
            rate = math.sqrt(last_held * failed_at)
    finally:
        if profiler is not None:
            profiler.stop(grace=30.0, sig=signal.SIGINT)  # py-spy writes its file on Ctrl-C
            print(f"  profile of {target.name} written to {args.profile}", flush=True)
        for sock in [*receivers, *senders]:
            if sock.transport is not None:
                sock.transport.abort()
    return outcome


def profile(servers: ServerSet, target: Target, args: argparse.Namespace) -> Server:
    """py-spy samples the server (and its children) through the whole ramp."""
    assert target.server is not None
    fmt = "speedscope" if args.profile.endswith(".json") else "raw"
    return servers.add(
        Server(
            "py-spy",
            [
                "py-spy",
                "record",
                "--pid",
                str(target.server.pid),
                "--rate",
                "200",
                "--format",
                fmt,
                "--output",
                args.profile,
            ],
            log_dir=target.log_dir,
        )
    )


def summary(outcomes: dict[str, Outcome], clients: int) -> dict[str, object]:
    line: dict[str, object] = {
        "clients": clients,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for key, outcome in outcomes.items():
        prefix = "" if key == "chatroom" else f"{key}_"
        best = outcome.best
        first = outcome.steps[0] if outcome.steps else None
        line[f"{prefix}deliveries_per_s"] = round(best.deliveries_per_s) if best else 0
        line[f"{prefix}rate_per_s"] = round(best.rate, 1) if best else 0
        line[f"{prefix}p50_ms"] = best.p50_ms if best else (first.p50_ms if first else None)
        line[f"{prefix}p99_ms"] = best.p99_ms if best else (first.p99_ms if first else None)
        line[f"{prefix}lost"] = best.lost if best else (first.lost if first else None)
        line[f"{prefix}server_cpu_percent"] = (
            best.server_cpu if best else (first.server_cpu if first else None)
        )
        line[f"{prefix}generator_cpu_percent"] = best.generator_cpu if best else None
        line[f"{prefix}redis_cpu_percent"] = best.redis_cpu if best else None
        if best is not None and best.ack_p99_ms is not None:
            line[f"{prefix}ack_p99_ms"] = best.ack_p99_ms
        # Noise-proof cost figure: the serving process's CPU per delivery at the busiest
        # step that lost nothing, held or not.
        busiest = outcome.busiest_lossless
        line[f"{prefix}server_us_per_delivery"] = (
            busiest.server_us_per_delivery if busiest else None
        )
        line[f"{prefix}kib_per_idle_connection"] = outcome.kib_per_idle_connection
        line[f"{prefix}stopped_by"] = outcome.failure or next(
            (s.why for s in reversed(outcome.steps) if not s.held), "step or time budget"
        )
    ours = line.get("deliveries_per_s")
    for peer in ("raw", "socketio", "channels"):
        theirs = line.get(f"{peer}_deliveries_per_s")
        if isinstance(ours, int) and isinstance(theirs, int):
            # null: the peer held no step (its ratio has no finite value), or was not run.
            line[f"vs_{peer}"] = round(ours / theirs, 2) if theirs else None
    return line


def print_table(outcomes: dict[str, Outcome]) -> None:
    rows = []
    for outcome in outcomes.values():
        best = outcome.best
        rows.append(
            [
                outcome.target,
                round(best.rate, 1) if best else 0,
                round(best.deliveries_per_s) if best else 0,
                best.p50_ms if best else None,
                best.p99_ms if best else None,
                "+".join(f"{c:.0f}" for c in best.server_cpu) if best else None,
                outcome.kib_per_idle_connection,
                outcome.busiest_lossless.server_us_per_delivery
                if outcome.busiest_lossless
                else None,
                outcome.failure or ("" if best else "no step held"),
            ]
        )
    print(
        render_table(
            [
                "target",
                "msg/s held",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "server cpu %",
                "KiB/idle conn",
                "us/delivery",
                "note",
            ],
            rows,
        ),
        flush=True,
    )


async def run(args: argparse.Namespace) -> dict[str, object]:
    limit = raise_fd_limit()
    if limit < args.clients + args.senders + 64:
        raise SystemExit(f"fanout: open-files limit {limit} is too low for {args.clients} clients")
    log_dir = Path(tempfile.mkdtemp(prefix="chatroom-bench-fanout-"))
    room = f"bench-{secrets.token_hex(3)}"
    outcomes: dict[str, Outcome] = {}
    servers = ServerSet()
    redis = machine_redis()
    try:
        with servers.running(), contextlib.ExitStack() as closing:
            if args.redis_cluster:
                cluster = closing.enter_context(local_cluster())
                use_redis(cluster.url)
                redis = ClusterProcesses(cluster)
            for key in args.targets:
                target = TARGETS[key](log_dir, room)
                if isinstance(target, ChatroomTarget):
                    target.workers = args.workers
                    target.node_count = args.nodes
                try:
                    outcomes[key] = await measure(target, servers, args, redis)
                except (ServerFailed, SetupFailed, HandshakeError, OSError, TimeoutError) as exc:
                    message = str(exc) or type(exc).__name__
                    print(f"  {target.name} failed: {message}", flush=True)
                    outcomes[key] = Outcome(
                        target.name, key, args.clients, failure=message.splitlines()[0]
                    )
                finally:
                    servers.stop_all()
    finally:
        with contextlib.suppress(Exception):
            await flush_bench_redis()
            await drop_bench_database()
        if args.keep_logs or any(o.failure for o in outcomes.values()):
            print(f"server logs kept in {log_dir}", flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print_table(outcomes)
    return {"workers": args.workers, "nodes": args.nodes, **summary(outcomes, args.clients)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fan-out to N clients in one room: Chatroom beside three peers."
    )
    parser.add_argument("--clients", type=int, default=1000, help="room members (default 1000)")
    parser.add_argument("--senders", type=int, default=4, help="sending members (default 4)")
    parser.add_argument(
        "--targets",
        default="chatroom,raw,socketio,channels",
        help="comma-separated, from: " + ", ".join(TARGETS),
    )
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument(
        "--min-messages", type=int, default=10, help="a slow step lasts until it sent this many"
    )
    parser.add_argument("--max-step-seconds", type=float, default=12.0)
    parser.add_argument("--drain-seconds", type=float, default=2.0)
    parser.add_argument(
        "--start-deliveries", type=float, default=2000.0, help="deliveries/s of the first step"
    )
    parser.add_argument("--factor", type=float, default=1.5, help="rate growth per step")
    parser.add_argument(
        "--min-rate", type=float, default=0.25, help="msg/s below which a target is given up"
    )
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--budget-seconds", type=float, default=120.0, help="per target")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="Chatroom on a 3-master Redis Cluster started for the run (bench/_cluster.py)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="Chatroom's app-node processes (serve --workers)"
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="Chatroom's app nodes (`chatroom serve` processes on the same Redis and SQL); "
        "members and senders are spread over them, so most deliveries cross between nodes",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy samples the --profile-target server during its ramp: collapsed stacks "
        "(or speedscope JSON if FILE ends in .json)",
    )
    parser.add_argument("--profile-target", default="chatroom", choices=list(TARGETS))
    args = parser.parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    if args.clients < 2 or args.senders < 1:
        parser.error("--clients must be at least 2 and --senders at least 1")
    if args.nodes < 1 or args.clients <= args.nodes:
        parser.error("--nodes must be at least 1 and below --clients")
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
