"""Stream writer throughput: concurrent appends batched into pipelines, or each on its own.

"direct" sends each append as its own script call over the connection pool, as a writer
without batching would.

    python bench/writer.py [--redis redis://127.0.0.1:6379/14] [--senders 50] [--messages 40000]

Last line: one JSON object with `batched_per_s`, `direct_per_s` and `speedup`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from chatroom import redis_keys
from chatroom.domain.events import Author, MessageEvent
from chatroom.redis_client import connect
from chatroom.streams.epochs import StreamEpochs
from chatroom.streams.writer import _APPEND_ROOM, StreamWriter


async def _run(url: str, senders: int, messages: int, *, batched: bool) -> float:
    redis = connect(url, max_connections=senders + 8)
    await redis.flushdb()
    writer = StreamWriter(redis, client_id_ttl_s=600)
    script = redis.register_script(_APPEND_ROOM)
    per_sender = messages // senders
    if not batched:  # the writer begins a room's epoch by itself; the direct calls do not
        await StreamEpochs(redis).begin_missing([f"room-{n}" for n in range(10)])

    async def sender(n: int) -> None:
        author = Author(n + 1, f"user{n}", f"User {n}")
        for i in range(per_sender):
            event = MessageEvent(f"room-{n % 10}", author, f"message {i} " * 8, f"{n}-{i}")
            if batched:
                await writer.append(event)
            else:
                keys = [
                    redis_keys.room_stream(event.room),
                    redis_keys.room_epoch(event.room),
                    redis_keys.sent_client_id(event.room, author.id, event.client_id),
                ]
                await script(keys=keys, args=[600, event.encode()])

    start = time.perf_counter()
    await asyncio.gather(*(sender(n) for n in range(senders)))
    elapsed = time.perf_counter() - start
    await writer.close()
    await redis.flushdb()
    await redis.aclose()
    return per_sender * senders / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--messages", type=int, default=40_000)
    args = parser.parse_args()
    batched = asyncio.run(_run(args.redis, args.senders, args.messages, batched=True))
    direct = asyncio.run(_run(args.redis, args.senders, args.messages, batched=False))
    print(f"batched: {batched:,.0f} appends/s")
    print(f"direct:  {direct:,.0f} appends/s")
    result = {
        "batched_per_s": round(batched),
        "direct_per_s": round(direct),
        "speedup": round(batched / direct, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
