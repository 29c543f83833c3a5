"""`chatroom status`: per room and in total, what is in the stream, in SQL, and between."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.stream_ids import StreamId
from chatroom.settings import AckDurability
from chatroom.store.counts import archived_per_room, dead_letters_per_room, room_ids
from chatroom.streams.persistence import check_persistence


@dataclass
class RoomStatus:
    stream_length: int = 0
    backlog: int = 0  # entries not yet archived: undelivered to the group, or pending
    pending: int = 0  # delivered to an archiver, not yet acknowledged
    archived: int = 0
    dead_letters: int = 0
    oldest_unarchived_age_s: float | None = None
    archived_per_s: float = 0.0  # rows archived per second, averaged over the last minute
    missing: int = 0  # pending entries deleted before they could be archived
    # Entries delivered more than archiver_max_deliveries times (archivers crashed or
    # restarted while holding them), then tried alone: archived, or dead-lettered if bad.
    suspects: int = 0

    def add(self, other: RoomStatus) -> None:
        self.stream_length += other.stream_length
        self.backlog += other.backlog
        self.pending += other.pending
        self.archived += other.archived
        self.dead_letters += other.dead_letters
        self.archived_per_s = round(self.archived_per_s + other.archived_per_s, 2)
        self.missing += other.missing
        self.suspects += other.suspects
        ages = [a for a in (self.oldest_unarchived_age_s, other.oldest_unarchived_age_s) if a]
        self.oldest_unarchived_age_s = max(ages) if ages else None


@dataclass
class Status:
    rooms: dict[str, RoomStatus] = field(default_factory=dict)
    total: RoomStatus = field(default_factory=RoomStatus)
    redis: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "rooms": {slug: asdict(room) for slug, room in sorted(self.rooms.items())},
            "total": asdict(self.total),
            "redis": self.redis,
        }


async def stream_status(redis: Redis, slug: str, now_ms: int) -> RoomStatus:
    """What Redis knows of a room: stream length, backlog, pending, oldest unarchived."""
    key = redis_keys.room_stream(slug)
    room = RoomStatus()
    try:
        info = await redis.xinfo_stream(key)
    except ResponseError:  # no stream yet
        return room
    room.stream_length = int(info["length"])
    try:
        groups = await redis.xinfo_groups(key)
    except ResponseError:
        groups = []
    group = next((g for g in groups if g["name"] == redis_keys.ARCHIVER_GROUP.encode()), None)
    if group is None:  # no archiver ever ran: everything in the stream is unarchived
        room.backlog = room.stream_length
        first = info.get("first-entry")
        if first:
            room.oldest_unarchived_age_s = (now_ms - StreamId.parse(first[0]).ms) / 1000
        return room
    room.pending = int(group["pending"])
    last_delivered = StreamId.parse(group["last-delivered-id"])
    undelivered: Any = await redis.xrange(key, min=f"({last_delivered}", max="+", count=1)
    lag = group.get("lag")
    if lag is None:  # Redis cannot tell after some deletions: count the slow way
        rest: Any = await redis.xrange(key, min=f"({last_delivered}", max="+")
        lag = len(rest)
    room.backlog = int(lag) + room.pending
    oldest: StreamId | None = None
    if room.pending:
        summary = await redis.xpending(key, redis_keys.ARCHIVER_GROUP)
        if summary.get("min"):
            oldest = StreamId.parse(summary["min"])
    if oldest is None and undelivered:
        oldest = StreamId.parse(undelivered[0][0])
    if oldest is not None:
        room.oldest_unarchived_age_s = max(0.0, (now_ms - oldest.ms) / 1000)
    return room


RATE_WINDOW_S = 60


async def archiver_progress(redis: Redis, slug: str, now_ms: int) -> tuple[float, int]:
    """Rows/s archived over the last minute (archivers count per second in a hash), and
    the pending entries found deleted."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(redis_keys.archiver_rate(slug))
        pipe.get(redis_keys.archiver_missing(slug))
        per_second, missing = await pipe.execute()
    now_s = now_ms // 1000
    # The current second is still filling: the minute is the 60 whole seconds before it.
    recent = sum(
        int(count)
        for second, count in per_second.items()
        if now_s - RATE_WINDOW_S <= int(second) < now_s
    )
    return round(recent / RATE_WINDOW_S, 2), int(missing or 0)


async def suspects_tried(redis: Redis, slug: str) -> int:
    """Entries of a room that archivers tried alone after too many deliveries."""
    return int(await redis.get(redis_keys.archiver_suspects(slug)) or 0)


async def collect_status(
    redis: Redis, engine: AsyncEngine, ack_durability: AckDurability | None = None
) -> Status:
    now_ms = int(time.time() * 1000)
    slugs = set(await room_ids(engine))
    members: Any = await redis.smembers(redis_keys.ROOMS_WITH_STREAMS)
    slugs |= {s.decode() if isinstance(s, bytes) else str(s) for s in members}
    archived = await archived_per_room(engine)
    dead = await dead_letters_per_room(engine)
    status = Status(redis=(await check_persistence(redis, ack_durability)).as_json())
    for slug in sorted(slugs):
        room = await stream_status(redis, slug, now_ms)
        room.archived_per_s, room.missing = await archiver_progress(redis, slug, now_ms)
        room.suspects = await suspects_tried(redis, slug)
        room.archived = archived.get(slug, 0)
        room.dead_letters = dead.get(slug, 0)
        status.rooms[slug] = room
        status.total.add(room)
    return status


def render_table(status: Status) -> str:
    header = (
        "room",
        "stream",
        "backlog",
        "pending",
        "archived",
        "dead",
        "suspects",
        "oldest_s",
        "rows/s",
    )
    rows = [header]
    for slug, room in [*status.rooms.items(), ("TOTAL", status.total)]:
        age = room.oldest_unarchived_age_s
        rows.append(
            (
                slug,
                str(room.stream_length),
                str(room.backlog),
                str(room.pending),
                str(room.archived),
                str(room.dead_letters),
                str(room.suspects),
                "-" if age is None else f"{age:.1f}",
                f"{room.archived_per_s:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    redis = status.redis
    state = "ok" if redis.get("persistence_ok") else "AT RISK: " + "; ".join(redis["problems"])
    lines.append(f"redis persistence: {state}")
    if redis.get("guarantee"):
        lines.append(f"acknowledged sends: {redis['guarantee']}")
    return "\n".join(lines)
