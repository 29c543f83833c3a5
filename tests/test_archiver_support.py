"""Helpers shared by the archiver tests (no tests here): the archivers a test builds
(the `archivers` fixture of conftest), rooms, traffic, and the one check every archiver
test ends with."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom import redis_keys
from chatroom.archiver.failpoints import Failpoints
from chatroom.archiver.pipeline import ArchivedHook
from chatroom.archiver.service import Archiver
from chatroom.domain.changes import ChangeEvent
from chatroom.domain.events import Author, MessageEvent, StreamEvent
from chatroom.domain.fold import fold
from chatroom.domain.stream_ids import StreamId
from chatroom.history import History
from chatroom.settings import Settings
from chatroom.store.counts import room_ids
from chatroom.store.history_pages import ArchivedPages
from chatroom.store.tables import dead_letters, messages, reactions, rooms
from chatroom.streams.writer import StreamWriter

ALICE = Author(7, "alice", "Alice")
BOB = Author(8, "bob", "Bob")
# Bodies that catch encoding mistakes: accents, CJK, emoji, NUL, bidi, quotes, backslash.
TRICKY = ["héllo", "你好，世界", "🎉👍🏽", "nul\x00inside", "\u202eevil", 'it\'s "q" \\ done']


def archiver_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "archiver_batch_size": 200,
        "archiver_flush_ms": 20,
        "archiver_block_ms": 100,
        "archiver_hot_window": 0,
        "archiver_claim_idle_ms": 100,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Running:
    """An archiver running in a task (`run` on its schedule, or one `drain`)."""

    archiver: Archiver
    task: asyncio.Task[Any]
    stop_requested: asyncio.Event

    async def stop(self, timeout: float = 30.0) -> Any:
        """Ask it to stop, and wait until it has (the batch in hand finished); what the
        run returned."""
        self.stop_requested.set()
        return await asyncio.wait_for(self.task, timeout)


class Archivers:
    """Builds one test's archivers, on its backend unless told otherwise, with the
    settings of `archiver_settings` (overrides as keywords); at the test's end, those it
    started and that still run are stopped and waited for (cancelled past 30 s)."""

    def __init__(self, redis_url: str, engine: AsyncEngine, tmp_path: Path) -> None:
        self._redis_url = redis_url
        self._engine = engine
        self._tmp_path = tmp_path
        self._started: list[Running] = []

    def new(
        self,
        *,
        consumer: str | None = None,
        redis_url: str | None = None,
        engine: AsyncEngine | None = None,
        failpoints: Failpoints | None = None,
        on_archived: ArchivedHook | None = None,
        **settings: Any,
    ) -> Archiver:
        return Archiver(
            archiver_settings(self._tmp_path, **settings),
            redis_url or self._redis_url,
            engine or self._engine,
            consumer=consumer,
            failpoints=failpoints,
            on_archived=on_archived,
        )

    def start(self, archiver: Archiver, *, once: bool = False) -> Running:
        """`archiver.run()` (with `once`: `archiver.drain()`) in a task."""
        stop = asyncio.Event()
        work = archiver.drain(stop) if once else archiver.run(stop)
        running = Running(archiver, asyncio.create_task(work), stop)
        self._started.append(running)
        return running

    async def close(self) -> None:
        for running in self._started:
            running.stop_requested.set()
        tasks = [running.task for running in self._started]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=30)
            for task in late:
                task.cancel()
            # Errors were the test's to see; here they are only collected.
            await asyncio.gather(*tasks, return_exceptions=True)


async def create_room(engine: AsyncEngine, slug: str, *, private: bool = False) -> int:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(rooms).values(
                slug=slug,
                title=slug.title(),
                is_private=private,
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )
    return (await room_ids(engine))[slug]


class Traffic:
    """Sends messages through the real stream writer and remembers what was acknowledged."""

    def __init__(self, redis: Redis) -> None:
        self.writer = StreamWriter(redis, client_id_ttl_s=3600)
        self.sent: dict[str, dict[StreamId, tuple[str, str]]] = {}
        # Every acknowledged entry (messages and changes) by room, for `fold`.
        self.log: dict[str, dict[StreamId, StreamEvent]] = {}
        self._serial = 0

    async def send(self, room: str, count: int, body: str = "message") -> list[StreamId]:
        events = []
        for _ in range(count):
            self._serial += 1
            text = f"{body} {self._serial} {TRICKY[self._serial % len(TRICKY)]}"
            events.append(MessageEvent(room, ALICE, text, f"c-{self._serial}"))
        for attempt in range(20):
            try:
                results = await asyncio.gather(*(self.writer.append(e) for e in events))
                break
            except RedisConnectionError:
                # What a client does when a send fails: resend with the same client_ids
                # (what was stored keeps its first id).
                if attempt == 19:
                    raise
                await asyncio.sleep(0.1)
        for event, result in zip(events, results, strict=True):
            self.sent.setdefault(room, {})[result.id] = (event.client_id, event.body)
            self.log.setdefault(room, {})[result.id] = event
        return [r.id for r in results]

    async def change(self, room: str, count: int, seed: int) -> list[StreamId]:
        """`count` changes (edits, reactions, unreactions, a few deletes) by alice and
        bob to messages sent before, one after the other (so in the stream's order)."""

        rng = random.Random(seed)
        targets = sorted(self.sent.get(room, {}))
        done = []
        for _ in range(count):
            self._serial += 1
            target = rng.choice(targets)
            author = rng.choice([ALICE, BOB])
            kind = rng.choices(["edit", "react", "unreact", "delete"], [4, 4, 2, 1])[0]
            client_id = f"x-{self._serial}"
            if kind == "edit":
                author = ALICE  # the author of every message Traffic sends
                event = ChangeEvent(
                    kind, room, author, target, client_id, body=f"edit {self._serial} é"
                )
            elif kind == "delete":
                event = ChangeEvent(
                    kind, room, author, target, client_id, moderated=author != ALICE
                )
            else:
                emoji = rng.choice(["👍", "🎉", "❤️"])
                event = ChangeEvent(kind, room, author, target, client_id, emoji=emoji)
            for attempt in range(20):
                try:
                    result = await self.writer.append(event)
                    break
                except RedisConnectionError:
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.1)
            self.log.setdefault(room, {})[result.id] = event
            done.append(result.id)
        return done

    def count(self) -> int:
        return sum(len(v) for v in self.sent.values())

    async def close(self) -> None:
        await self.writer.close()


async def archived_rows(engine: AsyncEngine, room: str) -> list[tuple[StreamId, str, str]]:
    room_id = (await room_ids(engine))[room]
    query = (
        sa.select(
            messages.c.stream_ms, messages.c.stream_seq, messages.c.client_id, messages.c.body
        )
        .where(messages.c.room_id == room_id)
        .order_by(messages.c.stream_ms, messages.c.stream_seq)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(StreamId(r[0], r[1]), r[2], r[3]) for r in rows]


async def archived_state(
    engine: AsyncEngine, room: str
) -> dict[StreamId, tuple[str, bool, set[tuple[int, str]]]]:
    """Each archived message's body, whether deleted, and its reactions (none shown on
    a deleted message), as SQL holds them."""
    room_id = (await room_ids(engine))[room]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    messages.c.stream_ms,
                    messages.c.stream_seq,
                    messages.c.body,
                    messages.c.deleted_at,
                ).where(messages.c.room_id == room_id)
            )
        ).all()
        present = (
            await conn.execute(
                sa.select(
                    reactions.c.message_ms,
                    reactions.c.message_seq,
                    reactions.c.user_id,
                    reactions.c.emoji,
                ).where(reactions.c.room_id == room_id, reactions.c.present == sa.true())
            )
        ).all()
    state = {
        StreamId(r.stream_ms, r.stream_seq): (r.body, r.deleted_at is not None, set()) for r in rows
    }
    for r in present:
        found = state.get(StreamId(r.message_ms, r.message_seq))
        if found is not None and not found[1]:
            found[2].add((r.user_id, r.emoji))
    return state


async def dead_letter_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id))).all()
    return [dict(r._mapping) for r in rows]


async def pending_count(redis: Redis, room: str) -> int:
    try:
        summary: Any = await redis.xpending(redis_keys.room_stream(room), redis_keys.ARCHIVER_GROUP)
    except Exception:  # no stream or no group: nothing pending
        return 0
    return int(summary["pending"])


async def assert_exactly_once(redis: Redis, engine: AsyncEngine, traffic: Traffic) -> None:
    """Every acknowledged message is in SQL once with its exact bytes, nothing is pending,
    and history reads back gapless."""
    ids = await room_ids(engine)
    for room, sent in traffic.sent.items():
        rows = await archived_rows(engine, room)
        assert [r[0] for r in rows] == sorted(sent), f"{room}: archived ids differ from sent"
        folded = fold(sorted(traffic.log.get(room, {}).items()))
        for stream_id, client_id, body in rows:
            assert (client_id, body) == (sent[stream_id][0], folded[stream_id].body)
            assert body.encode("utf-8") == folded[stream_id].body.encode("utf-8")
        if len(traffic.log.get(room, {})) > len(sent):  # changes were sent: their state
            assert await archived_state(engine, room) == {
                stream_id: (m.body, m.deleted, m.reacted()) for stream_id, m in folded.items()
            }
        assert await pending_count(redis, room) == 0
        history = History(redis, ArchivedPages(engine))
        seen: list[StreamId] = []
        page = await history.page(ids[room], room, limit=97)
        while True:
            seen = [m.id for m in page.messages] + seen
            if not page.has_more:
                break
            page = await history.page(ids[room], room, before=page.messages[0].id, limit=97)
        assert seen == sorted(sent), f"{room}: history has a gap or a duplicate"


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def archived_total(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()
        )
