"""The four fan-out targets: how to start each, open a room member, and send a message.

Every target is one server process on 127.0.0.1 with uvloop: Chatroom (`chatroom serve`,
uvicorn), the raw ceiling (a bare `websockets` broadcast server), a python-socketio chat
with its Redis manager and a Django Channels chat of the tutorial's shape with
channels_redis (both under uvicorn with uvloop and httptools, as Chatroom is). The three
Redis-backed targets use Redis database 13.

A message body is the measured mark plus padding, so that every target carries the same
text; the raw ceiling relays a frame shaped and sized like the message frame Chatroom
delivers, so it moves as many bytes per delivery.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

from _chatroom import (
    REDIS_URL,
    bot_token,
    chatroom_env,
    fresh_backends,
    start_chatroom,
    start_node,
    wait_healthy,
)
from _load import (
    ACK_MARK,
    BUCKET_NS,
    BUCKETS,
    BenchSocket,
    HandshakeError,
    Tally,
    body_mark,
    open_socket,
)
from _servers import BENCH_DIR, Server, ServerSet
from chatroom.loopback_ports import free_port

PADDING = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. "
BODY_CHARS = 120


def message_body(step: int, seq: int) -> str:
    mark = body_mark(step, seq)
    return mark + PADDING[: max(0, BODY_CHARS - len(mark))]


UVICORN_FLAGS = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--ws",
    "websockets-sansio",
    "--ws-per-message-deflate",
    "false",
    "--log-level",
    "warning",
    "--no-access-log",
    "--backlog",
    "2048",
)


class Target(ABC):
    """One server under test."""

    name: str
    key: str  # prefix of this target's figures in the JSON line

    def __init__(self, log_dir: Path, room: str) -> None:
        self.log_dir = log_dir
        self.room = room
        self.server: Server | None = None
        self.metered: list[Server] = []
        # Send-to-ack latency, for targets that acknowledge sends (Chatroom).
        self.ack_histogram: list[int] = []

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    @property
    def nodes(self) -> list[Server]:
        """The serving processes clients connect to (the first `len(nodes)` of `metered`)."""
        return [self.server] if self.server is not None else []

    def port_of(self, index: int) -> int:
        """The port member `index` connects to: members are spread over the nodes."""
        nodes = self.nodes
        port = nodes[index % len(nodes)].port
        assert port is not None
        return port

    def rss_bytes(self) -> int:
        return sum(node.rss_bytes() for node in self.nodes)

    def check_alive(self) -> None:
        for node in self.nodes:
            node.check_alive()

    @abstractmethod
    async def start(self, servers: ServerSet, clients: int, senders: int) -> None:
        """Start the server(s) and wait until they listen; set up accounts if any."""

    @abstractmethod
    def path(self) -> str: ...

    def headers(self, index: int, *, sender: bool) -> dict[str, str]:
        return {}

    def on_control(self, sock: BenchSocket, payload: bytes) -> None:  # noqa: B027
        """A frame that is not a measured message: handshakes, pings, acks, errors."""

    def after_open(self, sock: BenchSocket) -> None:
        """Join the room; the default: being connected is being in the room."""
        sock.mark_ready()

    @abstractmethod
    def send_payload(self, sender: int, step: int, seq: int) -> bytes: ...

    async def open_member(
        self, index: int, tally: Tally, *, sender: bool, timeout: float = 30.0
    ) -> BenchSocket:
        import asyncio

        sock = await open_socket(
            "127.0.0.1",
            self.port_of(index),
            self.path(),
            self.headers(index, sender=sender),
            tally,
            receiver=not sender,
            on_control=self.on_control,
            timeout=timeout,
        )
        self.after_open(sock)
        await asyncio.wait_for(sock.ready, timeout)
        return sock


class RawTarget(Target):
    name = "raw websockets broadcast"
    key = "raw"

    async def start(self, servers: ServerSet, clients: int, senders: int) -> None:
        port = free_port()
        self.server = servers.add(
            Server(
                "raw",
                [sys.executable, str(BENCH_DIR / "peers" / "raw_broadcast.py"), f"--port={port}"],
                log_dir=self.log_dir,
                port=port,
            )
        )
        self.metered = [self.server]
        await self.server.wait_listening()

    def path(self) -> str:
        return "/"

    def send_payload(self, sender: int, step: int, seq: int) -> bytes:
        # The frame Chatroom would deliver for this message, byte for byte in shape.
        return json.dumps(
            {
                "type": "message",
                "id": f"1790000000000-{seq}",
                "room": self.room,
                "user": {
                    "id": sender + 2,
                    "username": f"bench_sender_{sender}",
                    "display_name": f"bench_sender_{sender}",
                },
                "body": message_body(step, seq),
                "created_at": "2026-11-27T12:00:00.000Z",
                "client_id": f"s{sender}-{step}-{seq}",
            },
            separators=(",", ":"),
        ).encode()


class SocketioTarget(Target):
    name = "python-socketio + AsyncRedisManager"
    key = "socketio"

    async def start(self, servers: ServerSet, clients: int, senders: int) -> None:
        port = free_port()
        self.server = servers.add(
            Server(
                "socketio",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "socketio_chat:app",
                    "--app-dir",
                    str(BENCH_DIR / "peers"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *UVICORN_FLAGS,
                ],
                env={"BENCH_REDIS_URL": REDIS_URL, "BENCH_SOCKETIO_CHANNEL": f"bench-{self.room}"},
                log_dir=self.log_dir,
                port=port,
            )
        )
        self.metered = [self.server]
        await self.server.wait_listening()

    def path(self) -> str:
        return "/socket.io/?EIO=4&transport=websocket"

    def on_control(self, sock: BenchSocket, payload: bytes) -> None:
        # Engine.IO 4 over a WebSocket: "0{...}" open, "2" ping, "4" + Socket.IO packet.
        if payload == b"2":
            sock.send_text(b"3")
        elif payload.startswith(b"0{"):
            sock.send_text(b"40")
        elif payload.startswith(b"40"):
            sock.send_text(b'42["join",' + json.dumps({"room": self.room}).encode() + b"]")
        elif payload.startswith(b'42["joined"'):
            sock.mark_ready()
        elif payload.startswith(b"44"):
            sock.errors += 1
            sock.last_error = payload

    def after_open(self, sock: BenchSocket) -> None:
        """The server speaks first (the open packet); on_control answers it."""

    def send_payload(self, sender: int, step: int, seq: int) -> bytes:
        event = ["chat_message", {"room": self.room, "message": message_body(step, seq)}]
        return b"42" + json.dumps(event, separators=(",", ":")).encode()


class ChannelsTarget(Target):
    name = "Django Channels + channels_redis"
    key = "channels"

    async def start(self, servers: ServerSet, clients: int, senders: int) -> None:
        port = free_port()
        data_dir = self.log_dir / "channels"
        data_dir.mkdir(exist_ok=True)
        self.server = servers.add(
            Server(
                "channels",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "chatsite.asgi:application",
                    "--app-dir",
                    str(BENCH_DIR / "peers" / "channels_chat"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *UVICORN_FLAGS,
                ],
                env={
                    "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                    "BENCH_REDIS_URL": REDIS_URL,
                    "BENCH_DATA_DIR": str(data_dir),
                    "BENCH_SECRET_KEY": secrets.token_urlsafe(32),
                    "BENCH_CHANNELS_PREFIX": f"asgi-{self.room}",
                },
                log_dir=self.log_dir,
                port=port,
            )
        )
        self.metered = [self.server]
        await self.server.wait_listening()

    def path(self) -> str:
        return f"/ws/chat/{self.room.replace('-', '_')}/"

    def headers(self, index: int, *, sender: bool) -> dict[str, str]:
        # The tutorial wraps the app in AllowedHostsOriginValidator: a browser's Origin.
        return {"Origin": f"http://127.0.0.1:{self.port}"}

    def send_payload(self, sender: int, step: int, seq: int) -> bytes:
        return json.dumps({"message": message_body(step, seq)}).encode()


class ChatroomTarget(Target):
    name = "Chatroom"
    key = ""

    def __init__(self, log_dir: Path, room: str) -> None:
        super().__init__(log_dir, room)
        self.reader_secret = ""
        self.sender_secrets: list[str] = []
        self.run = secrets.token_hex(3)
        self.ack_histogram = [0] * BUCKETS
        self.workers = 1  # `chatroom serve --workers`
        self.node_count = 1  # `chatroom serve` processes on the same Redis and SQL
        self._nodes: list[Server] = []

    @property
    def nodes(self) -> list[Server]:
        return self._nodes

    async def start(self, servers: ServerSet, clients: int, senders: int) -> None:
        import asyncio

        data_dir = self.log_dir / "chatroom-data"
        data_dir.mkdir(exist_ok=True)
        env = chatroom_env(data_dir, connections_per_user=clients + senders + 10)
        await fresh_backends(env)
        self.server, archiver = start_chatroom(
            servers, self.log_dir, env, archiver="separate", workers=self.workers
        )
        self._nodes = [self.server]
        for number in range(2, self.node_count + 1):
            self._nodes.append(
                start_node(
                    servers, self.log_dir, env, workers=self.workers, name=f"chatroom-{number}"
                )
            )
        self.metered = [*self._nodes] + ([archiver] if archiver else [])
        for node in self._nodes:
            await node.wait_listening()
            await wait_healthy(node)
        base = f"http://127.0.0.1:{self.port}"
        # One reader account holds every receiving connection: registering 1,000 accounts
        # would cost minutes of argon2id; the fan-out path does not depend on who reads.
        self.reader_secret = await bot_token(base, "bench_reader", rooms=(self.room,))
        self.sender_secrets = list(
            await asyncio.gather(*(bot_token(base, f"bench_sender_{i}") for i in range(senders)))
        )

    def path(self) -> str:
        return "/ws"

    def headers(self, index: int, *, sender: bool) -> dict[str, str]:
        secret = self.sender_secrets[index] if sender else self.reader_secret
        return {"Authorization": f"Bearer {secret}"}

    def after_open(self, sock: BenchSocket) -> None:
        sock.send_text(json.dumps({"type": "subscribe", "room": self.room}).encode())

    def on_control(self, sock: BenchSocket, payload: bytes) -> None:
        if b'"ack"' in payload:
            sock.acks += 1
            mark = payload.find(ACK_MARK)
            if mark >= 0:
                start = mark + len(ACK_MARK)
                sent = int(payload[start : payload.find(b"~", start)])
                bucket = (time.monotonic_ns() - sent) // BUCKET_NS
                self.ack_histogram[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
        elif b'"subscribed"' in payload:
            sock.mark_ready()
        elif b'"error"' in payload:
            sock.errors += 1
            sock.last_error = payload
            if not sock.ready.done():
                sock.ready.set_exception(HandshakeError(payload.decode(errors="replace")))

    def send_payload(self, sender: int, step: int, seq: int) -> bytes:
        return json.dumps(
            {
                "type": "send",
                "room": self.room,
                "body": message_body(step, seq),
                # The send time rides in the client_id, so the ack tells the ack latency.
                "client_id": f"~a~{time.monotonic_ns()}~{self.run}-{step}-{seq}",
            },
            separators=(",", ":"),
        ).encode()


TARGETS: dict[str, type[Target]] = {
    "chatroom": ChatroomTarget,
    "raw": RawTarget,
    "socketio": SocketioTarget,
    "channels": ChannelsTarget,
}
