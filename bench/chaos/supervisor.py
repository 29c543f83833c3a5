"""A supervisor for the system under test, as systemd's Restart=always would be.

A process that exits when nobody killed it (an archiver refusing to start while Redis is
full, a node that could not reach SQL ...) is a finding: it is recorded with its exit
code and last log line, then started again after `RESTART_DELAY_S`. A process down on
purpose (the nemesis killed it and will start it again, or runs it with a failpoint
that kills it) is left alone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.chaos.cluster import Cluster
from bench.chaos.processes import Process

RESTART_DELAY_S = 2.0
LOOK_EVERY_S = 0.5


@dataclass
class Exit:
    at: float
    process: str
    code: int | None
    last_line: str


class Supervisor:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.exits: list[Exit] = []

    def _watched(self) -> list[Process]:
        return [*self.cluster.nodes, *self.cluster.archivers]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(LOOK_EVERY_S)
            for process in self._watched():
                if process.alive() or process.down_on_purpose or process.popen is None:
                    continue
                if "CHATROOM_FAILPOINT" in process.extra_env:
                    continue
                lines = [line for line in process.log_tail(20).splitlines() if line.strip()]
                self.exits.append(
                    Exit(
                        time.time(),
                        process.name,
                        process.exited_with(),
                        lines[-1][:200] if lines else "",
                    )
                )
                process.down_on_purpose = True  # until started again
                await asyncio.sleep(RESTART_DELAY_S)
                if process.alive():
                    continue
                try:
                    if process in self.cluster.nodes:
                        await self.cluster.start_node(self.cluster.nodes.index(process))
                    else:
                        process.start()
                except Exception as exc:
                    self.exits.append(
                        Exit(time.time(), process.name, None, f"restart: {exc}"[:200])
                    )
