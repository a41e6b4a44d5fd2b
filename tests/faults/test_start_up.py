"""Nothing on disk stops the server from starting: streams and consumers whose files carry a valid checksum but
wrong content (a missing field, a string where a number belongs, another stream's name, not an object at all),
or whose directory is not what it should be, are reported with an [ERR] line and moved to `unloadable/`; every
other stream and consumer starts, and the names can be used again.

The files damaged here are in the embedded server's own on-disk format, so these cases are embedded-only by
nature (a request that leaves nats-server's store unable to start is in tests/jetstream/test_persistence.py,
run on both servers).
"""
from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
import zlib

import pytest

from embedded_server.jetstream.store.file import write_meta
from tests.jetstream.helpers import api, connected, run, streams_dir


def _healthz(server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/healthz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _meta(path: pathlib.Path) -> dict:
    return json.loads((path / "meta.inf").read_bytes())


def _write_slot(obs: pathlib.Path, content) -> None:
    data = json.dumps(content).encode()
    for slot in obs.glob("o.*.dat"):
        slot.unlink()
    (obs / "o.1.dat").write_bytes(b"%08x 99 %d\n" % (zlib.crc32(data), len(data)) + data)


@pytest.fixture
def embedded_js_monitored(server_kind, start_server, tmp_path):
    if server_kind != "embedded":
        pytest.skip("the on-disk format is the embedded server's own")
    return start_server("-js", "-sd", str(tmp_path / "store"), "-m", "-1")


def test_unloadable_streams_and_consumers_are_set_aside_and_the_rest_starts(embedded_js_monitored):
    embedded_js = embedded_js_monitored
    async def create():
        async with connected(embedded_js) as (nc, js):
            for name in "ABCDEF":
                await js.add_stream(name=name, subjects=[name.lower()])
                for i in range(3):
                    await js.publish(name.lower(), b"%s-%d" % (name.encode(), i))
            for durable in ("GOOD", "BADCFG", "BADSTATE"):
                psub = await js.pull_subscribe("f", durable=durable, stream="F")
                for m in await psub.fetch(1, timeout=2):
                    await m.ack_sync()

    run(create())
    embedded_js.stop()
    streams = streams_dir(embedded_js)
    b = _meta(streams / "B")
    write_meta(str(streams / "B"), {"created": b["created"]})  # no config
    c = _meta(streams / "C")
    c["config"]["max_msgs"] = "ten"
    write_meta(str(streams / "C"), c)
    d = _meta(streams / "D")
    d["config"]["name"] = "A"
    write_meta(str(streams / "D"), d)
    (streams / "E" / "meta.inf").write_bytes(b"[1, 2]")
    (streams / "E" / "meta.sum").write_bytes(b"%08x" % zlib.crc32(b"[1, 2]"))
    obs = streams / "F" / "obs"
    bad_cfg = _meta(obs / "BADCFG")
    bad_cfg["config"]["ack_policy"] = 5
    write_meta(str(obs / "BADCFG"), bad_cfg)
    _write_slot(obs / "BADSTATE", {"delivered": "x"})
    (obs / "NOTADIR").write_bytes(b"a file where a consumer directory belongs")

    embedded_js.start()
    logs = embedded_js.logs

    async def after():
        async with connected(embedded_js) as (nc, js):
            names = (await api(nc, "$JS.API.STREAM.NAMES"))["streams"]
            consumers = (await api(nc, "$JS.API.CONSUMER.NAMES.F"))["consumers"]
            a = (await js.stream_info("A")).state.messages
            recreated = await js.add_stream(name="B", subjects=["b"])
            seq = (await js.publish("b", b"new")).seq
            return sorted(names), sorted(consumers), a, recreated.state.messages, seq

    names, consumers, a_msgs, b_msgs, seq = run(after())
    status, health = _healthz(embedded_js)
    assert (status, health) == (503, {"status": "unavailable",
                                      "error": "JetStream stream '$G > B' could not be recovered"})
    assert names == ["A", "F"] and consumers == ["GOOD"] and a_msgs == 3
    assert (b_msgs, seq) == (0, 1), "the name is free again, in a new directory"
    for name, why in (("B", "no 'config'"), ("C", "max_msgs"), ("D", "names stream 'A'"), ("E", "not an object")):
        line = next(x for x in logs.splitlines() if f'Error recreating stream "{name}"' in x)
        assert "[ERR]" in line and why in line and "kept in" in line
    for name in ("BADCFG", "BADSTATE", "NOTADIR"):
        assert f'Error recreating consumer "{name}"' in logs
    aside = streams.parent / "unloadable"
    assert sorted(p.name.split(".")[0] for p in aside.iterdir()) == ["B", "C", "D", "E"]
    assert (next(aside.glob("C.*")) / "msgs" / "1.blk").stat().st_size > 0, "the messages are kept"
    assert sorted(p.name.split(".")[0] for p in (streams / "F" / "unloadable").iterdir()) == \
        ["BADCFG", "BADSTATE", "NOTADIR"]


def test_a_damaged_state_file_is_a_warning_and_the_stream_starts(embedded_js):
    async def create():
        async with connected(embedded_js) as (nc, js):
            await js.add_stream(name="S", subjects=["s"])
            for i in range(5):
                await js.publish("s", b"m%d" % i)

    run(create())
    embedded_js.stop()
    state = streams_dir(embedded_js) / "S" / "state.dat"
    data = json.dumps({"first_seq": -1, "last_seq": "5", "blocks": None}).encode()
    state.write_bytes(b"garbage-head-of-32-bytes-length!" + b"%08x %d\n" % (zlib.crc32(data), len(data)) + data)
    embedded_js.start()

    async def after():
        async with connected(embedded_js) as (nc, js):
            info = await js.stream_info("S")
            return info.state.messages, info.state.last_seq, (await js.publish("s", b"next")).seq

    assert run(after()) == (5, 5, 6)
    assert "[WRN]" in embedded_js.logs and "state.dat is unreadable" in embedded_js.logs
