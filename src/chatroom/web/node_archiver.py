"""The archiver inside an app node: `chatroom serve` runs one unless `--no-archiver`.

With one process, the node runs it. With `--workers N`, the workers of one `serve` hold
an election on a lock file that only they know (`elected_archiver`): the worker that holds
the lock runs the archiver, and the others try again every `ELECTION_RETRY_S`. The kernel
releases the lock when its holder dies, even by SIGKILL, so another worker (or the
holder's replacement) takes over within that time, under the same consumer name: the
name's slot lock in the data folder is released the same way (archiver/consumer_name.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from chatroom.web.state import AppState

log = logging.getLogger(__name__)

# How long shutdown waits for the in-process archiver to finish its batch.
ARCHIVER_STOP_TIMEOUT_S = 30.0
# How often a worker that does not run the archiver tries to take the lock.
ELECTION_RETRY_S = 1.0


@asynccontextmanager
async def running_archiver(state: AppState) -> AsyncIterator[None]:
    """The archiver, running until the context ends (it then finishes its batch)."""
    from chatroom.archiver.failpoints import Failpoints
    from chatroom.archiver.service import Archiver

    stop = asyncio.Event()
    # CHATROOM_FAILPOINT crashes this node's archiver as it would `chatroom archive`.
    failpoints = Failpoints.from_env()
    archiver = Archiver(state.settings, state.redis_url, state.engine, failpoints=failpoints)
    task = asyncio.create_task(archiver.run(stop), name="archiver")
    task.add_done_callback(_report_archiver_end)
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), ARCHIVER_STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "the archiver did not stop within %.0f s; cancelling it", ARCHIVER_STOP_TIMEOUT_S
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:  # noqa: S110 (already logged by _report_archiver_end)
            pass


def _report_archiver_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the in-process archiver stopped on an error", exc_info=task.exception())


@asynccontextmanager
async def elected_archiver(state: AppState, lock_path: Path) -> AsyncIterator[None]:
    """Run the archiver in this worker whenever it holds `lock_path`'s lock."""
    stop = asyncio.Event()
    task = asyncio.create_task(_elect_and_run(state, lock_path, stop), name="archiver-election")
    try:
        yield
    finally:
        stop.set()
        await task


async def _elect_and_run(state: AppState, lock_path: Path, stop: asyncio.Event) -> None:
    while not stop.is_set():
        held = take_lock(lock_path)
        if held is not None:
            try:
                log.info("worker %d runs the archiver of this `chatroom serve`", os.getpid())
                async with running_archiver(state):
                    await stop.wait()
            finally:
                held.close()  # releases the lock
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ELECTION_RETRY_S)


def take_lock(path: Path) -> IO[str] | None:
    """The open, exclusively locked file; None when another process holds it."""
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
