"""Chatroom behind a real nginx (Debian's package) with the configuration in deploy/nginx/:
two app nodes, no sticky sessions, client addresses trusted from the proxy only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from chat_servers import ChatNode, ChatServer, api_error, free_port, login, register
from conftest import OpenSocket, StartServer
from waiting import wait_until

pytestmark = pytest.mark.processes

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
# The one line the test adds to the documented server block: which node answered.
_SERVER = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include chatroom-http.conf;
    upstream chatroom_nodes {{
        {servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        add_header X-Test-Upstream $upstream_addr always;
        include snippets/chatroom-proxy.conf;
    }}
}}
"""


@contextmanager
def nginx_in_front_of(nodes: list[ChatServer], root: Path) -> Iterator[ChatNode]:
    """nginx on a free loopback port, proxying to `nodes` with deploy/nginx's files."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed: apt-get install nginx-light (scripts/test.sh does)")
    (root / "snippets").mkdir(parents=True)
    shutil.copy(DEPLOY / "chatroom-http.conf", root / "chatroom-http.conf")
    for snippet in ("chatroom-proxy.conf", "chatroom-headers.conf"):
        shutil.copy(DEPLOY / snippet, root / "snippets" / snippet)
    port = free_port()
    servers = "\n        ".join(f"server {n.url.removeprefix('http://')};" for n in nodes)
    config = root / "nginx.conf"
    config.write_text(_SERVER.format(root=root, servers=servers, port=port))
    command = [binary, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    with (root / "nginx.out").open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    proxy = ChatNode(f"http://127.0.0.1:{port}")
    try:
        yield proxy
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _answers(node: ChatNode) -> bool:
    try:
        async with node.client() as client:
            return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_chat_end_to_end_through_nginx_over_two_nodes(
    chat_server: StartServer, chat_socket: OpenSocket, tmp_path: Path
) -> None:
    settings = {
        "forwarded_allow_ips": "127.0.0.1",
        "registrations_per_address_per_hour": "3",
        "send_rate_per_s": "1000",
    }
    one = await chat_server(settings=settings)
    two = await chat_server(settings=settings)
    with nginx_in_front_of([one, two], tmp_path / "nginx") as proxy:
        await wait_until(lambda: _answers(proxy), 10, what="nginx answers")
        async with proxy.client() as alice_http, proxy.client() as bob_http:
            await register(alice_http, "alice")
            await register(bob_http, "bob")
            # A client cannot pick its own address: nginx overwrites X-Forwarded-For, so
            # every spoofed address still counts against the one real address.
            spoofed = [
                await alice_http.post(
                    "/api/register",
                    json={"username": f"spoof{i}", "password": "correct horse battery"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
                for i in range(2)
            ]
            assert spoofed[0].status_code == 201, spoofed[0].text
            assert spoofed[1].status_code == 429, spoofed[1].text
            assert api_error(spoofed[1])["code"] == "throttled"

            await login(alice_http, "alice")
            await login(bob_http, "bob")
            # No sticky sessions: one cookie is good on whichever node answers.
            answered_by = set()
            for _ in range(4):
                me = await alice_http.get("/api/me")
                assert me.status_code == 200 and me.json()["user"]["username"] == "alice"
                answered_by.add(me.headers["X-Test-Upstream"])
            assert answered_by == {one.url.removeprefix("http://"), two.url.removeprefix("http://")}

            alice = await chat_socket(proxy, alice_http)
            bob = await chat_socket(proxy, bob_http)
            alice_node = alice.socket.response.headers["X-Test-Upstream"]
            while bob.socket.response.headers["X-Test-Upstream"] == alice_node:
                bob = await chat_socket(proxy, bob_http)  # round robin: the other node next
            await alice.subscribe()
            await bob.subscribe()
            await alice.send(
                {"type": "send", "room": "lobby", "body": "hello via nginx", "client_id": "n1"}
            )
            acked = await alice.next("ack")
            delivered = await bob.next("message")
            assert (delivered["id"], delivered["body"]) == (acked["id"], "hello via nginx")

            async def archived() -> bool:
                page = await bob_http.get("/api/rooms/lobby/messages")
                return [m["id"] for m in page.json()["messages"]] == [acked["id"]]

            await wait_until(archived, 10, what="the message is in the history page")

            too_big = await alice_http.post("/api/login", content=b"x" * (65 * 1024))
            assert too_big.status_code == 413  # nginx's client_max_body_size
            assert (await alice_http.get("/metrics")).status_code == 404
