"""The campaign's report: every violation with the fault behind it, and the last line.

A violation is attributed to every fault whose window (from its start to `GRACE_S` after
its end: the time the system takes to recover, claim idle included) holds the moment
the violation concerns; one that no fault explains is `steady` (a bug without a fault).
The last line printed is one JSON object (see `last_line`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from typing import Any

from bench.chaos.checker import EXAMPLES_PER_KIND, Verdict, Violation
from bench.chaos.nemesis import FaultRecord, Timeline

GRACE_S = 20.0
LAST_LINE_KEYS = ("lost", "duplicated", "gaps", "dead_letters_valid")
# The probe's figures (bench.chaos.probe) the last line carries after the counts.
FIGURE_KEYS = ("backlog_max", "send_to_ack_max_s", "send_to_sql_p99_s", "send_to_sql_max_s")

# How to see each kind of violation again, in few steps: the repro hint.
HINTS = {
    "archiver_kill": "kill -9 one `chatroom archive` under load, restart it",
    "archiver_crash_loop": "CHATROOM_FAILPOINT=<point> chatroom archive, restarted "
    "archiver_max_deliveries+2 times while it holds a batch",
    "node_kill": "kill -9 one `chatroom serve` node mid-send; its clients resend elsewhere",
    "node_pause": "SIGSTOP one node (and stall its Redis link) for ~15 s while the others "
    "send and the archivers trim (hot window 50), then SIGCONT",
    "sql_pause": "SIGSTOP MariaDB (embedded: hold SQLite's write lock) for 5-30 s",
    "sql_unreachable": "make SQL refuse connections (a TCP proxy) for a minute",
    "redis_kill": "CONFIG SET appendfsync <mode>; kill -9 redis-server under load; "
    "restart it from its AOF",
    "redis_power_loss": "stop Redis, cut its AOF back to where its last fsync ended "
    "(bench/chaos/fsync_records.py), kill -9, restart",
    "redis_maxmemory": "CONFIG SET maxmemory <used+256k> (noeviction), restart the archivers",
    "clock_skew": "run one archiver with its wall clock shifted (bench.chaos.skewed_clock)",
    "slow_reader": "a client that subscribes to every room and never reads",
    "burst": "ten times the steady send rate for a few seconds",
    "poison": "XADD malformed entries (deep JSON, garbage fields, wrong values) to a room stream",
    "poison_huge": "XADD a 3 MB entry and a 17 MB one (over max_allowed_packet) to a room stream",
    "connect_storm": "open 2,000 WebSockets over both nodes at once, then close them at once",
    "steady": "no fault nearby: a bug under plain load",
}


def _label(fault: FaultRecord) -> str:
    """The fault's kind, with the Redis fsync mode it ran under where it matters."""
    mode = fault.detail.get("appendfsync")
    return f"{fault.kind}[{mode}]" if mode else fault.kind


def _culprits(violation: Violation, faults: list[FaultRecord]) -> list[str]:
    """The faults around the moment, the likeliest first: the last one started before it
    (or within 2 s after: a fault may hit a message sent just before it)."""
    if violation.at <= 0:
        return ["end of run"]
    found = [f for f in faults if f.start - 2.0 <= violation.at <= (f.end or f.start) + GRACE_S]
    found.sort(key=lambda f: -f.start)
    names = list(dict.fromkeys(_label(f) for f in found))
    return names or ["steady"]


def attribute(verdict: Verdict, timeline: Timeline) -> dict[str, dict[str, Any]]:
    """Per violation kind: its count, the likeliest fault of each (counted), and a few
    examples with every fault around them."""
    table: dict[str, dict[str, Any]] = {}
    started = min((f.start for f in timeline.faults), default=0.0)
    for violation in sorted(verdict.violations, key=lambda v: v.at):
        entry = table.setdefault(violation.kind, {"count": 0, "faults": Counter(), "examples": []})
        culprits = _culprits(violation, timeline.faults)
        if "first" not in entry and violation.at > 0:
            # A lasting harm (archivers stopped by a poison entry) is blamed on whatever
            # fault is nearest each later message; its first occurrence names the cause.
            entry["first"] = {"at_s": round(violation.at - started, 1), "faults": culprits}
        entry["count"] += 1
        entry["faults"][culprits[0]] += 1
        if len(entry["examples"]) < EXAMPLES_PER_KIND:
            entry["examples"].append(
                {**violation.detail, "at": round(violation.at, 3), "faults": culprits}
            )
    for entry in table.values():
        entry["faults"] = dict(entry["faults"].most_common())
    return table


def last_line(verdict: Verdict, timeline: Timeline) -> dict[str, Any]:
    line: dict[str, Any] = dict(verdict.outcomes)
    for key in LAST_LINE_KEYS:
        line[key] = verdict.count(key)
    line["faults"] = timeline.counts()
    for key in FIGURE_KEYS:
        if key in verdict.facts:
            line[key] = verdict.facts[key]
    return line


def render(verdict: Verdict, timeline: Timeline, table: dict[str, dict[str, Any]]) -> str:
    lines = ["", "== chaos campaign: findings =="]
    lines.append(
        "sends: "
        + ", ".join(f"{k} {v}" for k, v in verdict.outcomes.items())
        + f"; unknown but stored: {verdict.facts.get('unknown_stored', 0)}"
    )
    lines.append("faults injected: " + json.dumps(timeline.counts()))
    for kind, why in timeline.skipped.items():
        lines.append(f"fault {kind} skipped: {why}")
    for record in timeline.faults:
        if "interrupted" in record.detail:
            lines.append(f"fault {record.kind} interrupted: {record.detail['interrupted']}")
    facts = {k: v for k, v in verdict.facts.items() if k != "dead_letter_reasons"}
    lines.append("facts: " + json.dumps(facts))
    if verdict.facts.get("dead_letter_reasons"):
        lines.append("dead letter reasons: " + json.dumps(verdict.facts["dead_letter_reasons"]))
    if not table:
        lines.append("no violation found")
    for kind, entry in sorted(table.items(), key=lambda kv: -int(kv[1]["count"])):
        lines.append(f"VIOLATION {kind}: {entry['count']}  (around: {json.dumps(entry['faults'])})")
        if "first" in entry:
            first = entry["first"]
            lines.append(
                f"    first seen {first['at_s']} s after the first fault, around: "
                + ", ".join(first["faults"])
            )
        for culprit in entry["faults"]:
            hint = HINTS.get(culprit.split("[")[0], culprit)
            lines.append(f"    repro ({culprit}): {hint}")
        for example in entry["examples"][:3]:
            lines.append(f"    e.g. {json.dumps(example, ensure_ascii=False, default=str)[:300]}")
    return "\n".join(lines)


def full_report(
    verdict: Verdict,
    timeline: Timeline,
    table: dict[str, dict[str, Any]],
    run: dict[str, Any],
) -> dict[str, Any]:
    return {
        "run": run,
        "last_line": last_line(verdict, timeline),
        "violations": table,
        "facts": verdict.facts,
        "timeline": [asdict(f) for f in timeline.faults],
        "skipped_faults": timeline.skipped,
        "poison_entries": len(timeline.poison),
    }
