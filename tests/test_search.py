"""Message search in SQL on both engines (MariaDB FULLTEXT, SQLite FTS5): words found,
only in rooms the user can see, deleted bodies never, edits by their new words, hostile
queries harmless, pages that do not repeat or skip."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from chatroom.accounts.users_table import inserted_id, now_utc
from chatroom.domain.rules import RuleError
from chatroom.domain.search_query import Cursor, parse_query
from chatroom.domain.stream_ids import StreamId
from chatroom.rooms.directory import RoomDirectory
from chatroom.store.archive_writes import ArchivedMessage, upsert_messages
from chatroom.store.search import MessageSearch, Results
from chatroom.store.tables import messages, users

_ids = itertools.count(1)


class Archive:
    """Users, rooms and archived messages of one test, written as the archiver writes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.directory = RoomDirectory(engine)
        self.search = MessageSearch(engine)

    async def user(self, name: str) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.insert().values(
                    username=name,
                    username_key=name.lower(),
                    display_name=name.title(),
                    password_hash="-",
                    created_at=now_utc(),
                )
            )
        return inserted_id(result)

    async def room(self, slug: str, *, private: bool = False, members: list[int]) -> int:
        room = await self.directory.insert_room(
            slug, slug.title(), private=private, owner_id=members[0], members=members
        )
        return room.id

    async def post(self, room_id: int, user_id: int, body: str) -> StreamId:
        n = next(_ids)
        stream_id = StreamId(1_700_000_000_000 + n, 0)
        async with self.engine.begin() as conn:
            await upsert_messages(
                conn, [ArchivedMessage(room_id, stream_id, user_id, f"c{n}", body)]
            )
        return stream_id

    async def set_body(self, stream_id: StreamId, body: str) -> None:
        """What the archiver does to an edited ('new text') or deleted ('') message."""
        async with self.engine.begin() as conn:
            await conn.execute(
                messages.update()
                .where(messages.c.stream_ms == stream_id.ms, messages.c.stream_seq == stream_id.seq)
                .values(body=body)
            )

    async def find(self, user_id: int, text: str, **options: object) -> list[StreamId]:
        found = await self.search.search(user_id, parse_query(text), limit=50, **options)  # type: ignore[arg-type]
        return [hit.message.id for hit in found.hits]


@pytest.fixture
async def archive(engine: AsyncEngine) -> Archive:
    return Archive(engine)


async def test_finds_every_word_as_the_start_of_a_word_in_any_case(archive: Archive) -> None:
    ann = await archive.user("ann")
    lobby = await archive.room("plaza", members=[ann])
    deploy = await archive.post(lobby, ann, "Deployed the new Release to production")
    other = await archive.post(lobby, ann, "lunch is ready")
    cafe = await archive.post(lobby, ann, "Meet at the Café Müller tomorrow")
    assert await archive.find(ann, "deploy") == [deploy]
    assert await archive.find(ann, "RELEASE production") == [deploy]
    assert await archive.find(ann, "release lunch") == []  # every word
    assert await archive.find(ann, "lunch") == [other]
    assert await archive.find(ann, "cafe muller") == [cafe]  # accents aside
    assert await archive.find(ann, "ployed") == []  # the start of a word only
    found = await archive.search.search(ann, parse_query("release"), limit=5)
    hit = found.hits[0]
    assert hit.room.slug == "plaza" and hit.message.author.username == "ann"
    body = hit.message.body
    assert [body[a:b] for a, b in hit.highlights] == ["Release"]


async def test_a_private_room_or_conversation_is_searched_by_its_members_only(
    archive: Archive,
) -> None:
    ann, bob, eve = [await archive.user(n) for n in ("ann", "bob", "eve")]
    public = await archive.room("open-room", members=[ann])
    secret = await archive.room("secret", private=True, members=[ann, bob])
    dm = await archive.room("dm.0123456789abcdef01234567", private=True, members=[ann, bob])
    in_public = await archive.post(public, ann, "budget figures public")
    in_secret = await archive.post(secret, ann, "budget figures secret")
    in_dm = await archive.post(dm, bob, "budget figures between us")
    for member in (ann, bob):
        assert set(await archive.find(member, "budget")) == {in_public, in_secret, in_dm}
    assert await archive.find(eve, "budget") == [in_public]  # not even a member of public
    assert await archive.find(eve, "budget", room_id=secret) == []
    assert await archive.find(eve, "between") == []
    assert await archive.find(ann, "budget", room_id=dm) == [in_dm]
    # Leaving a private room ends finding its messages at once.
    async with archive.engine.begin() as conn:
        await conn.execute(sa.text(f"DELETE FROM room_members WHERE user_id = {bob}"))
    assert await archive.find(bob, "budget") == [in_public]


async def test_an_edit_is_found_by_its_new_words_and_a_deleted_message_never(
    archive: Archive,
) -> None:
    ann = await archive.user("ann")
    room = await archive.room("edits", members=[ann])
    edited = await archive.post(room, ann, "original wording here")
    deleted = await archive.post(room, ann, "regrettable wording here")
    await archive.set_body(edited, "corrected phrasing here")
    await archive.set_body(deleted, "")
    assert await archive.find(ann, "original") == []
    assert await archive.find(ann, "corrected") == [edited]
    assert await archive.find(ann, "regrettable") == []
    assert await archive.find(ann, "here") == [edited]
    async with archive.engine.begin() as conn:  # a row deleted outright leaves the index too
        await conn.execute(messages.delete().where(messages.c.stream_ms == edited.ms))
    assert await archive.find(ann, "corrected") == []


@pytest.mark.parametrize(
    "hostile",
    [
        '"',
        'word" OR "x',
        "+word -word",
        "word*",
        "(word",
        "word)",
        "NEAR(word x)",
        "body:word",
        "word AND",
        "^word",
        "'; DROP TABLE messages; --",
        "@word ~word <word >word",
        "w\u00f6rd% _%",
        "\\word\\",
    ],
)
async def test_hostile_queries_are_only_words(archive: Archive, hostile: str) -> None:
    ann = await archive.user("ann")
    room = await archive.room("hostile", members=[ann])
    plain = await archive.post(room, ann, "a word among others")
    found = await archive.find(ann, hostile + " word")
    assert set(found) <= {plain}
    assert await archive.find(ann, "word") == [plain]


async def test_queries_without_words_are_refused(archive: Archive) -> None:
    ann = await archive.user("ann")
    for text in ["", "   ", "+-*()\"'", "x" * 101, "a b c d e f g h i", "zero\u200bwidth"]:
        with pytest.raises(RuleError):
            await archive.find(ann, text)


async def test_short_and_common_words_narrow_a_search(archive: Archive) -> None:
    ann = await archive.user("ann")
    room = await archive.room("short", members=[ann])
    with_go = await archive.post(room, ann, "go team rocket")
    without = await archive.post(room, ann, "team building")
    the = await archive.post(room, ann, "the team wins")
    assert await archive.find(ann, "go team") == [with_go]
    assert await archive.find(ann, "the team") == [the]
    assert set(await archive.find(ann, "team")) == {with_go, without, the}
    if archive.engine.dialect.name == "sqlite":  # FTS5 indexes every word
        assert await archive.find(ann, "go") == [with_go]
    else:  # InnoDB indexes no word under 3 letters, nor its stopwords
        for text in ("go", "the"):
            with pytest.raises(RuleError) as refused:
                await archive.find(ann, text)
            assert refused.value.code == "search_too_short"


async def _walk(archive: Archive, user: int, text: str, limit: int) -> list[StreamId]:
    seen: list[StreamId] = []
    cursor: Cursor | None = None
    while True:
        page: Results = await archive.search.search(
            user, parse_query(text), cursor=cursor, limit=limit
        )
        seen += [hit.message.id for hit in page.hits]
        if page.next_cursor is None:
            return seen
        cursor = Cursor.decode(page.next_cursor.encode())


async def test_pages_are_newest_first_among_equals_and_ignore_later_arrivals(
    archive: Archive,
) -> None:
    ann = await archive.user("ann")
    room = await archive.room("pages", members=[ann])
    posted = [await archive.post(room, ann, f"status report number {i}") for i in range(23)]
    assert await _walk(archive, ann, "report", 50) == posted[::-1]
    first = await archive.search.search(ann, parse_query("report"), limit=10)
    assert first.next_cursor is not None
    await archive.post(room, ann, "status report arrived late")  # not in this search's pages
    rest = await _walk_from(archive, ann, "report", first.next_cursor)
    assert [h.message.id for h in first.hits] + rest == posted[::-1]
    # A better match (the word twice, in a short message) ranks above newer ones.
    best = await archive.post(room, ann, "report report")
    assert (await archive.find(ann, "report"))[0] == best


async def _walk_from(archive: Archive, user: int, text: str, cursor: Cursor) -> list[StreamId]:
    seen: list[StreamId] = []
    at: Cursor | None = cursor
    while at is not None:
        page = await archive.search.search(user, parse_query(text), cursor=at, limit=4)
        seen += [hit.message.id for hit in page.hits]
        at = page.next_cursor
    return seen


async def test_existing_messages_are_searchable_after_the_upgrade(engine: AsyncEngine) -> None:
    """The index is built from the rows already there (the lobby's are archived before)."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            rows = await conn.scalar(
                sa.text("SELECT count(*) FROM sqlite_master WHERE name LIKE 'messages_fts%'")
            )
        assert rows and rows >= 4  # the table (and its shadow tables) and triggers
    archive = Archive(engine)
    ann = await archive.user("ann")
    room = await archive.room("before", members=[ann])
    posted = await archive.post(room, ann, "rebuilt index entry")
    if engine.dialect.name == "sqlite":
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
            )
    assert await archive.find(ann, "rebuilt") == [posted]
