"""Every Redis key and stream name Chatroom uses, in one place.

Each key that belongs to a room carries a hash tag, so that a room's stream and its
companions live in one Redis Cluster slot and can be touched by one script or pipeline.

Two layouts. On a single Redis the tag is the room slug (`chatroom:room:{slug}:stream`),
as it always was. On a Redis Cluster (`use_cluster_layout`, set by redis_client.connect
for a cluster URL) the tag is the room's slot group: one of `SLOT_GROUPS` tags chosen so
that their slots lie evenly over the 16384 (`chatroom:room:{g03-17}:slug:stream`). Rooms
of one group share a slot, so one XREAD (the hub) or XREADGROUP (an archiver) reads them
all: one blocking read per group, a few per shard, never one per room. The groups spread
over every shard of a cluster whose slots are split evenly (`redis-cli --cluster create`).
"""

from __future__ import annotations

import hashlib
import zlib
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PREFIX = "chatroom"

# Slot groups of a cluster's rooms; changing it moves every room to another key.
SLOT_GROUPS = 16

_layout = {"cluster": False}


def use_cluster_layout(enabled: bool) -> None:
    """Name keys for a Redis Cluster (True) or a single Redis (False, the default)."""
    _layout["cluster"] = enabled


def cluster_layout() -> bool:
    return _layout["cluster"]


@cache
def group_tags() -> tuple[str, ...]:
    """One hash tag per slot group, the i-th in the i-th of SLOT_GROUPS equal slot ranges."""
    span = REDIS_CLUSTER_HASH_SLOTS // SLOT_GROUPS
    tags = []
    for group in range(SLOT_GROUPS):
        n = 0
        while key_slot(f"g{group:02d}-{n}".encode()) // span != group:
            n += 1
        tags.append(f"g{group:02d}-{n}")
    return tuple(tags)


def slot_group(slug: str) -> int | None:
    """The room's slot group on a cluster; None on a single Redis (one group for all)."""
    if not _layout["cluster"]:
        return None
    return zlib.crc32(slug.encode()) % SLOT_GROUPS


# The consumer group of the archivers, one per room stream.
ARCHIVER_GROUP = "archiver"

# The set of room slugs that have a stream; archivers find new rooms through it.
ROOMS_WITH_STREAMS = f"{PREFIX}:streams"


def room_tag(slug: str) -> str:
    group = slot_group(slug)
    if group is None:
        return f"{PREFIX}:room:{{{slug}}}"
    return f"{PREFIX}:room:{{{group_tags()[group]}}}:{slug}"


def room_stream(slug: str) -> str:
    """The room's event stream: messages now, edits and deletes later."""
    return f"{room_tag(slug)}:stream"


def room_of_stream(stream: str) -> str:
    """The slug of a key made by room_stream()."""
    if _layout["cluster"]:
        start = stream.index("}:") + 2
        return stream[start : stream.rindex(":stream")]
    start = stream.index("{") + 1
    return stream[start : stream.index("}", start)]


def room_epoch(slug: str) -> str:
    """Hash: which stream of the room this is (streams/epochs.py): its epoch id, the last
    id that survived a loss, SQL's newest id then, and the floor new ids start above."""
    return f"{room_tag(slug)}:epoch"


def sent_client_id(slug: str, user_id: int, client_id: str) -> str:
    """The stream id a send of this (room, sender, client_id) got: idempotent resend."""
    digest = hashlib.blake2b(client_id.encode(), digest_size=12).hexdigest()
    return f"{room_tag(slug)}:sent:{user_id}:{digest}"


def room_presence(slug: str) -> str:
    """Sorted set of the room's online user ids, scored by their latest heartbeat expiry (ms)."""
    return f"{room_tag(slug)}:presence"


def room_presence_connections(slug: str, user_id: int) -> str:
    """Sorted set of one user's connections to the room, scored by heartbeat expiry (ms)."""
    return f"{room_tag(slug)}:presence:{user_id}"


def room_presence_profiles(slug: str) -> str:
    """Hash of user id -> the online user's JSON (id, username, display_name)."""
    return f"{room_tag(slug)}:presence:profiles"


def room_typing(slug: str, user_id: int) -> str:
    """Set for `typing_interval_s` after the user's typing frame in the room was passed on:
    one per user and room across all their sockets and nodes."""
    return f"{room_tag(slug)}:typing:{user_id}"


def room_signals(database: int) -> str:
    """Pub/sub channel of ephemeral room frames (presence, typing) between app nodes.

    Channels are not scoped by Redis database number, so the name carries it: two
    deployments on one Redis server (databases 0 and 1) must not hear each other.
    """
    return f"{PREFIX}:signals:{database}"


def node_wakeup(node_id: str, group: int | None = None) -> str:
    """A tiny stream an app node adds to, to wake its own blocked XREAD of the room streams:
    one per read group (hub/bus_groups.py), in the group's slot on a cluster (part of
    that group's XREAD)."""
    if group is None:
        return f"{PREFIX}:node:{node_id}:wakeup"
    return f"{PREFIX}:node:{{{group_tags()[group]}}}:{node_id}:wakeup"


def user_connections(user_id: int) -> str:
    """Sorted set of a user's open WebSockets on every node, scored by heartbeat expiry (ms)."""
    return f"{PREFIX}:user:{user_id}:connections"


def session(session_hash: str) -> str:
    return f"{PREFIX}:session:{session_hash}"


def user_sessions(user_id: int) -> str:
    return f"{PREFIX}:user:{user_id}:sessions"


def throttle(scope: str, subject: str) -> str:
    return f"{PREFIX}:throttle:{scope}:{subject}"


def login_attempts(account: str, address: str | None) -> str:
    """Login attempts on one account (a digest of its username) from one address block
    (a digest), or from every address (None). An account's login keys share a hash tag:
    one script counts them together."""
    tag = f"{PREFIX}:login:{{{account}}}"
    return f"{tag}:attempts" if address is None else f"{tag}:attempts:{address}"


def login_known_address(account: str, address: str) -> str:
    """Set for a while after a login to the account from the address block succeeded."""
    return f"{PREFIX}:login:{{{account}}}:known:{address}"


def archiver_heartbeat(slug: str, consumer: str) -> str:
    """Set while the archiver `consumer` is alive, one per room it reads: in the stream's
    slot, so that one script can check it and remove a gone consumer atomically."""
    return f"{room_tag(slug)}:archiver_alive:{consumer}"


def archiver_rate(slug: str) -> str:
    """Rows archived per second over the last minute, as a hash of second -> count."""
    return f"{room_tag(slug)}:archived_per_s"


def archiver_missing(slug: str) -> str:
    """Count of pending entries whose data was deleted before they were archived."""
    return f"{room_tag(slug)}:missing"


def archiver_suspects(slug: str) -> str:
    """Count of entries delivered more than `archiver_max_deliveries` times, which the
    archivers then archived apart (or dead-lettered, if bad)."""
    return f"{room_tag(slug)}:suspects"


def archiver_name_lease(consumer: str) -> str:
    """Held by the live archiver process that uses the consumer name `consumer` (a lease
    with the heartbeat's TTL): two processes can never share a name."""
    return f"{PREFIX}:archiver_name:{consumer}"
