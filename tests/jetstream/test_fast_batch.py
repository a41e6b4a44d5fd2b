"""Fast batch publish (`allow_batched`) on both servers: the batch rides in the reply subject
(`<inbox>.<id>.<flow>.<gap mode>.<seq>.<op>.$FI`); the stream answers there with flow acks every N stored
messages, gap and error reports, and one PubAck with `batch` and `count` when the batch commits or ends.
Also the batch limits of `jetstream { limits { batch {...} } }` and the BATCH_ABANDONED advisory of atomic
batches."""
import asyncio
import base64
import json

import nats

from .helpers import api, connected, eventually, run

START, APPEND, COMMIT, EOB, PING = range(5)


def fast(inbox: str, batch_id: str, seq: int, op: int, flow: int = 0, gap: str = "fail") -> str:
    return f"{inbox}.{batch_id}.{flow}.{gap}.{seq}.{op}.$FI"


class Replies:
    """Every answer arriving on `<inbox>.>`, read in the order the server sent them."""

    def __init__(self, sub):
        self.sub = sub

    async def take(self, n: int) -> list:
        out = []
        for _ in range(n):
            data = (await self.sub.next_msg(5)).data
            out.append(json.loads(data) if data else None)
        return out

    async def none_left(self) -> bool:
        try:
            await self.sub.next_msg(0.3)
        except nats.errors.TimeoutError:
            return True
        return False


def _err(code: int, err_code: int, text: str, stream: str = "T") -> dict:
    return {"error": {"code": code, "err_code": err_code, "description": text}, "stream": stream, "seq": 0}


def _ack(seq: int, msgs: int) -> dict:
    return {"type": "ack", "seq": seq, "msgs": msgs}


def test_fast_batch_flow_acks_gaps_errors_and_the_commit(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            out = {}
            replies = Replies(await nc.subscribe("IN.>"))

            async def pub(subject, reply, data=b"x", headers=None, answers=1):
                await nc.publish(subject, data, reply=reply, headers=headers)
                return await replies.take(answers) if answers else []

            await api(nc, "$JS.API.STREAM.CREATE.T", {"name": "T", "subjects": ["t", "t.*"]})
            out["disabled"] = await pub("t", fast("IN", "u", 1, START))
            out["config"] = (await api(nc, "$JS.API.STREAM.UPDATE.T", {
                "name": "T", "subjects": ["t", "t.*"], "allow_batched": True, "subject_transform": {}}))["config"]
            out["bad"] = [(await pub("t", reply))[0] for reply in (
                fast("IN", "u", 0, START), fast("IN", "u", 1, EOB), fast("IN", "u", 2, START), "IN.u.0.maybe.1.0.$FI",
                fast("IN", "u", 1, 7), fast("IN", "u", 2 ** 64 - 1, APPEND), fast("IN", "A" * 65, 1, START),
                fast("IN", "u", 2, APPEND))]
            out["one"] = await pub("t", fast("IN", "one", 1, COMMIT))
            out["five"] = [await pub(f"t.{s}", fast("IN", "five", s, op), answers=n)
                           for s, op, n in ((1, START, 1), (2, APPEND, 0), (3, APPEND, 0), (4, APPEND, 0), (5, COMMIT, 1))]
            out["flow2"] = [await pub("t", fast("IN", "f", s, op, flow=2), answers=1 if s != 3 else 0)
                            for s, op in ((1, START), (2, APPEND), (3, APPEND), (4, APPEND), (5, COMMIT))]
            out["gap fail"] = await pub("t", fast("IN", "g", 1, START)) + \
                await pub("t", fast("IN", "g", 3, APPEND), answers=2)
            out["gap ok"] = await pub("t", fast("IN", "h", 1, START, gap="ok")) + \
                await pub("t", fast("IN", "h", 3, APPEND, gap="ok")) + await pub("t", fast("IN", "h", 4, EOB, gap="ok"))
            out["refused"] = await pub("t", fast("IN", "e", 1, START)) + await pub(
                "t", fast("IN", "e", 2, APPEND), headers={"Nats-Expected-Last-Sequence": "100"}, answers=2)
            out["refused first"] = await pub("t", fast("IN", "e1", 1, START),
                                             headers={"Nats-Expected-Last-Sequence": "100"}, answers=2)
            out["ping"] = await pub("t", fast("IN", "p", 1, START, 2, "ok")) + \
                await pub("t", fast("IN", "p", 2, APPEND, 2, "ok")) + await pub("t", fast("IN", "p", 2, PING, 2, "ok")) + \
                await pub("t", fast("IN", "p", 100, PING, 2, "ok"), answers=2) + \
                await pub("t", fast("IN", "p", 101, EOB, 2, "ok"))
            await nc.request("t", b"d", headers={"Nats-Msg-Id": "m1"})
            out["dup"] = await pub("t", fast("IN", "d1", 1, COMMIT), headers={"Nats-Msg-Id": "m1"})
            out["dups"] = [await pub("t", fast("IN", "d3", s, op, flow=3), headers={"Nats-Msg-Id": "m1"},
                                     answers={1: 1, 2: 0, 3: 2}[s])
                           for s, op in ((1, START), (2, APPEND), (3, COMMIT))]
            out["quiet"] = await replies.none_left()
            await nc.publish("t", b"no reply")  # a plain publish without a reply subject is stored as ever
            await nc.publish("t", b"no reply", headers={"Nats-Msg-Id": "m2"})
            out["stored"] = [(m["message"]["subject"], base64.b64decode(m["message"]["data"]))
                             for m in [await api(nc, "$JS.API.STREAM.MSG.GET.T", {"seq": s}) for s in (2, 6)]]
            out["state"] = (await api(nc, "$JS.API.STREAM.INFO.T"))["state"]["messages"]
            return out

    out = run(scenario(), timeout=60)
    assert out["disabled"] == [_err(400, 10205, "batch publish is disabled")]
    config = out["config"]
    assert config["allow_batched"] is True and config["metadata"]["_nats.req.level"] == "4"
    assert config["subject_transform"] == {"src": "", "dest": ""}
    assert out["bad"] == [_err(400, 10206, "batch publish pattern is invalid")] * 6 + [
        _err(400, 10207, "batch publish ID is invalid"), _err(400, 10208, "batch publish ID unknown")]
    assert out["one"] == [{"stream": "T", "seq": 1, "batch": "one", "count": 1}]
    # The first message answers with the flow settings (an ack every 10 stored messages by default).
    assert out["five"] == [[_ack(0, 10)], [], [], [], [{"stream": "T", "seq": 6, "batch": "five", "count": 5}]]
    assert out["flow2"] == [[_ack(0, 2)], [_ack(2, 2)], [], [_ack(4, 2)],
                            [{"stream": "T", "seq": 11, "batch": "f", "count": 5}]]
    # Gap mode "fail" ends the batch at a gap with what was stored; "ok" goes on past it.
    assert out["gap fail"] == [_ack(0, 10), {"type": "gap", "last_seq": 2, "seq": 3},
                               {"stream": "T", "seq": 12, "batch": "g", "count": 1}]
    assert out["gap ok"] == [_ack(0, 10), {"type": "gap", "last_seq": 2, "seq": 3},
                             {"stream": "T", "seq": 14, "batch": "h", "count": 3}]
    wrong = {"code": 400, "err_code": 10071, "description": "wrong last sequence: 15"}
    assert out["refused"] == [_ack(0, 10), {"type": "err", "seq": 2, "error": wrong},
                              {"stream": "T", "seq": 15, "batch": "e", "count": 1}]
    assert out["refused first"] == [_ack(0, 10), _err(400, 10071, "wrong last sequence: 15")]
    # A ping resends the last flow ack, and reports the messages it says were sent but never arrived.
    assert out["ping"] == [_ack(0, 2), _ack(2, 2), _ack(2, 2), {"type": "gap", "last_seq": 3, "seq": 101},
                           _ack(100, 2), {"stream": "T", "seq": 17, "batch": "p", "count": 100}]
    assert out["dup"] == [{"stream": "T", "seq": 18, "duplicate": True, "batch": "d1", "count": 1}]
    # Duplicates are skipped, yet acknowledged in the flow; nothing of the batch was stored (seq 0).
    assert out["dups"] == [[_ack(0, 3)], [], [_ack(3, 3), {"stream": "T", "seq": 0, "batch": "d3", "count": 3}]]
    assert out["quiet"] is True
    assert out["stored"] == [("t.1", b"x"), ("t.5", b"x")] and out["state"] == 20


BATCH_LIMITS = 'jetstream { limits { batch { max_inflight_per_stream: 1, max_inflight_total: 2, max_msgs: 3, ' \
               'timeout: "500ms" } } }\n' \
               'accounts { APP: { jetstream: enabled, users: [ {user: app, password: app} ] }, ' \
               'SYS: { users: [ {user: sys, password: sys} ] } }\nsystem_account: SYS\nno_auth_user: app\n'


def test_batch_limits_timeouts_abandoned_advisories_counters_and_sources(start_server, tmp_path):
    server = start_server("-js", "-sd", str(tmp_path), config=BATCH_LIMITS)

    async def scenario():
        async with connected(server) as (nc, js):
            out = {}
            replies = Replies(await nc.subscribe("IN.>"))
            advisories = await nc.subscribe("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.>")
            system = await nats.connect(server.url, user="sys", password="sys")
            copies = await system.subscribe("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.>")
            await system.flush()

            async def pub(subject, reply, data=b"x", headers=None, answers=1):
                await nc.publish(subject, data, reply=reply, headers=headers)
                return await replies.take(answers) if answers else []

            async def atomic(batch_id, seq, commit=None, **extra):
                h = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(seq), **extra}
                if commit:
                    h["Nats-Batch-Commit"] = commit
                return await pub("c", "IN.atomic", headers=h)

            for name in ("A", "B", "C"):
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [name.lower()],
                                                               "allow_batched": True, "allow_atomic": True})
            out["limits"] = await pub("a", fast("IN", "u", 1, START)) + await pub("a", fast("IN", "v", 1, COMMIT)) + \
                await pub("b", fast("IN", "w", 1, START)) + await pub("c", fast("IN", "x", 1, COMMIT))
            # An atomic batch left alone times out after the fast batch "u" (started first, same timeout).
            out["atomic"] = await atomic("t1", 1)
            timeout = json.loads((await advisories.next_msg(10)).data)
            out["after timeout"] = await pub("a", fast("IN", "u", 2, COMMIT))
            out["atomic"] += await atomic("g1", 1) + await atomic("g1", 3)
            out["atomic"] += [(await atomic("l1", s))[0] for s in (1, 2, 3, 4)]
            out["atomic"] += await atomic("r1", 1) + await atomic("r1", 2, **{"Nats-Required-Api-Level": "50"})
            out["atomic"] += await atomic("big", 5)
            out["advisories"] = [timeout] + [json.loads((await advisories.next_msg(5)).data) for _ in range(3)]
            out["system copies"] = [json.loads((await copies.next_msg(5)).data) for _ in range(4)]
            await system.close()

            await api(nc, "$JS.API.STREAM.CREATE.K", {"name": "K", "subjects": ["k"], "allow_batched": True,
                                                      "allow_msg_counter": True})
            out["counter"] = await pub("k", fast("IN", "k", 1, START), b"", {"Nats-Incr": "2"}) + \
                await pub("k", fast("IN", "k", 2, COMMIT), b"", {"Nats-Incr": "3"})
            out["total"] = base64.b64decode((await api(nc, "$JS.API.STREAM.MSG.GET.K", {"seq": 2}))["message"]["data"])
            out["mirror"] = await api(nc, "$JS.API.STREAM.CREATE.M", {"name": "M", "mirror": {"name": "K"},
                                                                      "allow_batched": True})
            out["after timeout"] += await pub("b", fast("IN", "y", 1, COMMIT))
            await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "sources": [{"name": "B"}], "allow_batched": True})
            got = await eventually(lambda: api(nc, "$JS.API.STREAM.MSG.GET.S", {"seq": 1}), lambda a: "message" in a)
            out["sourced"] = base64.b64decode(got["message"]["hdrs"])
            return out

    out = run(scenario(), timeout=60)
    many = _err(429, 10211, "batch publish too many inflight", "A")
    assert out["limits"] == [_ack(0, 10), many, _ack(0, 10), _err(429, 10211, "batch publish too many inflight", "C")]
    assert out["after timeout"] == [_err(400, 10208, "batch publish ID unknown", "A"),
                                    {"stream": "B", "seq": 2, "batch": "y", "count": 1}]
    assert out["atomic"] == [None, None, _err(400, 10176, "atomic publish batch is incomplete", "C"), None, None, None,
                             _err(400, 10199, "atomic publish batch is too large: 3", "C"), None,
                             _err(412, 10185, "JetStream minimum api level required", "C"),
                             _err(400, 10199, "atomic publish batch is too large: 3", "C")]
    assert [(a["type"], a["stream"], a["batch"], a["reason"]) for a in out["advisories"]] == [
        ("io.nats.jetstream.advisory.v1.stream_batch_abandoned", "C", b, r)
        for b, r in (("t1", "timeout"), ("g1", "incomplete"), ("l1", "large"), ("r1", "unsupported"))]
    # The system account gets a copy of each, naming the account, in nats-server's field order.
    assert [list(a) for a in out["system copies"]] == [["type", "id", "timestamp", "account", "stream", "batch",
                                                        "reason"]] * 4
    assert [(a["account"], a["batch"], a["reason"]) for a in out["system copies"]] == [
        ("APP", a["batch"], a["reason"]) for a in out["advisories"]]
    assert "account" not in out["advisories"][0]
    assert out["counter"] == [_ack(0, 10), {"stream": "K", "seq": 2, "batch": "k", "count": 2}]
    assert out["total"] == b'{"val":"5"}'
    assert out["mirror"]["error"]["err_code"] == 10209
    assert out["sourced"].startswith(b"NATS/1.0\r\nNats-Stream-Source: B 1 > > b")


IMPORTS = """
accounts: {
  A: { jetstream: enabled, users: [ {user: a, password: a} ], exports [ { service: "foo" } ] },
  B: { users: [ {user: b, password: b} ], imports [ { service: { subject: "foo", account: A } } ] },
}
"""


def test_a_fast_batch_through_a_service_import(start_server, tmp_path):
    """The stream reads the batch from the original reply subject, which the import carries in
    Nats-Request-Info; that header is not stored."""
    server = start_server("-js", "-sd", str(tmp_path), config=IMPORTS)

    async def scenario():
        url = f"nats://127.0.0.1:{server.port}"
        a = await nats.connect(url, user="a", password="a")
        b = await nats.connect(url, user="b", password="b")
        try:
            await api(a, "$JS.API.STREAM.CREATE.T", {"name": "T", "subjects": ["foo"], "allow_batched": True})
            replies = Replies(await b.subscribe("IN.>"))
            await b.publish("foo", b"x", reply=fast("IN", "viaB", 1, COMMIT))
            ack = await replies.take(1)
            stored = (await api(a, "$JS.API.STREAM.MSG.GET.T", {"seq": 1}))["message"]
            return ack, stored
        finally:
            await a.close()
            await b.close()

    ack, stored = run(scenario())
    assert ack == [{"stream": "T", "seq": 1, "batch": "viaB", "count": 1}]
    assert "hdrs" not in stored and base64.b64decode(stored["data"]) == b"x"


def test_long_fast_batches_one_after_another_interleaved_and_beside_a_subscriber(js_server):
    """Batches of many messages on one subject, as a publisher streams them without waiting (the embedded server
    stores the usual message of a batch without routing it when the stream is its only receiver): the flow
    acks, the PubAcks and what is stored, on file and memory streams; a subscriber of the subject sees every
    message with its reply; two batches interleaved, and a batch sequence sent twice, end as on nats-server."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            out = {}
            replies = Replies(await nc.subscribe("IN.>"))
            watch = await nc.subscribe("m.w")
            for name, storage in (("F", "file"), ("M", "memory")):
                p = name.lower()
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [f"{p}.>"],
                                                                "storage": storage, "allow_batched": True})

                async def batch(subject, batch_id, msgs, flow, answers):
                    for seq, data in msgs:
                        op = START if seq == 1 else (COMMIT if seq == len(msgs) else APPEND)
                        await nc.publish(subject, data, reply=fast("IN", batch_id, seq, op, flow))
                    return [a for _, a in await answered(answers)]

                async def answered(n):  # (batch id, answer) as they arrive
                    return [(m.subject.split(".")[1], json.loads(m.data))
                            for m in [await replies.sub.next_msg(5) for _ in range(n)]]

                got = out[name] = {}
                got["a"] = await batch(f"{p}.a", "a", [(s, b"a%d" % s) for s in range(1, 26)], 10, 4)
                got["w"] = await batch(f"{p}.w", "w", [(s, b"w%d" % s) for s in range(1, 7)], 2, 4)
                msgs = [(f"{p}.{b}", b, s, COMMIT if s == 6 else (START if s == 1 else APPEND))
                        for s in range(1, 7) for b in "ij"]
                for subject, b, s, op in msgs:
                    await nc.publish(subject, b"%s%d" % (b.encode(), s), reply=fast("IN", b, s, op, 2))
                got["ij"] = await answered(9)
                got["repeat"] = await batch(f"{p}.a", "r", [(1, b"r1"), (2, b"r2"), (3, b"r3"), (3, b"r3"),
                                                           (4, b"r4")], 10, 4)
                got["quiet"] = await replies.none_left()
                info = (await api(nc, f"$JS.API.STREAM.INFO.{name}"))["state"]
                got["stored"] = [(m["message"]["subject"], base64.b64decode(m["message"]["data"])) for m in [
                    await api(nc, f"$JS.API.STREAM.MSG.GET.{name}", {"seq": s}) for s in range(1, info["last_seq"] + 1)]]
            out["watched"] = []
            for _ in range(6):
                m = await watch.next_msg(5)
                out["watched"].append((m.data, m.reply))
            return out

    out = run(scenario(), timeout=60)
    for name in ("F", "M"):
        got, p = out[name], name.lower()
        assert got["a"] == [_ack(0, 10), _ack(10, 10), _ack(20, 10), {"stream": name, "seq": 25, "batch": "a",
                                                                       "count": 25}]
        assert got["w"] == [_ack(0, 2), _ack(2, 2), _ack(4, 2), {"stream": name, "seq": 31, "batch": "w", "count": 6}]
        # The second batch in flight starts with an ack every message, then both windows settle at 2.
        assert got["ij"] == [("i", _ack(0, 2)), ("j", _ack(0, 1)), ("j", _ack(1, 2)), ("i", _ack(2, 2)),
                             ("j", _ack(3, 2)), ("i", _ack(4, 2)), ("j", _ack(5, 2)),
                             ("i", {"stream": name, "seq": 42, "batch": "i", "count": 6}),
                             ("j", {"stream": name, "seq": 43, "batch": "j", "count": 6})]
        # Sequence 3 again ends the batch at what was stored; its next message finds no batch.
        assert got["repeat"] == [_ack(0, 10), {"type": "gap", "last_seq": 4, "seq": 3},
                                 {"stream": name, "seq": 46, "batch": "r", "count": 3},
                                 _err(400, 10208, "batch publish ID unknown", name)]
        assert got["quiet"] is True
        assert got["stored"] == [(f"{p}.a", b"a%d" % s) for s in range(1, 26)] + [
            (f"{p}.w", b"w%d" % s) for s in range(1, 7)] + [
            (f"{p}.{b}", b"%s%d" % (b.encode(), s)) for s in range(1, 7) for b in "ij"] + [
            (f"{p}.a", b"r%d" % s) for s in range(1, 4)]
    assert out["watched"] == [(b"w%d" % s, fast("IN", "w", s, START if s == 1 else (COMMIT if s == 6 else APPEND), 2))
                              for s in range(1, 7)]


def test_a_fast_batch_written_at_once_is_answered_and_stored_as_sent_one_by_one(js_server):
    """A publisher that writes a whole fast batch in one go (the server reads many of its PUBs at once: the
    embedded server takes such a run in one call): the flow acks and the PubAck in order, every message stored
    with its payload (one with CRLF inside), and a plain publish to another subject in the middle stored in its
    place, on file and memory streams."""
    async def scenario():
        out = {}
        async with connected(js_server) as (nc, _):
            for name, storage in (("F", "file"), ("M", "memory")):
                p = name.lower()
                await api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name, "subjects": [f"{p}.>"],
                                                                "storage": storage, "allow_batched": True})
                pubs = []
                for seq in range(1, 31):
                    op = START if seq == 1 else (COMMIT if seq == 30 else APPEND)
                    data = b"x\r\ny" if seq == 7 else b"a%d" % seq
                    pubs.append(b"PUB %s.a %s %d\r\n%s\r\n" % (p.encode(), fast("IN", "a", seq, op, 10).encode(),
                                                             len(data), data))
                    if seq == 15:
                        pubs.append(b"PUB %s.b 3\r\nmid\r\n" % p.encode())
                reader, writer = await asyncio.open_connection("127.0.0.1", js_server.port)
                await reader.readuntil(b"\r\n")
                writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB IN.> 1\r\nPING\r\n')
                await reader.readuntil(b"PONG\r\n")
                writer.write(b"".join(pubs))
                answers = []
                while not answers or b'"batch"' not in answers[-1]:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
                    if head.startswith(b"MSG "):
                        size = int(head.split()[-1])
                        answers.append((await reader.readexactly(size + 2))[:-2])
                writer.close()
                info = (await api(nc, f"$JS.API.STREAM.INFO.{name}"))["state"]
                out[name] = {"answers": [json.loads(a) for a in answers], "stored": [
                    (m["message"]["subject"], base64.b64decode(m["message"]["data"])) for m in [
                        await api(nc, f"$JS.API.STREAM.MSG.GET.{name}", {"seq": s})
                        for s in range(1, info["last_seq"] + 1)]]}
        return out

    out = run(scenario(), timeout=60)
    for name in ("F", "M"):
        p = name.lower()
        assert out[name]["answers"] == [_ack(0, 10), _ack(10, 10), _ack(20, 10),
                                        {"stream": name, "seq": 31, "batch": "a", "count": 30}]
        batch = [(f"{p}.a", b"x\r\ny" if s == 7 else b"a%d" % s) for s in range(1, 31)]
        assert out[name]["stored"] == batch[:15] + [(f"{p}.b", b"mid")] + batch[15:]
