"""Pull consumers: creation in all its API forms, fetch with batch/expires/no_wait/max_bytes, the status
messages nats-server sends, acknowledgements of every kind, redelivery, max_deliver, backoff, counters."""
import asyncio
import json

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from .helpers import api, connected, error_of, eventually, run


async def _stream(js, n=0, name="S", subjects=("s.*",), **kw):
    await js.add_stream(name=name, subjects=list(subjects), storage=StorageType.MEMORY, **kw)
    for i in range(n):
        await js.publish(f"s.{i % 3}", f"m{i}".encode())


async def _pull(nc, stream, consumer, body, inbox=None, count=10, timeout=3.0):
    """Send a raw MSG.NEXT request and collect what comes back (messages and status) until quiet."""
    inbox = inbox or nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", json.dumps(body).encode() if isinstance(
        body, dict) else body, reply=inbox)
    got = []
    try:
        while len(got) < count:
            got.append(await sub.next_msg(timeout))
            status = (got[-1].headers or {}).get("Status")
            if status and status != "100":
                break
    except nats.errors.TimeoutError:
        pass
    await sub.unsubscribe()
    return got


def _status(msg):
    hdr = msg.headers or {}
    return hdr.get("Status"), hdr.get("Description")


def test_consumer_create_forms_and_errors(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            out = {}
            out["durable_legacy"] = await api(nc, "$JS.API.CONSUMER.DURABLE.CREATE.S.D1", {
                "stream_name": "S", "config": {"durable_name": "D1", "ack_policy": "explicit"}})
            out["named"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N1", {
                "stream_name": "S", "config": {"name": "N1", "ack_policy": "explicit"}})
            out["filtered"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.F1.s.1", {
                "stream_name": "S", "config": {"name": "F1", "filter_subject": "s.1", "ack_policy": "explicit"}})
            out["ephemeral"] = await api(nc, "$JS.API.CONSUMER.CREATE.S", {
                "stream_name": "S", "config": {"ack_policy": "explicit"}})
            out["ephemeral_durable"] = await api(nc, "$JS.API.CONSUMER.CREATE.S", {
                "stream_name": "S", "config": {"durable_name": "X"}})
            out["durable_mismatch"] = await api(nc, "$JS.API.CONSUMER.DURABLE.CREATE.S.D2", {
                "stream_name": "S", "config": {"durable_name": "OTHER"}})
            out["filter_mismatch"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.F2.s.2", {
                "stream_name": "S", "config": {"name": "F2", "filter_subject": "s.1"}})
            out["stream_mismatch"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N2", {
                "stream_name": "T", "config": {"name": "N2"}})
            out["no_stream"] = await api(nc, "$JS.API.CONSUMER.CREATE.T.N2", {
                "stream_name": "T", "config": {"name": "N2"}})
            out["changed"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N1", {
                "stream_name": "S", "action": "create", "config": {"name": "N1", "ack_policy": "none"}})
            out["update_missing"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N9", {
                "stream_name": "S", "action": "update", "config": {"name": "N9"}})
            out["bad_policy"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N3", {
                "stream_name": "S", "config": {"name": "N3", "deliver_policy": "by_start_sequence"}})
            out["hb_pull"] = await api(nc, "$JS.API.CONSUMER.CREATE.S.N4", {
                "stream_name": "S", "config": {"name": "N4", "idle_heartbeat": 1_000_000_000}})
            return out

    out = run(scenario())
    d1 = out["durable_legacy"]
    assert d1["type"] == "io.nats.jetstream.api.v1.consumer_create_response"
    assert d1["name"] == "D1" and d1["stream_name"] == "S"
    cfg = d1["config"]
    assert cfg["ack_wait"] == 30_000_000_000 and cfg["max_deliver"] == -1 and cfg["max_ack_pending"] == 1000
    assert cfg["max_waiting"] == 512 and cfg["deliver_policy"] == "all" and cfg["replay_policy"] == "instant"
    assert out["named"]["name"] == "N1" and "durable_name" not in out["named"]["config"]
    assert out["filtered"]["config"]["filter_subject"] == "s.1"
    eph = out["ephemeral"]
    assert len(eph["name"]) == 8 and eph["config"]["inactive_threshold"] == 5_000_000_000
    assert error_of(out["ephemeral_durable"]) == (
        400, 10020, "consumer expected to be ephemeral but a durable name was set in request")
    assert error_of(out["durable_mismatch"]) == (
        400, 10017, "consumer name in subject does not match durable name in request")
    assert error_of(out["filter_mismatch"]) == (
        400, 10131, "Consumer create request did not match filtered subject from create subject")
    assert error_of(out["stream_mismatch"]) == (400, 10056, "stream name in subject does not match request")
    assert error_of(out["no_stream"]) == (404, 10059, "stream not found")
    assert error_of(out["changed"]) == (400, 10148, "consumer already exists")
    assert error_of(out["update_missing"]) == (400, 10149, "consumer does not exist")
    assert error_of(out["bad_policy"]) == (
        400, 10094, "consumer delivery policy is deliver by start sequence, but optional start sequence is not set")
    assert error_of(out["hb_pull"]) == (400, 10088, "consumer idle heartbeat requires a push based consumer")


def test_fetch_batches_and_ack_reply_subject(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=5)
            psub = await js.pull_subscribe("s.*", durable="W", stream="S")
            msgs = await psub.fetch(3, timeout=2)
            for m in msgs:
                await m.ack()
            rest = await psub.fetch(10, timeout=3)
            info = await js.consumer_info("S", "W")
            return msgs, rest, info

    msgs, rest, info = run(scenario())
    assert [m.data for m in msgs] == [b"m0", b"m1", b"m2"]
    assert [m.data for m in rest] == [b"m3", b"m4"]
    tokens = msgs[0].reply.split(".")
    assert tokens[:4] == ["$JS", "ACK", "S", "W"] and tokens[4:7] == ["1", "1", "1"] and tokens[8] == "4"
    md = rest[-1].metadata
    assert md.sequence.stream == 5 and md.sequence.consumer == 5 and md.num_pending == 0 and md.num_delivered == 1
    assert info.num_ack_pending == 2 and info.num_pending == 0
    assert info.delivered.stream_seq == 5 and info.ack_floor.stream_seq == 3


def test_pull_status_messages(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=2)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.P", {"stream_name": "S", "config": {
                "durable_name": "P", "ack_policy": "explicit", "max_waiting": 1, "max_batch": 5,
                "max_expires": 5_000_000_000}})
            out = {}
            out["two"] = await _pull(nc, "S", "P", {"batch": 5, "no_wait": True})
            out["none"] = await _pull(nc, "S", "P", {"batch": 1, "no_wait": True})
            out["timeout"] = await _pull(nc, "S", "P", {"batch": 2, "expires": 200_000_000})
            out["batch_limit"] = await _pull(nc, "S", "P", {"batch": 6})
            out["expires_limit"] = await _pull(nc, "S", "P", {"batch": 1, "expires": 6_000_000_000})
            out["bad_hb"] = await _pull(nc, "S", "P", {"batch": 1, "expires": 1_000_000_000,
                                                       "idle_heartbeat": 900_000_000})
            waiting = nc.new_inbox()
            held = await nc.subscribe(waiting)
            await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.P", json.dumps({"batch": 1, "expires": 2_000_000_000})
                             .encode(), reply=waiting)
            await nc.flush()
            out["max_waiting"] = await _pull(nc, "S", "P", {"batch": 1, "expires": 1_000_000_000})
            await held.unsubscribe()
            # The held request leaves the waiting list once the server sees nobody listens for it: consumer
            # info looks (as nats-server's processWaiting), so the next request is not refused for MaxWaiting.
            await eventually(lambda: js.consumer_info("S", "P"), lambda info: info.num_waiting == 0)
            await js.publish("s.0", b"big" * 100)
            out["max_bytes"] = await _pull(nc, "S", "P", {"batch": 1, "max_bytes": 50, "expires": 1_000_000_000})
            return out

    out = run(scenario())
    assert [m.data for m in out["two"]][:2] == [b"m0", b"m1"]
    assert _status(out["two"][2]) == ("404", "No Messages")
    assert _status(out["none"][0]) == ("404", "No Messages")
    assert _status(out["timeout"][0]) == ("408", "Request Timeout")
    assert out["timeout"][0].headers["Nats-Pending-Messages"] == "2"
    assert _status(out["batch_limit"][0]) == ("409", "Exceeded MaxRequestBatch of 5")
    assert _status(out["expires_limit"][0]) == ("409", "Exceeded MaxRequestExpires of 5s")
    assert _status(out["bad_hb"][0]) == ("400", "Bad Request - heartbeat value too large")
    assert _status(out["max_waiting"][0]) == ("409", "Exceeded MaxWaiting")
    assert _status(out["max_bytes"][0]) == ("409", "Message Size Exceeds MaxBytes")


def test_pull_heartbeats_while_waiting(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            await js.add_consumer("S", ConsumerConfig(durable_name="HB", ack_policy=AckPolicy.EXPLICIT))
            return await _pull(nc, "S", "HB", {"batch": 1, "expires": 700_000_000, "idle_heartbeat": 200_000_000},
                               count=2, timeout=1.0)

    got = run(scenario())
    assert _status(got[0]) == ("100", "Idle Heartbeat")


def test_ack_policies_none_all_explicit(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=6)
            out = {}
            for policy in (AckPolicy.NONE, AckPolicy.ALL, AckPolicy.EXPLICIT):
                name = f"C{policy.value}"
                psub = await js.pull_subscribe("s.*", durable=name, stream="S",
                                               config=ConsumerConfig(ack_policy=policy, ack_wait=5))
                msgs = await psub.fetch(6, timeout=2)
                if policy != AckPolicy.NONE:
                    await msgs[3].ack_sync()  # answered once the server has applied it
                out[policy.value] = await js.consumer_info("S", name)
            return out

    out = run(scenario())
    none, all_, explicit = out["none"], out["all"], out["explicit"]
    assert (none.ack_floor.stream_seq, none.num_ack_pending) == (6, 0)
    assert (all_.ack_floor.stream_seq, all_.num_ack_pending) == (4, 2)
    assert (explicit.ack_floor.stream_seq, explicit.num_ack_pending) == (0, 5)


def test_nak_term_progress_and_ack_sync(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=3)
            psub = await js.pull_subscribe("s.*", durable="K", stream="S", config=ConsumerConfig(ack_wait=30))
            m1, m2, m3 = await psub.fetch(3, timeout=2)
            await m1.nak()
            redelivered = (await psub.fetch(1, timeout=2))[0]
            await m2.term()
            await m3.in_progress()
            await m3.ack_sync()
            await redelivered.nak(delay=0.3)
            with pytest.raises(nats.errors.TimeoutError):
                await psub.fetch(1, timeout=0.15)
            later = (await psub.fetch(1, timeout=2))[0]
            await later.ack_sync()
            info = await js.consumer_info("S", "K")
            return redelivered, later, info

    redelivered, later, info = run(scenario())
    assert redelivered.data == b"m0" and redelivered.metadata.num_delivered == 2
    assert later.data == b"m0" and later.metadata.num_delivered == 3
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 3
    assert info.num_redelivered == 0


def test_redelivery_after_ack_wait_and_max_deliver(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            psub = await js.pull_subscribe("s.*", durable="R", stream="S",
                                           config=ConsumerConfig(ack_wait=0.3, max_deliver=2))
            first = (await psub.fetch(1, timeout=2))[0]
            second = (await psub.fetch(1, timeout=2))[0]
            with pytest.raises(nats.errors.TimeoutError):
                await psub.fetch(1, timeout=0.8)
            info = await js.consumer_info("S", "R")
            return first, second, info

    first, second, info = run(scenario())
    assert first.metadata.num_delivered == 1 and second.metadata.num_delivered == 2
    assert second.metadata.sequence.consumer == 2 and second.metadata.sequence.stream == 1
    assert info.num_ack_pending == 0 and info.num_redelivered == 1


def test_backoff_sets_redelivery_delays(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            resp = await api(nc, "$JS.API.CONSUMER.CREATE.S.B", {"stream_name": "S", "config": {
                "name": "B", "ack_policy": "explicit", "backoff": [100_000_000, 300_000_000], "max_deliver": 3}})
            bad = await api(nc, "$JS.API.CONSUMER.CREATE.S.B2", {"stream_name": "S", "config": {
                "name": "B2", "ack_policy": "explicit", "backoff": [100_000_000, 300_000_000], "max_deliver": 1}})
            psub = await js.pull_subscribe_bind("B", stream="S")
            deliveries = []
            for _ in range(3):
                m = (await psub.fetch(1, timeout=2))[0]
                deliveries.append(m.metadata.num_delivered)
            return resp, bad, deliveries

    resp, bad, deliveries = run(scenario())
    assert resp["config"]["ack_wait"] == 100_000_000
    assert error_of(bad) == (400, 10116, "max deliver is required to be > length of backoff values")
    assert deliveries == [1, 2, 3]


def test_max_ack_pending_holds_back_delivery(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=5)
            psub = await js.pull_subscribe("s.*", durable="M", stream="S",
                                           config=ConsumerConfig(max_ack_pending=2, ack_wait=30))
            first = await psub.fetch(5, timeout=3)
            with pytest.raises(nats.errors.TimeoutError):
                await psub.fetch(1, timeout=0.2)
            await first[0].ack()
            more = await psub.fetch(5, timeout=3)
            return first, more

    first, more = run(scenario())
    assert [m.data for m in first] == [b"m0", b"m1"]
    assert [m.data for m in more] == [b"m2"]


@pytest.mark.parametrize("policy, extra, expected", [
    ("all", {}, [b"m0", b"m1", b"m2", b"m3"]),
    ("last", {}, [b"m3"]),
    ("new", {}, [b"late"]),
    ("by_start_sequence", {"opt_start_seq": 3}, [b"m2", b"m3"]),
    ("last_per_subject", {"filter_subject": "s.*"}, [b"m1", b"m2", b"m3"]),
])
def test_deliver_policies(js_server, policy, extra, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=4)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.DP", {"stream_name": "S", "config": {
                "name": "DP", "ack_policy": "none", "deliver_policy": policy, **extra}})
            await js.publish("s.9" if policy != "last_per_subject" else "s.0", b"late")
            psub = await js.pull_subscribe_bind("DP", stream="S")
            want = len(expected) + (0 if policy == "new" else 1)
            got = await psub.fetch(want, timeout=5)
            with pytest.raises(nats.errors.TimeoutError):
                await psub.fetch(1, timeout=0.2)
            return [m.data for m in got if m.data != b"late" or policy == "new"]

    assert run(scenario()) == expected


def test_deliver_by_start_time(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=2)
            await asyncio.sleep(0.05)
            start = (await api(nc, "$JS.API.STREAM.MSG.GET.S", {"seq": 2}))["message"]["time"]
            await js.publish("s.1", b"after")
            await api(nc, "$JS.API.CONSUMER.CREATE.S.T", {"stream_name": "S", "config": {
                "name": "T", "ack_policy": "none", "deliver_policy": "by_start_time", "opt_start_time": start}})
            psub = await js.pull_subscribe_bind("T", stream="S")
            return [m.data for m in await psub.fetch(5, timeout=3)]

    assert run(scenario()) == [b"m1", b"after"]


def test_filter_subjects_and_num_pending(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=9)
            resp = await api(nc, "$JS.API.CONSUMER.CREATE.S.FS", {"stream_name": "S", "config": {
                "name": "FS", "ack_policy": "explicit", "filter_subjects": ["s.0", "s.2"]}})
            overlap = await api(nc, "$JS.API.CONSUMER.CREATE.S.FO", {"stream_name": "S", "config": {
                "name": "FO", "filter_subjects": ["s.*", "s.2"]}})
            both = await api(nc, "$JS.API.CONSUMER.CREATE.S.FB", {"stream_name": "S", "config": {
                "name": "FB", "filter_subject": "s.1", "filter_subjects": ["s.2"]}})
            psub = await js.pull_subscribe_bind("FS", stream="S")
            msgs = await psub.fetch(3, timeout=3)
            await js.publish("s.0", b"new0")
            await js.publish("s.1", b"new1")
            info = await js.consumer_info("S", "FS")
            return resp, overlap, both, msgs, info

    resp, overlap, both, msgs, info = run(scenario())
    assert resp["num_pending"] == 6
    assert error_of(overlap) == (400, 10138, "consumer subject filters cannot overlap")
    assert error_of(both) == (400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified")
    assert [m.subject for m in msgs] == ["s.0", "s.2", "s.0"]
    assert info.num_pending == 4 and info.num_ack_pending == 3


def test_consumer_info_names_list_delete(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            for name in ("B", "A", "C"):
                await js.add_consumer("S", ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT))
            names = await api(nc, "$JS.API.CONSUMER.NAMES.S")
            listed = await api(nc, "$JS.API.CONSUMER.LIST.S", {"offset": 2})
            info = await api(nc, "$JS.API.CONSUMER.INFO.S.A")
            deleted = await api(nc, "$JS.API.CONSUMER.DELETE.S.A")
            again = await api(nc, "$JS.API.CONSUMER.DELETE.S.A")
            missing = await api(nc, "$JS.API.CONSUMER.INFO.S.A")
            no_stream = await api(nc, "$JS.API.CONSUMER.NAMES.NOPE")
            count = (await js.stream_info("S")).state.consumer_count
            return names, listed, info, deleted, again, missing, no_stream, count

    names, listed, info, deleted, again, missing, no_stream, count = run(scenario())
    assert names["consumers"] == ["A", "B", "C"] and names["total"] == 3 and names["limit"] == 1024
    assert [c["name"] for c in listed["consumers"]] == ["C"] and listed["limit"] == 256
    assert info["num_pending"] == 1 and info["config"]["durable_name"] == "A"
    assert deleted == {"type": "io.nats.jetstream.api.v1.consumer_delete_response", "success": True}
    assert error_of(again) == (404, 10014, "consumer not found")
    assert error_of(missing) == (404, 10014, "consumer not found")
    assert error_of(no_stream) == (404, 10059, "stream not found") and no_stream["consumers"] == []
    assert count == 2


def test_deleting_a_consumer_ends_waiting_pulls(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            await js.add_consumer("S", ConsumerConfig(durable_name="Z", ack_policy=AckPolicy.EXPLICIT))
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.Z", b'{"batch":3,"expires":5000000000}', reply=inbox)
            waiting = await eventually(lambda: js.consumer_info("S", "Z"), lambda info: info.num_waiting)
            assert waiting.num_waiting == 1
            await js.delete_consumer("S", "Z")
            return await sub.next_msg(3)

    msg = run(scenario())
    assert _status(msg) == ("409", "Consumer Deleted")
    assert set(msg.headers) == {"Status", "Description"}  # no pending counts (nats-server 2.15)


def test_pause_and_resume(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js, n=1)
            await js.add_consumer("S", ConsumerConfig(durable_name="PZ", ack_policy=AckPolicy.EXPLICIT))
            paused = await api(nc, "$JS.API.CONSUMER.PAUSE.S.PZ", {"pause_until": "2099-01-01T00:00:00Z"})
            info = await api(nc, "$JS.API.CONSUMER.INFO.S.PZ")
            psub = await js.pull_subscribe_bind("PZ", stream="S")
            with pytest.raises(nats.errors.TimeoutError):
                await psub.fetch(1, timeout=0.3)
            resumed = await api(nc, "$JS.API.CONSUMER.PAUSE.S.PZ")
            got = await psub.fetch(1, timeout=3)
            missing = await api(nc, "$JS.API.CONSUMER.PAUSE.S.NOPE")
            return paused, info, resumed, got, missing

    paused, info, resumed, got, missing = run(scenario())
    assert paused["paused"] is True and paused["pause_until"] == "2099-01-01T00:00:00Z"
    assert paused["pause_remaining"] > 0
    assert info["paused"] is True and info["config"]["pause_until"] == "2099-01-01T00:00:00Z"
    assert resumed["paused"] is False and resumed["pause_until"] == "0001-01-01T00:00:00Z"
    assert got[0].data == b"m0"
    assert error_of(missing) == (404, 10014, "consumer not found") and missing["paused"] is False


def test_consumer_update_rules(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            await js.add_consumer("S", ConsumerConfig(durable_name="UP", ack_policy=AckPolicy.EXPLICIT))
            ok = await js.add_consumer("S", ConsumerConfig(durable_name="UP", ack_policy=AckPolicy.EXPLICIT,
                                                           max_ack_pending=7, description="more"))
            refused = await api(nc, "$JS.API.CONSUMER.CREATE.S.UP", {"stream_name": "S", "config": {
                "durable_name": "UP", "ack_policy": "explicit", "deliver_policy": "new"}})
            return ok, refused

    ok, refused = run(scenario())
    assert ok.config.max_ack_pending == 7 and ok.config.description == "more"
    assert error_of(refused) == (500, 10012, "deliver policy can not be updated")


def test_ephemeral_pull_consumer_goes_away_when_inactive(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _stream(js)
            resp = await api(nc, "$JS.API.CONSUMER.CREATE.S", {"stream_name": "S", "config": {
                "ack_policy": "explicit", "inactive_threshold": 300_000_000}})
            name = resp["name"]

            async def names():
                return (await api(nc, "$JS.API.CONSUMER.NAMES.S"))["consumers"]
            return name, await eventually(names, lambda now: name not in now)

    name, names = run(scenario())
    assert name not in names


def test_advisories_for_max_deliveries_naks_terms_and_lifecycle(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            events = await nc.subscribe("$JS.EVENT.ADVISORY.>")
            await _stream(js, n=2)
            psub = await js.pull_subscribe("s.*", durable="ADV", stream="S",
                                           config=ConsumerConfig(ack_wait=0.2, max_deliver=2))
            m1, m2 = await psub.fetch(2, timeout=3)
            await m1.nak()
            await nc.publish(m2.reply, b"+TERM cannot parse")
            again = await psub.fetch(1, timeout=3)
            got = []

            async def advised(subject, wait=10.0):
                while subject not in (m.subject for m in got):
                    msg = await events.next_msg(wait)
                    if msg.subject != "$JS.EVENT.ADVISORY.API":
                        got.append(msg)

            # When ack_wait has run out on the last allowed delivery, a pull gets nothing and the server says
            # why (nats-server does when a pull is waiting): pull until it has.
            max_deliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.S.ADV"
            while max_deliveries not in (m.subject for m in got):
                with pytest.raises(nats.errors.TimeoutError):
                    await psub.fetch(1, timeout=0.5)
                try:
                    await advised(max_deliveries, wait=0.2)
                except nats.errors.TimeoutError:
                    pass
            await js.delete_consumer("S", "ADV")
            await js.delete_stream("S")
            await advised("$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.ADV")
            await advised("$JS.EVENT.ADVISORY.STREAM.DELETED.S")
            return again, got

    again, got = run(scenario())
    assert again[0].metadata.num_delivered == 2
    by_subject = {m.subject: json.loads(m.data) for m in got}
    created = by_subject["$JS.EVENT.ADVISORY.STREAM.CREATED.S"]
    assert created["type"] == "io.nats.jetstream.advisory.v1.stream_action" and created["action"] == "create"
    assert by_subject["$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.ADV"]["action"] == "create"
    nak = by_subject["$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.S.ADV"]
    assert (nak["type"], nak["stream_seq"], nak["deliveries"]) == ("io.nats.jetstream.advisory.v1.nak", 1, 1)
    term = by_subject["$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.S.ADV"]
    assert term["reason"] == "cannot parse" and term["stream_seq"] == 2
    exceeded = by_subject["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.S.ADV"]
    assert exceeded["type"] == "io.nats.jetstream.advisory.v1.max_deliver"
    assert (exceeded["stream"], exceeded["consumer"], exceeded["stream_seq"], exceeded["deliveries"]) == (
        "S", "ADV", 1, 2)
    assert by_subject["$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.ADV"]["action"] == "delete"
    assert by_subject["$JS.EVENT.ADVISORY.STREAM.DELETED.S"]["action"] == "delete"
    assert all(len(e["id"]) == 22 and e["timestamp"] for e in by_subject.values())
