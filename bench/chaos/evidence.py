"""What the stores hold after the run: SQL rows, dead letters, and the streams' backlog.

Read directly (SQLAlchemy on the SQL file or server, redis-py on Redis), never through
Chatroom's own code: the checker must not trust what it checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatroom import redis_keys

GROUP = redis_keys.ARCHIVER_GROUP


@dataclass(frozen=True)
class Row:
    room: str
    id: str
    user_id: int
    client_id: str
    body: str
    pk: int


@dataclass(frozen=True)
class ChangeRow:
    """A change kept in `message_events`."""

    room: str
    id: str
    type: str
    target: str
    user_id: int
    client_id: str
    body: str | None
    emoji: str | None


@dataclass(frozen=True)
class DeadLetter:
    room: str
    stream_id: str
    reason: str
    raw: bytes
    deliveries: int


@dataclass
class StreamState:
    length: int = 0
    pending: int = 0
    undelivered: int = 0
    last_id: str = ""
    ids: set[str] = field(default_factory=set)  # every entry id still in the stream


@dataclass
class Evidence:
    rows: list[Row] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    streams: dict[str, StreamState] = field(default_factory=dict)
    changes: list[ChangeRow] = field(default_factory=list)
    deleted: set[tuple[str, str]] = field(default_factory=set)  # (room, message id)
    # (room, message id, user id, emoji) of the reactions present
    reactions: set[tuple[str, str, int, str]] = field(default_factory=set)


async def read_sql(database_url: str) -> tuple[list[Row], list[DeadLetter]]:
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT r.slug, m.stream_ms, m.stream_seq, m.user_id, m.client_id, m.body, m.id"
                    " FROM messages m JOIN rooms r ON r.id = m.room_id"
                )
            )
            rows = [
                Row(slug, f"{ms}-{seq}", int(user), client_id, body, int(pk))
                for slug, ms, seq, user, client_id, body, pk in found
            ]
            found = await conn.execute(
                text("SELECT room_slug, stream_id, reason, raw, delivery_count FROM dead_letters")
            )
            letters = [
                DeadLetter(slug or "", stream_id, reason, bytes(raw), int(deliveries))
                for slug, stream_id, reason, raw, deliveries in found
            ]
    finally:
        await engine.dispose()
    return rows, letters


async def read_changes(
    database_url: str,
) -> tuple[list[ChangeRow], set[tuple[str, str]], set[tuple[str, str, int, str]]]:
    """The changes kept, the deleted messages and the reactions present."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT r.slug, e.stream_ms, e.stream_seq, e.type, e.target_ms, e.target_seq,"
                    " e.user_id, e.client_id, e.body, e.emoji"
                    " FROM message_events e JOIN rooms r ON r.id = e.room_id"
                )
            )
            changes = [
                ChangeRow(slug, f"{ms}-{seq}", kind, f"{tms}-{tseq}", int(user), cid, body, emoji)
                for slug, ms, seq, kind, tms, tseq, user, cid, body, emoji in found
            ]
            found = await conn.execute(
                text(
                    "SELECT r.slug, m.stream_ms, m.stream_seq FROM messages m"
                    " JOIN rooms r ON r.id = m.room_id WHERE m.deleted_at IS NOT NULL"
                )
            )
            deleted = {(slug, f"{ms}-{seq}") for slug, ms, seq in found}
            found = await conn.execute(
                text(
                    "SELECT r.slug, x.message_ms, x.message_seq, x.user_id, x.emoji"
                    " FROM reactions x JOIN rooms r ON r.id = x.room_id WHERE x.present"
                )
            )
            present = {
                (slug, f"{ms}-{seq}", int(user), emoji) for slug, ms, seq, user, emoji in found
            }
    finally:
        await engine.dispose()
    return changes, deleted, present


async def stream_state(redis: redis_asyncio.Redis, room: str) -> StreamState:
    key = redis_keys.room_stream(room)
    state = StreamState()
    try:
        info: Any = await redis.xinfo_stream(key)
    except ResponseError:
        return state  # no stream at all
    state.length = int(info["length"])
    state.last_id = _text(info["last-generated-id"])
    start = "-"
    while True:
        page: Any = await redis.xrange(key, min=start, max="+", count=1000)
        state.ids.update(_text(entry_id) for entry_id, _ in page)
        if len(page) < 1000:
            break
        start = f"({_text(page[-1][0])}"
    try:
        groups: Any = await redis.xinfo_groups(key)
    except ResponseError:
        groups = []
    group = next((g for g in groups if _text(g["name"]) == GROUP), None)
    if group is None:
        state.undelivered = state.length
        return state
    state.pending = int(group["pending"])
    rest: Any = await redis.xrange(key, min=f"({_text(group['last-delivered-id'])}", max="+")
    state.undelivered = len(rest)
    return state


async def read_streams(redis_url: str, rooms: list[str]) -> dict[str, StreamState]:
    redis = redis_asyncio.Redis.from_url(redis_url, socket_timeout=10)
    try:
        return {room: await stream_state(redis, room) for room in rooms}
    finally:
        await redis.aclose()


async def wait_drained(redis_url: str, rooms: list[str], timeout: float) -> tuple[bool, float]:
    """Until no room has pending or undelivered entries; (drained, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            states = await read_streams(redis_url, rooms)
        except (RedisError, OSError):
            states = {}
        if states and all(s.pending == 0 and s.undelivered == 0 for s in states.values()):
            return True, round(time.monotonic() - started, 1)
        await asyncio.sleep(1.0)
    return False, round(time.monotonic() - started, 1)


async def collect(redis_url: str, database_url: str, rooms: list[str]) -> Evidence:
    rows, letters = await read_sql(database_url)
    changes, deleted, present = await read_changes(database_url)
    streams = await read_streams(redis_url, rooms)
    return Evidence(rows, letters, streams, changes, deleted, present)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
