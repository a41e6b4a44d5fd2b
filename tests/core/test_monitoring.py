"""Monitoring (-m): the same client activity on both servers, then /varz, /connz, /subsz and /healthz compared
field by field: every field the embedded server reports exists in nats-server's document with the same JSON
type, the core counters agree, and the fields a dashboard needs are all there."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.raw import RawClient
from tests.servers import RunningServer

CORE_VARZ = {"server_id", "server_name", "version", "proto", "go", "host", "port", "max_connections", "ping_interval",
             "ping_max", "http_host", "http_port", "auth_timeout", "max_control_line", "max_payload", "max_pending",
             "write_deadline", "start", "now", "uptime", "mem", "cores", "cpu", "connections", "total_connections",
             "in_msgs", "in_bytes", "out_msgs", "out_bytes", "slow_consumers", "subscriptions", "http_req_stats",
             "config_load_time"}
CORE_CONN = {"cid", "kind", "type", "ip", "port", "start", "last_activity", "rtt", "uptime", "idle", "pending_bytes",
             "in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions", "name", "lang", "version",
             "subscriptions_list"}


def get(srv, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}{path}", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return json.loads(r.read())


def json_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def same_shape(ours: dict, theirs: dict, where: str) -> list[str]:
    problems = []
    for key, value in ours.items():
        if key not in theirs:
            if value not in ({}, [], 0, "", False):
                problems.append(f"{where}.{key}: not in nats-server's document")
            continue
        if json_type(value) != json_type(theirs[key]):
            problems.append(f"{where}.{key}: {json_type(value)} here, {json_type(theirs[key])} in nats-server")
    return problems


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Both servers with monitoring, each with one client that subscribed twice and published once."""
    servers, clients = {}, []
    try:
        for kind in ("nats-server", "embedded"):
            srv = RunningServer(kind, ["-m", "-1"], tmp_path_factory.mktemp(kind)).start()
            servers[kind] = srv
            c = RawClient(srv)
            clients.append(c)
            c.connect(name="monitored", lang="python", version="1.0")
            c.send("SUB foo 1\r\nSUB bar q 2\r\nPUB foo 2\r\nhi\r\n")
            assert c.read_msg() == ("foo", b"hi")
            assert c.ping() == []
        yield servers
    finally:
        for c in clients:
            c.close()
        for srv in servers.values():
            srv.stop()


def test_varz(pair):
    ours, theirs = get(pair["embedded"], "/varz"), get(pair["nats-server"], "/varz")
    assert CORE_VARZ <= ours.keys()
    assert not same_shape(ours, theirs, "varz")
    for key in ("connections", "total_connections", "in_msgs", "out_msgs", "in_bytes", "out_bytes",
                "slow_consumers", "max_payload", "max_pending", "ping_max"):
        assert ours[key] == theirs[key], key
    assert ours["port"] == pair["embedded"].port and ours["http_req_stats"]["/varz"] >= 1


def test_connz_with_subscriptions(pair):
    ours, theirs = get(pair["embedded"], "/connz?subs=1"), get(pair["nats-server"], "/connz?subs=1")
    assert not same_shape(ours, theirs, "connz")
    assert ours["num_connections"] == theirs["num_connections"] == 1
    mine, real = ours["connections"][0], theirs["connections"][0]
    assert CORE_CONN <= mine.keys()
    assert not same_shape(mine, real, "connz.connections[0]")
    for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions", "name", "lang", "version"):
        assert mine[key] == real[key], key
    assert sorted(mine["subscriptions_list"]) == sorted(real["subscriptions_list"]) == ["bar", "foo"]


def test_connz_detail_and_paging(pair):
    for kind, srv in pair.items():
        detail = get(srv, "/connz?subs=detail")["connections"][0]["subscriptions_list_detail"]
        assert sorted((d["subject"], d.get("qgroup"), d["sid"], d["msgs"]) for d in detail) == \
            [("bar", "q", "2", 0), ("foo", None, "1", 1)], kind
        assert get(srv, "/connz?offset=5")["connections"] == [], kind


def test_closed_connections_are_remembered(pair):
    for kind, srv in pair.items():
        c = RawClient(srv)
        c.connect(name="leaving")
        c.send("SUB gone.* 7\r\n")
        assert c.ping() == []
        c.send("".join(f"PUB gone.{x} 2\r\nhi\r\n" for x in "abc"))   # one read: delivered as a batch
        assert [c.read_msg() for _ in range(3)] == [(f"gone.{x}", b"hi") for x in "abc"]
        assert c.ping() == []
        c.close()
        deadline = time.monotonic() + 5
        while True:
            closed = get(srv, "/connz?state=closed&subs=detail")["connections"]
            if any(x.get("name") == "leaving" for x in closed) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        leaving = next(x for x in closed if x.get("name") == "leaving")
        assert leaving["reason"] == "Client Closed" and "stop" in leaving, kind
        # the subscriptions it had, with what they had received when it closed
        assert leaving["subscriptions"] == 1, kind
        assert [(d["subject"], d["sid"], d["msgs"]) for d in leaving["subscriptions_list_detail"]] == \
            [("gone.*", "7", 3)], kind
        assert "account" not in leaving, kind
        # With auth=true a connection names its account, closed or open, except the global account $G.
        closed = get(srv, "/connz?state=closed&auth=true")["connections"]
        assert "account" not in next(x for x in closed if x.get("name") == "leaving"), kind
        assert all("account" not in x for x in get(srv, "/connz?auth=true")["connections"]), kind


def test_subsz(pair):
    ours, theirs = get(pair["embedded"], "/subsz?subs=1"), get(pair["nats-server"], "/subsz?subs=1")
    assert not same_shape(ours, theirs, "subsz")
    # Both servers list the system account's services and the system imports of $G: the client's own are compared.
    mine = {(s["subject"], s.get("qgroup")) for s in ours["subscriptions_list"]
            if s["account"] == "$G" and not s["subject"].startswith("$SYS.")}
    real = {(s["subject"], s.get("qgroup")) for s in theirs["subscriptions_list"]
            if s["account"] == "$G" and not s["subject"].startswith("$SYS.")}
    assert {s["account"] for s in ours["subscriptions_list"]} == {s["account"] for s in theirs["subscriptions_list"]}
    assert mine == real == {("foo", None), ("bar", "q")}
    by_subject = {s["subject"]: s for s in theirs["subscriptions_list"]}
    for entry in ours["subscriptions_list"]:
        if entry["subject"] in by_subject:
            assert not same_shape(entry, by_subject[entry["subject"]], "subsz.subscriptions_list[]")


def test_healthz_and_errors(pair):
    for kind, srv in pair.items():
        assert get(srv, "/healthz") == {"status": "ok"}, kind
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv, "/connz?state=nonsense")
        assert e.value.code == 400, kind
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv, "/no-such-page")
        assert e.value.code == 404, kind


def test_connz_sort_and_state_and_subsz_test_answer_as_nats_server(start_server):
    """Every /connz sort option with every state (sort order by connection name where it is deterministic,
    nats-server's 400 where it refuses), and /subsz?test= with and without subs=1, on both servers."""
    import asyncio

    import nats

    from pynats_lab.session import flush

    sorts = ["cid", "start", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from", "last", "idle",
             "uptime", "stop", "reason", "rtt", "bogus"]
    ordered = {"cid", "subs", "msgs_from", "bytes_from"}
    answers = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server("-m", "-1", kind=kind)

        async def activity(srv=srv):
            a = await nats.connect(srv.url, name="a")
            b = await nats.connect(srv.url, name="b")
            c = await nats.connect(srv.url, name="c")
            await a.subscribe("foo.*")
            await b.subscribe("foo.bar", queue="q")
            await b.subscribe("x")
            for _ in range(3):
                await a.publish("x", b"hi")
            await flush(a)
            await flush(b)
            await c.close()
            return a, b

        loop = asyncio.new_event_loop()
        a, b = loop.run_until_complete(activity())
        deadline = time.monotonic() + 10
        while not get(srv, "/connz?state=closed")["connections"] and time.monotonic() < deadline:
            time.sleep(0.05)
        out = {}
        for sort in sorts:
            for state in ("open", "closed", "all"):
                path = f"/connz?sort={sort}&state={state}"
                try:
                    conns = get(srv, path)["connections"]
                    out[path] = [c.get("name") for c in conns] if sort in ordered else len(conns)
                except urllib.error.HTTPError as e:
                    out[path] = (e.code, e.read().decode())
        for path in ("/subsz?test=foo.bar", "/subsz?test=foo.bar&subs=1", "/subsz?test=foo.*"):
            try:
                doc = get(srv, path)
                out[path] = sorted((s["subject"], s.get("qgroup")) for s in doc.get("subscriptions_list", [])
                                   if not s["subject"].startswith("$SYS."))
            except urllib.error.HTTPError as e:
                out[path] = (e.code, e.read().decode())
        loop.run_until_complete(a.close())
        loop.run_until_complete(b.close())
        loop.close()
        answers[kind] = out
    assert answers["embedded"] == answers["nats-server"]
    assert answers["embedded"]["/subsz?test=foo.bar&subs=1"] == [("foo.*", None), ("foo.bar", "q")]


def _frames(c: RawClient) -> list[tuple[str, str, bytes]]:
    """Every MSG a raw client has been sent up to the PONG of a PING sent now: (subject, sid, payload)."""
    c.send("PING\r\n")
    frames, buf = [], c.buf
    while True:
        while b"\r\n" not in buf:
            buf += c.sock.recv(65536)
        line, rest = buf.split(b"\r\n", 1)
        if line == b"PONG":
            c.buf = rest
            return frames
        if line == b"PING" or line.startswith(b"INFO "):
            if line == b"PING":
                c.send("PONG\r\n")
            buf = rest
            continue
        assert line.startswith(b"MSG "), line
        _, subject, sid, size = line.split()
        while len(rest) < int(size) + 2:
            rest += c.sock.recv(65536)
        frames.append((subject.decode(), sid.decode(), rest[:int(size)]))
        buf = rest[int(size) + 2:]


def test_counters_after_batches_of_publishes_to_many_subjects(tmp_path):
    """Reads full of publishes to changing subjects (the embedded server routes each read's batch at once and
    counts per batch): each subscriber gets its messages in order, and the message and byte counts of every
    connection, subscription and the server read as on nats-server, a queue group's members together counting
    each message once; an UNSUB whose limit the batches already reached ends the subscription at once."""
    sent = [(f"m.{i % 7}", b"x" * ((i * 37) % 90)) for i in range(400)]
    wire = "".join(f"PUB {s} {len(p)}\r\n{p.decode()}\r\n" for s, p in sent).encode()
    seen = {}
    for kind in ("nats-server", "embedded"):
        (tmp_path / kind).mkdir()
        srv = RunningServer(kind, ["-m", "-1"], tmp_path / kind).start()
        clients = {name: RawClient(srv) for name in ("wild", "lit", "q1", "q2", "pub")}
        try:
            for name, c in clients.items():
                c.connect(name=name)
            clients["wild"].send("SUB m.> 1\r\n")
            clients["lit"].send("SUB m.0 1\r\nSUB m.3 2\r\nSUB m.> 3\r\n")
            clients["q1"].send("SUB m.* q 1\r\n")
            clients["q2"].send("SUB m.* q 1\r\n")
            for c in clients.values():
                assert c.ping() == []
            clients["pub"].send(wire + wire[:len(wire) // 2 + 5])   # the second copy ends in a message's middle
            clients["pub"].send(wire[len(wire) // 2 + 5:])
            assert clients["pub"].ping() == []
            got = {name: _frames(c) for name, c in clients.items() if name != "pub"}
            assert [(s, p) for s, _, p in got["wild"]] == sent * 2, kind
            assert [(s, p) for s, sid, p in got["lit"] if sid == "3"] == sent * 2, kind
            assert [(s, p) for s, sid, p in got["lit"] if sid != "3"] == \
                [(s, p) for s, p in sent * 2 if s in ("m.0", "m.3")], kind
            assert sorted(got["q1"] + got["q2"]) == sorted((s, "1", p) for s, p in sent * 2), kind
            assert 200 < len(got["q1"]) < 600, kind   # picked at random per message: 400 +- 14 (one sigma)
            conns = {c["name"]: c for c in get(srv, "/connz?subs=detail")["connections"]}
            varz = get(srv, "/varz")
            seen[kind] = (
                {name: (c["in_msgs"], c["in_bytes"], c["out_msgs"] if name not in ("q1", "q2") else None,
                        sorted((d["subject"], d["sid"], d["msgs"]) for d in c.get("subscriptions_list_detail", [])
                               if "qgroup" not in d))
                 for name, c in conns.items()},
                conns["q1"]["out_msgs"] + conns["q2"]["out_msgs"], conns["q1"]["out_bytes"] + conns["q2"]["out_bytes"],
                [conns[name]["out_msgs"] == len(got[name]) for name in ("q1", "q2")],
                # each member's subscription counts what it received, /connz and /subsz alike
                [[d["msgs"] for d in conns[name]["subscriptions_list_detail"]] == [len(got[name])]
                 for name in ("q1", "q2")],
                sorted((d["subject"], d.get("qgroup", ""), d["msgs"] if "qgroup" not in d else None)
                       for d in get(srv, "/subsz?subs=1&limit=1000")["subscriptions_list"] if d["subject"].startswith("m.")),
                {key: varz[key] for key in ("in_msgs", "in_bytes", "out_msgs", "out_bytes")})
            # A limit already reached by what batches delivered (since the last look at the counts) ends the
            # subscription at once.
            clients["pub"].send(wire)
            assert clients["pub"].ping() == []
            assert len(_frames(clients["wild"])) == 400, kind
            q1 = len(got["q1"]) + len(_frames(clients["q1"]))
            _frames(clients["q2"])
            clients["wild"].send("UNSUB 1 1200\r\n")
            clients["q1"].send("UNSUB 1 %d\r\n" % (q1 + 1))
            assert clients["wild"].ping() == [] and clients["q1"].ping() == []
            subs = [c.get("subscriptions_list") for c in get(srv, "/connz?subs=1")["connections"]
                    if c["name"] == "wild"]
            clients["pub"].send(wire[:wire.index(b"PUB m.5")])
            assert clients["pub"].ping() == []
            seen[kind] += ([(s, p) for s, _, p in _frames(clients["wild"])],
                           len(_frames(clients["q1"])) + len(_frames(clients["q2"])), subs)
        finally:
            for c in clients.values():
                c.close()
            srv.stop()
    assert seen["embedded"] == seen["nats-server"]
    assert seen["embedded"][1] == 800 and seen["embedded"][3] == [True, True] and seen["embedded"][4] == [True, True] \
        and seen["embedded"][-3:] == ([], 5, [None])


TWO_ACCOUNTS = """
http: "127.0.0.1:-1"
accounts {
  A: { users: [{user: a, password: pw}] }
  B: { users: [{user: b, password: pw}] }
}
"""


def test_a_closed_connection_leaves_other_accounts_counts_as_they_are(start_server):
    """Each account's subscriptions count what they received; one account's connection closing keeps its own
    figures in the closed list and changes nothing of the other account's (/connz, /subsz)."""
    srv = start_server(config=TWO_ACCOUNTS)
    clients = {}
    try:
        for name in ("a1", "a2", "b1", "b2", "b3"):   # a1, b1, b2 subscribe; a2 and b3 publish
            c = clients[name] = RawClient(srv)
            c.connect(name=name, user=name[0], **{"pass": "pw"})
            if name in ("a1", "b1", "b2"):
                c.send("SUB x.* 1\r\n")
            assert c.ping() == []
        for name, n in (("a2", 3), ("b3", 5)):   # one read of publishes each: delivered as a batch
            clients[name].send("".join(f"PUB x.{i} 2\r\nhi\r\n" for i in range(n)))
            assert clients[name].ping() == []
        for name, n in (("a1", 3), ("b1", 5), ("b2", 5)):
            assert [clients[name].read_msg() for _ in range(n)] == [(f"x.{i}", b"hi") for i in range(n)]
        clients.pop("a1").close()
        deadline = time.monotonic() + 5
        while not get(srv, "/connz?state=closed")["connections"] and time.monotonic() < deadline:
            time.sleep(0.05)
        conns = {c["name"]: (c.get("reason"), [d["msgs"] for d in c.get("subscriptions_list_detail", [])])
                 for c in get(srv, "/connz?state=all&subs=detail")["connections"]}
        subsz = sorted((d["account"], d["msgs"]) for d in get(srv, "/subsz?subs=1&limit=1000")["subscriptions_list"]
                       if d["subject"] == "x.*")
    finally:
        for c in clients.values():
            c.close()
    assert conns == {"a1": ("Client Closed", [3]), "a2": (None, []), "b1": (None, [5]), "b2": (None, [5]),
                     "b3": (None, [])}
    assert subsz == [("B", 5), ("B", 5)]
