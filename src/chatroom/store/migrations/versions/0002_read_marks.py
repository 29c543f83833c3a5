"""Read marks: how far each member has read each room.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql")


def upgrade() -> None:
    op.create_table(
        "read_marks",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("stream_ms", sa.BigInteger(), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "room_id", name="pk_read_marks"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_read_marks_user_id_users"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_read_marks_room_id_rooms"),
        **MYSQL_TABLE,
    )


def downgrade() -> None:
    op.drop_table("read_marks")
