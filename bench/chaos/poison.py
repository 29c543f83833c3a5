"""Poison: stream entries that can never become a message, written straight into a room.

Each kind is something a buggy writer, a version skew or an attacker with Redis access
could leave in a stream. The archiver must dead-letter every one of them with its reason
and go on; app nodes must skip them in fan-out and history. Pure: entries as field maps.
"""

from __future__ import annotations

import json

# Over MariaDB's default max_allowed_packet (16 MiB): its dead letter cannot be one
# statement of ordinary size. Written once per campaign (it is heavy on two cores).
OVER_PACKET_BYTES = 17 * 1024 * 1024
HUGE_BYTES = 3 * 1024 * 1024
DEEP = 100_000


def _envelope(stream_room: str, **changes: object) -> bytes:
    event: dict[str, object] = {
        "v": 1,
        "type": "message",
        "room": stream_room,
        "user": {"id": 1, "username": "poison", "display_name": "Poison"},
        "body": "poison",
        "client_id": "poison",
    }
    event.update(changes)
    return json.dumps(event).encode()


def huge_entries(*, with_over_packet: bool) -> list[tuple[str, dict[bytes, bytes]]]:
    """(kind, fields): entries too big to be messages, one over max_allowed_packet."""
    entries = [("huge_entry", {b"event": b"h" * HUGE_BYTES})]
    if with_over_packet:
        entries.append(("over_max_allowed_packet", {b"event": b"o" * OVER_PACKET_BYTES}))
    return entries


def poison_entries(room: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """(kind, fields) for one round of small poison into `room`."""
    return [
        ("not_json", {b"event": b"{not json"}),
        ("not_utf8", {b"event": b"\xff\xfe\x00\x80garbage"}),
        ("deep_json_array", {b"event": b"[" * DEEP + b"]" * DEEP}),
        (
            "deep_json_in_envelope",
            {
                b"event": _envelope(room)[:-1]
                + b', "x": '
                + b'{"a":' * DEEP
                + b"1"
                + b"}" * DEEP
                + b"}"
            },
        ),
        ("garbage_fields", {b"foo": b"bar", b"\x00\xff": b"\xff"}),
        ("not_an_object", {b"event": b"[1, 2, 3]"}),
        ("null_event", {b"event": b"null"}),
        ("wrong_version", {b"event": _envelope(room, v=2)}),
        ("unknown_type", {b"event": _envelope(room, type="reaction")}),
        ("wrong_room", {b"event": _envelope(room, room="not-this-room")}),
        (
            "bad_user_id",
            {b"event": _envelope(room, user={"id": -5, "username": "x_y_z", "display_name": "x"})},
        ),
        (
            "huge_user_id",
            {
                b"event": _envelope(
                    room, user={"id": 10**30, "username": "abc", "display_name": "a"}
                )
            },
        ),
        ("empty_body", {b"event": _envelope(room, body="   ")}),
        ("body_too_long", {b"event": _envelope(room, body="b" * 20_000)}),
        ("lone_surrogate", {b"event": _envelope(room)[:-1] + b', "body": "\\ud800 x"}'}),
        ("bad_client_id", {b"event": _envelope(room, client_id="\x07" * 80)}),
    ]
