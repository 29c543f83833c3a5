"""The campaign's chat clients: they send at a steady rate and record what happens.

Each client is one user logged in with a session cookie, subscribed to a few rooms on one
node, sending with unique client_ids. When its connection is lost it reconnects to the
other node, subscribes with `since` (the last id it saw, or the `subscribed.last_id` of
its first subscription) and resends the sends whose answer it never got, with the same
client_id, as the web client does. A `resync` is answered as the web client does too:
the room's history after the last id seen is reloaded over HTTP (and counted), one
reload per room at a time (reloads.py).

Everything is recorded in the `Ledger` (see there); nothing here judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from bench.chaos.ledger import ClientLog, Ledger, Resync, RoomView, Send
from bench.chaos.reloads import ReloadFailed, RoomReload
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

SESSION_COOKIE = "chatroom_session"
MAX_IN_FLIGHT = 64
OPEN_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 15.0
UNKNOWN_RESEND_S = 0.5  # an `unknown_outcome` send goes again after this, same client_id
HTTP_TIMEOUT_S = 10.0
# Longer than any pause the nemesis makes on purpose: a client stays on a stalled node,
# as a browser tab would, instead of hiding the stall by reconnecting elsewhere.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 40.0
SLOW_READER_RCVBUF = 4096
# The share of sends that are changes (issue 12) to one of the client's own acked
# messages: edits, reactions, unreactions and deletes, in these proportions.
CHANGE_SHARE = 0.15
CHANGE_KINDS = (("edit", 4), ("react", 3), ("unreact", 2), ("delete", 1))
CHANGE_FRAMES = frozenset({"edit", "delete", "react", "unreact"})
EMOJI = ("👍", "🎉", "❤️")
WORDS = ("hello", "héllo", "🙂", "中文字", "עברית", "\u200f", "naïve", "😀👍🏽", "x", "—", "Ωmega")


@dataclass
class Pace:
    """The workload's pace, shared by every client; the nemesis turns it up for a burst."""

    per_client_per_s: float
    multiplier: float = 1.0
    sending: bool = True
    bursts: int = 0


def message_body(rng: random.Random, client_id: str) -> str:
    """A body that starts with its client_id (so any copy is traceable) and holds text of
    several scripts, emoji and a bidi mark: its exact bytes are what SQL must hold."""
    words = rng.choices(WORDS, k=rng.randint(1, 24))
    if rng.random() < 0.02:
        words.append("long " * rng.randint(200, 700))
    return f"{client_id} {' '.join(words)}".strip()


@dataclass
class Account:
    username: str
    user_id: int
    cookie: str


class ChatClient:
    def __init__(
        self,
        log: ClientLog,
        account: Account,
        rooms: list[str],
        node_urls: list[str],
        home: int,
        ledger: Ledger,
        pace: Pace,
        rng: random.Random,
    ) -> None:
        self.log = log
        self.account = account
        self.rooms = rooms
        self.node_urls = node_urls
        self.node = home
        self.ledger = ledger
        self.pace = pace
        self.rng = rng
        self.seq = 0
        self.epoch = 0
        self.in_flight: dict[str, Send] = {}
        self.unanswered: list[Send] = []  # lost answers, to resend on the next connection
        self.subscribed: dict[str, asyncio.Event] = {}
        self.mine: dict[str, list[str]] = {}  # room -> ids of this client's acked messages
        self.tasks: set[asyncio.Task[None]] = set()  # cancelled when the socket drops
        for room in rooms:
            log.rooms.setdefault(room, RoomView())
        # Over HTTP: a reload goes on if the socket drops (the next subscription's `since`
        # is past what it fetches).
        self.reloads = {room: RoomReload(room, log.rooms[room], self._fetch_page) for room in rooms}

    @property
    def settled(self) -> bool:
        """No send in flight and none waiting to be resent."""
        return not self.in_flight and not self.unanswered

    async def run(self) -> None:
        backoff = 0.2
        while True:
            self.epoch += 1
            reason = "closed"
            started = time.monotonic()
            try:
                await self._session(self.node_urls[self.node])
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = f"closed {code}" if code is not None else "connection lost"
            except InvalidStatus as exc:
                reason = f"refused {exc.response.status_code}"
            except (InvalidHandshake, OSError, TimeoutError) as exc:
                reason = type(exc).__name__
            self._connection_lost(reason)
            if time.monotonic() - started > 5.0:
                backoff = 0.2
            # The other node first: the one we were on may be down (the web client's
            # load balancer would do the same).
            self.node = (self.node + 1) % len(self.node_urls)
            await asyncio.sleep(backoff * (0.5 + self.rng.random()))
            backoff = min(backoff * 2, 2.0)

    def _connection_lost(self, reason: str) -> None:
        self.log.disconnects[reason] = self.log.disconnects.get(reason, 0) + 1
        for send in self.in_flight.values():
            send.in_flight = False
            send.lost_answers += 1
            self.unanswered.append(send)
        self.in_flight.clear()
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    async def _session(self, base: str) -> None:
        ws_url = base.replace("http://", "ws://", 1) + "/ws"
        async with connect(
            ws_url,
            origin=Origin(base),
            additional_headers={"Cookie": f"{SESSION_COOKIE}={self.account.cookie}"},
            open_timeout=OPEN_TIMEOUT_S,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            close_timeout=2.0,
            max_size=2**24,
        ) as ws:
            self.log.connections += 1
            self.subscribed = {room: asyncio.Event() for room in self.rooms}
            for room in self.rooms:
                await self._subscribe(ws, room)
            reader = asyncio.create_task(self._read(ws))
            sender = asyncio.create_task(self._send_loop(ws))
            try:
                done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in (reader, sender):
                    task.cancel()
                await asyncio.gather(reader, sender, return_exceptions=True)

    async def _subscribe(self, ws: ClientConnection, room: str) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "room": room}
        cursor = self.log.rooms[room].cursor
        if cursor is not None:
            frame["since"] = cursor
        await ws.send(orjson.dumps(frame).decode())

    async def _send_loop(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            for event in self.subscribed.values():
                await event.wait()
        resend, self.unanswered = self.unanswered, []
        for send in resend:
            await self._send(ws, send)
        while True:
            rate = self.pace.per_client_per_s * self.pace.multiplier
            await asyncio.sleep(self.rng.expovariate(rate) if rate > 0 else 0.5)
            if not self.pace.sending or len(self.in_flight) >= MAX_IN_FLIGHT:
                continue
            self.seq += 1
            client_id = f"{self.log.name}-{self.seq}"
            room = self.rng.choice(self.rooms)
            send = Send(
                client=self.log.name,
                user_id=self.account.user_id,
                room=room,
                client_id=client_id,
                body=message_body(self.rng, client_id),
                first_sent_at=time.time(),
            )
            if self.mine.get(room) and self.rng.random() < CHANGE_SHARE:
                kinds, weights = zip(*CHANGE_KINDS, strict=True)
                send.kind = self.rng.choices(kinds, weights)[0]
                send.target = self.rng.choice(self.mine[room])
                if send.kind in ("react", "unreact"):
                    send.emoji = self.rng.choice(EMOJI)
                if send.kind != "edit":
                    send.body = ""
            self.ledger.sends[(self.log.name, client_id)] = send
            await self._send(ws, send)

    async def _send(self, ws: ClientConnection, send: Send) -> None:
        send.attempts += 1
        send.in_flight = True
        self.in_flight[send.client_id] = send
        frame: dict[str, Any] = {"type": send.kind, "room": send.room, "client_id": send.client_id}
        if send.kind in ("send", "edit"):
            frame["body"] = send.body
        if send.target is not None:
            frame["target"] = send.target
        if send.emoji is not None:
            frame["emoji"] = send.emoji
        await ws.send(orjson.dumps(frame).decode())

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self._on_frame(orjson.loads(raw), ws)

    def _on_frame(self, frame: dict[str, Any], ws: ClientConnection) -> None:
        """One frame from the node, in order. Synchronous: frames already buffered are
        handled one after the other before any task spawned here runs."""
        kind = frame.get("type")
        if kind == "message":
            view = self.log.rooms.get(frame["room"])
            if view is not None:
                view.received.append((frame["id"], self.epoch))
                view.advance(frame["id"])
        elif kind in CHANGE_FRAMES:
            # A change: the cursor moves over it too (a change's id is a valid `since`).
            view = self.log.rooms.get(frame["room"])
            if view is not None:
                view.advance(frame["id"])
        elif kind == "ack":
            send = self.in_flight.pop(frame["client_id"], None)
            if send is not None:
                send.in_flight = False
                send.id = frame["id"]
                send.acked_at = time.time()
                send.acked_epoch = self.epoch
                send.acked_attempt = send.attempts
                self.ledger.acks.append(send)
                if send.kind == "send":
                    self.mine.setdefault(send.room, []).append(send.id)
        elif kind == "error":
            self._on_error(frame, ws)
        elif kind == "subscribed":
            view = self.log.rooms[frame["room"]]
            if view.cursor is None:
                view.cursor = view.start = frame["last_id"]
            self.subscribed[frame["room"]].set()
        elif kind == "resync":
            # Where the in-order sequence stood at this frame: later frames (read
            # before the reload task runs) come after what the node skipped.
            view = self.log.rooms[frame["room"]]
            resync = Resync(at=time.time(), cursor=view.cursor)
            view.resyncs.append(resync)
            self.reloads[frame["room"]].resync(resync)
        elif kind == "unsubscribed":
            # The server ended the subscription (a failed replay): subscribe again.
            self._spawn(self._resubscribe(ws, frame["room"]))

    def _on_error(self, frame: dict[str, Any], ws: ClientConnection) -> None:
        send = self.in_flight.pop(frame.get("client_id") or "", None)
        code = str(frame.get("code"))
        if send is None:
            self.log.refused[code] = self.log.refused.get(code, 0) + 1
            return
        send.in_flight = False
        send.errors.append(code)
        if code == "unknown_outcome":  # maybe stored: resend, same client_id (web client)
            send.lost_answers += 1
            self._spawn(self._resend_unknown(ws, send))

    async def _resend_unknown(self, ws: ClientConnection, send: Send) -> None:
        await asyncio.sleep(UNKNOWN_RESEND_S)
        if send.id is not None or send.in_flight:
            return
        try:
            await self._send(ws, send)
        except ConnectionClosed:
            send.in_flight = False
            self.in_flight.pop(send.client_id, None)
            self.unanswered.append(send)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _resubscribe(self, ws: ClientConnection, room: str) -> None:
        await asyncio.sleep(1.0)
        with contextlib.suppress(ConnectionClosed):
            await self._subscribe(ws, room)

    async def _fetch_page(self, room: str, after: str) -> dict[str, Any]:
        """One page of a reload, from whichever node the client uses now (a browser's
        request goes through the load balancer: a node that died meanwhile does not
        hold it up)."""
        base = self.node_urls[self.node]  # moves when the socket moves
        cookies = {SESSION_COOKIE: self.account.cookie}
        try:
            async with httpx.AsyncClient(
                base_url=base, cookies=cookies, timeout=HTTP_TIMEOUT_S
            ) as http:
                answer = await http.get(
                    f"/api/rooms/{room}/messages", params={"after": after, "limit": 200}
                )
        except httpx.TransportError as exc:
            raise ReloadFailed(type(exc).__name__) from exc
        if answer.status_code != 200:
            raise ReloadFailed(str(answer.status_code))
        page: dict[str, Any] = answer.json()
        return page


@dataclass
class SlowReaderResult:
    held_s: float
    close_code: int | None = None
    frames_read: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


async def slow_reader(
    base: str, account: Account, rooms: list[str], hold_s: float
) -> SlowReaderResult:
    """A client that subscribes and then never reads for `hold_s`: the node must close it
    (4000, too slow) rather than buffer for it; then it reads what is left, to see how."""
    result = SlowReaderResult(held_s=hold_s)
    ws_url = base.replace("http://", "ws://", 1) + "/ws"
    # A tiny receive buffer: what the client does not read soon stays on the server's
    # side, as it does over a slow mobile link, instead of in megabytes of loopback buffer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)
    sock.setblocking(False)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        async with connect(
            ws_url,
            sock=sock,
            origin=Origin(base),
            additional_headers={"Cookie": f"{SESSION_COOKIE}={account.cookie}"},
            open_timeout=OPEN_TIMEOUT_S,
            ping_interval=None,
            max_queue=4,
            max_size=2**24,
        ) as ws:
            for room in rooms:
                await ws.send(orjson.dumps({"type": "subscribe", "room": room}).decode())
            await asyncio.sleep(hold_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    async for _ in ws:
                        result.frames_read += 1
                    await ws.wait_closed()
            # 1006: the server dropped the socket without a close frame (or ours).
            result.close_code = ws.close_code
            result.note = "still open" if ws.close_code is None else "closed by the server"
    except ConnectionClosed as exc:
        result.close_code = exc.rcvd.code if exc.rcvd is not None else None
        result.note = "closed by the server"
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        result.note = f"could not connect: {type(exc).__name__}"
    finally:
        sock.close()
    return result
