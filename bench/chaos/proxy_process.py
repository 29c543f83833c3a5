"""A store proxy (proxy.py) in a process of its own, which the campaign steers over a pipe.

Why a process: in the campaign's own process the proxies shared one event loop with the
2,000 sockets of a connect storm and every campaign client; under load they forwarded
nothing in time and the nodes' Redis links timed out, an outage of the harness, not of
the product. In a process of its own a proxy waits for nothing but the CPU.

The pipe: the child writes its listening port as its first line on stdout, then reads
one command a line on stdin, a `ProxyState`'s value, applies it and answers
`ok <state>`; the campaign waits for that answer, so a state is in force when
`set_state` returns, as it was when the proxy ran in the campaign's loop. End of stdin
(the campaign stopped it, or died): the child closes every link and exits.

`python -m bench.chaos.proxy_process NAME UPSTREAM_PORT`: the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import IO

from bench.chaos.proxy import ProxyState, StoreProxy

REPO_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class ProxyFailed(Exception):
    """The proxy's process did not start, or did not answer a command in time."""


class ProxyProcess:
    """The campaign's side: a `StoreProxy` in front of 127.0.0.1:`upstream_port`, run by
    a child process; `port` is where it listens (known once started)."""

    def __init__(self, name: str, *, upstream_port: int, log_dir: Path) -> None:
        self.name = name
        self.port = 0
        self._upstream_port = upstream_port
        self._log_path = log_dir / f"proxy-{name}.log"
        self._child: asyncio.subprocess.Process | None = None
        self._state = ProxyState.open
        self._talking = asyncio.Lock()  # one command at a time: its answer is the next line

    @property
    def state(self) -> ProxyState:
        return self._state

    @property
    def exited(self) -> int | None:
        """Its exit code if its process ended before `stop`, else None."""
        return None if self._child is None else self._child.returncode

    async def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.chaos.proxy_process",
                self.name,
                str(self._upstream_port),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO_DIR,
                # Its own session: a Ctrl-C of the campaign reaches it only as the end of
                # its stdin, after the campaign has stopped the processes behind it.
                start_new_session=True,
            )
        self.port = int(await self._answer(START_TIMEOUT_S, "its port"))

    async def set_state(self, state: ProxyState) -> None:
        """Put the proxy in `state`; in force when this returns. A cancelled caller (the
        nemesis stopped mid-fault) leaves the exchange to finish, so that its answer is
        not taken for the next command's."""
        await asyncio.shield(asyncio.ensure_future(self._command(state)))
        self._state = state

    async def _command(self, state: ProxyState) -> None:
        child = self._running()
        async with self._talking:
            assert child.stdin is not None
            child.stdin.write(f"{state.value}\n".encode())
            try:
                await child.stdin.drain()
            except ConnectionError as exc:
                raise ProxyFailed(f"proxy {self.name}: its process is gone") from exc
            answer = await self._answer(ANSWER_TIMEOUT_S, f"`{state.value}`")
        if answer != f"ok {state.value}":
            raise ProxyFailed(f"proxy {self.name}: {state.value!r} answered {answer!r}")

    async def stop(self) -> None:
        child, self._child = self._child, None
        if child is None or child.returncode is not None:
            return
        assert child.stdin is not None
        child.stdin.close()  # its end of stdin: it closes every link and exits
        try:
            await asyncio.wait_for(child.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()

    def _running(self) -> asyncio.subprocess.Process:
        if self._child is None or self._child.returncode is not None:
            raise ProxyFailed(f"proxy {self.name} is not running (log: {self._log_path})")
        return self._child

    async def _answer(self, timeout: float, what: str) -> str:
        stdout = self._running().stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), timeout)
        except TimeoutError as exc:
            raise ProxyFailed(f"proxy {self.name}: no answer to {what} in {timeout:g} s") from exc
        if not line:
            raise ProxyFailed(f"proxy {self.name} exited (log: {self._log_path})")
        return line.decode().strip()


async def _serve(name: str, upstream_port: int, commands: IO[bytes]) -> None:
    proxy = StoreProxy(name, port=upstream_port)
    await proxy.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), commands)
    _say(str(proxy.port))
    try:
        while line := await reader.readline():
            state = ProxyState(line.decode().strip())
            proxy.set_state(state)
            _say(f"ok {state.value}")
    finally:
        await proxy.stop()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    name, upstream_port = argv[0], int(argv[1])
    serving = _serve(name, upstream_port, sys.stdin.buffer)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serving)
    else:
        uvloop.run(serving)


if __name__ == "__main__":
    main(sys.argv[1:])
