"""The system account on both servers: `$SYS.REQ.SERVER.*` and `$SYS.REQ.ACCOUNT.*` requests, the envelope and
document of each compared field by field with nats-server's, connect/disconnect and connection-count events, the
STATSZ heartbeat, the imports other accounts get, and what users outside the system account cannot reach.

Values that must differ between the servers (ids, names, times, versions, memory, CPU, counts of nats-server's own
internal subscriptions) are compared by type only (`same_shape`)."""
from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import nats
import pytest

from pynats_lab.session import flush
from tests.core.test_monitoring import json_type

CONFIG = """
server_name: "lab<é>&"
accounts {
  SYS: { users: [{user: sys, password: pw}] }
  APP: { users: [{user: app, password: pw}, {user: app2, password: pw}] }
  OTHER: { users: [{user: other, password: pw}] }
}
system_account: SYS
"""

# nats-server's envelope has fields a lone Python server has no counterpart for (its build's feature flags).
NATS_ONLY_SERVER_FIELDS = {"feature_flags"}


def same_shape(ours, theirs, where: str = "") -> list[str]:
    """Every field of ours is in theirs with the same JSON type, and every field of theirs is in ours (except
    empty ones nats-server omits nowhere else), recursively through objects."""
    problems = []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in theirs.keys() - ours.keys() - NATS_ONLY_SERVER_FIELDS:
            problems.append(f"{where}.{key}: missing here")
        for key in ours.keys() - theirs.keys():
            problems.append(f"{where}.{key}: not in nats-server's document")
        for key in ours.keys() & theirs.keys():
            problems += same_shape(ours[key], theirs[key], f"{where}.{key}")
    elif json_type(ours) != json_type(theirs) and theirs is not None and ours is not None:
        problems.append(f"{where}: {json_type(ours)} here, {json_type(theirs)} in nats-server")
    return problems


async def connect(srv, user: str | None = None, **kw):
    auth = f"{user}:pw@" if user else ""
    return await nats.connect(f"nats://{auth}127.0.0.1:{srv.port}", allow_reconnect=False, **kw)


async def ask(nc, subject: str, body: bytes = b"", timeout: float = 5.0) -> dict:
    msg = await nc.request(subject, body, timeout=timeout)
    return json.loads(msg.data)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Both servers with the accounts above and monitoring on."""
    from tests.servers import RunningServer
    servers = {}
    try:
        for kind in ("nats-server", "embedded"):
            workdir = tmp_path_factory.mktemp(kind)
            (workdir / "server.conf").write_text(CONFIG)
            servers[kind] = RunningServer(kind, ["-c", str(workdir / "server.conf"), "-m", "-1"], workdir).start()
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()


def both(pair, fn):
    """Run `fn(srv)` (a coroutine function) on both servers; returns {kind: result}."""
    return {kind: asyncio.run(fn(srv)) for kind, srv in pair.items()}


KINDS = ("STATSZ", "VARZ", "CONNZ", "SUBSZ", "JSZ", "HEALTHZ", "ACCOUNTZ", "LEAFZ", "ROUTEZ", "GATEWAYZ", "IDZ")


def test_every_server_kind_answers_with_nats_servers_document(pair):
    async def run(srv):
        nc = await connect(srv, "sys")
        app = await connect(srv, "app", name="worker")
        try:
            out = {kind: await ask(nc, f"$SYS.REQ.SERVER.PING.{kind}") for kind in KINDS}
            out["PING"] = await ask(nc, "$SYS.REQ.SERVER.PING")
            idz = out["IDZ"]
            out["direct"] = await ask(nc, f"$SYS.REQ.SERVER.{idz['id']}.CONNZ", b'{"auth": true}')
            return out, idz["id"], idz["name"]
        finally:
            await app.close()
            await nc.close()

    results = both(pair, run)
    ours, our_id, our_name = results["embedded"]
    theirs, _, _ = results["nats-server"]
    for kind in ours:
        doc = ours[kind]
        problems = same_shape(doc, theirs[kind], kind)
        # nats-server's varz lists its own build; its jsz/statsz JetStream sections exist only with -js.
        assert not [p for p in problems if "disk_io_wait_stats" not in p and ".feature_flags" not in p
                    and "git_commit" not in p and "config_digest" not in p], problems
        if kind != "IDZ":
            assert doc["server"]["id"] == our_id and doc["server"]["name"] == our_name, kind
    assert ours["IDZ"].keys() == theirs["IDZ"].keys() == {"name", "host", "id"}
    for doc in (ours, theirs):
        assert doc["LEAFZ"]["data"]["leafs"] == [] and doc["ROUTEZ"]["data"]["routes"] == []
        assert doc["GATEWAYZ"]["data"]["outbound_gateways"] == {}
        assert doc["HEALTHZ"]["data"] == {"status": "ok", "status_code": 200}
        assert doc["ACCOUNTZ"]["data"]["system_account"] == "SYS"
        assert {"SYS", "APP", "OTHER", "$G"} <= set(doc["ACCOUNTZ"]["data"]["accounts"])
        assert doc["PING"]["statsz"]["connections"] == 2
        conns = doc["direct"]["data"]["connections"]
        assert sorted((c["account"], c["authorized_user"]) for c in conns) == [("APP", "app"), ("SYS", "sys")]


@pytest.mark.parametrize("body, code, description", [
    (b"{bad", 400, "invalid character 'b' looking for beginning of object key string"),
    (b'{"sort": "zzz"}', 500, "invalid sorting option: zzz"),
    (b'{"offset": "x"}', 400, None),
    (b"[1]", 400, None),
])
def test_bad_request_bodies_get_nats_servers_error(pair, body, code, description):
    async def run(srv):
        nc = await connect(srv, "sys")
        try:
            return await ask(nc, "$SYS.REQ.SERVER.PING.CONNZ", body)
        finally:
            await nc.close()

    results = both(pair, run)
    for kind, doc in results.items():
        assert doc["error"]["code"] == code, (kind, doc)
        assert ("data" in doc) == ("data" in results["nats-server"]), kind
    if description is not None:
        assert results["embedded"]["error"]["description"] == results["nats-server"]["error"]["description"] \
            == description
    else:
        assert results["embedded"]["error"]["description"] == results["nats-server"]["error"]["description"]


def test_a_filter_that_does_not_match_this_server_gets_no_answer(pair):
    async def run(srv):
        nc = await connect(srv, "sys")
        try:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("$SYS.REQ.SERVER.PING.VARZ", b'{"server_name": "no-such-server"}', reply=inbox)
            await nc.publish("$SYS.REQ.SERVER.PING.VARZ", b'{"host": "127.0.0.1"}', reply=inbox)
            first = await sub.next_msg(timeout=5)
            await flush(nc)
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.5)
            return json.loads(first.data)
        finally:
            await nc.close()

    for kind, doc in both(pair, run).items():
        assert "data" in doc, kind


def test_account_requests(pair):
    async def run(srv):
        nc = await connect(srv, "sys")
        app = await connect(srv, "app", name="worker")
        try:
            await app.subscribe("work.>")
            await flush(app)
            out = {kind: await ask(nc, f"$SYS.REQ.ACCOUNT.APP.{kind}")
                   for kind in ("CONNZ", "SUBSZ", "INFO", "STATZ", "JSZ", "CONNS")}
            out["missing"] = await ask(nc, "$SYS.REQ.ACCOUNT.NOPE.INFO")
            return out
        finally:
            await app.close()
            await nc.close()

    results = both(pair, run)
    ours, theirs = results["embedded"], results["nats-server"]
    for kind in ("CONNZ", "STATZ", "CONNS"):
        assert not same_shape(ours[kind], theirs[kind], kind), kind
    for kind, doc in results.items():
        assert [c["name"] for c in doc["CONNZ"]["data"]["connections"]] == ["worker"], kind
        subjects = [s["subject"] for s in doc["SUBSZ"]["data"]["subscriptions_list"]]
        assert "work.>" in subjects and all(s["account"] == "APP" for s in doc["SUBSZ"]["data"]["subscriptions_list"])
        info = doc["INFO"]["data"]
        assert info["account_name"] == "APP" and info["client_connections"] == 1, kind
        assert {(i["to"], i["account"]) for i in info["imports"]} >= {("$SYS.REQ.SERVER.PING.CONNZ", "SYS"),
                                                                      ("$SYS.REQ.ACCOUNT.PING.STATZ", "SYS"),
                                                                      ("$SYS.REQ.USER.INFO", "SYS")}, kind
        stat = doc["STATZ"]["data"]["account_statz"]
        assert [(s["acc"], s["conns"]) for s in stat] == [("APP", 1)], kind
        assert doc["CONNS"]["type"] == "io.nats.server.advisory.v1.account_connections"
        assert doc["CONNS"]["acc"] == "APP" and doc["CONNS"]["conns"] == 1, kind
        assert doc["JSZ"]["error"] == {"code": 500, "description": "jetstream not enabled"}, kind
        assert doc["missing"]["error"] == {"code": 500, "description": "Account NOPE does not exist"}, kind
    assert not same_shape(ours["INFO"]["data"]["imports"][0], theirs["INFO"]["data"]["imports"][0], "imports")


def test_connect_and_disconnect_events(pair):
    async def run(srv):
        nc = await connect(srv, "sys")
        events = []
        try:
            async def keep(msg):
                events.append((msg.subject, json.loads(msg.data)))

            await nc.subscribe("$SYS.ACCOUNT.>", cb=keep)
            await flush(nc)
            app = await connect(srv, "app", name="worker")
            await app.publish("x", b"hello")
            await flush(app)
            await app.close()
            for _ in range(200):
                if any(s.endswith(".DISCONNECT") for s, _ in events):
                    break
                await asyncio.sleep(0.025)
            return events
        finally:
            await nc.close()

    results = both(pair, run)
    by_subject = {kind: {s: d for s, d in ev} for kind, ev in results.items()}
    ours, theirs = by_subject["embedded"], by_subject["nats-server"]
    for subject in ("$SYS.ACCOUNT.APP.CONNECT", "$SYS.ACCOUNT.APP.DISCONNECT", "$SYS.ACCOUNT.APP.SERVER.CONNS"):
        assert subject in ours and subject in theirs, subject
        assert not same_shape(ours[subject], theirs[subject], subject), subject
    for docs in (ours, theirs):
        connect_ev, gone = docs["$SYS.ACCOUNT.APP.CONNECT"], docs["$SYS.ACCOUNT.APP.DISCONNECT"]
        assert connect_ev["type"] == "io.nats.server.advisory.v1.client_connect"
        assert {k: connect_ev["client"][k] for k in ("acc", "user", "name", "kind", "client_type")} == \
            {"acc": "APP", "user": "app", "name": "worker", "kind": "Client", "client_type": "nats"}
        assert gone["type"] == "io.nats.server.advisory.v1.client_disconnect"
        assert gone["reason"] == "Client Closed"
        assert gone["sent"] == {"msgs": 1, "bytes": 5}
        assert docs["$SYS.ACCOUNT.APP.SERVER.CONNS"]["acc"] == "APP"


def test_info_events_and_monitoring_escape_json_as_go_does(pair):
    """`<`, `>`, `&` and U+2028 written as \\u003c ... (Go's encoding/json), UTF-8 as it is, on every surface."""
    name = "a<b>&c\u2028é"

    async def run(srv):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            info = s.recv(4096)
        nc = await connect(srv, "sys")
        try:
            sub = await nc.subscribe("$SYS.ACCOUNT.APP.CONNECT")
            await flush(nc)
            app = await connect(srv, "app", name=name)
            event = (await sub.next_msg(5)).data
            ping = (await nc.request("$SYS.REQ.SERVER.PING.CONNZ", b"", timeout=5)).data
            pages = {}
            for page in ("varz", "connz"):
                with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/{page}", timeout=10) as r:
                    pages[page] = r.read()
            await app.close()
            return info, event, ping, pages
        finally:
            await nc.close()

    written_name = '"a\\u003cb\\u003e\\u0026c\\u2028é"'.encode()
    written_server = '"lab\\u003cé\\u003e\\u0026"'.encode()
    for kind, (info, event, ping, pages) in both(pair, run).items():
        assert b'"server_name":' + written_server in info, (kind, info)
        assert b'"name":' + written_name in event and b'"name":' + written_server in event, (kind, event)
        assert b'"name":' + written_name in ping, (kind, ping)
        assert b'"name": ' + written_name in pages["connz"], kind
        assert b'"server_name": ' + written_server in pages["varz"], kind
        assert json.loads(event)["client"]["name"] == name


def test_statsz_heartbeat(pair):
    async def run(srv):
        nc = await connect(srv, "sys")
        try:
            sub = await nc.subscribe("$SYS.SERVER.*.STATSZ")
            msg = await sub.next_msg(timeout=15)
            return json.loads(msg.data)
        finally:
            await nc.close()

    results = both(pair, run)
    assert not same_shape(results["embedded"], results["nats-server"], "statsz")
    for doc in results.values():
        assert doc["statsz"]["connections"] >= 1


def test_other_accounts_reach_only_their_own_imports(pair):
    async def run(srv):
        app = await connect(srv, "app", name="worker")
        other = await connect(srv, "other", name="elsewhere")
        try:
            out = {}
            for subject in ("$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.VARZ", "$SYS.REQ.ACCOUNT.OTHER.CONNZ"):
                with pytest.raises(nats.errors.NoRespondersError):
                    await app.request(subject, b"", timeout=5)
            out["connz"] = await ask(app, "$SYS.REQ.SERVER.PING.CONNZ")
            out["statz"] = await ask(app, "$SYS.REQ.ACCOUNT.PING.STATZ")
            out["user"] = await ask(app, "$SYS.REQ.USER.INFO")
            return out
        finally:
            await app.close()
            await other.close()

    results = both(pair, run)
    for kind, doc in results.items():
        assert [c.get("name") for c in doc["connz"]["data"]["connections"]] == ["worker"], kind
        assert [s["acc"] for s in doc["statz"]["data"]["account_statz"]] == ["APP"], kind
        assert {k: doc["user"]["data"][k] for k in ("user", "account")} == {"user": "app", "account": "APP"}, kind


def test_default_server_has_a_system_account_nobody_is_in(start_server):
    srv = start_server("-m", "-1")

    async def run():
        nc = await connect(srv)
        try:
            assert nc._server_info.get("acc_is_sys") is None
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request("$SYS.REQ.SERVER.PING", b"", timeout=5)
            connz = await ask(nc, "$SYS.REQ.SERVER.PING.CONNZ")
            return connz
        finally:
            await nc.close()

    connz = asyncio.run(run())
    assert connz["data"]["num_connections"] == 1
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/accountz", timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["system_account"] == "$SYS" and set(doc["accounts"]) == {"$G", "$SYS"}


BAD_BODIES = [b"{", b"[]", b"null", b"42", b'"x"', b'{"offset": -5, "limit": -1}', b'{"state": 99}',
              b'{"sort": "stop"}', b'{"sort": 5}', b'\xff\xfe', b'{"accounts": "x"}', b'{"account": "NOPE"}',
              b'{"offset": 99999999999999999999}', b'{"subscriptions": "yes"}', b'{"test": "a.*"}',
              b'{"acc": "NOPE", "auth": true}', b'{"streams": true, "consumer": true, "config": true}']
BAD_SUBJECTS = [f"$SYS.REQ.SERVER.PING.{k}" for k in KINDS if k != "IDZ"] + \
    [f"$SYS.REQ.ACCOUNT.APP.{k}" for k in ("CONNZ", "SUBSZ", "INFO", "STATZ", "JSZ", "LEAFZ")]


def test_bad_request_bodies_everywhere_get_nats_servers_answer_and_no_crash(pair):
    """Every service with every bad body: answered (or not) as nats-server, with its error code; the embedded
    server logs no failure and still answers afterwards."""
    async def run(srv):
        nc = await connect(srv, "sys")
        out = {}

        async def one(subject, body):
            try:
                doc = await ask(nc, subject, body, timeout=1)
                err = doc.get("error")
                out[(subject, body)] = err["code"] if err else "ok"
            except nats.errors.TimeoutError:
                out[(subject, body)] = "no answer"

        try:
            # One service's bodies at a time, asked together: the ones that get no answer wait out one
            # timeout between them, not one each.
            for subject in BAD_SUBJECTS:
                await asyncio.gather(*(one(subject, body) for body in BAD_BODIES))
            assert "statsz" in await ask(nc, "$SYS.REQ.SERVER.PING")
            return out
        finally:
            await nc.close()

    results = both(pair, run)
    differ = {k: (results["embedded"][k], v) for k, v in results["nats-server"].items()
              if results["embedded"][k] != v}
    assert not differ, sorted(differ.items())[:8]
    assert "failed" not in pair["embedded"].logs


def test_shutdown_event(start_server):
    """A system user hears `$SYS.SERVER.<id>.SHUTDOWN` (the server's ServerInfo) when the server stops."""
    srv = start_server(config=CONFIG)

    async def run():
        nc = await connect(srv, "sys")
        got = []

        async def keep(msg):
            got.append(msg)

        await nc.subscribe("$SYS.SERVER.*.SHUTDOWN", cb=keep)
        await flush(nc)
        idz = await ask(nc, "$SYS.REQ.SERVER.PING.IDZ")
        await asyncio.get_running_loop().run_in_executor(None, srv.stop)
        for _ in range(200):
            if got or nc.is_closed:
                break
            await asyncio.sleep(0.025)
        await nc.close()
        assert got, "no shutdown event"
        return idz, got[0].subject, json.loads(got[0].data)

    idz, subject, doc = asyncio.run(run())
    assert subject == f"$SYS.SERVER.{idz['id']}.SHUTDOWN"
    assert doc["id"] == idz["id"] and doc["name"] == idz["name"] and "seq" in doc


def test_kick_ldm_and_reload_requests(start_server):
    """`$SYS.REQ.SERVER.<id>.KICK` closes a client, `.LDM` sends it an INFO with ldm, `.RELOAD` reloads the
    configuration; unknown client ids get nats-server's errors, a body that is not {"cid": N} no answer."""
    from tests.core.test_lame_duck import _lines_until_closed
    from tests.raw import RawClient

    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=CONFIG, kind=kind)

        async def run(srv=srv):
            nc = await connect(srv, "sys")
            try:
                sid = (await ask(nc, "$SYS.REQ.SERVER.PING.IDZ"))["id"]
                victim = RawClient(srv)
                victim.connect(user="app", **{"pass": "pw"})
                assert victim.ping() == []
                cid = victim.info["client_id"]
                out = {}
                for name, body in (("ldm", {"cid": cid}), ("ldm_unknown", {"cid": 99999}),
                                   ("kick_unknown", {"cid": 99999}), ("kick", {"cid": cid}), ("reload", {})):
                    verb = name.split("_")[0].upper()
                    doc = await ask(nc, f"$SYS.REQ.SERVER.{sid}.{verb}", json.dumps(body).encode())
                    out[name] = doc.get("error") or sorted(doc)
                with pytest.raises(nats.errors.TimeoutError):
                    await nc.request(f"$SYS.REQ.SERVER.{sid}.KICK", b"not json", timeout=1)
                lines = _lines_until_closed(victim.sock, 10)
                out["victim_ldm"] = any(json.loads(line[5:]).get("ldm") for line in lines if line.startswith("INFO"))
                victim.close()
                return out
            finally:
                await nc.close()

        results[kind] = asyncio.run(run())
    assert results["embedded"] == results["nats-server"]
    assert results["embedded"]["kick"] == ["server"] and results["embedded"]["victim_ldm"] is True
    assert results["embedded"]["kick_unknown"] == {"code": 500, "description": "no such client or leafnode id"}


def test_connz_filter_subject(pair):
    """CONNZ's filter_subject (with an account): only connections with a subscription that collides with it;
    without an account nats-server's error."""
    async def run(srv):
        nc = await connect(srv, "sys")
        a = await connect(srv, "app", name="orders-reader")
        b = await connect(srv, "app", name="other")
        try:
            await a.subscribe("orders.*")
            await b.subscribe("news")
            await flush(a)
            await flush(b)
            doc = await ask(nc, "$SYS.REQ.SERVER.PING.CONNZ", b'{"acc": "APP", "filter_subject": "orders.new"}')
            bad = await ask(nc, "$SYS.REQ.SERVER.PING.CONNZ", b'{"filter_subject": "orders.new"}')
            return [c.get("name") for c in doc["data"]["connections"]], bad["error"]
        finally:
            for c in (a, b, nc):
                await c.close()

    results = both(pair, run)
    assert results["embedded"] == results["nats-server"] == (
        ["orders-reader"], {"code": 500, "description": "filter by subject only valid with account filtering"})


def test_authentication_failure_events(pair):
    """A refused CONNECT: `$SYS.SERVER.<id>.CLIENT.AUTH.ERR` and `$SYS.ACCOUNT.$G.DISCONNECT` with nats-server's
    JSON and reason."""
    from tests.raw import RawClient

    async def run(srv):
        nc = await connect(srv, "sys")
        got = []

        async def keep(msg):
            got.append((msg.subject.split(".")[-3:] if "AUTH" in msg.subject else msg.subject, json.loads(msg.data)))

        await nc.subscribe("$SYS.SERVER.*.CLIENT.AUTH.ERR", cb=keep)
        await nc.subscribe("$SYS.ACCOUNT.$G.DISCONNECT", cb=keep)
        await flush(nc)
        intruder = RawClient(srv)
        intruder.connect(user="app", name="intruder", **{"pass": "wrong"})
        intruder.send("PING\r\n")
        assert intruder.expect_closed() == ["-ERR 'Authorization Violation'"]
        for _ in range(200):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.025)
        await nc.close()
        return sorted(got, key=lambda x: str(x[0]))

    results = both(pair, run)
    ours, theirs = results["embedded"], results["nats-server"]
    assert [s for s, _ in ours] == [s for s, _ in theirs] == ["$SYS.ACCOUNT.$G.DISCONNECT", ["CLIENT", "AUTH", "ERR"]]
    for (_, mine), (_, real) in zip(ours, theirs):
        assert not same_shape(mine, real, "event")
        assert (mine["reason"], mine["client"]["user"], mine["client"]["name"]) == \
            (real["reason"], real["client"]["user"], real["client"]["name"]) == ("Authentication Failure", "app",
                                                                                  "intruder")
