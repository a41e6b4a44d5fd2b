"""Atomic batch publish (`allow_atomic`) on both servers: staged messages get an empty answer, the commit (`1`
or an `eob` marker) stores the whole batch with a PubAck carrying `batch` and `count`, and every refusal stores
nothing of the batch, with nats-server's error."""
import base64
import json
from datetime import datetime, timezone

import pytest

from .helpers import api, connected, error_of, run


def _hdrs(batch_id: str, seq: int, commit: str | None = None, **extra) -> dict:
    out = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(seq)}
    if commit:
        out["Nats-Batch-Commit"] = commit
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


async def _pub(nc, subject: str, headers: dict, data: bytes = b"x"):
    msg = await nc.request(subject, data, headers=headers, timeout=3)
    return json.loads(msg.data) if msg.data else None


async def _messages(nc, stream: str) -> int:
    return (await api(nc, f"$JS.API.STREAM.INFO.{stream}"))["state"]["messages"]


def test_a_batch_is_stored_whole_at_its_commit(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await api(nc, "$JS.API.STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"], "allow_atomic": True})
            staged = [await _pub(nc, f"a.{i}", _hdrs("b1", i)) for i in (1, 2)]
            before = await _messages(nc, "A")
            ack = await _pub(nc, "a.3", _hdrs("b1", 3, "1"))
            first = await api(nc, "$JS.API.STREAM.MSG.GET.A", {"seq": 1})
            last = await api(nc, "$JS.API.STREAM.MSG.GET.A", {"seq": 3})
            await _pub(nc, "a.4", _hdrs("b2", 1))
            eob = await _pub(nc, "a.4", _hdrs("b2", 2, "eob"), b"")
            marked = await api(nc, "$JS.API.STREAM.MSG.GET.A", {"seq": 4})
            return created, staged, before, ack, first, last, eob, marked, await _messages(nc, "A")

    created, staged, before, ack, first, last, eob, marked, total = run(scenario())
    assert created["config"]["allow_atomic"] is True and created["config"]["metadata"]["_nats.req.level"] == "2"
    assert staged == [None, None] and before == 0
    assert ack == {"stream": "A", "seq": 3, "batch": "b1", "count": 3}
    assert base64.b64decode(first["message"]["hdrs"]) == b"NATS/1.0\r\nNats-Batch-Id: b1\r\nNats-Batch-Sequence: 1\r\n\r\n"
    assert b"Nats-Batch-Commit: 1" in base64.b64decode(last["message"]["hdrs"])
    assert eob == {"stream": "A", "seq": 4, "batch": "b2", "count": 1}
    assert b"Nats-Batch-Commit: 1" in base64.b64decode(marked["message"]["hdrs"]) and total == 4


def _ns(text: str) -> int:
    """A message `time` (RFC 3339, up to nine fraction digits, as Go writes it) in nanoseconds since 1970."""
    whole, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp())
    return seconds * 10**9 + int(frac.ljust(9, "0"))


def test_a_batch_is_stamped_when_it_commits(js_server):
    """A message published between a batch's first messages and its commit is stored first, with the earlier
    time: the batch's messages are stamped as the commit stores them, in order, on memory and file streams."""
    async def scenario():
        out = {}
        async with connected(js_server) as (nc, js):
            for storage in ("memory", "file"):
                name = f"T{storage.upper()}"
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [f"{storage}.>"],
                                                                "storage": storage, "allow_atomic": True})
                await nc.publish(f"{storage}.a", b"1", headers=_hdrs("b", 1))
                await nc.publish(f"{storage}.b", b"2", headers=_hdrs("b", 2))
                plain = json.loads((await nc.request(f"{storage}.plain", b"p", timeout=3)).data)
                ack = await _pub(nc, f"{storage}.c", _hdrs("b", 3, "1"))
                gets = [(await api(nc, f"$JS.API.STREAM.MSG.GET.{name}", {"seq": seq}))["message"]
                        for seq in range(1, 5)]
                out[storage] = plain, ack, [(g["subject"], _ns(g["time"])) for g in gets]
        return out

    for storage, (plain, ack, stored) in run(scenario()).items():
        name = f"T{storage.upper()}"
        assert plain == {"stream": name, "seq": 1} and ack == {"stream": name, "seq": 4, "batch": "b", "count": 3}
        assert [subject for subject, _ in stored] == [f"{storage}.{s}" for s in ("plain", "a", "b", "c")]
        times = [ts for _, ts in stored]
        assert times[0] < times[1] <= times[2] <= times[3], (storage, times)


@pytest.mark.parametrize("steps, expected", [
    ([("b", 1, None, {}), ("b", 3, None, {}), ("b", 4, "1", {})], (400, 10176, "atomic publish batch is incomplete")),
    ([("b", 2, None, {})], (400, 10176, "atomic publish batch is incomplete")),
    ([("b", 1001, None, {})], (400, 10199, "atomic publish batch is too large: 1000")),
    ([("x" * 65, 1, None, {})], (400, 10179, "atomic publish batch ID is invalid")),
    ([("b", 1, None, {}), ("b", 2, "yes", {})], (400, 10200, "atomic publish batch commit is invalid")),
    ([("b", 1, "eob", {})], (400, 10176, "atomic publish batch is incomplete")),
    ([("b", 1, None, {"Nats-Msg-Id": "m"}), ("b", 2, "1", {"Nats-Msg-Id": "m"})],
     (400, 10201, "atomic publish batch contains duplicate message id")),
    ([("b", 1, "1", {"Nats-Expected-Last-Msg-Id": "m"})],
     (400, 10177, "atomic publish unsupported header used: Nats-Expected-Last-Msg-Id")),
    ([("b", 1, None, {}), ("b", 2, "1", {"Nats-Expected-Last-Sequence": "0"})], (400, 10071, "wrong last sequence: 1")),
    ([("b", 1, None, {}), ("b", 2, "1", {"Nats-Expected-Last-Sequence": "1"})], (400, 10164, "wrong last sequence")),
    ([("b", 1, None, {}), ("b", 2, "1", {"Nats-Expected-Last-Subject-Sequence": "0"})],
     (400, 10164, "wrong last sequence")),
    ([("b", 1, None, {}), ("b", 2, "1", {"Nats-Rollup": "all"})], (500, 10111, "rollup not permitted")),
])
def test_a_refused_batch_stores_nothing(js_server, steps, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.A", {"name": "A", "subjects": ["a"], "allow_atomic": True})
            answers = []
            for batch_id, seq, commit, extra in steps:
                h = _hdrs(batch_id, seq, commit)
                h.update(extra)
                answers.append(await _pub(nc, "a", h))
            return answers, await _messages(nc, "A")

    answers, stored = run(scenario())
    assert error_of(answers[-1]) == expected and answers[-1]["seq"] == 0
    assert stored == 0


def test_a_batch_that_would_not_fit_under_discard_new_stores_nothing(js_server):
    """Each message would fit one by one until the limit; the batch is refused whole, before any is stored."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.A", {"name": "A", "subjects": ["a.>"], "allow_atomic": True,
                                                      "discard": "new", "max_msgs": 5, "max_msgs_per_subject": 2,
                                                      "discard_new_per_subject": True})
            await _pub(nc, "a.1", _hdrs("b1", 1))
            await _pub(nc, "a.2", _hdrs("b1", 2))
            fits = await _pub(nc, "a.3", _hdrs("b1", 3, "1"))
            await _pub(nc, "a.4", _hdrs("b2", 1))
            await _pub(nc, "a.5", _hdrs("b2", 2))
            too_many = await _pub(nc, "a.6", _hdrs("b2", 3, "1"))
            await _pub(nc, "a.1", _hdrs("b3", 1))
            per_subject = await _pub(nc, "a.1", _hdrs("b3", 2, "1"))
            await _pub(nc, "a.4", _hdrs("b4", 1))
            fills = await _pub(nc, "a.5", _hdrs("b4", 2, "1"))
            return fits, too_many, per_subject, fills, await _messages(nc, "A")

    fits, too_many, per_subject, fills, stored = run(scenario())
    assert fits["count"] == 3
    assert error_of(too_many) == (503, 10077, "maximum messages exceeded")
    assert error_of(per_subject) == (503, 10077, "maximum messages per subject exceeded")
    assert fills["count"] == 2 and stored == 5


def test_batches_need_allow_atomic_a_sequence_and_no_async_persistence(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.P", {"name": "P", "subjects": ["p"]})
            await api(nc, "$JS.API.STREAM.CREATE.A", {"name": "A", "subjects": ["a"], "allow_atomic": True})
            disabled = await _pub(nc, "p", _hdrs("c", 1))
            missing = await _pub(nc, "a", {"Nats-Batch-Id": "c"})
            async_mode = await api(nc, "$JS.API.STREAM.CREATE.X", {"name": "X", "allow_atomic": True,
                                                                  "persist_mode": "async"})
            return disabled, missing, async_mode

    disabled, missing, async_mode = run(scenario())
    assert error_of(disabled) == (400, 10174, "atomic publish is disabled")
    assert error_of(missing) == (400, 10175, "atomic publish sequence is missing")
    assert error_of(async_mode) == (500, 10052, "async persist mode is not supported with atomic batch publish")


def test_a_batch_of_counter_increments_adds_up(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "subjects": ["c"], "allow_atomic": True,
                                                      "allow_msg_counter": True})
            await _pub(nc, "c", _hdrs("k", 1, None, Nats_Incr="2"), b"")
            ack = await _pub(nc, "c", _hdrs("k", 2, "1", Nats_Incr="3"), b"")
            last = await api(nc, "$JS.API.STREAM.MSG.GET.C", {"seq": 2})
            return ack, last

    ack, last = run(scenario())
    assert ack == {"stream": "C", "seq": 2, "batch": "k", "count": 2}
    assert base64.b64decode(last["message"]["data"]) == b'{"val":"5"}'


def test_a_memory_batch_keeps_its_limits_and_feeds_its_consumers(js_server):
    """A memory stream with max_msgs_per_subject and a consumer: batches of messages with only the batch's
    headers (nats-py's order, then Go's with the commit first) and one with a Nats-Msg-Id among them are stored
    in order, the subject limit applied as if one by one, the consumer counting what is left; a subscriber of
    the subject gets every message of a batch as it is published."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.M", {"name": "M", "subjects": ["m.>"], "storage": "memory",
                                                      "allow_atomic": True, "max_msgs_per_subject": 2})
            await api(nc, "$JS.API.CONSUMER.CREATE.M.D", {"stream_name": "M", "config": {
                "durable_name": "D", "ack_policy": "explicit"}})
            for i, subject in enumerate(["m.a", "m.a", "m.a", "m.b"], 1):
                await nc.publish(subject, b"%d" % i, headers=_hdrs("b1", i))
            first = await _pub(nc, "m.b", _hdrs("b1", 5, "1"), b"5")
            watcher = await nc.subscribe("m.c")  # the stream is no longer the subject's only listener
            await nc.publish("m.c", b"6", headers=_hdrs("b2", 1))
            await _pub(nc, "m.c", _hdrs("b2", 2, None, Nats_Msg_Id="x"), b"7")
            second = await _pub(nc, "m.c", {"Nats-Batch-Commit": "1", "Nats-Batch-Id": "b2",
                                            "Nats-Batch-Sequence": "3"}, b"8")
            seen = [(await watcher.next_msg(2)).data for _ in range(3)]
            info = await api(nc, "$JS.API.STREAM.INFO.M", {"subjects_filter": ">"})
            gets = [await api(nc, "$JS.API.STREAM.MSG.GET.M", {"seq": seq}) for seq in range(1, 9)]
            consumer = await api(nc, "$JS.API.CONSUMER.INFO.M.D")
            return first, second, info["state"], gets, consumer["num_pending"], seen

    first, second, state, gets, pending, seen = run(scenario())
    assert seen == [b"6", b"7", b"8"]
    assert first == {"stream": "M", "seq": 5, "batch": "b1", "count": 5}
    assert second == {"stream": "M", "seq": 8, "batch": "b2", "count": 3}
    assert (state["messages"], state["first_seq"], state["last_seq"]) == (6, 2, 8)
    assert state["subjects"] == {"m.a": 2, "m.b": 2, "m.c": 2}
    assert [g.get("message", {}).get("subject") for g in gets] == [None, "m.a", "m.a", "m.b", "m.b", None, "m.c", "m.c"]
    assert [base64.b64decode(g["message"]["data"]) for g in gets if "message" in g] == \
        [b"2", b"3", b"4", b"5", b"7", b"8"]
    assert base64.b64decode(gets[6]["message"]["hdrs"]) == \
        b"NATS/1.0\r\nNats-Batch-Id: b2\r\nNats-Batch-Sequence: 2\r\nNats-Msg-Id: x\r\n\r\n"
    assert pending == 6


def test_batches_published_back_to_back_without_replies(js_server):
    """Staged messages sent without a reply, many in one write (the embedded server takes such a run of HPUBs in
    one call): two batches interleaved, a gap, a message with another header in the middle, a batch over the
    size limit, a message for a stream-less subject between; each commit's answer and what is stored are
    nats-server's."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.R", {"name": "R", "subjects": ["r.>"], "storage": "memory",
                                                      "allow_atomic": True})
            answers = {}
            for b in ("p", "q", "gap", "hdr", "big"):
                await _pub(nc, "r.x", _hdrs(b, 1), b"%s1" % b.encode())
            for seq in range(2, 6):   # p and q interleaved, one write
                await nc.publish("r.x", b"p%d" % seq, headers=_hdrs("p", seq))
                await nc.publish("r.x", b"q%d" % seq, headers=_hdrs("q", seq))
            for seq in (2, 3, 5, 6):
                await nc.publish("r.x", b"gap%d" % seq, headers=_hdrs("gap", seq))
            for seq in range(2, 7):
                extra = {"Nats-Msg-Id": "m4"} if seq == 4 else {}
                await nc.publish("r.x", b"hdr%d" % seq, headers=_hdrs("hdr", seq, **extra))
                if seq == 3:
                    await nc.publish("s.x", b"elsewhere", headers=_hdrs("hdr", seq))
            for seq in range(2, 1002):
                await nc.publish("r.x", b"", headers=_hdrs("big", seq))
            for b, seq in (("p", 6), ("q", 6), ("gap", 7), ("hdr", 7), ("big", 1002)):
                answers[b] = await _pub(nc, "r.x", _hdrs(b, seq, "1"), b"%s%d" % (b.encode(), seq))
            info = await api(nc, "$JS.API.STREAM.INFO.R")
            gets = [await api(nc, "$JS.API.STREAM.MSG.GET.R", {"seq": s}) for s in range(1, 14)]
            return answers, info["state"]["messages"], gets

    answers, stored, gets = run(scenario())
    assert answers["p"] == {"stream": "R", "seq": 6, "batch": "p", "count": 6}
    assert answers["q"] == {"stream": "R", "seq": 12, "batch": "q", "count": 6}
    assert error_of(answers["gap"]) == (400, 10176, "atomic publish batch is incomplete")
    assert answers["hdr"] == {"stream": "R", "seq": 19, "batch": "hdr", "count": 7}
    assert error_of(answers["big"]) == (400, 10199, "atomic publish batch is too large: 1000")
    assert stored == 19
    assert [base64.b64decode(g["message"]["data"]) for g in gets] == \
        [b"p%d" % i for i in range(1, 7)] + [b"q%d" % i for i in range(1, 7)] + [b"hdr1"]
    assert base64.b64decode(gets[5]["message"]["hdrs"]) == \
        b"NATS/1.0\r\nNats-Batch-Id: p\r\nNats-Batch-Sequence: 6\r\nNats-Batch-Commit: 1\r\n\r\n"
