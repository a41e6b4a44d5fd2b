"""Subject mappings on both servers: every mapping function in the configuration's `mappings` (top level and per
account), weighted destinations, cluster-scoped destinations on a lone server, the configuration errors, and the
same functions in stream subject transforms and republish."""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import nats
import pytest

from pynats_lab.session import flush
from tests.servers import RunningServer

MAPPINGS = """
mappings {
  "orders.*": "orders.{{partition(3,1)}}.{{wildcard(1)}}"
  "all.*.*": "all.{{partition(5)}}.$2.$1"
  "dash.*": "dash.{{split(1,-)}}"
  "sfl.*": "sfl.{{splitfromleft(1,2)}}"
  "sfr.*": "sfr.{{splitfromright(1,2)}}"
  "sll.*": "sll.{{slicefromleft(1,3)}}"
  "slr.*": "slr.{{slicefromright(1,3)}}"
  "rnd": "rnd.{{random(4)}}"
  "lr.*.*": "lr.{{left(1,2)}}.{{right(2,2)}}"
  "tail.>": "moved.>"
  "half": [{destination: "half.a", weight: 50%}, {destination: "half.b", weight: 50}]
  "some": [{destination: "some.x", weight: 30%}]
  "east": [{destination: "east.only", weight: 100%, cluster: "east"}]
}
"""

SUBJECTS = ["orders.123", "orders.abc", "all.x.y", "dash.-a--b-c-", "sfl.abcdef", "sfl.a", "sfr.abcdef",
            "slr.abcdefgh", "sll.abcdefgh", "slr.ab", "lr.abcd.wxyz", "tail.a.b.c", "east", "plain.subject"]


async def _mapped(srv, subjects, repeat: int = 1) -> list[str]:
    nc = await nats.connect(srv.url, allow_reconnect=False)
    try:
        got = []

        async def keep(msg):
            got.append(msg.subject)

        await nc.subscribe(">", cb=keep)
        await flush(nc)
        for _ in range(repeat):
            for s in subjects:
                await nc.publish(s, b"x")
        await flush(nc)
        for _ in range(400):
            if len(got) >= len(subjects) * repeat:
                break
            await asyncio.sleep(0.025)
        return got
    finally:
        await nc.close()


def test_every_mapping_function_maps_as_nats_server(start_server):
    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=MAPPINGS, kind=kind)
        results[kind] = asyncio.run(_mapped(srv, SUBJECTS))
    assert results["embedded"] == results["nats-server"]
    assert "dash.a.b.c" in results["embedded"] and "moved.a.b.c" in results["embedded"]
    assert "east" in results["embedded"]   # a cluster-scoped destination is not used by a lone server


def test_weighted_and_random_destinations(server_kind, start_server):
    srv = start_server(config=MAPPINGS)
    got = Counter(asyncio.run(_mapped(srv, ["half", "some", "rnd"], repeat=200)))
    assert got["half.a"] + got["half.b"] == 200 and got["half.a"] > 40 and got["half.b"] > 40
    assert got["some.x"] + got["some"] == 200 and 20 < got["some.x"] < 110
    assert sum(got[f"rnd.{i}"] for i in range(4)) == 200 and all(got[f"rnd.{i}"] for i in range(4))


ACCOUNT_MAPPINGS = """
accounts {
  A: { users: [{user: a, password: pw}], mappings: { "in.*": "out.{{wildcard(1)}}" } }
  B: { users: [{user: b, password: pw}] }
}
"""


def test_account_mappings_apply_to_that_account_only(start_server):
    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=ACCOUNT_MAPPINGS, kind=kind)

        async def run(srv=srv):
            out = {}
            for user in ("a", "b"):
                nc = await nats.connect(f"nats://{user}:pw@127.0.0.1:{srv.port}", allow_reconnect=False)
                sub = await nc.subscribe(">")
                await flush(nc)
                await nc.publish("in.1", b"x")
                out[user] = (await sub.next_msg(timeout=5)).subject
                await nc.close()
            return out

        results[kind] = asyncio.run(run())
    assert results["embedded"] == results["nats-server"] == {"a": "out.1", "b": "in.1"}


@pytest.mark.parametrize("mapping", [
    '"x.*": "{{nope(1)}}"',
    '"x.*": "y.{{wildcard(2)}}"',
    '"x": [{destination: "a", weight: 60}, {destination: "b", weight: 60}]',
    '"x": [{destination: "a", weight: 101}]',
    '"x": [{destination: "a"}]',
    '"x": [{destination: "a", weight: 10, colour: red}]',
    '"x..y": "z"',
    '"x.*": "y.*"',
])
def test_bad_mappings_stop_the_server_with_nats_servers_reason(tmp_path, mapping):
    reasons = {}
    for kind in ("nats-server", "embedded"):
        conf = tmp_path / f"{kind}.conf"
        conf.write_text(f"mappings {{ {mapping} }}\n")
        srv = RunningServer(kind, ["-c", str(conf)], tmp_path)
        try:
            with pytest.raises(Exception):
                srv.start(timeout=15)
        finally:
            srv.stop()  # a server that accepted the mapping is not left running
        lines = [line for line in srv.logs.splitlines() if "conf:" in line]
        assert lines, srv.logs
        reasons[kind] = lines[0].split("conf:", 1)[1].split(":", 2)[-1].strip()
    assert reasons["embedded"] == reasons["nats-server"]


TRANSFORMS = [
    ("p.*", "p.{{partition(4,1)}}.{{wildcard(1)}}", "p.abc"),
    ("l.*", "l.{{left(1,2)}}", "l.abcdef"),
    ("r.*", "r.{{right(1,2)}}", "r.abcdef"),
    ("s.*", "s.{{split(1,_)}}", "s.a_b_c"),
    ("f.*", "f.{{slicefromleft(1,2)}}", "f.abcde"),
]


def test_stream_subject_transform_and_republish_use_the_functions(js_server):
    async def run():
        nc = await nats.connect(js_server.url, allow_reconnect=False)
        js = nc.jetstream()
        out = []
        try:
            for i, (src, dest, subject) in enumerate(TRANSFORMS):
                await nc.request("$JS.API.STREAM.CREATE.T%d" % i, json.dumps({
                    "name": "T%d" % i, "subjects": [src], "subject_transform": {"src": src, "dest": dest},
                    "republish": {"src": ">", "dest": "rp.>"}}).encode(), timeout=5)
                rp = await nc.subscribe("rp.>")
                await flush(nc)
                await js.publish(subject, b"x")
                msg = await js.get_msg("T%d" % i, 1)
                out.append((msg.subject, (await rp.next_msg(timeout=5)).subject))
                await rp.unsubscribe()
            bad = await nc.request("$JS.API.STREAM.CREATE.BAD", json.dumps({
                "name": "BAD", "subjects": ["b.*"], "subject_transform": {"src": "b.*", "dest": "{{nope(1)}}"}
            }).encode(), timeout=5)
            out.append(json.loads(bad.data)["error"])
            return out
        finally:
            await nc.close()

    out = asyncio.run(run())
    assert out[:-1] == [("p.3.abc", "rp.p.3.abc"), ("l.ab", "rp.l.ab"), ("r.ef", "rp.r.ef"),
                        ("s.a.b.c", "rp.s.a.b.c"), ("f.ab.cd.e", "rp.f.ab.cd.e")]
    assert out[-1] == {"code": 400, "err_code": 10156,
                       "description": "stream transform: invalid mapping destination: unknown function in "
                                      "{{nope(1)}}"}
