"""Distributed counters (`allow_msg_counter`, ADR-49) on both servers: `Nats-Incr` totals and the PubAck `val`,
the errors for bad increments, the configuration rules, and sources aggregating counters."""
import base64
import json

import pytest

from .helpers import api, connected, error_of, eventually, run


async def _pub(nc, subject: str, data: bytes = b"", headers: dict | None = None) -> dict:
    msg = await nc.request(subject, data, headers=headers, timeout=3)
    return json.loads(msg.data)


async def _last(nc, stream: str, subject: str) -> tuple[str, dict]:
    got = (await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"last_by_subj": subject}))["message"]
    hdrs = {}
    for line in base64.b64decode(got.get("hdrs", "")).decode().split("\r\n")[1:]:
        if line:
            k, _, v = line.partition(":")
            hdrs[k] = v.strip()
    return base64.b64decode(got["data"]).decode(), hdrs


def test_increments_keep_a_total_per_subject_and_the_pub_ack_carries_it(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "subjects": ["c.>"],
                                                               "allow_msg_counter": True})
            acks = [await _pub(nc, "c.a", headers={"Nats-Incr": v}) for v in ("1", "+5", "-2", "99999999999999999999999")]
            other = await _pub(nc, "c.b", headers={"Nats-Incr": "3"})
            last = await _last(nc, "C", "c.a")
            return created, acks, other, last

    created, acks, other, (data, hdrs) = run(scenario())
    assert created["config"]["allow_msg_counter"] is True
    assert created["config"]["metadata"]["_nats.req.level"] == "2"
    assert [(a["seq"], a["val"]) for a in acks] == [(1, "1"), (2, "6"), (3, "4"), (4, "100000000000000000000003")]
    assert other == {"stream": "C", "seq": 5, "val": "3"}
    assert json.loads(data) == {"val": "100000000000000000000003"}
    assert hdrs["Nats-Incr"] == "99999999999999999999999"


@pytest.mark.parametrize("headers, data, expected", [
    ({"Nats-Incr": "abc"}, b"", (400, 10171, "message counter increment is invalid")),
    ({"Nats-Incr": "1.5"}, b"", (400, 10171, "message counter increment is invalid")),
    ({"Nats-Incr": "1"}, b"x", (400, 10170, "message counter has payload")),
    (None, b"x", (400, 10169, "message counter increment is missing")),
    ({"Nats-Incr": ""}, b"", (400, 10169, "message counter increment is missing")),
    ({"Nats-Incr": "1", "Nats-Expected-Last-Sequence": "0"}, b"", (400, 10171, "message counter increment is invalid")),
    ({"Nats-Incr": "1", "Nats-Rollup": "sub"}, b"", (400, 10171, "message counter increment is invalid")),
])
def test_bad_increments_get_nats_server_errors_and_store_nothing(js_server, headers, data, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "subjects": ["c"], "allow_msg_counter": True})
            ack = await _pub(nc, "c", data, headers)
            info = await api(nc, "$JS.API.STREAM.INFO.C")
            return ack, info

    ack, info = run(scenario())
    assert error_of(ack) == expected and ack["seq"] == 0
    assert info["state"]["messages"] == 0


def test_an_increment_on_a_plain_stream_is_refused(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.P", {"name": "P", "subjects": ["p"]})
            return await _pub(nc, "p", headers={"Nats-Incr": "1"}), await _pub(nc, "p", headers={"Nats-Incr": "x"})

    disabled, invalid = run(scenario())
    assert error_of(disabled) == (400, 10168, "message counters is disabled")
    assert error_of(invalid) == (400, 10171, "message counter increment is invalid")


@pytest.mark.parametrize("extra, text", [
    ({"discard": "new"}, "counter stream cannot use discard new"),
    ({"allow_msg_ttl": True}, "counter stream cannot use message TTLs"),
    ({"retention": "workqueue"}, "counter stream can only use limits retention"),
])
def test_counter_streams_refuse_what_they_cannot_do(js_server, extra, text):
    async def scenario():
        async with connected(js_server) as (nc, js):
            return await api(nc, "$JS.API.STREAM.CREATE.X", {"name": "X", "allow_msg_counter": True, **extra})

    assert error_of(run(scenario())) == (500, 10052, text)


def test_the_counter_setting_cannot_be_changed_and_a_mirror_cannot_count(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "subjects": ["c"], "allow_msg_counter": True})
            off = await api(nc, "$JS.API.STREAM.UPDATE.C", {"name": "C", "subjects": ["c"]})
            mirror = await api(nc, "$JS.API.STREAM.CREATE.M", {"name": "M", "mirror": {"name": "C"},
                                                              "allow_msg_counter": True})
            return off, mirror

    off, mirror = run(scenario())
    assert error_of(off) == (500, 10052, "stream configuration update can not change message counter setting")
    assert error_of(mirror) == (400, 10173, "stream mirrors can not also calculate counters")


def test_a_counter_stream_sourcing_counters_adds_them_up(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            for name, subjects in (("EU", "eu.>"), ("US", "us.>")):
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [subjects],
                                                                "allow_msg_counter": True})
            await _pub(nc, "eu.hits", headers={"Nats-Incr": "10"})
            await _pub(nc, "us.hits", headers={"Nats-Incr": "1"})
            await api(nc, "$JS.API.STREAM.CREATE.ALL", {"name": "ALL", "subjects": ["all.>"], "allow_msg_counter": True,
                                                        "sources": [
                {"name": "US", "subject_transforms": [{"src": "us.>", "dest": "all.>"}]},
                {"name": "EU", "subject_transforms": [{"src": "eu.>", "dest": "all.>"}]}]})
            await eventually(lambda: api(nc, "$JS.API.STREAM.INFO.ALL"), lambda i: i["state"]["messages"] == 2)
            await _pub(nc, "eu.hits", headers={"Nats-Incr": "5"})
            await _pub(nc, "us.hits", headers={"Nats-Incr": "-3"})
            await eventually(lambda: api(nc, "$JS.API.STREAM.INFO.ALL"), lambda i: i["state"]["messages"] == 4)
            local = await _pub(nc, "all.hits", headers={"Nats-Incr": "100"})
            return await _last(nc, "ALL", "all.hits"), local

    (data, hdrs), local = run(scenario())
    # as Go marshals a map: keys sorted, whichever source came first
    assert hdrs["Nats-Counter-Sources"] == '{"EU":{"eu.hits":"15"},"US":{"us.hits":"-2"}}'
    assert local["val"] == "113"
    assert json.loads(data) == {"val": "113"}
