"""`python -m bench.chaos`: parse the options, run one campaign, print the last line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bench.chaos.campaign import Options, run
from bench.chaos.nemesis import FAULTS


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Run Chatroom under a nemesis, then check every acked message and "
        "every client's view. The last line is one JSON object.",
    )
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed")
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of load and faults")
    parser.add_argument("--engine", choices=["mariadb", "embedded"], default="mariadb")
    parser.add_argument(
        "--faults",
        default="all",
        help=f"comma-separated fault kinds, or 'all' ({', '.join(FAULTS)})",
    )
    parser.add_argument("--report", type=Path, help="write the full report (JSON) here")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s, all clients")
    parser.add_argument(
        "--appendfsync",
        choices=["always", "everysec"],
        default="everysec",
        help="the Redis AOF fsync policy at start (redis_kill alternates both)",
    )
    parser.add_argument(
        "--ack-durability",
        choices=["write", "fsync"],
        help="what the nodes' acks wait for (CHATROOM_ACK_DURABILITY); fsync runs Redis "
        "with appendfsync always throughout",
    )
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--long", action="store_true", help="long-run fault durations (SQL down a minute, ...)"
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--records",
        type=Path,
        help="pickle every client's view, the evidence and the timeline here (to study a "
        "violation beyond the report's examples)",
    )
    args = parser.parse_args(argv)
    faults = list(FAULTS) if args.faults == "all" else [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault kinds {unknown}; known: {', '.join(FAULTS)}")
    if args.clients < 2 or args.rooms < 2 or args.rate <= 0 or args.duration < 10:
        parser.error("at least 2 clients, 2 rooms, a positive rate and 10 s")
    return Options(
        seed=args.seed,
        duration=args.duration,
        engine=args.engine,
        faults=faults,
        clients=args.clients,
        rooms=args.rooms,
        rate=args.rate,
        appendfsync=args.appendfsync,
        ack_durability=args.ack_durability,
        drain_timeout=args.drain_timeout,
        long_run=args.long,
        keep_logs=args.keep_logs,
        report=args.report,
        records=args.records,
    )


def main() -> None:
    options = parse_args()
    try:
        import uvloop

        outcome = uvloop.run(run(options))
    except ImportError:
        outcome = asyncio.run(run(options))
    except KeyboardInterrupt:
        sys.exit(130)
    print(outcome.text, flush=True)
    print(json.dumps(outcome.line), flush=True)
    sys.exit(0 if outcome.verdict.clean else 1)


if __name__ == "__main__":
    main()
