"""Moderation: room restrictions (mute, remove), site bans, and the moderation log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql")


def upgrade() -> None:
    op.create_table(
        "room_restrictions",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("until", Moment, nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id", "kind", name="pk_room_restrictions"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_room_restrictions_room_id_rooms"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_room_restrictions_user_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_room_restrictions_created_by_users"
        ),
        **MYSQL_TABLE,
    )
    op.create_index("ix_room_restrictions_until", "room_restrictions", ["until"])
    op.create_table(
        "site_bans",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("until", Moment, nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_site_bans"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_site_bans_user_id_users"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_site_bans_created_by_users"),
        **MYSQL_TABLE,
    )
    op.create_table(
        "moderation_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("room_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.String(41), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", Moment, nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_moderation_log"),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name="fk_moderation_log_actor_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["users.id"], name="fk_moderation_log_target_id_users"
        ),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_moderation_log_room_id_rooms"),
        **MYSQL_TABLE,
    )
    op.create_index("ix_moderation_log_target_id", "moderation_log", ["target_id"])


def downgrade() -> None:
    op.drop_table("moderation_log")
    op.drop_table("site_bans")
    op.drop_index("ix_room_restrictions_until", table_name="room_restrictions")
    op.drop_table("room_restrictions")
