"""The raw ceiling: a bare `websockets` server that broadcasts every message it receives.

No parsing, no auth, no storage, no Redis: what one Python process on uvloop can fan out.
Run: python bench/peers/raw_broadcast.py --port 9001
"""

from __future__ import annotations

import argparse

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()


async def relay(connection: ServerConnection) -> None:
    CLIENTS.add(connection)
    try:
        async for message in connection:
            broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(connection)


async def main(host: str, port: int) -> None:
    # Compression off, as on every target (Chatroom's default): the bench measures fan-out.
    async with serve(relay, host, port, compression=None, backlog=2048) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
