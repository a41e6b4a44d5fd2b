"""Push consumers: deliver subjects and groups, idle heartbeats, flow control, ordered consumers as nats-py
makes them, replay policies, and the ephemeral's life tied to its subscriber."""
import asyncio
import time

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy, StorageType

from .helpers import api, connected, error_of, eventually, run


async def _stream(js, n=0, payload=b"m%d"):
    await js.add_stream(name="S", subjects=["s.*"], storage=StorageType.MEMORY)
    for i in range(n):
        await js.publish(f"s.{i % 2}", payload % i if b"%d" in payload else payload)


def test_push_consumer_delivers_with_original_subject(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=3)
            sub = await js.subscribe("s.*", durable="PD", stream="S")
            got = [await sub.next_msg(3) for _ in range(3)]
            for m in got:
                await m.ack()
            await js.publish("s.1", b"live")
            live = await sub.next_msg(3)
            await live.ack_sync()  # answered once the server has applied it (and the acks before it)
            info = await js.consumer_info("S", "PD")
            return got, live, info

    got, live, info = run(scenario())
    assert [(m.subject, m.data) for m in got] == [("s.0", b"m0"), ("s.1", b"m1"), ("s.0", b"m2")]
    assert live.subject == "s.1" and live.metadata.sequence.stream == 4
    assert info.push_bound and info.num_ack_pending == 0 and info.delivered.stream_seq == 4


def test_push_errors(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            out = {}
            for key, cfg in {
                "wildcard": {"deliver_subject": "d.*"},
                "cycle": {"deliver_subject": "s.x"},
                "max_waiting": {"deliver_subject": "d", "max_waiting": 3},
                "small_hb": {"deliver_subject": "d", "idle_heartbeat": 50_000_000},
                "fc_no_hb": {"deliver_subject": "d", "flow_control": True},
                "fc_pull": {"flow_control": True},
            }.items():
                out[key] = await api(nc, "$JS.API.CONSUMER.CREATE.S", {"stream_name": "S", "config": cfg})
            return out

    out = run(scenario())
    assert error_of(out["wildcard"]) == (400, 10079, "consumer deliver subject has wildcards")
    assert error_of(out["cycle"]) == (400, 10081, "consumer deliver subject forms a cycle")
    assert error_of(out["max_waiting"]) == (400, 10080, "consumer in push mode can not set max waiting")
    assert error_of(out["small_hb"]) == (400, 10083, "consumer idle heartbeat needs to be >= 100ms")
    assert error_of(out["fc_no_hb"]) == (400, 10108, "consumer with flow control also needs heartbeats")
    assert error_of(out["fc_pull"]) == (400, 10089, "consumer flow control requires a push based consumer")


def test_deliver_group_splits_messages(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            await js.add_consumer("S", ConsumerConfig(durable_name="Q", deliver_subject="deliver.q",
                                                      deliver_group="workers", ack_policy=AckPolicy.NONE))
            counts = [0, 0]
            all_in = asyncio.Event()

            def member(i):
                async def on_msg(msg):
                    counts[i] += 1
                    if sum(counts) >= 20:
                        all_in.set()
                return on_msg

            for i in range(2):
                await nc.subscribe("deliver.q", queue="workers", cb=member(i))
            for i in range(20):
                await js.publish("s.0", str(i).encode())
            await asyncio.wait_for(all_in.wait(), 10)
            await asyncio.sleep(0.3)  # room for a message delivered to both members to show up
            return counts

    counts = run(scenario())
    assert sum(counts) == 20


def test_idle_heartbeats_on_push(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            sub = await nc.subscribe("hb.deliver")
            await js.add_consumer("S", ConsumerConfig(durable_name="HB", deliver_subject="hb.deliver",
                                                      idle_heartbeat=0.2, ack_policy=AckPolicy.NONE))
            first = await sub.next_msg(3)
            hb = await sub.next_msg(3)
            return first, hb

    first, hb = run(scenario())
    assert first.data == b"m0"
    assert hb.headers["Status"] == "100" and hb.headers["Description"] == "Idle Heartbeat"
    assert hb.headers["Nats-Last-Consumer"] == "1" and hb.headers["Nats-Last-Stream"] == "1"


def test_flow_control_requests_a_reply_and_resumes(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            big = b"x" * 64 * 1024
            for _ in range(40):
                await js.publish("s.0", big)
            sub = await nc.subscribe("fc.deliver")
            await js.add_consumer("S", ConsumerConfig(durable_name="FC", deliver_subject="fc.deliver",
                                                      flow_control=True, idle_heartbeat=1,
                                                      ack_policy=AckPolicy.NONE))
            data, fc = 0, 0
            while data < 40:
                msg = await sub.next_msg(2)
                if msg.headers and msg.headers.get("Status") == "100" and msg.reply:
                    fc += 1
                    assert msg.headers["Description"] == "FlowControl Request"
                    assert msg.reply.startswith("$JS.FC.S.FC.")
                    await nc.publish(msg.reply, b"")
                elif msg.data:
                    data += 1
            return data, fc

    data, fc = run(scenario())
    assert data == 40 and fc >= 1


def test_ordered_consumer_as_nats_py_creates_it(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=5)
            sub = await js.subscribe("s.*", ordered_consumer=True, stream="S")
            got = [(await sub.next_msg(3)).data for _ in range(5)]
            await js.publish("s.0", b"live")
            got.append((await sub.next_msg(3)).data)
            return got

    assert run(scenario()) == [b"m0", b"m1", b"m2", b"m3", b"m4", b"live"]


def test_replay_original_keeps_the_gaps(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            for i in range(3):
                await js.publish("s.0", str(i).encode())
                await asyncio.sleep(0.25)
            sub = await nc.subscribe("replay.deliver")
            await js.add_consumer("S", ConsumerConfig(durable_name="RP", deliver_subject="replay.deliver",
                                                      replay_policy=ReplayPolicy.ORIGINAL,
                                                      ack_policy=AckPolicy.NONE))
            stamps = []
            for _ in range(3):
                await sub.next_msg(2)
                stamps.append(time.monotonic())
            return stamps

    stamps = run(scenario())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g >= 0.15 for g in gaps), gaps


def test_ephemeral_push_consumer_goes_when_its_subscriber_does(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            sub = await nc.subscribe("eph.deliver")
            resp = await api(nc, "$JS.API.CONSUMER.CREATE.S", {"stream_name": "S", "config": {
                "deliver_subject": "eph.deliver", "ack_policy": "none", "inactive_threshold": 300_000_000}})
            await sub.next_msg(3)
            await sub.unsubscribe()

            async def names():
                return (await api(nc, "$JS.API.CONSUMER.NAMES.S"))["consumers"]
            return resp["name"], await eventually(names, lambda now: resp["name"] not in now)

    name, names = run(scenario())
    assert name not in names


def test_durable_push_waits_for_a_subscriber(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=2)
            await js.add_consumer("S", ConsumerConfig(durable_name="LATE", deliver_subject="late.deliver",
                                                      ack_policy=AckPolicy.EXPLICIT))
            before = await js.consumer_info("S", "LATE")
            sub = await nc.subscribe("late.deliver")
            got = [(await sub.next_msg(2)).data for _ in range(2)]
            return before, got

    before, got = run(scenario())
    assert not before.push_bound and before.num_pending == 2
    assert got == [b"m0", b"m1"]


def test_headers_only(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            await js.publish("s.0", b"0123456789", headers={"K": "v"})
            sub = await nc.subscribe("ho.deliver")
            await js.add_consumer("S", ConsumerConfig(durable_name="HO", deliver_subject="ho.deliver",
                                                      headers_only=True, ack_policy=AckPolicy.NONE))
            return await sub.next_msg(3)

    msg = run(scenario())
    assert msg.data == b"" and msg.headers["Nats-Msg-Size"] == "10" and msg.headers["K"] == "v"


def test_deliver_last_and_new_on_push(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=3)
            last = await js.subscribe("s.*", stream="S", deliver_policy=DeliverPolicy.LAST)
            new = await js.subscribe("s.*", stream="S", deliver_policy=DeliverPolicy.NEW)
            first_last = await last.next_msg(3)
            with pytest.raises(nats.errors.TimeoutError):
                await new.next_msg(0.2)
            await js.publish("s.1", b"fresh")
            return first_last.data, (await new.next_msg(3)).data

    assert run(scenario()) == (b"m2", b"fresh")


def test_a_push_consumer_delivers_as_soon_as_its_subscriber_appears(js_server):
    """nats.py's test_ephemeral_subscribe: while one ephemeral push subscriber acks its 10 messages one by one,
    the other (created just after it) has already received all 10 (the server noticed its subscription at
    once, not at its next look)."""
    async def scenario():
        nc = await nats.connect(js_server.url)
        js = nc.jetstream()
        await js.add_stream(name="EPH", subjects=["eph"])
        for i in range(10):
            await js.publish("eph", b"%d" % i)
        sub1 = await js.subscribe("eph")
        sub2 = await js.subscribe("eph")
        for _ in range(10):
            msg = await sub1.next_msg(timeout=5)
            await msg.ack_sync()
        pending = sub2.pending_msgs
        await nc.close()
        return pending

    assert asyncio.run(scenario()) == 10


def test_a_legacy_ephemeral_config_has_no_name_until_a_restart(js_server):
    """`$JS.API.CONSUMER.CREATE.<stream>` without a name: nats-server's config keeps no `name` (the create
    answer, info, list, nats-py's ConsumerInfo.config.name is None); recovered after a restart it has one."""
    async def created():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"], "storage": "file"})
            answer = await api(nc, "$JS.API.CONSUMER.CREATE.S", {"stream_name": "S", "config": {
                "deliver_subject": "d", "ack_policy": "explicit", "inactive_threshold": 600_000_000_000}})
            ci = await js.add_consumer("S", ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                                           inactive_threshold=600.0))
            info = await api(nc, f"$JS.API.CONSUMER.INFO.S.{answer['name']}")
            listed = await api(nc, "$JS.API.CONSUMER.LIST.S", {})
            return answer, ci, info, listed

    async def after_restart():
        async with connected(js_server) as (nc, _):
            return await api(nc, "$JS.API.CONSUMER.LIST.S", {})

    answer, ci, info, listed = run(created())
    js_server.restart()
    recovered = run(after_restart())
    assert "error" not in answer and "name" not in answer["config"] and "name" not in info["config"]
    assert ci.name and ci.config.name is None and ci.config.inactive_threshold == 600.0
    assert sorted(c["name"] for c in listed["consumers"]) == sorted([answer["name"], ci.name])
    assert [c["config"].get("name") for c in listed["consumers"]] == [None, None]
    assert {c["config"].get("name") for c in recovered["consumers"]} == {answer["name"], ci.name}
