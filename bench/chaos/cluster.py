"""The whole system on loopback: stores, proxies, two app nodes, two archivers.

Engine `mariadb`: the campaign's own redis-server (AOF) and mariadbd; every process
reaches MariaDB through one SQL proxy (so SQL can be made unreachable), and each app node
reaches Redis through a proxy of its own (so one node's Redis link can be stalled); each
proxy runs in a process of its own (proxy_process.py), away from the campaign's load.
Engine `embedded`: the packaged Valkey (owned by bench.chaos.valkey_holder) and one
SQLite file, shared by every process through one data folder, as `chatroom serve`'s
embedded mode does; no proxies (there is no TCP to cut).

Processes get only real `CHATROOM_*` settings (Chatroom refuses unknown names).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos import fsync_records
from bench.chaos.processes import Process, Processes, ProcessFailed
from bench.chaos.proxy import ProxyState
from bench.chaos.proxy_process import ProxyProcess
from bench.chaos.stores import (
    DATABASE,
    embedded_state,
    own_mariadb,
    own_redis,
    valkey_holder,
    wait_embedded_url,
)

from chatroom.loopback_ports import free_port
from chatroom.settings import Settings

REPO_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


# The fsync recorder, compiled once per version of its source.
FSYNC_RECORDER_CACHE = Path("/tmp/chatroom-fsync-recorder")


@dataclass
class Tuning:
    """The settings that make faults recoverable within a run and lift the abuse limits."""

    claim_idle_ms: int = 3000
    hot_window: int = 50
    max_deliveries: int = 5
    appendfsync: str = "everysec"
    ack_durability: str | None = None  # write | fsync; None: Chatroom's default
    # The appendfsync no fault may change (fsync acks: always).
    pinned_fsync: str | None = None

    def settings(self) -> dict[str, str]:
        return {
            "log_level": "WARNING",
            "send_rate_per_s": "100000",
            "send_burst": "100000",
            # The connect storm's users hold 200 sockets each (bench/chaos/storm.py).
            "max_connections_per_user": "250",
            "registrations_per_address_per_hour": "100000",
            "login_attempts_per_minute": "100000",
            "login_attempts_per_address_per_minute": "100000",
            # Every client comes from 127.0.0.1, and the storm subscribes and pings in bursts.
            "max_connections_per_address": "100000",
            "frame_rate_per_s": "100000",
            "frame_burst": "100000",
            "room_creations_per_hour": "100000",
            "rooms_per_user_max": "100000",
            "archiver_claim_idle_ms": str(self.claim_idle_ms),
            "archiver_hot_window": str(self.hot_window),
            "archiver_max_deliveries": str(self.max_deliveries),
            "presence_expiry_s": "10",
        } | ({"ack_durability": self.ack_durability} if self.ack_durability else {})


def chatroom_env(settings: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    known = Settings.model_fields
    unknown = sorted(name for name in settings if name not in known)
    if unknown:
        raise ValueError(f"not Chatroom settings: {unknown}")
    return {**base, **{f"CHATROOM_{name.upper()}": value for name, value in settings.items()}}


@dataclass
class Cluster:
    engine: str
    root: Path
    tuning: Tuning
    processes: Processes = field(default_factory=Processes)
    redis: Process | None = None  # own redis-server (mariadb engine)
    valkey: Process | None = None  # the embedded Valkey's holder (embedded engine)
    mariadb: Process | None = None
    sql_proxy: ProxyProcess | None = None
    node_proxies: list[ProxyProcess] = field(default_factory=list)
    nodes: list[Process] = field(default_factory=list)
    archivers: list[Process] = field(default_factory=list)
    # Where Redis's fsyncs are recorded (bench/chaos/fsync_records.py); None: no compiler.
    fsync_records: Path | None = None
    redis_url: str = ""  # direct, for the campaign's own reads
    database_url: str = ""  # direct, for the checker

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def node_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.nodes[index].port}"

    # Start.

    async def start(self, *, nodes: int = 2, archivers: int = 2) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if await asyncio.to_thread(fsync_records.build, FSYNC_RECORDER_CACHE) is not None:
            self.fsync_records = self.root / "fsync-records"
        if self.engine == "mariadb":
            await self._start_production_stores()
            assert self.redis is not None
            for index in range(nodes):
                proxy = ProxyProcess(
                    f"node{index}-redis", upstream_port=self.redis.port or 0, log_dir=self.log_dir
                )
                await proxy.start()
                self.node_proxies.append(proxy)
        else:
            await self._start_embedded_store()
        for index in range(nodes):
            self.nodes.append(self._node(index))
        for index in range(archivers):
            self.archivers.append(self._archiver(index))
        await asyncio.gather(*(self.start_node(i) for i in range(nodes)))
        for archiver in self.archivers:
            archiver.start()

    async def _start_production_stores(self) -> None:
        self.redis = self.processes.add(
            own_redis(
                self.root / "redis",
                self.log_dir,
                appendfsync=self.tuning.appendfsync,
                preload=self._preload(),
            )
        )
        self.mariadb = self.processes.add(own_mariadb(self.root / "mariadb", self.log_dir))
        await asyncio.to_thread(self.mariadb.start)
        self.redis.start()
        await asyncio.to_thread(self.redis.wait_listening, START_TIMEOUT_S)
        await asyncio.to_thread(self.mariadb.wait_listening, START_TIMEOUT_S)
        self.redis_url = f"redis://127.0.0.1:{self.redis.port}/0"
        self.database_url = f"mysql+asyncmy://root@127.0.0.1:{self.mariadb.port}/{DATABASE}"
        self.sql_proxy = ProxyProcess(
            "sql", upstream_port=self.mariadb.port or 0, log_dir=self.log_dir
        )
        await self.sql_proxy.start()
        await self._upgrade(self._env(0, proxied_redis=False))

    async def _start_embedded_store(self) -> None:
        self.valkey = self.processes.add(
            valkey_holder(
                self.data_dir,
                self.log_dir,
                REPO_DIR,
                appendfsync=self.tuning.appendfsync,
                preload=self._preload(),
            )
        )
        self.valkey.start()
        self.redis_url = await asyncio.to_thread(
            wait_embedded_url, self.data_dir, self.valkey, START_TIMEOUT_S
        )
        self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'chatroom.sqlite3'}"
        await self._upgrade(self._env(0, proxied_redis=False))

    def _preload(self) -> dict[str, str]:
        if self.fsync_records is None:
            return {}
        library = fsync_records.build(FSYNC_RECORDER_CACHE)
        assert library is not None  # built in start()
        return fsync_records.preload_env(library, self.fsync_records)

    def _env(
        self, index: int, *, proxied_redis: bool, data_dir: Path | None = None
    ) -> dict[str, str]:
        wanted = self.tuning.settings()
        wanted["data_dir"] = str(data_dir or self.data_dir)
        if self.engine == "mariadb":
            assert self.sql_proxy is not None
            wanted["database_url"] = (
                f"mysql+asyncmy://root@127.0.0.1:{self.sql_proxy.port}/{DATABASE}"
            )
            if proxied_redis:
                wanted["redis_url"] = f"redis://127.0.0.1:{self.node_proxies[index].port}/0"
            else:
                wanted["redis_url"] = self.redis_url
        env = chatroom_env(wanted)
        if self.engine == "embedded":
            # Any process of the data folder may start the embedded server when it finds
            # none running (the holder restarts it only after a second): its fsyncs too
            # must be recorded.
            env |= self._preload()
        return env

    async def _upgrade(self, env: dict[str, str]) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "chatroom", "db", "upgrade"],
            env=env,
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ProcessFailed(f"chatroom db upgrade failed: {done.stderr.strip()[-500:]}")

    def _node(self, index: int) -> Process:
        port = free_port()
        argv = [sys.executable, "-m", "chatroom", "serve", "--no-archiver"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        env = self._env(index, proxied_redis=self.engine == "mariadb")
        process = Process(
            f"node{index}", argv, env=env, cwd=REPO_DIR, log_dir=self.log_dir, port=port
        )
        return self.processes.add(process)

    async def start_node(self, index: int) -> None:
        node = self.nodes[index]
        node.start()
        await asyncio.to_thread(node.wait_listening, START_TIMEOUT_S)

    def _archiver(self, index: int) -> Process:
        # Its own data folder in production shape: a stable consumer name per archiver
        # (its lock file), so a restarted archiver finds its own pending entries.
        data_dir = self.data_dir if self.engine == "embedded" else self.root / f"archiver{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = self._env(index, proxied_redis=False, data_dir=data_dir)
        argv = [sys.executable, "-m", "chatroom", "archive"]
        return self.processes.add(
            Process(f"archiver{index}", argv, env=env, cwd=REPO_DIR, log_dir=self.log_dir)
        )

    # Heal and stop.

    def embedded_server_pid(self) -> int | None:
        pid = embedded_state(self.data_dir).get("pid")
        return pid if isinstance(pid, int) else None

    @property
    def proxies(self) -> list[ProxyProcess]:
        """Every fault proxy: the nodes' Redis links and the SQL one."""
        return [*self.node_proxies, *([self.sql_proxy] if self.sql_proxy else [])]

    async def heal(self) -> None:
        """Everything back: proxies open, paused processes resumed, dead ones started."""
        for proxy in self.proxies:
            await proxy.set_state(ProxyState.open)
        for process in self.processes.all:
            if process.paused:
                process.resume()
        if self.redis is not None and not self.redis.alive():
            self.redis.start()
            await asyncio.to_thread(self.redis.wait_listening, START_TIMEOUT_S)
        if self.mariadb is not None and not self.mariadb.alive():
            self.mariadb.start()
            await asyncio.to_thread(self.mariadb.wait_listening, START_TIMEOUT_S)
        for index, node in enumerate(self.nodes):
            if not node.alive():
                await self.start_node(index)
        for archiver in self.archivers:
            if archiver.altered:
                archiver.kill9()
                archiver.argv = list(archiver.original_argv)
            if not archiver.alive():
                archiver.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.processes.stop_all)
        for proxy in self.proxies:
            await proxy.stop()
