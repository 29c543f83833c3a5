"""Changes to messages: edits, deletes, reactions, replies (issue 12).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql")
Body = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
EVENT_KEY_LEN = 40
EMOJI_MAX = 16


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reply_to", sa.String(41), nullable=True))
        batch.add_column(sa.Column("edited_at", Moment, nullable=True))
        batch.add_column(sa.Column("edit_key", sa.String(EVENT_KEY_LEN), nullable=True))
        batch.add_column(sa.Column("deleted_at", Moment, nullable=True))
        batch.add_column(sa.Column("deleted_by", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("delete_reason", sa.Text(), nullable=True))
    op.create_table(
        "message_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("stream_ms", sa.BigInteger(), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("target_ms", sa.BigInteger(), nullable=False),
        sa.Column("target_seq", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("body", Body, nullable=True),
        sa.Column("emoji", sa.String(EMOJI_MAX), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("moderated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("applied", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_events"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_message_events_room_id_rooms"),
        sa.UniqueConstraint(
            "room_id", "stream_ms", "stream_seq", name="uq_message_events_stream_id"
        ),
        **MYSQL_TABLE,
    )
    op.create_index(
        "ix_message_events_target", "message_events", ["room_id", "target_ms", "target_seq"]
    )
    op.create_index("ix_message_events_applied", "message_events", ["applied"])
    op.create_table(
        "reactions",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("message_ms", sa.BigInteger(), nullable=False),
        sa.Column("message_seq", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("emoji", sa.String(EMOJI_MAX), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("event_key", sa.String(EVENT_KEY_LEN), nullable=False),
        sa.Column("first_key", sa.String(EVENT_KEY_LEN), nullable=False),
        sa.PrimaryKeyConstraint(
            "room_id", "message_ms", "message_seq", "user_id", "emoji", name="pk_reactions"
        ),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_reactions_room_id_rooms"),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table("reactions")
    op.drop_table("message_events")
    with op.batch_alter_table("messages") as batch:
        for column in (
            "delete_reason",
            "deleted_by",
            "deleted_at",
            "edit_key",
            "edited_at",
            "reply_to",
        ):
            batch.drop_column(column)
