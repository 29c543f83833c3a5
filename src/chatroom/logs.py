"""Logging of every Chatroom process: one format on stderr, at the configured level."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A worker of `serve --workers N`: its lines interleave with its siblings'.
WORKER_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str, *, worker: bool = False) -> None:
    logging.basicConfig(
        level=level, format=WORKER_FORMAT if worker else FORMAT, stream=sys.stderr, force=True
    )
    # Migration chatter and asyncmy's notes on constraint names are not news to an operator.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
