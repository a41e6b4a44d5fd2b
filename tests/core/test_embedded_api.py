"""The Python API: EmbeddedServer in a thread and as a child process (which dies with its parent), and the
server's internal subscriptions, the seam JetStream and system services plug into."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import nats
import pytest

from embedded_server import EmbeddedServer
from embedded_server.embedded import EmbeddedServerError
from pynats_lab.session import flush
from tests.servers import REPO, subprocess_env


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def roundtrip(url: str) -> bytes:
    nc = await nats.connect(url)
    sub = await nc.subscribe("ping")
    await nc.publish("ping", b"pong")
    data = (await sub.next_msg(2)).data
    await nc.close()
    return data


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_start_use_stop(mode):
    with EmbeddedServer(mode=mode, http_port=-1) as srv:
        assert srv.client_url == f"nats://127.0.0.1:{srv.port}" and srv.http_port
        assert run(roundtrip(srv.client_url)) == b"pong"
        assert "Server is ready" in srv.logs
    assert not srv.running
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", srv.http_port)) != 0


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_failed_start_says_why(mode):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedServerError, match="address already in use"):
            EmbeddedServer(port=port, mode=mode).start()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_reload(mode, tmp_path):
    with EmbeddedServer(mode=mode) as srv:
        with pytest.raises(EmbeddedServerError, match="can only reload config when a file is provided"):
            srv.reload()
    conf = tmp_path / "server.conf"
    conf.write_text("authorization { user: a, password: b }\n")
    with EmbeddedServer(mode=mode, config_file=conf) as srv:
        conf.write_text("authorization { user: a, password: c }\n")
        srv.reload()

        async def connect(password):
            nc = await nats.connect(srv.client_url, user="a", password=password, allow_reconnect=False,
                                    max_reconnect_attempts=0)
            await nc.close()

        run(connect("c"))
        with pytest.raises(Exception):
            run(connect("b"))


def test_the_child_process_dies_with_its_parent(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom embedded_server import EmbeddedServer\n"
         "s = EmbeddedServer(mode='process').start()\nprint(s.proc.pid, flush=True)\ntime.sleep(60)\n"],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the embedded server outlived its parent")


def test_internal_subscriptions_answer_requests_and_count_as_responders():
    with EmbeddedServer() as srv:
        server = srv.server
        seen = []

        def service(sub, client, subject, reply, hdr, payload):
            seen.append((subject, hdr, payload, client is not None and client.account.name))
            # Re-entrant: answer while the request is still being routed; the answers keep their order.
            server.send_internal(server.global_account, reply, None, None, b"first:" + payload)
            server.send_internal(server.global_account, "svc.log", None, b"NATS/1.0\r\nK: v\r\n\r\n", b"logged")

        isub = srv.call(server.subscribe_internal, server.global_account, "svc.>", service)
        assert srv.call(server.has_interest, server.global_account, "svc.echo")
        assert not srv.call(server.has_interest, server.global_account, "other")

        async def scenario():
            nc = await nats.connect(srv.client_url)
            log = await nc.subscribe("svc.log")
            answer = await nc.request("svc.echo", b"hi", timeout=2)
            logged = await log.next_msg(2)
            await nc.close()
            return answer.data, logged.data, logged.headers

        assert run(scenario()) == (b"first:hi", b"logged", {"K": "v"})
        assert seen[0][0] == "svc.echo" and seen[0][2] == b"hi" and seen[0][3] == "$G"
        srv.call(server.unsubscribe_internal, isub)
        assert not srv.call(server.has_interest, server.global_account, "svc.echo")

        async def nobody():
            nc = await nats.connect(srv.client_url)
            try:
                with pytest.raises(nats.errors.NoRespondersError):
                    await nc.request("svc.echo", b"hi", timeout=2)
            finally:
                await nc.close()

        run(nobody())


def test_deliver_internal_shows_the_stored_subject():
    with EmbeddedServer() as srv:
        server = srv.server

        async def scenario():
            nc = await nats.connect(srv.client_url)
            sub = await nc.subscribe("deliver.to.me")
            await flush(nc)
            srv.call(server.deliver_internal, server.global_account, "deliver.to.me", "orders.new", "ack.1",
                     None, b"stored")
            msg = await sub.next_msg(2)
            await nc.close()
            return msg.subject, msg.reply, msg.data

        assert run(scenario()) == ("orders.new", "ack.1", b"stored")
