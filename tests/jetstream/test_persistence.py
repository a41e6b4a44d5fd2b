"""File storage across restarts: streams, messages and consumer state come back with the same -sd, and a
SIGKILL during acknowledged publishes never loses an acknowledged message."""
import asyncio
import random

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from .helpers import api, connected, run, streams_dir


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


def test_a_stream_past_sequence_2_63_still_starts(js_server):
    """`first_seq` is a uint64: both servers accept 2^63 and acknowledge the message stored there, and both
    start again afterwards. The embedded server keeps the message (nats-server 2.15 comes back empty and hands
    2^63 out again; docs/differences.md)."""
    first = 1 << 63

    async def create_and_publish():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.BIG", {"name": "BIG", "subjects": ["big"], "first_seq": first})
            return (await js.publish("big", b"one")).seq

    async def after():
        async with connected(js_server) as (nc, js):
            state = (await api(nc, "$JS.API.STREAM.INFO.BIG"))["state"]
            return state, (await js.publish("big", b"two")).seq

    assert run(create_and_publish()) == first
    js_server.restart()
    state, seq = run(after())
    if js_server.kind == "embedded":
        assert (state["messages"], state["first_seq"], state["last_seq"]) == (1, first, first)
        assert seq == first + 1


@pytest.mark.parametrize("block", ["1.blk", "2.blk", "3.blk"])
def test_a_deleted_block_file_never_sends_the_last_sequence_back(js_server, block):
    """Delete one block file of a stopped server's own store (first, middle or newest): the stream comes up with
    the others, its last sequence stays where it was and the next message gets the next sequence. Both servers
    log the missing block; the embedded server also lists the lost sequences in the stream state's `lost`
    (nats-server leaves it out; docs/differences.md)."""
    async def fill():
        async with connected(js_server) as (nc, js):
            # max_bytes makes both servers cut ~32 kB blocks (nats-server's dynBlkSize).
            await api(nc, "$JS.API.STREAM.CREATE.B", {"name": "B", "subjects": ["b"], "max_bytes": 100_000})
            for i in range(300):
                await js.publish("b", b"%05d" % i + b"x" * 250)

    async def after():
        async with connected(js_server) as (nc, js):
            state = (await api(nc, "$JS.API.STREAM.INFO.B"))["state"]
            present = []
            for seq in range(1, 301):
                reply = await api(nc, "$JS.API.STREAM.MSG.GET.B", {"seq": seq})
                if "message" in reply:
                    present.append(seq)
            return state, present, (await js.publish("b", b"next")).seq

    run(fill())
    js_server.stop()
    msgs = streams_dir(js_server) / "B" / "msgs"
    assert (msgs / "3.blk").exists() and not (msgs / "4.blk").exists()
    (msgs / block).unlink()
    js_server.start()
    state, present, seq = run(after(), timeout=60)
    assert 0 < len(present) < 300 and state["messages"] == len(present)
    assert state["last_seq"] == 300 and seq == 301
    missing = sorted(set(range(1, 301)) - set(present))
    if js_server.kind == "embedded":
        assert state["lost"]["msgs"] == missing and state["lost"]["bytes"] > 0
        assert f"{len(missing)} message(s) lost" in js_server.logs and f"{block} missing" in js_server.logs
    else:
        assert f"could not locate msg block {block[0]}" in js_server.logs


def test_restarts_keep_deletes_subjects_and_sequences(js_server):
    """A stream over several blocks with deletes, an erase, a subject purge and a compaction: a clean restart (the
    embedded server then loads its index checkpoint instead of reading the blocks), more writes and deletes
    followed by kill -9 (the checkpoint then describes only some of the blocks), and another clean restart each
    give back the same state, deleted list, per-subject counts, last message per subject and messages."""
    async def snapshot():
        async with connected(js_server) as (nc, js):
            info = await api(nc, "$JS.API.STREAM.INFO.R", {"subjects_filter": ">", "deleted_details": True})
            state = {k: info["state"].get(k) for k in ("messages", "bytes", "first_seq", "last_seq", "last_ts",
                                                        "num_deleted", "deleted", "num_subjects", "subjects")}
            lasts = {}
            for subject in sorted(state["subjects"] or {}):
                reply = await api(nc, "$JS.API.STREAM.MSG.GET.R", {"last_by_subj": subject})
                lasts[subject] = reply["message"]["seq"]
            sample = []
            for seq in range(1, state["last_seq"] + 2, 7):
                reply = await api(nc, "$JS.API.STREAM.MSG.GET.R", {"seq": seq})
                sample.append((seq, reply["message"]["subject"], reply["message"]["data"]) if "message" in reply
                              else (seq, reply["error"]["err_code"]))
            return state, lasts, sample

    async def fill():
        async with connected(js_server) as (nc, js):
            # max_bytes makes both servers cut ~50 kB blocks (nats-server's dynBlkSize).
            await api(nc, "$JS.API.STREAM.CREATE.R", {"name": "R", "subjects": ["r.>"], "max_bytes": 200_000})
            for i in range(600):
                await js.publish(f"r.{i % 5}", b"%04d" % i + b"x" * 200)
            for seq in (10, 11, 300):
                assert (await api(nc, "$JS.API.STREAM.MSG.DELETE.R", {"seq": seq, "no_erase": True}))["success"]
            assert (await api(nc, "$JS.API.STREAM.MSG.DELETE.R", {"seq": 301}))["success"]
            assert (await api(nc, "$JS.API.STREAM.PURGE.R", {"filter": "r.1", "keep": 20}))["purged"] == 100
            assert (await api(nc, "$JS.API.STREAM.PURGE.R", {"seq": 50}))["success"]

    async def more():
        async with connected(js_server) as (nc, js):
            assert (await js.publish("r.9", b"after")).seq == 601
            for i in range(100):
                await js.publish(f"r.{i % 7}", b"%04d" % i + b"y" * 200)
            for seq in (400, 650):
                assert (await api(nc, "$JS.API.STREAM.MSG.DELETE.R", {"seq": seq}))["success"]

    run(fill())
    stored = run(snapshot(), timeout=60)
    assert stored[0]["messages"] == 600 - 4 - 100 - (49 - 2 - 10) and len(stored[1]) == 5
    js_server.restart()
    assert run(snapshot(), timeout=60) == stored
    run(more())
    stored = run(snapshot(), timeout=60)
    js_server.kill()
    js_server.start()
    assert run(snapshot(), timeout=60) == stored
    js_server.restart()
    assert run(snapshot(), timeout=60) == stored
    if js_server.kind == "embedded":
        assert (streams_dir(js_server) / "R" / "index.ckp").exists()
        assert "index.ckp" not in js_server.logs  # never passed over with a warning


async def _counts(server, stream: str) -> dict:
    """What a stream's state says of its sequences: messages, first, last, deleted, lost (0 when left out)."""
    async with connected(server) as (nc, js):
        st = (await api(nc, f"$JS.API.STREAM.INFO.{stream}"))["state"]
        return {k: st.get(k, 0) for k in ("messages", "first_seq", "last_seq", "num_deleted", "lost")}


def _kill_9_keeps(server, stream: str, expected: dict) -> None:
    server.kill()
    server.start()
    assert run(_counts(server, stream)) == expected
    assert "[ERR]" not in server.logs and "lost" not in server.logs, server.logs


def test_skipped_sequences_of_removed_blocks_survive_kill_9(js_server):
    """An interest stream stores nothing for a subject no consumer wants: the sequence is skipped (a skip record,
    nats-server's SkipMsg). With thousands of them the blocks holding only skips (or skips and messages since
    acknowledged) are removed; kill -9 and a start must still give back the state the stream had (first and
    last sequence, messages, deleted count), with nothing reported lost or damaged. Both the blocks between two
    live messages (removed at a start) and the leading ones (removed when the first message is acknowledged)."""
    async def fill():
        async with connected(js_server) as (nc, js):
            # max_bytes makes both servers cut ~32 kB blocks (nats-server's dynBlkSize).
            assert "error" not in await api(nc, "$JS.API.STREAM.CREATE.I", {
                "name": "I", "subjects": ["i.*"], "retention": "interest", "max_bytes": 100_000})
            await js.add_consumer("I", ConsumerConfig(durable_name="C", filter_subject="i.a",
                                                      ack_policy=AckPolicy.EXPLICIT))
            assert (await js.publish("i.a", b"first")).seq == 1
            for start in range(0, 4000, 250):  # nobody wants i.b: skipped
                acks = await asyncio.gather(*(js.publish("i.b", b"x" * 20) for _ in range(250)))
                assert [a.seq for a in acks] == list(range(start + 2, start + 252))
            assert (await js.publish("i.a", b"second")).seq == 4002

    async def ack_first():
        async with connected(js_server) as (nc, js):
            psub = await js.pull_subscribe_bind("C", stream="I")
            (m,) = await psub.fetch(1, timeout=5)
            assert m.metadata.sequence.stream == 1
            await m.ack_sync()

    run(fill(), timeout=60)
    held = run(_counts(js_server, "I"))
    assert held == {"messages": 2, "first_seq": 1, "last_seq": 4002, "num_deleted": 4000, "lost": 0}
    js_server.restart()  # the embedded server removes the blocks of skips between the two messages here
    assert run(_counts(js_server, "I")) == held
    _kill_9_keeps(js_server, "I", held)
    run(ack_first())
    acked = run(_counts(js_server, "I"))
    assert acked == {"messages": 1, "first_seq": 4002, "last_seq": 4002, "num_deleted": 0, "lost": 0}
    _kill_9_keeps(js_server, "I", acked)


def test_a_mirror_of_a_stream_with_deletes_keeps_its_state_through_kill_9(js_server):
    """A mirror skips the sequences its origin no longer has (a subject purge there leaves one every other
    sequence); a lower `max_msgs` then removes old messages, and with them the blocks holding those skips. After
    kill -9 and a start the mirror's state is what it was, nothing reported lost or damaged."""
    async def fill():
        async with connected(js_server) as (nc, js):
            assert "error" not in await api(nc, "$JS.API.STREAM.CREATE.O", {"name": "O", "subjects": ["o.*"]})
            for start in range(0, 3000, 250):
                await asyncio.gather(*(js.publish(f"o.{'ab'[i % 2]}", b"x" * 20) for i in range(start, start + 250)))
            assert (await api(nc, "$JS.API.STREAM.PURGE.O", {"filter": "o.b"}))["purged"] == 1500
            # max_bytes makes both servers cut ~32 kB blocks (nats-server's dynBlkSize).
            mirror = {"name": "M", "mirror": {"name": "O"}, "max_bytes": 100_000}
            assert "error" not in await api(nc, "$JS.API.STREAM.CREATE.M", mirror)
            deadline = asyncio.get_running_loop().time() + 30
            while (await _counts(js_server, "M"))["last_seq"] < 2999 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            assert await _counts(js_server, "M") == {"messages": 1500, "first_seq": 1, "last_seq": 2999, "num_deleted": 1499,
                                            "lost": 0}
            assert "error" not in await api(nc, "$JS.API.STREAM.UPDATE.M", dict(mirror, max_msgs=100))
            return await _counts(js_server, "M")

    held = run(fill(), timeout=60)
    assert held == {"messages": 100, "first_seq": 2801, "last_seq": 2999, "num_deleted": 99, "lost": 0}
    _kill_9_keeps(js_server, "M", held)
