"""One campaign: start the system, load it, let the nemesis loose, heal, drain, check.

Phases, each bounded in time so that a campaign never hangs:
1. start the stores, two app nodes and two archivers; register the users, make the rooms;
2. the clients send at a steady rate; after a short warm-up the nemesis runs its faults;
3. at the end of the duration the nemesis stops; everything is healed (proxies opened,
   paused processes continued, killed ones started, Redis' maxmemory lifted); new sends
   stop, the clients get answers to the sends still unanswered (resending them);
4. wait until no stream has pending or undelivered entries, then until every client has
   caught up with the last archived message of its rooms;
5. read SQL and Redis, check, report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio
from bench.chaos import evidence
from bench.chaos.accounts import accounts
from bench.chaos.checker import Verdict, check
from bench.chaos.clients import ChatClient, Pace
from bench.chaos.cluster import Cluster, Tuning
from bench.chaos.ledger import ClientLog, Ledger, id_key
from bench.chaos.nemesis import FAULT_LIMIT_S, FaultRecord, Nemesis
from bench.chaos.probe import Probe, send_to_ack_facts
from bench.chaos.report import attribute, full_report, last_line, render
from bench.chaos.storm import POOL_EXHAUSTED
from bench.chaos.supervisor import Supervisor
from redis.exceptions import RedisError

WARM_UP_S = 3.0
# Under write acks and everysec, what a power cut may take back: the last ~2 s.
UNSYNCED_S = 2.0
SETTLE_S = 20.0
CATCH_UP_S = 15.0
ROOMS_PER_CLIENT = 2


@dataclass
class Options:
    seed: int
    duration: float
    engine: str
    faults: list[str]
    clients: int = 50
    rooms: int = 10
    rate: float = 100.0  # messages per second, all clients together
    appendfsync: str = "everysec"
    ack_durability: str | None = None  # write | fsync (CHATROOM_ACK_DURABILITY of the nodes)
    drain_timeout: float = 60.0
    long_run: bool = False
    keep_logs: bool = False
    report: Path | None = None
    records: Path | None = None  # the ledger, evidence and timeline, pickled
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    line: dict[str, Any]
    verdict: Verdict
    text: str


async def run(options: Options) -> Outcome:
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    rng = random.Random(options.seed)
    # fsync acks need appendfsync always, kept through the faults.
    pinned = "always" if options.ack_durability == "fsync" else None
    tuning = Tuning(
        appendfsync=pinned or options.appendfsync,
        ack_durability=options.ack_durability,
        pinned_fsync=pinned,
    )
    cluster = Cluster(options.engine, root, tuning)
    begun = time.monotonic()
    keep = False
    try:
        print(
            f"chaos: seed {options.seed}, engine {options.engine}, {options.clients} clients, "
            f"{options.rate:g} msg/s, {options.duration:g} s, ack_durability "
            f"{options.ack_durability or 'default'}"
            f"{', appendfsync pinned to ' + pinned if pinned else ''}; files in {root}",
            flush=True,
        )
        await cluster.start()
        outcome = await _campaign(options, cluster, rng, begun)
        keep = not outcome.verdict.clean
        return outcome
    except BaseException:
        keep = True
        raise
    finally:
        await cluster.stop()
        if options.keep_logs:
            print(f"chaos: every file kept in {root}", flush=True)
        elif keep:
            # The logs tell what happened; the stores' files (a MariaDB datadir is over
            # 100 MB) are kept only on request.
            for part in root.iterdir():
                if part.name != "logs":
                    shutil.rmtree(part, ignore_errors=True)
            print(f"chaos: logs kept in {root / 'logs'}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _campaign(
    options: Options, cluster: Cluster, rng: random.Random, begun: float
) -> Outcome:
    urls = [cluster.node_url(i) for i in range(len(cluster.nodes))]
    rooms = [f"chaos-{i}" for i in range(options.rooms)]
    names = [f"chaos_{i}" for i in range(options.clients + 1)]  # the last: the slow reader
    made = await accounts(urls, names, tuple(rooms))
    ledger = Ledger()
    pace = Pace(per_client_per_s=options.rate / options.clients)
    clients = []
    for index, account in enumerate(made[:-1]):
        log = ClientLog(name=f"c{index}", user_id=account.user_id)
        ledger.clients[log.name] = log
        picked = rng.sample(rooms, min(ROOMS_PER_CLIENT, len(rooms)))
        client_rng = random.Random(options.seed * 1000 + index)
        clients.append(
            ChatClient(log, account, picked, urls, index % len(urls), ledger, pace, client_rng)
        )
    running = [asyncio.create_task(c.run(), name=c.log.name) for c in clients]
    nemesis = Nemesis(
        cluster,
        pace,
        rooms,
        made[-1],
        list(options.faults),
        rng,
        long_run=options.long_run,
        fsync_acks=options.ack_durability == "fsync",
        pinned_fsync=cluster.tuning.pinned_fsync,
    )
    stop = asyncio.Event()
    started, started_wall = time.monotonic(), time.time()
    progress = asyncio.create_task(_progress(ledger, clients, started))
    supervisor = Supervisor(cluster)
    watching = asyncio.create_task(supervisor.run())
    probe = Probe(ledger, cluster.redis_url, cluster.database_url, rooms)
    probed = asyncio.Event()  # the probe runs on through the drain, until caught up
    probing = asyncio.create_task(probe.run(probed))
    try:
        await asyncio.sleep(WARM_UP_S)
        chaos = asyncio.create_task(nemesis.run(stop))
        await asyncio.sleep(max(0.0, options.duration - WARM_UP_S))
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(chaos), FAULT_LIMIT_S / 4)
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos
        print("chaos: healing, then draining", flush=True)
        pace.sending = False
        watching.cancel()
        await _heal(cluster)
        settled = await _until(lambda: all(c.settled for c in clients), SETTLE_S)
        drained, drain_s = await evidence.wait_drained(
            cluster.redis_url, rooms, options.drain_timeout
        )
        rows, _ = await evidence.read_sql(cluster.database_url)
        newest = _newest_per_room(rows)
        caught_up = await _until(lambda: _caught_up(ledger, newest), CATCH_UP_S)
        probed.set()
        await probing
    finally:
        probed.set()
        progress.cancel()
        watching.cancel()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, progress, watching, probing, return_exceptions=True)
        await nemesis.redis.aclose()
    found = await evidence.collect(cluster.redis_url, cluster.database_url, rooms)
    if options.records is not None:
        options.records.write_bytes(pickle.dumps((ledger, found, nemesis.timeline)))
    losses = [
        (f.start, f.end)
        for f in nemesis.timeline.faults
        if f.kind in ("redis_kill", "redis_power_loss")
    ]
    # What a power cut may take back under write acks (Redis's everysec): the stated loss.
    acks = options.ack_durability or ("fsync" if options.engine == "embedded" else "write")
    unsynced = [
        (f.detail["cut_at"] - UNSYNCED_S, f.detail["cut_at"])
        for f in nemesis.timeline.faults
        if acks == "write" and f.kind == "redis_power_loss" and "cut_at" in f.detail
    ]
    sql_outages = [
        (f.start, f.end)
        for f in nemesis.timeline.faults
        if f.kind in ("sql_pause", "sql_unreachable")
    ]
    verdict = check(ledger, found, nemesis.timeline.poison, losses, unsynced, sql_outages)
    for exit_ in supervisor.exits:
        verdict.add(
            "process_exited",
            exit_.at,
            process=exit_.process,
            code=exit_.code,
            last_line=exit_.last_line,
        )
    _check_storms(verdict, nemesis.storms, cluster)
    _check_proxies(verdict, cluster)
    verdict.facts.update(
        settled=settled,
        drained=drained,
        drain_s=drain_s,
        caught_up=caught_up,
        rows_in_sql=len(found.rows),
        connections=sum(c.log.connections for c in clients),
        disconnects=_sum_counts([c.log.disconnects for c in clients]),
        refused_frames=_sum_counts([c.log.refused for c in clients]),
        send_errors=_send_errors(ledger),
        bursts=pace.bursts,
        process_starts={p.name: p.starts for p in cluster.processes.all},
        slow_readers=nemesis.slow_readers,
        connect_storms=[record.detail for record in nemesis.storms],
        **probe.figures.facts(started_wall),
        **send_to_ack_facts(ledger),
    )
    table = attribute(verdict, nemesis.timeline)
    verdict.facts["wall_s"] = round(time.monotonic() - begun, 1)
    text = render(verdict, nemesis.timeline, table)
    line = last_line(verdict, nemesis.timeline)
    if options.report is not None:
        run_info = {
            "seed": options.seed,
            "duration_s": options.duration,
            "engine": options.engine,
            "clients": options.clients,
            "rooms": options.rooms,
            "rate": options.rate,
            "appendfsync": options.appendfsync,
            "ack_durability": options.ack_durability,
            "faults": options.faults,
            "wall_s": round(time.monotonic() - begun, 1),
        }
        report = full_report(verdict, nemesis.timeline, table, run_info)
        options.report.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False))
    return Outcome(line, verdict, text)


async def _heal(cluster: Cluster) -> None:
    await cluster.heal()
    client = redis_asyncio.Redis.from_url(cluster.redis_url, socket_timeout=5)
    try:
        for _ in range(50):
            try:
                await client.config_set("maxmemory", "0")
                return
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True


def _newest_per_room(rows: list[evidence.Row]) -> dict[str, tuple[int, int]]:
    newest: dict[str, tuple[int, int]] = {}
    for row in rows:
        key = id_key(row.id)
        if key > newest.get(row.room, (0, 0)):
            newest[row.room] = key
    return newest


def _caught_up(ledger: Ledger, newest: dict[str, tuple[int, int]]) -> bool:
    """Every client saw its rooms' newest messages, and finished reloading after each
    `resync` (what the reload brings is what it missed: the checker must not look before)."""
    for client in ledger.clients.values():
        for room, view in client.rooms.items():
            if room in newest and (view.cursor is None or id_key(view.cursor) < newest[room]):
                return False
            if any(not resync.done for resync in view.resyncs):
                return False
    return True


def _sum_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def _send_errors(ledger: Ledger) -> dict[str, int]:
    return _sum_counts([{code: 1} for s in ledger.sends.values() for code in s.errors])


async def _progress(ledger: Ledger, clients: list[ChatClient], started: float) -> None:
    while True:
        await asyncio.sleep(15.0)
        outcomes = ledger.outcomes()
        unsettled = sum(1 for c in clients if not c.settled)
        print(
            f"chaos: {time.monotonic() - started:5.0f} s  sends {len(ledger.sends)} "
            f"({json.dumps(outcomes)}), clients waiting on answers {unsettled}",
            flush=True,
        )


def _check_storms(verdict: Verdict, storms: list[FaultRecord], cluster: Cluster) -> None:
    """A connect storm's upgrades must all be taken and every storm user must leave; no
    node may log its Redis pool giving up, storm or not."""
    for record in storms:
        refused = record.detail.get("refused") or {}
        if refused:
            verdict.add("storm_refused", record.start, refused=refused)
        if record.detail.get("still_online"):
            verdict.add("presence_stuck", record.end, online=record.detail["still_online"])
    for node in cluster.nodes:
        try:
            lines = node.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        exhausted = [line for line in lines if any(p in line for p in POOL_EXHAUSTED)]
        if exhausted:
            verdict.add(
                "pool_exhausted",
                time.time(),
                node=node.name,
                lines=len(exhausted),
                first=exhausted[0][:200],
            )


def _check_proxies(verdict: Verdict, cluster: Cluster) -> None:
    """A fault proxy whose process died cut its store off for the rest of the run: a fault
    of the harness, not the product's, but the run measured it all the same."""
    for proxy in cluster.proxies:
        if proxy.exited is not None:
            verdict.add("proxy_exited", time.time(), proxy=proxy.name, code=proxy.exited)
