"""What one XREAD costs as the streams it names grow, with nothing new to return.

The fan-out reads the rooms a node watches with XREAD (hub/bus.py), one call per group
of rooms (hub/bus_groups.py); every call names each of its rooms, and both the caller
(redis-py building and sending the command) and Redis (checking each stream) pay per
name. This measures that floor alone: one empty stream read per room count, redis-py's
asyncio client, the caller's CPU and Redis's CPU per call.

    python bench/xread_cost.py --rooms 1,100,1000,4000,25600

It uses BENCH_REDIS_URL (default redis://127.0.0.1:6379/13), flushed before and after.
The last line printed is one JSON object with a row per room count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from redis.asyncio import Redis

from _chatroom import REDIS_URL


async def _redis_cpu_s(redis: Redis) -> float:
    info: Any = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    redis = Redis.from_url(REDIS_URL)
    rows = []
    try:
        await redis.flushdb()
        for count in args.rooms:
            last = f"1-{count}"  # above every id of an earlier count: XADD takes it
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(count):
                    pipe.xadd(f"bench:room:{{r{i}}}:stream", {"f": "v"}, id=last)
                await pipe.execute()
            streams = {f"bench:room:{{r{i}}}:stream": last for i in range(count)}
            calls = max(20, args.names // count)
            redis_before, cpu_before = await _redis_cpu_s(redis), time.process_time()
            wall_before = time.perf_counter()
            for _ in range(calls):
                await redis.xread(dict(streams), count=1000)  # nothing after `last`
            wall = time.perf_counter() - wall_before
            cpu = time.process_time() - cpu_before
            redis_cpu = await _redis_cpu_s(redis) - redis_before
            row = {
                "rooms": count,
                "caller_us_per_call": round(1e6 * cpu / calls, 1),
                "redis_us_per_call": round(1e6 * redis_cpu / calls, 1),
                "wall_ms_per_call": round(1e3 * wall / calls, 2),
            }
            rows.append(row)
            print(
                f"  {count:6d} rooms: caller {row['caller_us_per_call']:9.1f} us/call, "
                f"redis {row['redis_us_per_call']:8.1f} us/call, "
                f"wall {row['wall_ms_per_call']:6.2f} ms/call",
                flush=True,
            )
    finally:
        await redis.flushdb()
        await redis.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="XREAD cost per call against rooms named")
    parser.add_argument(
        "--rooms",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 100, 1000, 4000, 25600],
        help="comma-separated room counts (default 1,100,1000,4000,25600)",
    )
    parser.add_argument(
        "--names", type=int, default=20_000, help="rooms named per count, over all calls"
    )
    args = parser.parse_args()
    print(json.dumps({"rows": asyncio.run(run(args))}))


if __name__ == "__main__":
    main()
