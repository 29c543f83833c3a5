"""The key layout on a Redis Cluster (redis_keys.py) and cluster URLs (redis_cluster.py):
pure, no Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from chatroom import redis_keys
from chatroom.redis_cluster import is_cluster_url, startup_nodes
from chatroom.settings import Settings


@pytest.fixture
def cluster_layout() -> Iterator[None]:
    redis_keys.use_cluster_layout(True)
    try:
        yield
    finally:
        redis_keys.use_cluster_layout(False)


def test_a_single_redis_keeps_the_slug_as_the_tag() -> None:
    assert redis_keys.room_stream("lobby") == "chatroom:room:{lobby}:stream"
    assert redis_keys.room_of_stream("chatroom:room:{lobby}:stream") == "lobby"
    assert redis_keys.slot_group("lobby") is None
    assert redis_keys.node_wakeup("n1") == "chatroom:node:n1:wakeup"


def test_group_tags_lie_one_in_each_equal_slot_range() -> None:
    span = REDIS_CLUSTER_HASH_SLOTS // redis_keys.SLOT_GROUPS
    slots = [key_slot(tag.encode()) for tag in redis_keys.group_tags()]
    assert [slot // span for slot in slots] == list(range(redis_keys.SLOT_GROUPS))


@pytest.mark.usefixtures("cluster_layout")
def test_a_rooms_keys_share_its_groups_slot_and_name_the_room() -> None:
    for slug in ("lobby", "dev", "a-much-longer-room-name-0123456", "dm-1-2"):
        group = redis_keys.slot_group(slug)
        assert group is not None
        keys = [
            redis_keys.room_stream(slug),
            redis_keys.room_epoch(slug),
            redis_keys.sent_client_id(slug, 7, "c1"),
            redis_keys.room_presence(slug),
            redis_keys.room_presence_connections(slug, 7),
            redis_keys.archiver_heartbeat(slug, "archiver-1"),
            redis_keys.node_wakeup("n1", group),
        ]
        assert {key_slot(key.encode()) for key in keys} == {
            key_slot(redis_keys.group_tags()[group].encode())
        }
        assert redis_keys.room_of_stream(redis_keys.room_stream(slug)) == slug


@pytest.mark.usefixtures("cluster_layout")
def test_rooms_spread_over_every_group() -> None:
    groups = {redis_keys.slot_group(f"room-{i}") for i in range(200)}
    assert groups == set(range(redis_keys.SLOT_GROUPS))


def test_cluster_urls() -> None:
    url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,redis-3"
    assert is_cluster_url(url) and not is_cluster_url("redis://10.0.0.1:6379/0")
    assert startup_nodes(url) == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("redis-3", 6379)]
    assert startup_nodes("rediss+cluster://u:p@h:7000/") == [("h", 7000)]
    with pytest.raises(ValueError, match="database 0 only"):
        startup_nodes("redis+cluster://h:7000/3")
    with pytest.raises(ValueError, match="host:port"):
        startup_nodes("redis+cluster://h:port")
    assert Settings(redis_url=url).redis_url == url
