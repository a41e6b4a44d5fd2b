"""%nats trace: a message followed hop by hop through a subject mapping, a stream export, a service import,
a stream and across a cluster's routes; Nats-Trace-Only delivers nothing, --deliver does."""
from __future__ import annotations

import re

import nats
import pytest

import embedded_server
import pynats_lab
from pynats_lab.servers import LocalCluster
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, magic

ACCOUNTS = """
accounts {
  APP { jetstream: enabled, users [{user: app, password: app}]
        mappings = { "orders.new": "orders.created" }
        exports [{stream: "public.>"}, {service: "svc.>", allow_trace: true}] }
  OTHER { users [{user: other, password: other}]
          imports [{stream: {account: APP, subject: "public.>"}, allow_trace: true},
                   {service: {account: APP, subject: "svc.>"}}] }
}
"""
NO_TRACING = "the embedded server has no message tracing, mappings per account or version 2.11 yet (issue 12)"


def _embedded_traces() -> bool:
    return tuple(int(x) for x in re.findall(r"\d+", embedded_server.PROTOCOL_VERSION)[:2]) >= (2, 11)


@pytest.fixture
def traced(start_server, tmp_path_factory, server_kind, shell, monkeypatch, tmp_path):
    if server_kind == "embedded" and not _embedded_traces():
        pytest.skip(NO_TRACING)
    srv = start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), config=ACCOUNTS)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(f"nats://app:app@127.0.0.1:{srv.port}")
    yield srv
    get_session().close()


def _client(url: str, name: str):
    s = get_session()
    return s.run(nats.connect(url, name=name))


def test_a_mapping_a_stream_and_a_queue_group_hop_by_hop(traced, shell):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    worker = magic(shell, "%nats sub orders.created --queue billing --background")
    df = magic(shell, "%nats trace orders.new hello --no-chart")
    assert list(df.columns) == ["hop", "server", "kind", "subject", "account", "client", "via", "stream", "queue",
                                "error", "detail", "time"]
    assert list(df["kind"]) == ["ingress", "subject mapping", "jetstream", "egress"]
    ingress, mapping, js, egress = (df.iloc[i] for i in range(4))
    assert (ingress["subject"], ingress["account"], ingress["client"], ingress["via"]) == \
        ("orders.new", "APP", "pynats-lab", "client")
    assert mapping["subject"] == "orders.created"
    assert (js["stream"], js["subject"]) == ("ORDERS", "orders.created")
    assert (egress["subject"], egress["queue"], egress["client"]) == ("orders.created", "billing", "pynats-lab")
    assert set(df["error"]) == {""} and len(set(df["server"])) == 1 and set(df["hop"]) == {""}
    # Trace only: nobody got it, nothing was stored.
    assert worker.df.empty and magic(shell, "%stream info ORDERS").state.messages == 0
    delivered = magic(shell, "%nats trace orders.new hello --deliver --no-chart")
    assert list(delivered["kind"]) == ["ingress", "subject mapping", "jetstream", "egress"]
    assert list(worker.stop()["data"]) == ["hello"] and magic(shell, "%stream info ORDERS").state.messages == 1


def test_an_export_an_import_and_nobody(traced, shell):
    srv = traced
    other = _client(f"nats://other:other@127.0.0.1:{srv.port}", "reader")
    s = get_session()
    try:
        s.run(other.subscribe("public.>"))
        s.run(other.flush())
        df = magic(shell, "%nats trace public.news --no-chart")
        assert list(df["kind"]) == ["ingress", "stream export", "egress"]
        assert (df.iloc[1]["account"], df.iloc[1]["subject"]) == ("OTHER", "public.news")
        assert (df.iloc[2]["client"], df.iloc[2]["account"], df.iloc[2]["subject"]) == ("reader", "OTHER", "public.>")

        async def echo(msg):
            await msg.respond(b"ok")

        s.run(s.nc.subscribe("svc.echo", cb=echo))
        magic(shell, "%nats info")

        async def trace_from_other():
            inbox = other.new_inbox()
            sub = await other.subscribe(inbox)
            await other.flush()
            await other.publish("svc.echo", b"x", headers={"Nats-Trace-Dest": inbox, "Nats-Trace-Only": "true"})
            msg = await sub.next_msg(5)
            return [msg.data]

        import json
        from pynats_lab.tracing import trace_frame
        events = [json.loads(d) for d in s.run(trace_from_other())]
        svc = trace_frame(events)
        assert list(svc["kind"]) == ["ingress", "service import", "egress"]
        assert (svc.iloc[1]["account"], svc.iloc[2]["client"]) == ("APP", "pynats-lab")
        nobody = magic(shell, "%nats trace nobody.listens --no-chart")
        assert list(nobody["kind"]) == ["ingress"] and "no subscriber" in nobody.iloc[0]["detail"]
    finally:
        s.run(other.close())


def test_the_route_is_drawn(traced, shell):
    magic(shell, "%nats sub orders.created --background")
    df = pynats_lab.trace("orders.new")
    fig = pynats_lab.charts.trace_figure(df)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("mapped to orders.created" in t for t in texts)
    assert any(t.startswith("pynats-lab\norders.created") for t in texts)


def test_bad_use_is_one_line(lab_js, shell, capsys, server_kind):
    info = get_session().server_info()
    if tuple(int(x) for x in re.findall(r"\d+", info["version"])[:2]) < (2, 11):
        assert_one_line_errors(shell, capsys, {
            "%nats trace orders.new": "%nats trace: message tracing needs nats-server 2.11 or later; this server "
                                      f"says version {info['version']} (it would deliver the message",
        })
        return
    assert_one_line_errors(shell, capsys, {
        "%nats trace 'orders.*'": "%nats trace: invalid subject 'orders.*'",
        "%nats trace x -H Nats-Trace-Dest:y": "%nats trace: Nats-Trace-Dest is set by %nats trace itself",
        "%nats trace x --timeout 0": "%nats trace: invalid --timeout '0'",
    })


@pytest.mark.timeout(180)
def test_hops_span_the_servers_of_a_cluster(shell, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    cluster = LocalCluster(3, name="ops", config=ACCOUNTS).start()
    try:
        n1, _, n3 = cluster.nodes
        pynats_lab.connect(f"nats://app:app@127.0.0.1:{n1.port}")
        far = _client(f"nats://app:app@127.0.0.1:{n3.port}", "far-worker")
        s = get_session()
        try:
            s.run(far.subscribe("orders.created"))
            s.run(far.flush())
            # The interest reaches n1 over the route; wait until n1 knows it.
            import time
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                df = pynats_lab.trace("orders.new")
                if "n3" in set(df["server"]):
                    break
                time.sleep(0.1)
            assert list(df["server"]) == ["n1", "n1", "n1", "n3", "n3"]
            assert list(df["kind"]) == ["ingress", "subject mapping", "egress", "ingress", "egress"]
            route = df.iloc[2]
            assert route["via"] == "route" and route["detail"] == f"to hop {df.iloc[3]['hop']}"
            assert df.iloc[3]["via"] == "route" and df.iloc[4]["client"] == "far-worker"
            fig = pynats_lab.charts.trace_figure(df)
            assert any(t.get_text() == "route" for t in fig.axes[0].texts)
        finally:
            s.run(far.close())
    finally:
        get_session().close()
        cluster.stop()
