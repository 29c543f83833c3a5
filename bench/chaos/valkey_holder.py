"""The embedded run's Valkey owner: `python -m bench.chaos.valkey_holder DATA_DIR DELAY_S`.

In embedded mode the first Chatroom process of a data folder starts the packaged Valkey
and the server dies with it (PR_SET_PDEATHSIG). The campaign kills app nodes and
archivers on purpose, so it lets this small process own the server instead, through
Chatroom's own `EmbeddedRedis`: the nodes and archivers find it by `embedded-redis.json`
exactly as a second process of the same folder does. When the server is killed (the
nemesis's kill -9 of Redis) the holder starts it again from its AOF after DELAY_S.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from chatroom.embedded import EmbeddedRedis

log = logging.getLogger("valkey-holder")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data_dir, delay_s = Path(sys.argv[1]), float(sys.argv[2])
    fsync = os.environ.get("CHATROOM_EMBEDDED_APPENDFSYNC", "everysec")
    server = EmbeddedRedis(data_dir, appendfsync=fsync)
    stopping = False

    def on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        while not stopping:
            log.info("serving at %s", server.acquire())
            while not stopping and server.process is not None and server.process.poll() is None:
                time.sleep(0.1)
            if stopping:
                break
            log.info("the server died; starting it again in %.1f s", delay_s)
            server.process = None
            time.sleep(delay_s)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
