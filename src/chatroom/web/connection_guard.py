"""How many connections a node holds open, in all and per client address. Pure: no I/O.

Each open connection is a file descriptor and some memory, whether it ever completes a
request or not (slowloris). The node admits a new connection only while it holds fewer
than `max_total`, and fewer than `max_per_address` from the connecting address block (an
IPv4 address, an IPv6 /64, as the throttles count them). A trusted reverse proxy's
connections are counted in the total only: every client behind it shares its address,
and the proxy applies its own per-client limit (`limit_conn`, docs/security.md).

The HTTP and WebSocket protocols (web/http_protocol.py, web/ws_protocol.py) call `admit`
when a connection opens and `release` when it is lost; a connection is known by its
transport, which an upgrade to WebSocket keeps.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from chatroom.accounts.throttle import address_block

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(forwarded_allow_ips: str | None) -> list[IpNetwork] | None:
    """The proxies of `forwarded_allow_ips` as networks; None when every peer is trusted
    ("*"). Entries that are not addresses (a Unix socket's path) are left out."""
    networks: list[IpNetwork] = []
    for entry in (forwarded_allow_ips or "").split(","):
        text = entry.strip()
        if text == "*":
            return None
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return networks


class ConnectionGuard:
    """Counts open connections by an opaque key (the transport) and address block."""

    def __init__(
        self, *, max_total: int, max_per_address: int, trusted: list[IpNetwork] | None
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._trusted = trusted
        self._blocks: dict[object, str | None] = {}  # connection -> its counted block
        self._per_block: Counter[str] = Counter()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def open_from(self, address: str) -> int:
        """Connections open from the block of `address`."""
        return self._per_block[address_block(address)]

    def admit(self, connection: object, address: str | None) -> bool:
        """Count a new connection from `address` (None: not an IP peer); False: refuse it."""
        if len(self._blocks) >= self.max_total:
            self.refused += 1
            return False
        block = None if address is None or self._is_trusted(address) else address_block(address)
        if block is not None:
            if self._per_block[block] >= self.max_per_address:
                self.refused += 1
                return False
            self._per_block[block] += 1
        self._blocks[connection] = block
        return True

    def release(self, connection: object) -> None:
        """The connection is gone (a second call, or one never admitted, changes nothing)."""
        if connection not in self._blocks:
            return
        block = self._blocks.pop(connection)
        if block is not None:
            self._per_block[block] -= 1
            if self._per_block[block] <= 0:
                del self._per_block[block]

    def _is_trusted(self, address: str) -> bool:
        if self._trusted is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)
