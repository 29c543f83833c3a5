"""Configuration: `CHATROOM_*` environment variables over a TOML file over defaults.

Every setting is one flat name: `archiver_batch_size` in the TOML file is
`CHATROOM_ARCHIVER_BATCH_SIZE` in the environment. Only the entry points (the CLI,
the app factory) build a `Settings`; everything else receives one.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from chatroom.cron_window import CronWindow
from chatroom.domain.rules import STORED_BODY_MAX_CHARS

ENV_PREFIX = "CHATROOM_"
CONFIG_ENV = "CHATROOM_CONFIG"
# Environment variables that are not settings: the archiver's fault-test failpoints
# (CHATROOM_FAILPOINT, CHATROOM_FAILPOINT_AFTER) and the test suite's own variables.
NOT_SETTINGS = ("CHATROOM_FAILPOINT", "CHATROOM_TEST_")
MAX_WORKERS = 256


class AckDurability(StrEnum):
    """What a send's ack waits for (PRODUCT.md invariant 11, docs/reliability.md)."""

    write = "write"  # the stream write: Redis's own appendfsync decides what a crash loses
    fsync = "fsync"  # the write fsynced to the AOF (Redis runs appendfsync always)


class ArchiveSchedule(StrEnum):
    continuous = "continuous"
    interval = "interval"
    cron = "cron"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    # Where things live.
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; unset: a SQLite file in data_dir."
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis URL; unset: the embedded Valkey server in data_dir. A Redis Cluster: "
            "redis+cluster://host:port,host:port (some of its masters)."
        ),
    )
    data_dir: Path = Field(
        default=Path("chatroom-data"),
        description="Folder of the embedded Valkey files and the SQLite file.",
    )
    redis_require_persistence: bool = Field(
        default=False,
        description="Refuse to start when Redis could lose acknowledged messages.",
    )
    embedded_appendfsync: str | None = Field(
        default=None,
        description="AOF fsync policy of the embedded server. Unset: `always` under "
        "`ack_durability` fsync, else `everysec`.",
    )
    ack_durability: AckDurability | None = Field(
        default=None,
        description="What a send's ack waits for: `write` (the stream write) or `fsync` "
        "(the write fsynced to Redis's AOF: Redis must run `appendfsync always`). Unset: "
        "`fsync` with the embedded server, `write` with a configured Redis.",
    )

    # The app node.
    host: str = Field(default="127.0.0.1", description="Address `serve` listens on.")
    workers: int | Literal["auto"] = Field(
        default=1,
        description="App-node processes `serve` runs on its one port, each a full node; "
        "`auto`: one per core. One of them runs the host's archiver.",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="Port `serve` listens on.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) whose pages may use the API and /ws; "
        "empty: the request's own (its scheme and Host).",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Always set Secure on the session cookie; it is set anyway when the "
        "request came over https or every allowed origin is https.",
    )
    hsts_max_age_s: int = Field(
        default=365 * 24 * 3600,
        ge=0,
        description="Strict-Transport-Security max-age on https answers; 0: no header.",
    )
    session_idle_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="A session unused this long expires."
    )
    session_absolute_s: int = Field(
        default=30 * 24 * 3600, ge=60, description="A session expires this long after login."
    )
    message_max_chars: int = Field(
        default=4000,
        ge=1,
        le=STORED_BODY_MAX_CHARS,
        description="Longest message body, in characters.",
    )
    frame_max_bytes: int = Field(
        default=65536, ge=1024, description="Largest WebSocket frame; larger ones close 1009."
    )
    send_rate_per_s: float = Field(
        default=10.0, gt=0, description="Messages per user per second (token bucket refill)."
    )
    send_burst: int = Field(
        default=20, ge=1, description="Messages a user may send at once (bucket size)."
    )
    max_connections_per_user: int = Field(
        default=20, ge=1, description="Open WebSockets per user, across all nodes."
    )
    outbound_queue_max: int = Field(
        default=1000, ge=10, description="Frames queued for one slow client before it is closed."
    )
    presence_expiry_s: float = Field(
        default=20.0,
        ge=2,
        le=60,
        description="A node's heartbeat keeps its users online this long: a dead node's "
        "users leave within this plus a quarter of it.",
    )
    # The idempotency window (docs/architecture.md, "Never duplicated"; docs/scaling.md,
    # ceiling 1). A resend inside it gets the first id; one after it is appended again,
    # delivered live a second time and dead-lettered by the archiver (SQL keeps one copy).
    # Resends come at a reconnect (seconds), a reload, or when a device that slept with
    # the tab's outbox comes back; GET /api/me tells clients the window, and the web
    # client asks its user before resending past it. Each key costs about 136 bytes of
    # Redis per message for this long: an hour at scale.
    client_id_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        description="How long Redis remembers a send's client_id: a resend within it is "
        "stored once in Redis too (after it, only SQL keeps it once).",
    )
    login_attempts_per_minute: int = Field(
        default=10,
        ge=1,
        description="Login attempts per username from one client address per minute.",
    )
    login_attempts_per_address_per_minute: int = Field(
        default=30, ge=1, description="Login attempts per client address, any usernames."
    )
    login_attempts_per_account_per_hour: int = Field(
        default=1000,
        ge=1,
        description="Login attempts per username from all addresses per hour (addresses "
        "the user logged in from before are exempt).",
    )
    registrations_per_address_per_hour: int = Field(
        default=10, ge=1, description="Registrations per client address per hour."
    )
    read_mark_flush_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Read marks noted on a node are written to SQL together this often "
        "(a node killed meanwhile loses that many seconds of reading).",
    )
    member_changes_per_hour: int = Field(
        default=60,
        ge=1,
        description="Members a user may add to or remove from private rooms per hour.",
    )
    request_body_max_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest HTTP request body; larger ones are refused with 413 before "
        "they are read.",
    )
    request_body_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="An HTTP request body whose next part takes longer than this is "
        "refused with 408.",
    )
    request_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A connection whose request line and headers are not complete this "
        "long after it opened (or after its request began) is closed.",
    )
    request_header_max_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        description="Longest request line plus headers; longer ones get 431 and are closed.",
    )
    keep_alive_timeout_s: int = Field(
        default=5, ge=1, description="An idle keep-alive connection is closed after this long."
    )
    ws_ping_interval_s: float = Field(
        default=20.0,
        gt=0,
        description="The node pings each WebSocket this often (keeps proxies and NATs from "
        "dropping an idle one) ...",
    )
    ws_ping_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="... and closes it (1011) when the pong is this late: the client is gone.",
    )
    max_connections: int = Field(
        default=10_000,
        ge=1,
        description="Open connections (HTTP and WebSocket) one node accepts; more are "
        "closed at once.",
    )
    max_connections_per_address: int = Field(
        default=200,
        ge=1,
        description="Open connections from one client address (an IPv6 /64); a trusted "
        "proxy's are not counted.",
    )
    frame_rate_per_s: float = Field(
        default=20.0,
        gt=0,
        description="WebSocket frames per connection per second, of any type (token "
        "bucket refill; a subscribe costs more than one).",
    )
    frame_burst: int = Field(
        default=200,
        ge=1,
        description="Frame tokens a connection may spend at once (a reconnect subscribes "
        "every room again: 100 subscribes cost 200).",
    )
    max_subscriptions_per_connection: int = Field(
        default=100, ge=1, description="Rooms one WebSocket may be subscribed to at once."
    )
    typing_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Typing frames passed on per user and room, across all their sockets "
        "and nodes: at most one per this interval.",
    )
    unknown_room_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a node remembers that a room does not exist (0: not at all).",
    )
    room_creations_per_hour: int = Field(
        default=10, ge=1, description="Rooms a user may create (or try to) per hour."
    )
    rooms_per_user_max: int = Field(
        default=50, ge=1, description="Rooms a user may own at once (admins: no limit)."
    )
    searches_per_minute: int = Field(
        default=30, ge=1, description="Message searches (GET /api/search) per user per minute."
    )
    metrics_token: str | None = Field(
        default=None,
        description="When set, the app node's /metrics needs `Authorization: Bearer <it>`.",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Comma-separated proxy addresses whose X-Forwarded-For/-Proto are "
        "trusted (the client address for throttling); unset: none.",
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Archiver process metrics port."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    # The archiver.
    archiver_schedule: ArchiveSchedule = Field(
        default=ArchiveSchedule.continuous, description="continuous, interval or cron."
    )
    archiver_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Entries per batch (one transaction)."
    )
    archiver_flush_ms: int = Field(
        default=100, ge=1, description="continuous: flush a partial batch after this long."
    )
    archiver_block_ms: int = Field(
        default=1000, ge=1, description="continuous: longest blocking read of new entries."
    )
    archiver_interval_s: float = Field(
        default=60.0, gt=0, description="interval: seconds between drains."
    )
    archiver_cron_window: Annotated[CronWindow, NoDecode] = Field(
        default=CronWindow(2 * 60, 6 * 60),
        description="cron: archive inside this UTC window, HH:MM-HH:MM.",
    )
    archiver_valve_backlog: int = Field(
        default=100_000, ge=1, description="cron: drain outside the window past this backlog."
    )
    archiver_valve_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="cron: drain outside the window when the oldest entry is this old.",
    )
    archiver_claim_idle_ms: int = Field(
        default=30_000,
        ge=100,
        description=(
            "Claim a pending entry idle this long (XAUTOCLAIM): a dead archiver's entries "
            "are archived by another within 1.5x this plus `archiver_block_ms`."
        ),
    )
    archiver_max_deliveries: int = Field(
        default=5,
        ge=1,
        description=(
            "Deliveries after which an entry is a suspect: tried alone, after the rest of "
            "its batch (never dead-lettered for its count)."
        ),
    )
    archiver_sql_writers: int = Field(
        default=1,
        ge=1,
        le=16,
        description=(
            "MySQL/MariaDB: connections a batch is written through at once, its rooms "
            "shared among them (order per room kept); SQLite: always 1."
        ),
    )
    archiver_hot_window: int = Field(
        default=1000, ge=0, description="Archived entries kept per stream for fast history."
    )
    archiver_consumer: str | None = Field(
        default=None,
        description=(
            "Consumer name, then unique by you; unset: host, data folder id and slot, "
            "leased in Redis."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("mysql+asyncmy://", "mariadb+asyncmy://", "sqlite+aiosqlite://")):
            raise ValueError(
                "must start with mysql+asyncmy://, mariadb+asyncmy:// or sqlite+aiosqlite://"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ValueError(
                "must start with redis://, rediss://, unix:// or (a Redis Cluster) redis+cluster://"
            )
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"must be `auto` or a number from 1 to {MAX_WORKERS}")
        return value

    @field_validator("archiver_cron_window", mode="plain")
    @classmethod
    def _window(cls, value: Any) -> CronWindow:
        # Parsed here, once: the archiver receives the window, not its text.
        if isinstance(value, CronWindow):
            return value
        if not isinstance(value, str):
            raise ValueError("must look like 02:00-06:00 (UTC, 24-hour clock)")
        return CronWindow.parse(value)

    @field_validator("embedded_appendfsync")
    @classmethod
    def _fsync(cls, value: str | None) -> str | None:
        if value is not None and value not in ("always", "everysec", "no"):
            raise ValueError("must be always, everysec or no")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        # Accept a comma-separated string as well as a JSON list in the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("is neither a JSON list nor comma-separated origins") from None
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _sessions(self) -> Settings:
        if self.session_absolute_s < self.session_idle_s:
            raise ValueError("session_absolute_s must not be shorter than session_idle_s")
        return self

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def durability(self) -> AckDurability:
        """The ack durability in force: the setting, or the default for this Redis."""
        if self.ack_durability is not None:
            return self.ack_durability
        return AckDurability.fsync if self.embedded_redis else AckDurability.write

    @property
    def embedded_fsync(self) -> str:
        """The embedded server's appendfsync: what `durability` needs, unless set."""
        if self.embedded_appendfsync is not None:
            return self.embedded_appendfsync
        return "always" if self.durability is AckDurability.fsync else "everysec"

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.replace("mariadb+asyncmy://", "mysql+asyncmy://", 1)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'chatroom.sqlite3'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)
