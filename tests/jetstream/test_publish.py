"""Publishing into streams: PubAcks, de-duplication, the Nats-Expected-* headers, rollups, limits and discard
policies, message size, ages and per-message TTLs, no-ack streams."""
import asyncio

import pytest
from nats.js.api import DiscardPolicy, StorageType

from .helpers import api, connected, error_of, eventually, publish_raw, run


def test_puback_carries_stream_and_sequence(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="ORDERS", subjects=["orders.*"])
            acks = [await publish_raw(nc, f"orders.{i}", b"x") for i in range(3)]
            plain = await js.publish("orders.9", b"y")
            return acks, plain

    acks, plain = run(scenario())
    assert acks == [{"stream": "ORDERS", "seq": 1}, {"stream": "ORDERS", "seq": 2}, {"stream": "ORDERS", "seq": 3}]
    assert plain.stream == "ORDERS" and plain.seq == 4 and not plain.duplicate


def test_duplicates_inside_the_window_get_the_original_sequence(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.DD", {"name": "DD", "subjects": ["dd"], "storage": "memory",
                                                         "duplicate_window": 1_000_000_000})
            first = await js.publish("dd", b"1", headers={"Nats-Msg-Id": "a"})
            other = await js.publish("dd", b"2", headers={"Nats-Msg-Id": "b"})
            dup = await publish_raw(nc, "dd", b"1 again", headers={"Nats-Msg-Id": "a"})
            dup_py = await js.publish("dd", b"1 again", headers={"Nats-Msg-Id": "a"})
            # Once the window has passed the id is new again (nats-server forgets ids on a timer).
            after_window = await eventually(
                lambda: js.publish("dd", b"1 later", headers={"Nats-Msg-Id": "a"}), lambda ack: not ack.duplicate)
            state = (await js.stream_info("DD")).state
            return first, other, dup, dup_py, after_window, state

    first, other, dup, dup_py, after_window, state = run(scenario())
    assert (first.seq, other.seq) == (1, 2)
    assert dup == {"stream": "DD", "seq": 1, "duplicate": True}
    assert dup_py.duplicate and dup_py.seq == 1
    assert after_window.seq == 3 and not after_window.duplicate
    assert state.messages == 3


@pytest.mark.parametrize("hdrs, expected", [
    ({"Nats-Expected-Stream": "OTHER"}, (400, 10060, "expected stream does not match")),
    ({"Nats-Expected-Last-Sequence": "1"}, (400, 10071, "wrong last sequence: 2")),
    ({"Nats-Expected-Last-Subject-Sequence": "2"}, (400, 10071, "wrong last sequence: 1")),
    ({"Nats-Expected-Last-Msg-Id": "nope"}, (400, 10070, "wrong last msg ID: m2")),
    ({"Nats-Expected-Last-Subject-Sequence-Subject": "e.a"},
     (400, 10193, "missing sequence for expected last sequence per subject")),
])
def test_expected_headers_refuse_with_nats_server_errors(js_server, hdrs, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="EXP", subjects=["e.*"], storage=StorageType.MEMORY)
            await js.publish("e.a", b"1", headers={"Nats-Msg-Id": "m1"})
            await js.publish("e.b", b"2", headers={"Nats-Msg-Id": "m2"})
            return await publish_raw(nc, "e.a", b"3", headers=hdrs)

    resp = run(scenario())
    assert error_of(resp) == expected
    assert resp["stream"] == "EXP" and resp["seq"] == 0


def test_expected_headers_that_match_are_stored(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="EXP", subjects=["e.*"], storage=StorageType.MEMORY)
            a = await js.publish("e.a", b"1", headers={"Nats-Msg-Id": "m1", "Nats-Expected-Last-Sequence": "0"})
            b = await js.publish("e.b", b"2", headers={"Nats-Expected-Stream": "EXP",
                                                       "Nats-Expected-Last-Msg-Id": "m1"})
            c = await js.publish("e.a", b"3", headers={"Nats-Expected-Last-Subject-Sequence": "1"})
            d = await js.publish("e.c", b"4", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
            e = await js.publish("e.x", b"5", headers={"Nats-Expected-Last-Subject-Sequence": "3",
                                                       "Nats-Expected-Last-Subject-Sequence-Subject": "e.a"})
            return [x.seq for x in (a, b, c, d, e)]

    assert run(scenario()) == [1, 2, 3, 4, 5]


def test_rollup_by_subject_and_all(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="RU", subjects=["ru.*"], allow_rollup_hdrs=True, storage=StorageType.MEMORY)
            for i in range(3):
                await js.publish("ru.a", str(i).encode())
                await js.publish("ru.b", str(i).encode())
            await js.publish("ru.a", b"snapshot", headers={"Nats-Rollup": "sub"})
            by_sub = await api(nc, "$JS.API.STREAM.INFO.RU", {"subjects_filter": ">"})
            await js.publish("ru.b", b"everything", headers={"Nats-Rollup": "all"})
            all_state = (await js.stream_info("RU")).state
            bad = await publish_raw(nc, "ru.a", b"x", headers={"Nats-Rollup": "nonsense"})
            return by_sub, all_state, bad

    by_sub, all_state, bad = run(scenario())
    assert by_sub["state"]["subjects"] == {"ru.a": 1, "ru.b": 3}
    assert all_state.messages == 1 and all_state.first_seq == 8
    assert error_of(bad) == (500, 10111, 'rollup value invalid: "nonsense"')


def test_rollup_not_permitted_without_allow_rollup(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="NR", subjects=["nr"], storage=StorageType.MEMORY)
            return await publish_raw(nc, "nr", b"x", headers={"Nats-Rollup": "all"})

    assert error_of(run(scenario())) == (500, 10111, "rollup not permitted")


def test_max_msgs_discard_old_and_new(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="OLD", subjects=["old"], max_msgs=3, storage=StorageType.MEMORY)
            await js.add_stream(name="NEW", subjects=["new"], max_msgs=3, discard=DiscardPolicy.NEW)
            for i in range(5):
                await js.publish("old", str(i).encode())
            results = [await publish_raw(nc, "new", str(i).encode()) for i in range(5)]
            return (await js.stream_info("OLD")).state, results

    old, results = run(scenario())
    assert (old.messages, old.first_seq, old.last_seq) == (3, 3, 5)
    assert [r.get("seq") for r in results[:3]] == [1, 2, 3]
    assert error_of(results[3]) == (503, 10077, "maximum messages exceeded")


def test_max_bytes_and_max_msg_size(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="MB", subjects=["mb"], max_bytes=300, discard=DiscardPolicy.NEW,
                                storage=StorageType.MEMORY)
            sizes = [await publish_raw(nc, "mb", b"x" * 100) for _ in range(3)]
            await js.add_stream(name="MS", subjects=["ms"], max_msg_size=10, storage=StorageType.MEMORY)
            too_big = await publish_raw(nc, "ms", b"x" * 11)
            fits = await publish_raw(nc, "ms", b"x" * 10)
            return sizes, too_big, fits

    sizes, too_big, fits = run(scenario())
    assert sizes[0]["seq"] == 1 and sizes[1]["seq"] == 2
    assert error_of(sizes[2]) == (503, 10077, "maximum bytes exceeded")
    assert error_of(too_big) == (400, 10054, "message size exceeds maximum allowed")
    assert fits["seq"] == 1


def test_max_msgs_per_subject_and_discard_new_per_subject(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="PS", subjects=["ps.*"], max_msgs_per_subject=2, storage=StorageType.MEMORY)
            for i in range(4):
                await js.publish("ps.a", str(i).encode())
            await js.publish("ps.b", b"b")
            per = await api(nc, "$JS.API.STREAM.INFO.PS", {"subjects_filter": ">"})
            await api(nc, "$JS.API.STREAM.CREATE.PN", {"name": "PN", "subjects": ["pn.*"], "storage": "memory",
                                                         "max_msgs_per_subject": 1, "discard": "new",
                                                         "discard_new_per_subject": True})
            ok = await publish_raw(nc, "pn.a", b"1")
            refused = await publish_raw(nc, "pn.a", b"2")
            other = await publish_raw(nc, "pn.b", b"3")
            return per, ok, refused, other

    per, ok, refused, other = run(scenario())
    assert per["state"]["subjects"] == {"ps.a": 2, "ps.b": 1}
    assert per["state"]["first_seq"] == 3
    assert ok["seq"] == 1 and other["seq"] == 2
    assert error_of(refused) == (503, 10077, "maximum messages per subject exceeded")


def test_max_age_expires_messages(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="AGE", subjects=["age"], max_age=0.3, storage=StorageType.MEMORY)
            await js.publish("age", b"old")
            await asyncio.sleep(0.15)
            await js.publish("age", b"newer")
            return (await eventually(lambda: js.stream_info("AGE"), lambda info: info.state.messages < 2)).state

    st = run(scenario())
    assert st.messages <= 1 and st.last_seq == 2


def test_per_message_ttl(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.TTL", {"name": "TTL", "subjects": ["ttl.*"], "storage": "memory",
                                                          "allow_msg_ttl": True})
            await api(nc, "$JS.API.STREAM.CREATE.NOTTL", {"name": "NOTTL", "subjects": ["nottl"],
                                                            "storage": "memory"})
            short = await publish_raw(nc, "ttl.a", b"x", headers={"Nats-TTL": "1s"})
            keep = await publish_raw(nc, "ttl.b", b"y")
            invalid = await publish_raw(nc, "ttl.c", b"z", headers={"Nats-TTL": "soon"})
            disabled = await publish_raw(nc, "nottl", b"z", headers={"Nats-TTL": "1s"})
            st = (await eventually(lambda: js.stream_info("TTL"), lambda info: info.state.messages == 1)).state
            return short, keep, invalid, disabled, st

    short, keep, invalid, disabled, st = run(scenario())
    assert short["seq"] == 1 and keep["seq"] == 2
    assert error_of(invalid) == (400, 10165, "invalid per-message TTL")
    assert error_of(disabled) == (400, 10166, "per-message TTL is disabled")
    assert st.messages == 1 and st.first_seq == 2


def test_a_short_ttl_after_a_long_one_expires_on_time(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.TTL2", {"name": "TTL2", "subjects": ["ttl2.*"], "storage": "file",
                                                           "allow_msg_ttl": True})
            await publish_raw(nc, "ttl2.long", b"x", headers={"Nats-TTL": "1h"})
            await publish_raw(nc, "ttl2.short", b"y", headers={"Nats-TTL": "1s"})
            return (await eventually(lambda: js.stream_info("TTL2"), lambda info: info.state.messages == 1)).state

    st = run(scenario())
    assert st.messages == 1 and st.first_seq == 1 and st.last_seq == 2


def test_a_ttl_below_the_delete_marker_ttl_is_raised_to_it(js_server):
    """nats-server stores such a message with the marker's TTL (whole seconds) unless one message per subject
    is kept; a longer TTL and `never` stay as sent."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            stored = {}
            for name, per in (("MARK", -1), ("MARK1", 1)):
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {
                    "name": name, "subjects": [f"{name.lower()}.*"], "storage": "memory", "allow_msg_ttl": True,
                    "subject_delete_marker_ttl": 60_000_000_000, "max_age": 3_600_000_000_000,
                    "max_msgs_per_subject": per})
                for subject, ttl in (("short", "1s"), ("long", "2m"), ("never", "never")):
                    await publish_raw(nc, f"{name.lower()}.{subject}", b"x", headers={"Nats-TTL": ttl, "a": "b"})
                for seq in (1, 2, 3):
                    msg = await js.get_msg(name, seq)
                    stored[(name, msg.subject.split(".")[1])] = msg.headers
            return stored

    stored = run(scenario())
    assert stored[("MARK", "short")] == {"a": "b", "Nats-TTL": "60"}
    assert list(stored[("MARK", "short")]) == ["a", "Nats-TTL"]
    assert stored[("MARK", "long")]["Nats-TTL"] == "2m" and stored[("MARK", "never")]["Nats-TTL"] == "never"
    assert stored[("MARK1", "short")]["Nats-TTL"] == "1s"


def test_no_ack_stream_stores_without_answering(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.NA", {"name": "NA", "subjects": ["na"], "no_ack": True,
                                                         "storage": "memory"})
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("na", b"x", reply=inbox)
            await nc.flush()
            with pytest.raises(Exception):
                await sub.next_msg(0.3)
            return (await js.stream_info("NA")).state.messages

    assert run(scenario()) == 1


def test_headers_are_stored_and_plain_subscribers_still_receive(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="H", subjects=["h"], storage=StorageType.MEMORY)
            sub = await nc.subscribe("h")
            await js.publish("h", b"body", headers={"A": "1", "B": "two words"})
            live = await sub.next_msg(3)
            stored = await js.get_msg("H", 1)
            return live, stored

    live, stored = run(scenario())
    assert live.data == b"body" and live.headers["B"] == "two words"
    assert stored.headers["A"] == "1" and stored.data == b"body"


def test_subject_transform_and_republish(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.TR", {
                "name": "TR", "subjects": ["in.>"], "storage": "memory",
                "subject_transform": {"src": "in.*.>", "dest": "stored.{{wildcard(1)}}.>"},
                "republish": {"src": "stored.>", "dest": "copy.>"}})
            bad = await api(nc, "$JS.API.STREAM.CREATE.TB", {
                "name": "TB", "subjects": ["tb"], "storage": "memory",
                "subject_transform": {"src": "tb", "dest": "{{wildcard(1)}}"}})
            copies = await nc.subscribe("copy.>")
            ack = await publish_raw(nc, "in.eu.orders.1", b"x", headers={"K": "v"})
            stored = await js.get_msg("TR", 1)
            copy = await copies.next_msg(3)
            return ack, stored, copy, bad

    ack, stored, copy, bad = run(scenario())
    assert ack == {"stream": "TR", "seq": 1}
    assert stored.subject == "stored.eu.orders.1"
    assert copy.subject == "copy.eu.orders.1" and copy.data == b"x" and copy.headers["K"] == "v"
    assert copy.headers["Nats-Stream"] == "TR" and copy.headers["Nats-Sequence"] == "1"
    assert copy.headers["Nats-Subject"] == "stored.eu.orders.1" and copy.headers["Nats-Last-Sequence"] == "0"
    assert error_of(bad)[:2] == (400, 10156)


def test_subject_delete_marker_replaces_an_aged_out_last_message(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await api(nc, "$JS.API.STREAM.CREATE.SDM", {
                "name": "SDM", "subjects": ["sdm.*"], "storage": "memory", "max_age": 300_000_000,
                "subject_delete_marker_ttl": 1_000_000_000})
            await js.publish("sdm.a", b"one")
            await js.publish("sdm.b", b"two")
            await js.publish("sdm.b", b"three")
            last = await eventually(lambda: api(nc, "$JS.API.STREAM.MSG.GET.SDM", {"last_by_subj": "sdm.a"}),
                                    lambda resp: resp.get("message", {}).get("seq", 1) > 1)
            marker = await js.get_msg("SDM", last["message"]["seq"]) if "message" in last else None
            return created["config"], marker

    cfg, marker = run(scenario())
    assert cfg["allow_msg_ttl"] is True and cfg["allow_rollup_hdrs"] is True
    assert cfg["metadata"]["_nats.req.level"] == "1"
    assert marker is not None and not marker.data
    assert marker.headers["Nats-Marker-Reason"] == "MaxAge" and marker.headers["Nats-TTL"] == "1s"
