"""Whether one of the hub's long-lived Redis reads (the stream bus, the room signals) is
working, told to the operator once per change of state, never once per retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ReadLink:
    def __init__(
        self, name: str, log: logging.Logger, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.down = False
        self.failures = 0
        self._log = log
        self._clock = clock
        self._since = 0.0

    def failed(self, reason: str) -> None:
        """A read failed or hung: logged when this starts an outage."""
        self.failures += 1
        if self.down:
            return
        self.down = True
        self._since = self._clock()
        self._log.warning("%s stopped (%s); reconnecting until it works", self.name, reason)

    def working(self) -> None:
        """A read succeeded: logged when this ends an outage."""
        if not self.down:
            return
        lasted = self._clock() - self._since
        self._log.warning(
            "%s works again after %.1f s and %d failed attempts", self.name, lasted, self.failures
        )
        self.down = False
        self.failures = 0
