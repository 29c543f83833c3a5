"""The room restrictions a node keeps in memory, and the rules of who moderates whom."""

from __future__ import annotations

import json

import pytest

from chatroom.domain import moderation
from chatroom.domain.moderation import MUTE, REMOVE, Restriction
from chatroom.domain.refusals import Conflict, Forbidden
from chatroom.domain.rooms import Room
from chatroom.domain.rules import RuleError
from chatroom.domain.users import User
from chatroom.hub.restrictions import RestrictionBoard, refusal
from chatroom.hub.signals import Banned, decode_signal

pytestmark = pytest.mark.fast

T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


def test_a_mute_holds_until_its_time_and_not_a_millisecond_after() -> None:
    clock = Clock()
    board = RestrictionBoard(clock=clock)
    board.apply(Restriction(7, "den", 3, MUTE, T0 + 60_000))
    assert board.muted_until(7, 3) == T0 + 60_000
    assert board.removed_until(7, 3) is None
    assert board.muted_until(7, 4) is None and board.muted_until(8, 3) is None
    clock.ms = T0 + 59_999
    assert refusal(board, 7, "den", 3, client_id="c1") is not None
    clock.ms = T0 + 60_000
    assert board.muted_until(7, 3) is None
    assert refusal(board, 7, "den", 3, client_id="c1") is None


def test_a_lift_is_a_time_in_the_past() -> None:
    board = RestrictionBoard(clock=Clock())
    board.apply(Restriction(7, "den", 3, REMOVE, T0 + 1000))
    assert board.removed_until(7, 3) == T0 + 1000
    board.apply(Restriction(7, "den", 3, REMOVE, 0))
    assert board.removed_until(7, 3) is None
    assert not board.any_in(7)  # the send path's one lookup says so again


def test_the_refusal_frames_name_the_room_the_client_id_and_until() -> None:
    board = RestrictionBoard(clock=Clock())
    board.apply(Restriction(7, "den", 3, MUTE, T0 + 60_000))
    frame = json.loads(refusal(board, 7, "den", 3, client_id="c1") or "")
    assert frame == {
        "type": "error",
        "code": "muted",
        "message": "you are muted in den until 2027-01-15T08:01:00.000Z",
        "room": "den",
        "until": "2027-01-15T08:01:00.000Z",
        "client_id": "c1",
    }
    # A mute does not keep anyone from subscribing; a removal does.
    assert refusal(board, 7, "den", 3, writing=False) is None
    board.apply(Restriction(7, "den", 3, REMOVE, T0 + 1000))
    removed = json.loads(refusal(board, 7, "den", 3, writing=False) or "")
    assert (removed["code"], removed["until"]) == ("removed", "2027-01-15T08:00:01.000Z")


async def test_a_reload_keeps_a_signal_heard_while_it_read_sql() -> None:
    board: RestrictionBoard

    async def stale_rows() -> list[Restriction]:
        # SQL answered before the mute was stored; its signal arrives meanwhile.
        board.apply(Restriction(7, "den", 3, MUTE, T0 + 60_000))
        return [Restriction(9, "hall", 5, REMOVE, T0 + 60_000)]

    board = RestrictionBoard(stale_rows, clock=Clock())
    await board.reload()
    assert board.muted_until(7, 3) == T0 + 60_000
    assert board.removed_until(9, 5) == T0 + 60_000


async def test_a_reload_drops_what_sql_no_longer_has() -> None:
    async def nothing() -> list[Restriction]:
        return []

    board = RestrictionBoard(nothing, clock=Clock())
    board.apply(Restriction(7, "den", 3, MUTE, T0 + 60_000))
    await board.reload()
    assert board.muted_until(7, 3) is None


def test_restriction_and_ban_signals_decode_and_garbage_does_not() -> None:
    restriction = Restriction(7, "den", 3, MUTE, T0)
    assert decode_signal(json.dumps({"restricted": restriction.as_json()})) == restriction
    assert decode_signal(json.dumps({"banned": 3, "reason": "spam"})) == Banned(3, "spam")
    wrong_kind = {**restriction.as_json(), "kind": "exile"}
    assert decode_signal(json.dumps({"restricted": wrong_kind})) is None
    assert decode_signal(json.dumps({"banned": "x", "reason": "r"})) is None


OWNER = User(1, "olga", "Olga")
ADMIN = User(2, "root", "Root", is_admin=True)
MEMBER = User(3, "bob", "Bob")
DEN = Room(7, "den", "Den", False, OWNER.id)


def test_only_the_owner_or_an_admin_moderates_a_room_and_never_a_conversation() -> None:
    moderation.check_room_moderator(OWNER, DEN)
    moderation.check_room_moderator(ADMIN, DEN)
    with pytest.raises(Forbidden):
        moderation.check_room_moderator(MEMBER, DEN)
    with pytest.raises(Conflict):
        moderation.check_room_moderator(ADMIN, Room(8, "dm.1-3", "", True, None))


def test_no_one_moderates_themselves_an_admin_or_the_rooms_owner() -> None:
    moderation.check_room_target(OWNER, DEN, MEMBER)
    with pytest.raises(Conflict, match="yourself"):
        moderation.check_room_target(OWNER, DEN, OWNER)
    with pytest.raises(Forbidden) as admin:
        moderation.check_room_target(OWNER, DEN, ADMIN)
    assert admin.value.code == "target_is_admin"
    with pytest.raises(Forbidden) as owner:
        moderation.check_room_target(ADMIN, DEN, OWNER)
    assert owner.value.code == "target_is_owner"


def test_bans_only_by_an_admin_never_of_themselves_or_the_last_admin() -> None:
    moderation.check_ban(ADMIN, MEMBER, admins_left=0)
    with pytest.raises(Forbidden):
        moderation.check_ban(OWNER, MEMBER, admins_left=1)
    with pytest.raises(Conflict):
        moderation.check_ban(ADMIN, ADMIN, admins_left=1)
    other_admin = User(4, "ada", "Ada", is_admin=True)
    moderation.check_ban(ADMIN, other_admin, admins_left=1)
    with pytest.raises(Conflict) as last:
        moderation.check_ban(ADMIN, other_admin, admins_left=0)
    assert last.value.code == "last_admin"


@pytest.mark.parametrize("value", [None, True, 1.5, "60", 59, 366 * 24 * 3600 + 1])
def test_a_mute_needs_a_duration_of_a_minute_to_a_year(value: object) -> None:
    with pytest.raises(RuleError) as refused:
        moderation.check_duration(value)
    assert refused.value.code == "invalid_duration"


def test_a_ban_may_be_for_good_and_a_reason_is_short_visible_text() -> None:
    assert moderation.check_duration(None, required=False) is None
    assert moderation.check_duration(3600) == 3600
    assert moderation.check_reason(None) == ""
    assert moderation.check_reason("  spam\nagain ") == "spam\nagain"
    for bad in ["x" * 501, "a\u202eb", 5]:
        with pytest.raises(RuleError):
            moderation.check_reason(bad)
