"""pynats_lab.servers: the servers tutorials start for themselves (a configured server that reloads, a crash
and restart that keeps JetStream data, a local nats-server cluster that survives losing a node)."""
from __future__ import annotations

import asyncio
import importlib.util
import os
import signal

import nats
import nats.errors
import nats.js.errors
import pytest

from pynats_lab.errors import LabError
from pynats_lab.servers import start_cluster, start_server

USERS = "authorization {{ users = [ {entries} ] }}\n"


def users(*names: str) -> str:
    return USERS.format(entries=", ".join(f"{{user: {n}, password: pw-{n}}}" for n in names))


async def can_connect(url: str, user: str) -> bool:
    try:
        nc = await nats.connect(url, user=user, password=f"pw-{user}", allow_reconnect=False,
                                max_reconnect_attempts=1, connect_timeout=2)
    except (nats.errors.NoServersError, nats.errors.Error, OSError):
        return False
    await nc.close()
    return True


def test_a_configured_server_reloads_users_and_says_why_it_refuses(server_kind):
    srv = start_server(server_kind, config=users("alice"))
    try:
        assert srv.running and srv.url.startswith("nats://127.0.0.1:")
        assert asyncio.run(can_connect(srv.url, "alice")) and not asyncio.run(can_connect(srv.url, "bob"))
        line = srv.configure(users("alice", "bob")).config
        assert "bob" in line and asyncio.run(can_connect(srv.url, "bob"))
        assert "Reloaded server configuration" in srv.log_frame(5)["text"].str.cat()
        with pytest.raises(LabError, match="reload refused: .*"):
            srv.configure(users("alice").replace("]", ""))  # a typo
        assert asyncio.run(can_connect(srv.url, "alice")), "a refused reload keeps the server as it was"
    finally:
        srv.stop()
    assert not srv.running and not srv.dir.exists()


def test_a_reload_sent_as_a_signal_from_outside_is_seen(server_kind):
    srv = start_server(server_kind, config=users("alice"))
    try:
        before = len(srv.logs.splitlines())
        srv.config_path.write_text(users("alice", "carol"))
        os.kill(srv.pid, signal.SIGHUP)  # what `nats-server --signal reload=PID` sends
        assert "Reloaded" in srv.wait_for_reload(since=before)
        assert asyncio.run(can_connect(srv.url, "carol"))
    finally:
        srv.stop()


def test_jetstream_data_survives_a_kill_and_restart_on_the_same_port(server_kind):
    if server_kind == "embedded" and importlib.util.find_spec("embedded_server.jetstream") is None:
        pytest.skip("the embedded server's JetStream has not landed yet")
    srv = start_server(server_kind, jetstream=True)

    async def publish(url):
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        ack = await js.publish("keep.x", b"acknowledged")
        await nc.close()
        return ack.seq

    async def read(url):
        nc = await nats.connect(url)
        msg = await nc.jetstream().get_msg("KEEP", 1)
        await nc.close()
        return msg.data

    try:
        assert asyncio.run(publish(srv.url)) == 1
        url = srv.url
        srv.kill()
        assert not srv.running
        assert srv.restart().url == url
        assert asyncio.run(read(url)) == b"acknowledged"
    finally:
        srv.stop()


def test_wrong_kind_and_a_server_that_cannot_start_are_clear():
    with pytest.raises(LabError, match="unknown server kind 'nats'"):
        start_server("nats")
    # the reason nats-server printed before it could log anything, not its whole output
    with pytest.raises(LabError, match="^nats-server stopped: Parse error on line 1: 'Expected a top-level value"):
        start_server("nats-server", config="this is { not a config\n")


def test_a_local_cluster_serves_an_r3_stream_with_a_node_down():
    cluster = start_cluster(3)

    async def scenario():
        nc = await nats.connect(servers=cluster.servers)
        js = nc.jetstream()
        await js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)
        # The new stream's interest reaches the other nodes over routes a moment after the create's answer:
        # a first publish through another node may find no responders yet.
        for _ in range(25):
            try:
                await js.publish("r3.a", b"before", timeout=2)
                break
            except nats.js.errors.NoStreamResponseError:
                await asyncio.sleep(0.2)
        info = await js.stream_info("R3")
        follower = next(p.name for p in info.cluster.replicas)
        cluster.node(follower).kill()
        # The client may have been on that node: it reconnects elsewhere, a publish in between is lost.
        ack = None
        for _ in range(10):
            try:
                ack = await js.publish("r3.a", b"with a node down", timeout=2)
                break
            except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError):
                await asyncio.sleep(0.2)
        await nc.close()
        return follower, info, ack

    try:
        status = cluster.status()
        assert list(status["node"]) == ["n1", "n2", "n3"] and status["running"].all()
        assert (status["jetstream"] == "meta leader").sum() == 1
        follower, info, ack = asyncio.run(scenario())
        assert len(info.cluster.replicas) == 2 and ack is not None and ack.seq == 2
        assert cluster.status().set_index("node").loc[follower, "running"] == False  # noqa: E712
        cluster.node(follower).restart()
        cluster.wait_ready()
        assert cluster.status()["running"].all()
    finally:
        cluster.stop()
    assert not cluster.dir.exists()
