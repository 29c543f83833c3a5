"""Hostile text goes through the stream and SQL byte for byte, on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent, decode_event
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import messages
from conftest import MakeWriter

HOSTILE = [
    "🎉🚀 4-byte emoji 𝕏 𠜎",
    "👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 skin tone (ZWJ sequences)",
    "NUL \x00 inside \x00\x00 and at the end \x00",
    "bidi \u202eoverride\u202c \u2066isolate\u2069 \u200f RLM \u200e LRM",
    "'); DROP TABLE messages; --",
    '<img src=x onerror=alert(1)> <script>alert("x")</script>',
    "tab\tnewline\nCR\r\\ backslash %s %% {} $1 ? :name",
    "Ünïcödé normalization: é vs e\u0301, ﬁ ligature, Ω vs Ω",
    "x" * 3999 + "🎉",
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
async def test_byte_exact_through_stream_and_sql(
    redis: Redis, engine: AsyncEngine, stream_writer: MakeWriter, body: str
) -> None:
    author = Author(42, "mallory", "Mallory \u202e😈 '; --")
    appended = await stream_writer().append(MessageEvent("lobby", author, body, "hostile-1"))

    [(entry_id, fields)] = await redis.xrange(redis_keys.room_stream("lobby"))
    from_stream = decode_event("lobby", fields)
    assert from_stream.body.encode("utf-8") == body.encode("utf-8")
    assert from_stream.author == author

    room_id = (await room_ids(engine))["lobby"]
    async with engine.begin() as conn:
        await upsert_messages(
            conn, [ArchivedMessage(room_id, appended.id, 42, "hostile-1", from_stream.body)]
        )
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(messages.c.body))).scalar_one()
    assert stored.encode("utf-8") == body.encode("utf-8")

    await redis.xtrim(redis_keys.room_stream("lobby"), minid=str(appended.id.next()))
    page = await History(redis, ArchivedPages(engine)).page(room_id, "lobby")
    assert [m.body.encode("utf-8") for m in page.messages] == [body.encode("utf-8")]
    assert page.messages[0].id == StreamId.parse(entry_id)


async def test_archive_upsert_is_idempotent(redis: Redis, engine: AsyncEngine) -> None:
    room_id = (await room_ids(engine))["lobby"]
    first = ArchivedMessage(room_id, StreamId(1000, 1), 5, "c1", "one")
    resend = ArchivedMessage(room_id, StreamId(1000, 2), 5, "c1", "one again")
    for _ in range(3):
        async with engine.begin() as conn:
            await upsert_messages(conn, [first, resend])
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(messages.c.stream_seq, messages.c.body))).all()
    assert [tuple(r) for r in rows] == [(1, "one")]


async def test_real_sql_errors_are_not_swallowed(redis: Redis, engine: AsyncEngine) -> None:
    """The no-op upsert only covers duplicates: a row that breaks a rule still fails."""
    unknown_room = ArchivedMessage(999_999, StreamId(1, 1), 5, "c1", "x")
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await upsert_messages(conn, [unknown_room])
