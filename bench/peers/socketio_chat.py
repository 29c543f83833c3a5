"""A python-socketio chat with its Redis manager, served by uvicorn (uvloop, httptools).

The shape of python-socketio's own chat examples: a client `join`s a room, then every
`chat_message` it emits is emitted to the whole room. The AsyncRedisManager is what
python-socketio's documentation prescribes for production (several server processes
sharing rooms): every emit goes through Redis pub/sub, as Chatroom's fan-out goes
through Redis. Configuration from the environment: BENCH_REDIS_URL.

Run: uvicorn socketio_chat:app --app-dir bench/peers --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from typing import Any

import socketio


def build_app() -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(
        os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        channel=os.environ.get("BENCH_SOCKETIO_CHANNEL", "socketio"),
    )
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)

    @sio.event
    async def join(sid: str, data: dict[str, Any]) -> None:
        await sio.enter_room(sid, data["room"])
        await sio.emit("joined", {"room": data["room"]}, to=sid)

    @sio.event
    async def chat_message(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("chat_message", {"message": data["message"]}, room=data["room"])

    return socketio.ASGIApp(sio)


app = build_app()
