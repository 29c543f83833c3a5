"""Message search: a full-text index on messages.body, kept in step with every write.

MySQL/MariaDB: an InnoDB FULLTEXT index on `body`, whose column takes a case- and
accent-insensitive collation (utf8mb4_unicode_520_ci: under utf8mb4_bin a FULLTEXT search
is case-sensitive). InnoDB maintains the index itself on INSERT, UPDATE (an edit, a delete
that empties the body) and DELETE. Adding it rebuilds the table (an FTS_DOC_ID column):
on a large archive, run this upgrade at a quiet time.

SQLite: an FTS5 table over `messages` (external content: the text is not stored twice),
filled from the rows already there, and three triggers that keep it in step with every
INSERT, UPDATE OF body and DELETE. A later migration that makes SQLite rebuild `messages`
(Alembic's batch "move and copy") drops these triggers with the old table: it must create
them again (`create_sqlite_triggers`) and rebuild the index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEARCH_COLLATION = "utf8mb4_unicode_520_ci"
FULLTEXT_INDEX = "ix_messages_body_fulltext"

SQLITE_TRIGGERS = {
    "messages_fts_insert": """
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
        END""",
    "messages_fts_delete": """
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
            VALUES ('delete', old.id, old.body);
        END""",
    "messages_fts_update": """
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, body)
            VALUES ('delete', old.id, old.body);
            INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
        END""",
}


def create_sqlite_triggers() -> None:
    for statement in SQLITE_TRIGGERS.values():
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # unicode61 with remove_diacritics 2: words of letters and digits in any script,
        # compared without case or accents, as MariaDB's collation above compares them.
        op.execute(
            "CREATE VIRTUAL TABLE messages_fts USING fts5("
            "body, content='messages', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        create_sqlite_triggers()
        op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        return
    op.alter_column(
        "messages",
        "body",
        existing_type=mysql.MEDIUMTEXT(),
        type_=mysql.MEDIUMTEXT(charset="utf8mb4", collation=SEARCH_COLLATION),
        existing_nullable=False,
    )
    op.create_index(FULLTEXT_INDEX, "messages", ["body"], mysql_prefix="FULLTEXT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
        return
    op.drop_index(FULLTEXT_INDEX, table_name="messages")
    op.alter_column(
        "messages",
        "body",
        existing_type=mysql.MEDIUMTEXT(charset="utf8mb4", collation=SEARCH_COLLATION),
        type_=mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"),
        existing_nullable=False,
    )
