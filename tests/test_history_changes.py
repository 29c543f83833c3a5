"""History pages show the current state of each message (edited bodies and times,
tombstones, reactions with counts and `me`, reply previews): the same whether the
changes are still in the stream or archived in SQL."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.archiver.service import Archiver
from chatroom.domain.changes import ChangeEvent
from chatroom.domain.events import Author, MessageEvent
from chatroom.domain.stream_ids import StreamId
from chatroom.settings import Settings
from chatroom.streams.writer import StreamWriter
from conftest import Backend, SignUp, StartApp


async def _user(client: Any, username: str) -> Author:
    user = (await client.get("/api/me")).json()["user"]
    return Author(int(user["id"]), username, user["display_name"])


async def test_a_history_page_shows_each_message_as_its_changes_left_it(
    backend: Backend, redis: Redis, engine: AsyncEngine, chat_app: StartApp, signed_up: SignUp
) -> None:
    node = await chat_app()
    alice_client = await signed_up(node, "alice")
    bob_client = await signed_up(node, "bob")
    alice, bob = await _user(alice_client, "alice"), await _user(bob_client, "bob")
    writer = StreamWriter(redis, client_id_ttl_s=3600)

    async def add(event: MessageEvent | ChangeEvent) -> str:
        return str((await writer.append(event)).id)

    first = await add(MessageEvent("lobby", alice, "hello " + "x" * 300, "m1"))
    rude = await add(MessageEvent("lobby", bob, "rude words", "m2"))
    first_id, rude_id = StreamId.parse(first), StreamId.parse(rude)
    await add(ChangeEvent("edit", "lobby", alice, first_id, "e1", body="hello, edited"))
    await add(ChangeEvent("react", "lobby", bob, first_id, "r1", emoji="👍"))
    await add(ChangeEvent("react", "lobby", alice, first_id, "r2", emoji="🎉"))
    await add(ChangeEvent("react", "lobby", alice, first_id, "r3", emoji="👍"))
    await add(ChangeEvent("unreact", "lobby", alice, first_id, "u1", emoji="🎉"))
    reply = await add(MessageEvent("lobby", bob, "quoting", "m3", reply_to=first_id))
    reply_to_rude = await add(MessageEvent("lobby", alice, "to the rude", "m4", reply_to=rude_id))
    await add(ChangeEvent("delete", "lobby", alice, rude_id, "d1", reason="rude", moderated=True))
    await add(ChangeEvent("edit", "lobby", bob, rude_id, "e2", body="too late"))
    await writer.close()

    async def page(client: Any) -> dict[str, dict[str, Any]]:
        answer = await client.get("/api/rooms/lobby/messages")
        assert answer.status_code == 200, answer.text
        return {m["id"]: m for m in answer.json()["messages"]}

    for where in ("stream", "sql"):
        as_bob, as_alice = await page(bob_client), await page(alice_client)
        assert list(as_bob) == [first, rude, reply, reply_to_rude], where
        shown = as_bob[first]
        assert (shown["body"], shown["deleted"]) == ("hello, edited", False)
        assert shown["edited_at"] is not None and shown["reply_to"] is None
        assert shown["reactions"] == [{"emoji": "👍", "count": 2, "me": True}]
        assert as_alice[first]["reactions"] == [{"emoji": "👍", "count": 2, "me": True}]
        tombstone = as_bob[rude]
        assert (tombstone["body"], tombstone["deleted"], tombstone["edited_at"]) == ("", True, None)
        assert "reason" not in str(tombstone) and "rude" not in tombstone["body"]
        quoted = as_bob[reply]["reply"]
        assert as_bob[reply]["reply_to"] == first
        assert quoted["id"] == first and quoted["user"]["username"] == "alice"
        assert (quoted["body"], quoted["deleted"]) == ("hello, edited", False)
        assert as_bob[reply_to_rude]["reply"]["deleted"] is True
        assert as_bob[reply_to_rude]["reply"]["body"] == ""
        if where == "stream":
            settings = Settings(
                redis_url=backend.redis_url,
                database_url=backend.database_url,
                archiver_hot_window=0,
            )
            await Archiver(settings, backend.redis_url, engine).drain()
