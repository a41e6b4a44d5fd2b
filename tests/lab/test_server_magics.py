"""%server ls/report/health and %nats subs through a real IPython shell: through $SYS for a system-account
user, through the monitoring port otherwise, on the embedded default with nothing to configure, and on a
3-node nats-server cluster. Every command only reads: the servers' state is the same after it."""
from __future__ import annotations

import json
import time
import urllib.request

import nats
import pytest

import pynats_lab
from pynats_lab.monitoring import is_system_user
from pynats_lab.servers import LocalCluster
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, cell, magic

SYSTEM = """
accounts {
  SYS { users [{user: sys, password: sys}] }
  APP { jetstream: enabled, users [{user: app, password: app}] }
}
system_account: SYS
"""
NO_RESPONDERS = "the embedded server has no system account services yet (issue 12)"


@pytest.fixture
def accounts_server(start_server, tmp_path_factory):
    """A JetStream server with a system account (user sys) and an application account APP (user app), its
    monitoring port on."""
    return start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), "-m", "-1", config=SYSTEM)


def _url(srv, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{srv.port}"


def _varz(srv) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/varz", timeout=5) as resp:
        return json.loads(resp.read())


class App:
    """Another client (not the session): a named nats-py connection on its own loop in the session's thread."""

    def __init__(self, url: str, name: str):
        self.s = get_session()
        self.nc = self.s.run(nats.connect(url, name=name))

    def do(self, coro):
        return self.s.run(coro)

    def close(self):
        self.do(self.nc.close())


@pytest.fixture
def system_lab(accounts_server, shell, monkeypatch, tmp_path, server_kind):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(_url(accounts_server, "sys"))
    s = get_session()
    if server_kind == "embedded" and not s.run(is_system_user(s)):
        get_session().close()
        pytest.skip(NO_RESPONDERS)
    yield accounts_server
    get_session().close()


def test_server_ls_and_reports_through_the_system_account(system_lab, shell):
    srv = system_lab
    app = App(_url(srv, "app"), "worker")
    try:
        js = app.nc.jetstream()
        app.do(js.add_stream(name="ORDERS", subjects=["orders.>"]))
        for i in range(5):
            app.do(app.nc.publish("orders.new", b"x"))
        app.do(app.nc.flush())
        assert get_session().run(is_system_user(get_session()))
        ls = magic(shell, "%server ls")
        varz = _varz(srv)
        assert len(ls) == 1
        row = ls.iloc[0]
        assert row["id"] == varz["server_id"] and row["version"] == varz["version"]
        assert row["connections"] >= 2 and row["streams"] == 1 and row["in_msgs"] >= 5
        conns = magic(shell, "%server report connections --sort in-msgs")
        assert {"worker", "pynats-lab"} <= set(conns["name"])
        assert conns.iloc[0]["name"] == "worker" and conns.iloc[0]["account"] == "APP"
        only_app = magic(shell, "%server report connections --account APP")
        assert list(only_app["name"]) == ["worker"] and only_app.iloc[0]["user"] == "app"
        assert len(magic(shell, "%server report connections --top 1")) == 1
        accounts = magic(shell, "%server report accounts").set_index("account")
        assert accounts.loc["APP", "connections"] == 1 and accounts.loc["SYS", "connections"] >= 1
        assert accounts.loc["APP", "in_msgs"] >= 5
        jsr = magic(shell, "%server report jetstream")
        assert list(jsr["streams"]) == [1]
        health = magic(shell, "%server health")
        assert list(health["status"]) == ["ok"]
        # Read-only: nothing above made a consumer or a stream.
        info = app.do(js.stream_info("ORDERS"))
        assert info.state.consumer_count == 0 and magic(shell, "%server ls").iloc[0]["streams"] == 1
    finally:
        app.close()


def test_without_a_system_user_one_line_says_what_to_give_then_monitoring_works(accounts_server, shell, capsys,
                                                                                monkeypatch, tmp_path):
    srv = accounts_server
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(_url(srv, "app"))
    try:
        capsys.readouterr()
        for line in ("%server ls", "%server report connections", "%server health", "%nats subs x"):
            res = cell(shell, line)
            err = capsys.readouterr().err
            assert res.success and err.count("\n") == 1, (line, err)
            assert "system-account user" in err and "--monitor http://HOST:8222" in err, err
        ls = magic(shell, f"%server ls --monitor http://127.0.0.1:{srv.http_port}")
        assert list(ls["id"]) == [_varz(srv)["server_id"]] and ls.iloc[0]["connections"] >= 1
        # The monitoring URL is remembered for the session.
        conns = magic(shell, "%server report connections")
        assert "pynats-lab" in set(conns["name"])
        assert list(magic(shell, "%server health")["status"]) == ["ok"]
        assert capsys.readouterr().err == ""
        assert_one_line_errors(shell, capsys, {
            "%server ls --monitor http://127.0.0.1:1": "%server ls: monitoring http://127.0.0.1:1/varz not reachable",
            "%server ls --monitor ftp://x": "%server ls: invalid monitoring URL 'ftp://x'",
        })
    finally:
        get_session().close()


def test_the_embedded_default_needs_nothing_configured(shell, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    get_session().close()
    try:
        magic(shell, "%nats connect")
        s = get_session()
        listener = magic(shell, "%nats sub orders.* --background")
        ls = magic(shell, "%server ls")
        assert list(ls["id"]) == [s.server_info()["server_id"]] and ls.iloc[0]["connections"] >= 1
        conns = magic(shell, "%server report connections").set_index("name")
        # The session's own system-account user (reading $SYS) is the second connection.
        assert set(conns.index) == {"pynats-lab", "pynats-lab-system"} and conns.loc["pynats-lab", "subs"] >= 1
        # connz leaves the global account unnamed; the report names it.
        assert (conns.loc["pynats-lab", "account"], conns.loc["pynats-lab-system", "account"]) == ("$G", "SYS")
        assert list(magic(shell, "%server health")["status"]) == ["ok"]
        assert list(magic(shell, "%server report jetstream")["streams"]) == [0]
        subs = magic(shell, "%nats subs orders.new")
        assert list(subs["subscription"]) == ["orders.*"] and list(subs["client"]) == ["pynats-lab"]
        listener.stop()
        # Connection events too: the embedded default has a system account user of the session's own.
        events = magic(shell, "%nats events --background --type client_*")

        async def visit():
            nc = await nats.connect(s.url, name="visitor")
            await nc.flush()
            await nc.close()

        s.run(visit())
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = events.stop()
        assert list(seen["type"]) == ["client_connect", "client_disconnect"]
        assert set(seen["client"]) == {"visitor"} and set(seen["account"]) == {"$G"}
        assert "Traceback" not in capsys.readouterr().err
    finally:
        get_session().close()


def test_nats_subs_shows_who_would_receive(system_lab, shell, capsys):
    srv = system_lab
    a, b, c = (App(_url(srv, "app"), n) for n in ("billing-1", "billing-2", "audit"))
    try:
        for x in (a, b):
            x.do(x.nc.subscribe("orders.*", queue="billing"))
        c.do(c.nc.subscribe("orders.>"))
        c.do(c.nc.subscribe("payments.>"))
        for x in (a, b, c):
            x.do(x.nc.flush())
        c.do(c.nc.publish("orders.new", b"1"))
        c.do(c.nc.flush())
        subs = magic(shell, "%nats subs orders.new")
        assert sorted(subs["client"]) == ["audit", "billing-1", "billing-2"]
        assert set(subs["account"]) == {"APP"}
        billing = subs[subs["queue"] == "billing"]
        assert len(billing) == 2 and set(billing["subscription"]) == {"orders.*"}
        audit = subs[subs["client"] == "audit"].iloc[0]
        assert audit["subscription"] == "orders.>" and audit["queue"] == "" and audit["msgs"] >= 1
        assert billing["msgs"].sum() == 1  # one member of the group got the message
        assert magic(shell, "%nats subs nothing.here").empty
        assert magic(shell, "%nats subs orders.new --account SYS").empty
        assert_one_line_errors(shell, capsys, {
            "%nats subs orders.*": "%nats subs: invalid subject 'orders.*': a message is published on a subject "
                                   "without wildcards",
        })
    finally:
        for x in (a, b, c):
            x.close()


def test_help_and_bad_input_are_one_line(lab_js, shell, capsys):
    magic(shell, "%server --help")
    out = capsys.readouterr().out
    assert "ls" in out and "report" in out and "health" in out and "$SYS.REQ.SERVER.PING" in out
    magic(shell, "%server report connections --help")
    assert "--sort" in capsys.readouterr().out
    assert_one_line_errors(shell, capsys, {
        "%server report connections --sort bogus": "%server report: invalid --sort 'bogus': use one of subs, cid,",
        "%server ls --sort bogus": "%server ls: invalid --sort 'bogus': use one of name, cluster,",
        "%server report connections --top 0": "%server report: --top must be",
        "%server report": "%server report: which report? connections, jetstream or accounts",
        "%server bogus": "%server: argument COMMAND: invalid choice",
    })


@pytest.mark.timeout(180)
def test_a_three_node_cluster_shows_three_rows(shell, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    cluster = LocalCluster(3, name="ops", config=SYSTEM).start()
    try:
        port = cluster.nodes[0].port
        pynats_lab.connect(",".join(f"nats://sys:sys@127.0.0.1:{n.port}" for n in cluster.nodes))
        ls = magic(shell, "%server ls")
        assert sorted(ls["server"]) == ["n1", "n2", "n3"] and set(ls["cluster"]) == {"ops"}
        jsr = magic(shell, "%server report jetstream")
        assert len(jsr) == 3 and jsr["meta_leader"].sum() == 1
        assert len(magic(shell, "%server health")) == 3
        conns = magic(shell, "%server report connections")
        assert len(conns) == 1 and conns.iloc[0]["server"] in {"n1", "n2", "n3"} and conns.iloc[0]["account"] == "SYS"
        assert magic(shell, "%server report accounts").set_index("account").loc["SYS", "connections"] == 1
        monitor = pynats_lab.ServerMonitor(interval="100ms", timeout="600ms", wait=True)
        assert set(monitor.df["server"]) == {"n1", "n2", "n3"} and monitor.chart.value.count("<polyline") >= 3 * 4
        pynats_lab.connect(f"nats://app:app@127.0.0.1:{port}", monitor=cluster.monitor_url)
        ls = magic(shell, "%server ls")
        assert sorted(ls["server"]) == ["n1", "n2", "n3"] and set(ls["cluster"]) == {"ops"}
        app = App(f"nats://app:app@127.0.0.1:{cluster.nodes[2].port}", "far-away")
        try:
            app.do(app.nc.subscribe("orders.>"))
            app.do(app.nc.flush())
            subs = magic(shell, "%nats subs orders.new")
            assert list(subs["server"]) == ["n3"] and list(subs["client"]) == ["far-away"]
        finally:
            app.close()
    finally:
        get_session().close()
        cluster.stop()


def test_server_monitor_charts_rates_live(system_lab, shell):
    srv = system_lab
    app = App(_url(srv, "app"), "publisher")
    try:
        monitor = pynats_lab.ServerMonitor(interval="100ms", timeout="1.5s")
        while not monitor._job.done():
            app.do(app.nc.publish("load", b"x" * 100))
            app.do(app.nc.flush())
        monitor.wait()
        df = monitor.df
        assert list(df.columns) == ["time", "server", "in_msgs_s", "out_msgs_s", "in_bytes_s", "out_bytes_s",
                                    "connections", "slow_consumers"]
        assert len(df) >= 3 and df["in_msgs_s"].max() > 0 and df["in_bytes_s"].max() >= 100
        assert set(df["server"]) == {_varz(srv)["server_name"]} and (df["connections"] >= 2).all()
        assert "<polyline" in monitor.chart.value and "msgs/s" in monitor.chart.value
        assert monitor.static_png().startswith(b"\x89PNG") and "in msgs/s" in monitor.static_html()
        assert len(monitor.refreshes) == len(set(df["time"]))
    finally:
        app.close()


def test_server_watch_outside_jupyter_prints_each_reading(system_lab, shell, capsys):
    df = magic(shell, "%server watch --interval 200ms --timeout 700ms")
    out = capsys.readouterr().out
    assert len(df) >= 2 and out.count("in_msgs_s") == len(set(df["time"]))
    assert_one_line_errors(shell, capsys, {
        "%server watch --interval 0": "%server watch: invalid --interval '0'",
        "%server watch --timeout soon": "%server watch: invalid --timeout 'soon'",
    })


def test_closed_connections_and_sorted_servers(system_lab, shell):
    srv = system_lab
    app = App(_url(srv, "app"), "short-lived")
    app.close()
    deadline = time.monotonic() + 10
    while True:
        closed = magic(shell, "%server report connections --state closed")
        if "short-lived" in set(closed["name"]) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    row = closed[closed["name"] == "short-lived"].iloc[0]
    assert row["reason"] == "Client Closed" and row["account"] == "APP" and row["stop"] is not None
    assert "short-lived" not in set(magic(shell, "%server report connections")["name"])
    everyone = magic(shell, "%server report connections --state all")
    assert {"short-lived", "pynats-lab"} <= set(everyone["name"])
    assert list(magic(shell, "%server ls --sort conns")["id"]) == [_varz(srv)["server_id"]]
