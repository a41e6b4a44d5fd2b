"""Reloading the configuration of a running server (SIGHUP), on every server kind: users added and removed,
permissions changed under live connections, and bad or unsupported changes refused with the old config kept."""
from __future__ import annotations

import asyncio
import time

import nats
import pytest

from tests.raw import RawClient
from tests.test_auth import can_connect, run


def users_config(*users: str, extra: str = "") -> str:
    entries = "\n".join(f"    {{{u}}}" for u in users)
    return f"authorization {{\n  users = [\n{entries}\n  ]\n}}\n{extra}"


def rewrite_and_reload(srv, config: str) -> str:
    (srv.workdir / "server.conf").write_text(config)
    before = len(srv.logs.splitlines(keepends=True))
    srv.reload()
    return "".join(srv.logs.splitlines(keepends=True)[before:])


def login(srv, user: str, password: str) -> RawClient:
    c = RawClient(srv)
    c.connect(user=user, **{"pass": password})
    assert c.ping() == []
    return c


def test_a_user_added_to_the_config_can_connect_after_reload(start_server):
    srv = start_server(config=users_config("user: alice, password: a"))
    assert not run(can_connect(srv.url, user="bob", password="b"))
    with login(srv, "alice", "a") as alice:
        logs = rewrite_and_reload(srv, users_config("user: alice, password: a", "user: bob, password: b"))
        assert "Reloaded server configuration" in logs
        assert run(can_connect(srv.url, user="bob", password="b"))
        alice.send("SUB x 1\r\nPUB x 2\r\nok\r\n")
        assert alice.read_msg() == ("x", b"ok")


def test_connections_of_a_removed_user_are_closed_and_others_keep_working(start_server):
    srv = start_server(config=users_config("user: alice, password: a", "user: bob, password: b"))
    with login(srv, "alice", "a") as alice, login(srv, "bob", "b") as bob:
        rewrite_and_reload(srv, users_config("user: alice, password: a"))
        assert bob.expect_closed() == []  # closed without an error message
        assert alice.ping() == []
    assert not run(can_connect(srv.url, user="bob", password="b"))


def test_a_changed_password_disconnects_with_authorization_violation(start_server):
    srv = start_server(config=users_config("user: alice, password: old", "user: bob, password: b"))
    with login(srv, "alice", "old") as alice, login(srv, "bob", "b") as bob:
        rewrite_and_reload(srv, users_config("user: alice, password: new", "user: bob, password: b"))
        assert alice.expect_closed() == ["-ERR 'Authorization Violation'"]
        assert bob.ping() == []
    assert run(can_connect(srv.url, user="alice", password="new"))


def test_a_changed_token_disconnects_clients_of_the_old_one(start_server):
    srv = start_server(config="authorization { token: one }\n")
    with RawClient(srv) as c:
        c.connect(auth_token="one")
        assert c.ping() == []
        rewrite_and_reload(srv, "authorization { token: two }\n")
        assert c.expect_closed() == ["-ERR 'Authorization Violation'"]
    assert run(can_connect(srv.url, token="two"))


def test_changed_permissions_apply_to_live_connections(start_server):
    old = "user: svc, password: pw, permissions: {publish: [\"a\", \"b\"], subscribe: [\"a\", \"b\", \"q.* g1\"]}"
    new = "user: svc, password: pw, permissions: {publish: \"b\", subscribe: \"b\"}"
    srv = start_server(config=users_config(old, "user: admin, password: pw"))
    with login(srv, "svc", "pw") as svc, login(srv, "admin", "pw") as admin:
        svc.send("SUB a 1\r\nSUB b 2\r\nSUB q.x g1 3\r\n")
        assert svc.ping() == []
        logs = rewrite_and_reload(srv, users_config(new, "user: admin, password: pw"))
        assert "Reloaded server configuration" in logs
        errors = sorted(svc.ping())
        assert errors == [
            "-ERR 'Permissions Violation for Subscription to \"a\" (sid \"1\")'",
            "-ERR 'Permissions Violation for Subscription to \"q.x\" using queue \"g1\" (sid \"3\")'",
        ]
        svc.send("PUB a 1\r\nx\r\n")
        assert svc.ping() == ["-ERR 'Permissions Violation for Publish to \"a\"'"]
        admin.send("PUB a 1\r\n1\r\nPUB q.x 1\r\n2\r\nPUB b 1\r\n3\r\n")
        admin.ping()
        assert svc.read_msg() == ("b", b"3")  # the removed subscriptions get nothing
        assert svc.ping() == []


def test_a_bad_config_keeps_the_old_one(start_server):
    srv = start_server(config=users_config("user: alice, password: a"))
    with login(srv, "alice", "a") as alice:
        logs = rewrite_and_reload(srv, users_config("user: alice, password: a", "user: bob, password: b")
                                  + "max_payload: [oops\n")
        assert "Failed to reload server configuration" in srv.wait_for_log("Failed to reload", 5)
        assert "Reloaded server configuration" not in logs
        assert alice.ping() == []
    assert not run(can_connect(srv.url, user="bob", password="b"))
    assert run(can_connect(srv.url, user="alice", password="a"))


@pytest.mark.parametrize("before,after,field", [
    ("server_name: one\n", "server_name: two\n", "ServerName"),
    (users_config("user: a, password: b") + "no_auth_user: a\n",
     users_config("user: a, password: b", "user: c, password: d") + "no_auth_user: c\n", "NoAuthUser"),
    ("server_name: one\n", "server_name: one\nfeature_flags { js_ack_fc_v2: true, b: false }\n",
     "FeatureFlags: old=map[], new=map[b:false js_ack_fc_v2:true]"),
    # jetstream {} options nats-server cannot change at run time (cluster ones do nothing on the embedded server)
    ('jetstream { store_dir: "store" }\n', 'jetstream { store_dir: "store", unique_tag: " AZ" }\n',
     "JetStreamUniqueTag: old=, new=az"),
    ('jetstream { store_dir: "store", sync: "2m" }\n', 'jetstream { store_dir: "store", sync: "1m" }\n',
     "SyncInterval: old=2m0s, new=1m0s"),
])
def test_options_that_cannot_be_reloaded_are_refused(start_server, before, after, field):
    srv = start_server(config=before)
    rewrite_and_reload(srv, after)
    line = srv.wait_for_log("Failed to reload", 5)
    assert f"config reload not supported for {field}" in line


def test_reload_through_nats_py_clients(start_server):
    """A learner's view: a new user works at once, and the existing client never notices."""
    srv = start_server(config=users_config("user: alice, password: a"))

    async def scenario():
        alice = await nats.connect(srv.url, user="alice", password="a")
        sub = await alice.subscribe("greet")
        (srv.workdir / "server.conf").write_text(users_config("user: alice, password: a", "user: bob, password: b"))
        await asyncio.get_running_loop().run_in_executor(None, srv.reload)
        bob = await nats.connect(srv.url, user="bob", password="b")
        await bob.publish("greet", b"hello alice")
        msg = await sub.next_msg(10)
        await bob.close()
        await alice.close()
        return msg.data

    assert run(scenario()) == b"hello alice"


def test_signal_reload_with_a_pid(start_server, server_kind):
    """`--signal reload=PID`, as an operator would type it (nats-server's flag, on both servers)."""
    import subprocess

    from tests.servers import server_command, subprocess_env

    srv = start_server(config=users_config("user: alice, password: a"))
    (srv.workdir / "server.conf").write_text(users_config("user: alice, password: a", "user: bob, password: b"))
    before = len(srv.logs.splitlines())
    done = subprocess.run(server_command(server_kind) + ["--signal", f"reload={srv.proc.pid}"],
                          capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    srv.wait_for_log("Reloaded server configuration", 10, since=before)
    assert run(can_connect(srv.url, user="bob", password="b"))


def test_embedded_server_python_api_reload(tmp_path):
    """EmbeddedServer(config_file=...).reload() in-process: a new user works, a bad file is refused."""
    from embedded_server import EmbeddedServer
    from embedded_server.embedded import EmbeddedServerError

    conf = tmp_path / "server.conf"
    conf.write_text(users_config("user: alice, password: a"))
    with EmbeddedServer(config_file=conf) as es:
        assert not run(can_connect(es.client_url, user="bob", password="b"))
        conf.write_text(users_config("user: alice, password: a", "user: bob, password: b"))
        es.reload()
        assert run(can_connect(es.client_url, user="bob", password="b"))
        conf.write_text("authorization { users = [ {user: bob} ]\n")
        with pytest.raises(EmbeddedServerError, match="Unexpected EOF"):
            es.reload()
        assert run(can_connect(es.client_url, user="bob", password="b"))


def test_jetstream_limits_may_be_raised_not_lowered(start_server, tmp_path):
    """nats-server 2.12.7+: a reload raises max_memory_store / max_file_store at once; lowering them or making
    them dynamic is refused and the running limits stay."""
    import json
    import urllib.request

    def config(mem: str, store: str, consumers: int | None = None) -> str:
        limits = "" if consumers is None else f"  limits {{ default_max_consumers: {consumers} }}\n"
        return (f'jetstream {{\n  store_dir: "{tmp_path}"\n  max_memory_store: {mem}\n  max_file_store: {store}\n'
                f'{limits}}}\n')

    def limits():
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/varz", timeout=5) as resp:
            js = json.load(resp)["jetstream"]
        return js["config"]["max_memory"], js["config"]["max_storage"], js["limits"]["default_max_consumers"]

    def settled(expected):
        # nats-server applies a reload's JetStream limits a moment after it logs the reload
        deadline = time.monotonic() + 5
        while limits() != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return limits()

    srv = start_server("-m", "-1", config=config("10MB", "20MB"))
    assert limits() == (10 << 20, 20 << 20, 1000)
    logs = rewrite_and_reload(srv, config("20MB", "40MB"))
    assert "Reloaded: JetStream max_mem_store = 20.00 MB" in logs
    assert "Reloaded: JetStream max_file_store = 40.00 MB" in logs
    assert settled((20 << 20, 40 << 20, 1000)) == (20 << 20, 40 << 20, 1000)
    for mem, why in (("10MB", "decreasing jetstream max memory and store"), ("-1", "jetstream max memory and max store")):
        since = len(srv.logs.splitlines())
        rewrite_and_reload(srv, config(mem, "40MB"))
        assert f"config reload not supported for {why}" in srv.wait_for_log("Failed to reload", 5, since)
        assert limits() == (20 << 20, 40 << 20, 1000)
    # nats-server 2.15's default consumer limit reloads too, at any value (alone here: with a `limits` block in
    # the config, nats-server 2.15.1 sometimes shows the old max_memory in /varz after raising it)
    assert "Reloaded: JetStream limits" in rewrite_and_reload(srv, config("20MB", "40MB", 3))
    assert settled((20 << 20, 40 << 20, 3)) == (20 << 20, 40 << 20, 3)
    # an unknown key in the block makes the whole file fail, and nothing changes
    since = len(srv.logs.splitlines())
    rewrite_and_reload(srv, config("40MB", "40MB", 3).replace("limits {", "limits { bogus: 1,"))
    assert 'unknown field "bogus"' in srv.wait_for_log("Failed to reload", 5, since)
    assert limits() == (20 << 20, 40 << 20, 3)
