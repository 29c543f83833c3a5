"""The SQL schema, as SQLAlchemy Core tables (the migrations create the same).

Text columns are as wide as the rule they hold (chatroom.domain.rules): a wider rule
needs a migration as well.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from chatroom.domain.rules import (
    CLIENT_ID_MAX,
    DISPLAY_NAME_MAX,
    EMOJI_MAX,
    SLUG_MAX,
    TITLE_MAX,
    TOKEN_NAME_MAX,
    USERNAME_MAX,
)

EPOCH = datetime(1970, 1, 1)  # naive UTC, as the DATETIME columns store it


@lru_cache(maxsize=1024)
def stored_moment(ms: int) -> datetime:
    """A stream id's time as the DATETIME columns store it. Cached: a busy room's
    messages share their millisecond by the dozen, and making one costs the archiver
    about 1 us a row (a fifth of that from the cache)."""
    return EPOCH + timedelta(milliseconds=ms)


# A stream id as text (`ms-seq`, each part at most 19 digits), and as a key that sorts as
# the ids do (store/change_writes.py: `event_key`).
STREAM_ID_MAX = 41
EVENT_KEY_LEN = 40

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# MySQL/MariaDB: utf8mb4 with binary collation, so that text compares and stores exactly
# as SQLite does (byte for byte; uniqueness is case-sensitive unless a column says not).
MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql")
# A message body compares without case or accents on MySQL/MariaDB, so that its FULLTEXT
# index does (under utf8mb4_bin a full-text search is case-sensitive); no key holds it.
BODY_COLLATION = "utf8mb4_unicode_520_ci"
Body = sa.Text().with_variant(mysql.MEDIUMTEXT(collation=BODY_COLLATION), "mysql")
RawEntry = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(USERNAME_MAX), nullable=False, unique=True),
    # Lower-cased username: `Alice` and `alice` cannot both register.
    sa.Column("username_key", sa.String(USERNAME_MAX), nullable=False, unique=True),
    sa.Column("display_name", sa.String(DISPLAY_NAME_MAX), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", Moment, nullable=False),
    **MYSQL_TABLE,
)

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("slug", sa.String(SLUG_MAX), nullable=False, unique=True),
    sa.Column("title", sa.String(TITLE_MAX), nullable=False),
    sa.Column("is_private", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("created_at", Moment, nullable=False),
    **MYSQL_TABLE,
)

room_members = sa.Table(
    "room_members",
    metadata,
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), primary_key=True),
    sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("joined_at", Moment, nullable=False),
    sa.Index("ix_room_members_user_id", "user_id"),
    **MYSQL_TABLE,
)

# How far each member has read each room: one row per (user, room), the id of the last
# message read. Unread counts are computed from the room's stream and archive above it;
# no row is written per message (see rooms/read_marks.py).
read_marks = sa.Table(
    "read_marks",
    metadata,
    sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), primary_key=True),
    sa.Column("stream_ms", sa.BigInteger(), nullable=False),
    sa.Column("stream_seq", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    **MYSQL_TABLE,
)

# The archive. No foreign key on user_id: the archiver must never fail a whole batch on
# one row, and users are never deleted; history joins users to show current names.
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), nullable=False),
    sa.Column("stream_ms", sa.BigInteger(), nullable=False),
    sa.Column("stream_seq", sa.BigInteger(), nullable=False),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("client_id", sa.String(CLIENT_ID_MAX), nullable=False),
    sa.Column("body", Body, nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    # The message this one replies to (its stream id, `ms-seq`), in the same room.
    sa.Column("reply_to", sa.String(STREAM_ID_MAX), nullable=True),
    # Its state after the changes applied (store/change_writes.py): the last edit's time
    # and stream id (an event key), and the delete (the body is '' then).
    sa.Column("edited_at", Moment, nullable=True),
    sa.Column("edit_key", sa.String(EVENT_KEY_LEN), nullable=True),
    sa.Column("deleted_at", Moment, nullable=True),
    sa.Column("deleted_by", sa.BigInteger(), nullable=True),
    sa.Column("delete_reason", sa.Text(), nullable=True),
    sa.UniqueConstraint("room_id", "stream_ms", "stream_seq", name="uq_messages_stream_id"),
    sa.UniqueConstraint("room_id", "user_id", "client_id", name="uq_messages_client_id"),
    # Message search (store/search.py): InnoDB's FULLTEXT here; on SQLite the FTS5 table
    # `messages_fts` and its triggers, which migration 0004 creates (not this metadata).
    sa.Index("ix_messages_body_fulltext", "body", mysql_prefix="FULLTEXT").ddl_if(dialect="mysql"),
    **MYSQL_TABLE,
)

# Every change (edit, delete, react, unreact) archived, by its own stream id: what a
# `since` replay reads once the stream no longer holds it, and the changes whose message
# is not archived yet (`applied` false: applied when it is).
message_events = sa.Table(
    "message_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), nullable=False),
    sa.Column("stream_ms", sa.BigInteger(), nullable=False),
    sa.Column("stream_seq", sa.BigInteger(), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("target_ms", sa.BigInteger(), nullable=False),
    sa.Column("target_seq", sa.BigInteger(), nullable=False),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("client_id", sa.String(CLIENT_ID_MAX), nullable=False),
    sa.Column("body", Body, nullable=True),
    sa.Column("emoji", sa.String(EMOJI_MAX), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("moderated", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("applied", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", Moment, nullable=False),
    sa.UniqueConstraint("room_id", "stream_ms", "stream_seq", name="uq_message_events_stream_id"),
    sa.Index("ix_message_events_target", "room_id", "target_ms", "target_seq"),
    sa.Index("ix_message_events_applied", "applied"),
    **MYSQL_TABLE,
)

# Reactions: one row per (message, user, emoji), present or not after the last react or
# unreact by stream id (`event_key`): a set, whatever order the changes are applied in.
reactions = sa.Table(
    "reactions",
    metadata,
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), primary_key=True),
    sa.Column("message_ms", sa.BigInteger(), primary_key=True),
    sa.Column("message_seq", sa.BigInteger(), primary_key=True),
    sa.Column("user_id", sa.BigInteger(), primary_key=True),
    sa.Column("emoji", sa.String(EMOJI_MAX), primary_key=True),
    sa.Column("present", sa.Boolean(), nullable=False),
    sa.Column("event_key", sa.String(EVENT_KEY_LEN), nullable=False),
    sa.Column("first_key", sa.String(EVENT_KEY_LEN), nullable=False),
    **MYSQL_TABLE,
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("stream", sa.String(255), nullable=False),
    sa.Column("stream_id", sa.String(41), nullable=False),
    sa.Column("room_slug", sa.String(64), nullable=True),
    sa.Column("raw", RawEntry, nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("delivery_count", sa.Integer(), nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    sa.UniqueConstraint("stream", "stream_id", name="uq_dead_letters_entry"),
    **MYSQL_TABLE,
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(TOKEN_NAME_MAX), nullable=False),
    # SHA-256 of the secret: a leaked table does not leak usable tokens.
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("last_used_at", Moment, nullable=True),
    sa.Index("ix_api_tokens_user_id", "user_id"),
    **MYSQL_TABLE,
)

# Moderation in a room: a user muted in it, or removed from it, until a time (one row per
# user, room and kind; lifting a mute deletes its row). App nodes keep the rows that are
# still in force in memory (hub/restrictions.py): the send path asks no SQL.
room_restrictions = sa.Table(
    "room_restrictions",
    metadata,
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), primary_key=True),
    sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("until", Moment, nullable=False),
    sa.Column("created_by", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    sa.Index("ix_room_restrictions_until", "until"),
    **MYSQL_TABLE,
)

# Users banned from the site, until a time (NULL: for good). Unbanning deletes the row.
site_bans = sa.Table(
    "site_bans",
    metadata,
    sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("until", Moment, nullable=True),
    sa.Column("created_by", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    **MYSQL_TABLE,
)

# Every moderation action, kept: who did what to whom, in which room, why, until when.
moderation_log = sa.Table(
    "moderation_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("target_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("room_id", sa.BigInteger(), sa.ForeignKey("rooms.id"), nullable=True),
    # The message a moderation delete removed (its stream id), if any.
    sa.Column("message_id", sa.String(41), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("until", Moment, nullable=True),
    sa.Column("created_at", Moment, nullable=False),
    sa.Index("ix_moderation_log_target_id", "target_id"),
    **MYSQL_TABLE,
)
