"""Free loopback ports for servers started as child processes (embedded Valkey, tests, bench).

A port from bind(("127.0.0.1", 0)) comes from the kernel's ephemeral range, the range
outgoing connections take their local ports from: between the probe and the server's own
bind, one of the many client connections on the host can take it, and the server then
exits with "address already in use" (a CI run failed so). These ports come from below that
range, at random so that two callers rarely try the same one; a Redis Cluster's bus port
(port + 10000) stays below it too.
"""

from __future__ import annotations

import random
import socket

LOWEST = 12000
HIGHEST = 22000  # + 10000 for a Redis Cluster bus port stays below 32768, the range's start
BUS_OFFSET = 10000


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A port no one listens on; `with_bus`: its cluster bus port (+10000) is free too."""
    for _ in range(1000):
        port = random.randint(LOWEST, HIGHEST)
        if bindable(port) and (not with_bus or bindable(port + BUS_OFFSET)):
            return port
    raise RuntimeError(f"no free port in {LOWEST}-{HIGHEST}")
