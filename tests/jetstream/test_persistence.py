"""File storage across restarts: streams, messages and consumer state come back with the same -sd, and a
SIGKILL during acknowledged publishes never loses an acknowledged message."""
import asyncio
import random

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from .helpers import api, connected, run


def test_streams_messages_and_consumers_survive_a_restart(js_server):
    async def before():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="P", subjects=["p.*"], max_msgs_per_subject=10,
                                allow_rollup_hdrs=True, description="kept")
            for i in range(20):
                await js.publish(f"p.{i % 4}", f"m{i}".encode(), headers={"Nats-Msg-Id": f"id{i}"})
            await js.delete_msg("P", 3)
            await api(nc, "$JS.API.STREAM.PURGE.P", {"filter": "p.1"})
            psub = await js.pull_subscribe("p.*", durable="D", stream="P",
                                           config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30))
            msgs = await psub.fetch(6, timeout=2)
            for m in msgs[:4]:
                await m.ack_sync()
            return (await js.stream_info("P")), (await js.consumer_info("P", "D"))

    async def after():
        async with connected(js_server) as (nc, js):
            info = await js.stream_info("P")
            cinfo = await js.consumer_info("P", "D")
            dup = await js.publish("p.0", b"again", headers={"Nats-Msg-Id": "id19"})
            nxt = await js.publish("p.0", b"next")
            psub = await js.pull_subscribe_bind("D", stream="P")
            following = await psub.fetch(2, timeout=2)
            first = await js.get_msg("P", 1)
            return info, cinfo, dup, nxt, following, first

    info0, cinfo0 = run(before())
    js_server.restart()
    info1, cinfo1, dup, nxt, following, first = run(after())
    assert info1.config.description == "kept"
    assert info1.state.messages == info0.state.messages
    assert (info1.state.first_seq, info1.state.last_seq) == (info0.state.first_seq, info0.state.last_seq)
    assert info1.state.num_deleted == info0.state.num_deleted
    assert cinfo1.delivered.stream_seq == cinfo0.delivered.stream_seq
    assert cinfo1.ack_floor.stream_seq == cinfo0.ack_floor.stream_seq
    assert cinfo1.num_ack_pending == cinfo0.num_ack_pending == 2
    assert dup.duplicate and dup.seq == 20
    assert nxt.seq == 21
    # Still-pending messages wait for their ack wait; the consumer goes on where it stopped.
    assert [m.metadata.num_delivered for m in following] == [1, 1]
    assert following[0].metadata.sequence.stream > cinfo0.delivered.stream_seq
    assert following[0].metadata.sequence.consumer == cinfo0.delivered.consumer_seq + 1
    assert first.data == b"m0"


def test_memory_streams_are_gone_after_a_restart(js_server):
    async def before():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="M", subjects=["m"], storage=StorageType.MEMORY)
            await js.add_stream(name="F", subjects=["f"])
            await js.publish("m", b"x")

    async def after():
        async with connected(js_server) as (nc, js):
            return (await api(nc, "$JS.API.STREAM.NAMES"))["streams"]

    run(before())
    js_server.restart()
    assert run(after()) == ["F"]


def test_purged_and_deleted_streams_stay_that_way(js_server):
    async def before():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="A", subjects=["a"])
            await js.add_stream(name="B", subjects=["b"])
            for _ in range(5):
                await js.publish("a", b"x")
                await js.publish("b", b"y")
            await js.purge_stream("A")
            await js.delete_stream("B")

    async def after():
        async with connected(js_server) as (nc, js):
            names = (await api(nc, "$JS.API.STREAM.NAMES"))["streams"]
            state = (await js.stream_info("A")).state
            seq = (await js.publish("a", b"z")).seq
            return names, state, seq

    run(before())
    js_server.restart()
    names, state, seq = run(after())
    assert names == ["A"]
    assert (state.messages, state.first_seq, state.last_seq) == (0, 6, 5)
    assert seq == 6


def test_kill_9_loses_no_acknowledged_message(js_server):
    """Publish as fast as PubAcks come back, SIGKILL the server at random moments, many times: every
    sequence that was acknowledged must be readable afterwards, with its payload."""
    rounds = 6
    acked: dict[int, bytes] = {}

    async def create():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="CRASH", subjects=["crash"])

    async def publish_until_killed(start: int):
        nc = await nats.connect(js_server.url, allow_reconnect=False, max_reconnect_attempts=0)
        js = nc.jetstream()
        i = start
        try:
            while True:
                payload = b"payload-%d" % i
                ack = await js.publish("crash", payload, timeout=2)
                acked[ack.seq] = payload
                i += 1
        except Exception:
            pass
        finally:
            try:
                await nc.close()
            except Exception:
                pass
        return i

    async def round_trip(start: int):
        task = asyncio.create_task(publish_until_killed(start))
        await asyncio.sleep(random.uniform(0.05, 0.25))
        js_server.kill()
        return await task

    async def verify():
        async with connected(js_server) as (nc, js):
            info = await js.stream_info("CRASH")
            missing = []
            for seq, payload in acked.items():
                try:
                    msg = await js.get_msg("CRASH", seq)
                    if msg.data != payload:
                        missing.append(seq)
                except Exception:
                    missing.append(seq)
            return info.state, missing

    run(create())
    start = 0
    for _ in range(rounds):
        start = run(round_trip(start))
        js_server.start()
    state, missing = run(verify(), timeout=60)
    assert len(acked) > rounds
    assert missing == []
    assert state.last_seq >= max(acked)


def test_consumer_state_survives_kill_9(js_server):
    """Acks settled before the crash stay settled; what was delivered but not acked comes back."""
    async def before():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="CS", subjects=["cs"])
            for i in range(10):
                await js.publish("cs", b"m%d" % i)
            psub = await js.pull_subscribe("cs", durable="W", stream="CS",
                                           config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=0.5))
            msgs = await psub.fetch(10, timeout=3)
            for m in msgs[:5]:
                await m.ack_sync()
        await asyncio.sleep(0.3)

    async def after():
        async with connected(js_server) as (nc, js):
            info = await js.consumer_info("CS", "W")
            psub = await js.pull_subscribe_bind("W", stream="CS")
            again = await psub.fetch(5, timeout=3)
            return info, again

    run(before())
    js_server.kill()
    js_server.start()
    info, again = run(after())
    assert info.ack_floor.stream_seq == 5 and info.delivered.stream_seq == 10
    assert sorted(m.data for m in again) == [b"m5", b"m6", b"m7", b"m8", b"m9"]
    assert all(m.metadata.num_delivered == 2 for m in again)
