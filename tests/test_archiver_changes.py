"""Changes through the archiver on both engines: applied exactly once and in order per
message, in the batch's transaction, idempotently on replay; held until their message is
archived; dead-lettered (with the reason) when their message does not exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.archiver.failpoints import Failpoints
from chatroom.domain.changes import ChangeEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.change_writes import ArchivedChange, apply_changes
from chatroom.store.counts import room_ids
from chatroom.store.tables import message_events, messages, moderation_log, users
from test_archiver_support import (
    ALICE,
    BOB,
    Archivers,
    Traffic,
    archived_state,
    assert_exactly_once,
    create_room,
    dead_letter_rows,
    wait_for,
)


class SimulatedCrash(BaseException):
    """An in-process archiver's kill -9: raised at a failpoint, caught by no handler."""


async def test_changes_are_archived_as_the_fold_of_the_stream(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    await create_room(engine, "dev")
    traffic = Traffic(redis)
    for room in ("lobby", "dev"):
        await traffic.send(room, 40)
        await traffic.change(room, 120, seed=len(room))
        await traffic.send(room, 10)
    archiver = archivers.new(consumer="c1", archiver_batch_size=37)
    await archiver.drain()
    await assert_exactly_once(redis, engine, traffic)
    assert await dead_letter_rows(engine) == []
    # Every change is kept by its own id, applied.
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                sa.select(sa.func.count()).where(message_events.c.applied == sa.true())
            )
        ).scalar_one()
    assert kept == 240
    await traffic.close()


async def test_a_replayed_batch_changes_nothing(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    """Committed, then killed before XACK: the batch is archived again, as a no-op (an
    edit after a later edit, a delete, reactions as a set)."""
    traffic = Traffic(redis)
    await traffic.send("lobby", 30)
    await traffic.change("lobby", 90, seed=3)

    def crash() -> None:
        raise SimulatedCrash

    points = Failpoints("after_commit_before_ack", after=2, action=crash)
    first = archivers.new(consumer="dies", failpoints=points, archiver_batch_size=20)
    with pytest.raises(SimulatedCrash):
        await first.drain()
    # Its own pending batch, archived again by the next run under its name.
    again = archivers.new(consumer="dies", archiver_batch_size=20)
    await again.drain()
    await assert_exactly_once(redis, engine, traffic)
    assert await dead_letter_rows(engine) == []
    await traffic.close()


async def test_a_change_to_no_message_is_a_dead_letter_with_the_reason(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    traffic = Traffic(redis)
    [message] = await traffic.send("lobby", 1)
    nowhere = StreamId(message.ms - 1, 0)
    orphan = await traffic.writer.append(
        ChangeEvent("edit", "lobby", ALICE, nowhere, "o-1", body="to nothing")
    )
    await traffic.writer.append(ChangeEvent("react", "lobby", BOB, message, "o-2", emoji="👍"))
    # A change whose target is not before it, and one aimed at another change.
    later = await traffic.writer.append(
        ChangeEvent("react", "lobby", BOB, StreamId(2**62, 0), "o-3", emoji="👍")
    )
    at_change = await traffic.writer.append(
        ChangeEvent("edit", "lobby", ALICE, orphan.id, "o-4", body="x")
    )
    await archivers.new(consumer="c1").drain()
    letters = {r["stream_id"]: r["reason"] for r in await dead_letter_rows(engine)}
    assert letters == {
        str(orphan.id): f"target message {nowhere} of the edit does not exist in lobby",
        str(later.id): f"target {StreamId(2**62, 0)} is not a message before the react",
        str(at_change.id): f"target message {orphan.id} of the edit does not exist in lobby",
    }
    state = await archived_state(engine, "lobby")
    assert state[message][2] == {(BOB.id, "👍")}
    await traffic.close()


async def test_a_change_before_its_message_is_held_then_applied(engine: AsyncEngine) -> None:
    """An edit or delete archived before its message (the message pending elsewhere)
    is kept, then applied in the transaction that archives the message; reactions need
    no message row. A moderation delete is logged once, when it is applied."""
    room_id = (await room_ids(engine))["lobby"]
    async with engine.begin() as conn:  # the moderation log names users of the site
        await conn.execute(
            users.insert(),
            [
                {
                    "id": who.id,
                    "username": who.username,
                    "username_key": who.username,
                    "display_name": who.display_name,
                    "password_hash": "-",
                    "created_at": datetime.now(UTC),
                }
                for who in (ALICE, BOB)
            ],
        )
    target, other = StreamId(1_000, 0), StreamId(1_000, 1)
    changes = [
        ArchivedChange(
            room_id,
            StreamId(2_000, 0),
            ChangeEvent("edit", "lobby", ALICE, target, "e1", body="first edit"),
        ),
        ArchivedChange(
            room_id,
            StreamId(2_000, 1),
            ChangeEvent("edit", "lobby", ALICE, target, "e2", body="second edit"),
        ),
        ArchivedChange(
            room_id,
            StreamId(2_000, 2),
            ChangeEvent("react", "lobby", BOB, target, "r1", emoji="🎉"),
        ),
        ArchivedChange(
            room_id,
            StreamId(2_000, 3),
            ChangeEvent("delete", "lobby", BOB, other, "d1", reason="spam", moderated=True),
        ),
        ArchivedChange(
            room_id,
            StreamId(2_000, 4),
            ChangeEvent("edit", "lobby", ALICE, other, "e3", body="after the delete"),
        ),
    ]
    # Applied in reverse (as a replay of a later batch then an earlier one could): the
    # outcome is the same as in stream order.
    async with engine.begin() as conn:
        await apply_changes(conn, list(reversed(changes)))
    async with engine.begin() as conn:
        held = (
            await conn.execute(
                sa.select(sa.func.count()).where(message_events.c.applied == sa.false())
            )
        ).scalar_one()
        assert held == 4
        await upsert_messages(
            conn,
            [
                ArchivedMessage(room_id, target, ALICE.id, "m1", "original"),
                ArchivedMessage(room_id, other, ALICE.id, "m2", "rude"),
            ],
        )
        await apply_changes(conn, [])
    for _ in range(2):  # and once more: nothing changes
        state = await archived_state(engine, "lobby")
        assert state == {
            target: ("second edit", False, {(BOB.id, "🎉")}),
            other: ("", True, set()),
        }
        async with engine.begin() as conn:
            await apply_changes(conn, changes)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(messages.c.deleted_by, messages.c.delete_reason, messages.c.edit_key)
                .where(messages.c.stream_ms == 1_000)
                .order_by(messages.c.stream_seq)
            )
        ).all()
    assert row[1][:2] == (BOB.id, "spam")
    assert row[0].edit_key is not None and row[0].edit_key.endswith("1")
    # The moderation delete is in the moderation log once, however often it was replayed.
    async with engine.connect() as conn:
        logged = (
            await conn.execute(
                sa.select(
                    moderation_log.c.action,
                    moderation_log.c.actor_id,
                    moderation_log.c.target_id,
                    moderation_log.c.message_id,
                    moderation_log.c.reason,
                )
            )
        ).all()
    assert [tuple(r) for r in logged] == [("delete", BOB.id, ALICE.id, str(other), "spam")]


async def _hold_an_edit(engine: AsyncEngine, target: StreamId) -> None:
    """An edit of `target` kept in SQL before its message: held, as when another
    archiver archived the edit while the message was pending elsewhere."""
    room_id = (await room_ids(engine))["lobby"]
    edit = ChangeEvent("edit", "lobby", ALICE, target, "held-1", body="edited elsewhere")
    async with engine.begin() as conn:
        await apply_changes(conn, [ArchivedChange(room_id, target.next(), edit)])


@pytest.mark.parametrize("schedule", ["drain", "continuous"])
async def test_an_edit_held_by_another_archiver_is_applied_once_its_message_is_archived(
    redis: Redis, engine: AsyncEngine, archivers: Archivers, schedule: str
) -> None:
    """A transaction of messages alone does not look for held changes each time: a look
    of its own sweeps them up after it (when idle, at a drain's end)."""
    traffic = Traffic(redis)
    [message] = await traffic.send("lobby", 1)
    await _hold_an_edit(engine, message)
    archiver = archivers.new(consumer="c1")
    if schedule == "drain":
        await archiver.drain()
    else:
        archivers.start(archiver)

    async def edited() -> bool:
        state = await archived_state(engine, "lobby")
        return state.get(message, ("",))[0] == "edited elsewhere"

    await wait_for(edited, what="the held edit applied")
    await traffic.close()


async def test_batches_of_messages_alone_do_not_each_look_for_held_changes(
    redis: Redis, engine: AsyncEngine, archivers: Archivers
) -> None:
    """The look is a query, and a round trip, of its transaction: batches of messages
    alone look at most every other batch (every second), and a drain once at its end."""
    looks: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "message_events" in statement and statement.lstrip().upper().startswith("SELECT"):
            looks.append(statement)

    traffic = Traffic(redis)
    await traffic.send("lobby", 100)
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        await archivers.new(consumer="c1", archiver_batch_size=10).drain()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    await assert_exactly_once(redis, engine, traffic)
    # 10 batches: at most every other one looks, and the drain's end once.
    assert 1 <= len(looks) <= 6
    await traffic.close()
