"""Stream snapshots and restores (`$JS.API.STREAM.SNAPSHOT/RESTORE`) on both servers: a file stream with gaps,
headers and a part-acknowledged durable consumer comes back the same (messages, sequences, times, consumer
state); chunk flow control; and the bad cases with nats-server's codes, a failed restore leaving nothing."""
import asyncio
import base64
import json
import os

import nats.errors

from .helpers import api, connected, error_of, run, streams_dir


async def snapshot(nc, stream: str, **req) -> tuple[dict, bytes, list]:
    """Take a snapshot as natscli does (ack each chunk); (response, the bytes, (size, reply, status) of each message)."""
    got, data, done = [], bytearray(), asyncio.Event()

    async def on_chunk(m):
        got.append((len(m.data), m.reply, (m.headers or {}).get("Status")))
        if not m.data:
            done.set()
            return
        data.extend(m.data)
        if m.reply:
            await nc.publish(m.reply, b"")

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_chunk)
    resp = await api(nc, f"$JS.API.STREAM.SNAPSHOT.{stream}", {"deliver_subject": inbox, **req})
    if "error" not in resp:
        await asyncio.wait_for(done.wait(), 10)
    await sub.unsubscribe()
    return resp, bytes(data), got


async def restore(nc, stream: str, meta: dict, data: bytes, chunk: int = 1024) -> dict:
    """Restore as natscli does: the request, every chunk as a request, the empty one answered with the stream."""
    resp = await api(nc, f"$JS.API.STREAM.RESTORE.{stream}", meta)
    if "error" in resp:
        return resp
    for i in range(0, len(data), chunk):
        ack = await nc.request(resp["deliver_subject"], data[i:i + chunk], timeout=2)
        assert ack.data == b""
    final = await nc.request(resp["deliver_subject"], b"", timeout=10)
    return json.loads(final.data)


async def messages(nc, stream: str, first: int, last: int) -> list:
    out = []
    for seq in range(first, last + 1):
        got = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq})
        m = got.get("message")
        out.append(None if m is None else (m["seq"], m["subject"], base64.b64decode(m.get("hdrs", "")),
                                           base64.b64decode(m.get("data", "")), m["time"]))
    return out


def _consumer_view(info: dict) -> dict:
    return {"config": {k: v for k, v in info["config"].items() if k != "metadata"},
            "delivered": {k: info["delivered"][k] for k in ("consumer_seq", "stream_seq")},
            "ack_floor": {k: info["ack_floor"][k] for k in ("consumer_seq", "stream_seq")},
            "num_ack_pending": info["num_ack_pending"], "num_pending": info["num_pending"],
            "num_redelivered": info["num_redelivered"]}


def test_a_file_stream_with_gaps_headers_and_a_consumer_round_trips(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="S", subjects=["s.>"])
            for i in range(1, 41):
                await js.publish(f"s.{i % 3}", os.urandom(60 + i), headers={"N": str(i)} if i % 4 else None)
            await api(nc, "$JS.API.STREAM.PURGE.S", {"seq": 4})          # first sequence 4
            for seq in (6, 7, 20):                                        # gaps
                await js.delete_msg("S", seq)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.D", {"stream_name": "S", "config": {
                "durable_name": "D", "ack_policy": "explicit", "filter_subject": "s.1"}})
            sub = await js.pull_subscribe_bind("D", "S")
            fetched = await sub.fetch(6, timeout=2)
            for m in fetched[:2] + fetched[3:4]:
                await m.ack_sync()
            await nc.request(fetched[4].reply, b"-NAK", timeout=2)      # answered once the server has it
            redelivered = await sub.fetch(1, timeout=2)
            assert redelivered[0].metadata.num_delivered == 2
            before_info = await api(nc, "$JS.API.STREAM.INFO.S")
            before = await messages(nc, "S", 1, 40)
            consumer_before = await api(nc, "$JS.API.CONSUMER.INFO.S.D")
            resp, data, chunks = await snapshot(nc, "S", chunk_size=1024, window_size=2048)
            await sub.unsubscribe()
            await js.delete_stream("S")
            meta = {"config": resp["config"], "state": resp["state"]}
            restored = await restore(nc, "S", meta, data)
            after = await messages(nc, "S", 1, 40)
            after_info = await api(nc, "$JS.API.STREAM.INFO.S")
            consumer_after = await api(nc, "$JS.API.CONSUMER.INFO.S.D")
            again = await restore(nc, "S", meta, data)
            bare, bare_data, _ = await snapshot(nc, "S", no_consumers=True)
            await js.delete_stream("S")
            without = await restore(nc, "S", {"config": bare["config"], "state": bare["state"]}, bare_data)
            return (before_info, before, consumer_before, resp, data, chunks, restored, after, after_info,
                    consumer_after, again, (bare, without))

    (before_info, before, consumer_before, resp, data, chunks, restored, after, after_info, consumer_after,
     again, (bare, without)) = run(scenario())
    assert resp["type"] == "io.nats.jetstream.api.v1.stream_snapshot_response"
    assert resp["config"]["name"] == "S" and resp["state"]["messages"] == 34
    assert resp["state"]["first_seq"] == 4 and resp["state"]["last_seq"] == 40
    # Flow control: full chunks carry an ack subject with their size and index, the last partial one none,
    # and the end is an empty message with status 204.
    full = [c for c in chunks if c[0] == 1024]
    assert len(full) >= 2 and all(r.endswith(f".1024.{i}") and r.startswith("$JS.SNAPSHOT.ACK.S.")
                                  for i, (_n, r, _s) in enumerate(full, 1))
    assert chunks[-1] == (0, "", "204") and sum(c[0] for c in chunks) == len(data)
    assert restored["type"] == "io.nats.jetstream.api.v1.stream_create_response", restored
    assert "error" not in restored
    assert restored["state"] == {k: v for k, v in before_info["state"].items()}
    assert after_info["state"] == before_info["state"]
    assert after == before
    assert [m is None for m in after[:6]] == [True] * 3 + [False, False, True]
    assert after[19] is None and after[4][2].startswith(b"NATS/1.0\r\nN: 5")
    assert _consumer_view(consumer_after) == _consumer_view(consumer_before)
    assert consumer_after["num_ack_pending"] == 3 and consumer_after["ack_floor"]["stream_seq"] > 0
    assert consumer_after["num_redelivered"] == 1
    assert error_of(again) == (400, 10130, "stream name already in use, cannot restore")
    # no_consumers: the answer still counts the stream's consumer, the archive holds none
    assert bare["state"]["consumer_count"] == 1
    assert without["state"]["consumer_count"] == 0 and without["state"]["messages"] == 34


def test_bad_snapshot_and_restore_requests_get_nats_server_errors_and_leave_nothing(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="S", subjects=["s.>"])
            await js.add_stream(name="V", subjects=["v.>"])
            for i in range(30):
                await js.publish("s.x", os.urandom(100))
                await js.publish("v.x", os.urandom(100), headers={"N": str(i)})
            out = {}
            # An abandoned restore (one chunk, then silence) and a snapshot whose chunks are never acked run
            # while the other cases are tried; both end after nats-server's 5 s.
            abandoned = await api(nc, "$JS.API.STREAM.RESTORE.A", {"config": {"name": "A", "subjects": ["a"]},
                                                                   "state": {}})
            await nc.request(abandoned["deliver_subject"], b"\xff\x06\x00\x00S2sTwO", timeout=2)
            abandoned_at = asyncio.get_running_loop().time()
            unacked, unacked_done = [], asyncio.Event()

            async def no_ack(m):
                unacked.append((len(m.data), (m.headers or {}).get("Status"), (m.headers or {}).get("Description")))
                if not m.data:
                    unacked_done.set()
            await nc.subscribe("snap.noack", cb=no_ack)
            out["no_ack"] = await api(nc, "$JS.API.STREAM.SNAPSHOT.S", {"deliver_subject": "snap.noack",
                                                                       "chunk_size": 1024, "window_size": 1024})
            out["missing"] = await api(nc, "$JS.API.STREAM.SNAPSHOT.NOPE", {"deliver_subject": "x"})
            out["empty"] = await api(nc, "$JS.API.STREAM.SNAPSHOT.S", b"")
            out["bad_deliver"] = await api(nc, "$JS.API.STREAM.SNAPSHOT.S", {"deliver_subject": "a.*"})
            out["unknown_field"] = await api(nc, "$JS.API.STREAM.SNAPSHOT.S", {"deliver_subject": "a", "x": 1})
            out["restore_empty"] = await api(nc, "$JS.API.STREAM.RESTORE.T", b"")
            out["restore_mismatch"] = await api(nc, "$JS.API.STREAM.RESTORE.T", {"config": {"name": "U"}})
            out["restore_exists"] = await api(nc, "$JS.API.STREAM.RESTORE.S", {"config": {"name": "S"}})
            out["garbage"] = await restore(nc, "G", {"config": {"name": "G", "subjects": ["g"]}}, b"garbage" * 300)
            resp, data, _chunks = await snapshot(nc, "V")
            await js.delete_stream("V")
            out["truncated"] = await restore(nc, "V", {"config": resp["config"], "state": resp["state"]},
                                             data[:len(data) // 2])
            no_reply = await api(nc, "$JS.API.STREAM.RESTORE.R", {"config": {"name": "R", "subjects": ["r"]}})
            await nc.publish(no_reply["deliver_subject"], data[:100])
            try:
                await nc.request(no_reply["deliver_subject"], b"", timeout=1)
                out["no_reply"] = "answered"
            except nats.errors.NoRespondersError:
                out["no_reply"] = "no responders"
            await asyncio.wait_for(unacked_done.wait(), 10)
            out["unacked"] = unacked
            await asyncio.sleep(abandoned_at + 5.5 - asyncio.get_running_loop().time())
            try:
                await nc.request(abandoned["deliver_subject"], b"", timeout=1)
                out["abandoned"] = "answered"
            except nats.errors.NoRespondersError:
                out["abandoned"] = "no responders"
            out["names"] = (await api(nc, "$JS.API.STREAM.NAMES")).get("streams")
            return out

    out = run(scenario())
    assert error_of(out["missing"]) == (404, 10059, "stream not found")
    assert out["missing"]["type"] == "io.nats.jetstream.api.v1.stream_snapshot_response"
    assert error_of(out["empty"]) == (400, 10003, "bad request")
    assert error_of(out["bad_deliver"]) == (400, 10015, "deliver subject not valid")
    assert error_of(out["unknown_field"]) == (400, 10025, 'invalid JSON: json: unknown field "x"')
    assert error_of(out["restore_empty"]) == (400, 10003, "bad request")
    assert out["restore_empty"]["deliver_subject"] == ""
    assert error_of(out["restore_mismatch"]) == (400, 10056, "stream name in subject does not match request")
    assert error_of(out["restore_exists"]) == (400, 10130, "stream name already in use, cannot restore")
    assert error_of(out["garbage"]) == (500, 10062, "restore failed: s2: corrupt input")
    assert out["garbage"]["type"] == "io.nats.jetstream.api.v1.stream_create_response"
    assert error_of(out["truncated"]) == (500, 10062, "restore failed: s2: corrupt input")
    assert out["no_reply"] == "no responders"
    assert out["abandoned"] == "no responders"
    assert out["unacked"] == [(1024, None, None), (0, "408", "No Flow Response")]
    assert out["names"] == ["S"]


def test_a_record_damaged_on_disk_is_passed_over_by_jsck_snapshots_and_consumers(js_server):
    """nats-server 2.15 runs no pre-scan for `jsck` (it logs a health check): its archive reads each message through
    the store, which passes over a record that fails its checksum; so does a consumer. (The record is damaged while
    the server is stopped; tests/faults/test_store_damage.py damages one while the embedded store is open.)"""
    async def fill():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"], "storage": "file"})
            for i in (1, 2, 3):
                await js.publish("s", f"MARKER{i}".encode())

    async def read():
        async with connected(js_server) as (nc, js):
            resp, data, _ = await snapshot(nc, "S", jsck=True)
            meta = {"config": {**resp["config"], "name": "R", "subjects": ["r"]}, "state": resp["state"]}
            restored = await restore(nc, "R", meta, data)
            copied = [m and m[3] for m in await messages(nc, "R", 1, 3)]
            await api(nc, "$JS.API.CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"durable_name": "C"}})
            psub = await js.pull_subscribe_bind(durable="C", stream="S")
            pulled = [m.data for m in await psub.fetch(2, timeout=5)]
            if len(pulled) < 2:
                pulled += [m.data for m in await psub.fetch(1, timeout=5)]
            return restored["state"]["messages"], copied, pulled

    run(fill())
    js_server.stop()
    [block] = [p for p in (streams_dir(js_server) / "S").rglob("*") if p.is_file() and b"MARKER2" in p.read_bytes()]
    block.write_bytes(block.read_bytes().replace(b"MARKER2", b"MARKER9"))  # the record's checksum no longer holds
    js_server.start()
    count, copied, pulled = run(read())
    assert (count, copied, pulled) == (2, [b"MARKER1", None, b"MARKER3"], [b"MARKER1", b"MARKER3"])
    js_server.wait_for_log(r"Starting health check and snapshot for stream '\$G > S'")


def test_a_snapshot_of_one_server_restores_on_the_other(js_server, start_server, tmp_path_factory):
    """The bytes are nats-server's archive: what one server writes, the other restores (both directions, one
    per parameter)."""
    other_kind = "nats-server" if js_server.kind == "embedded" else "embedded"
    other = start_server("-js", "-sd", str(tmp_path_factory.mktemp("other")), kind=other_kind)

    async def scenario():
        async with connected(js_server) as (nc, js), connected(other) as (nc2, _js2):
            await js.add_stream(name="X", subjects=["x.>"], allow_msg_ttl=True)
            for i in range(1, 301):
                await js.publish(f"x.{i % 7}", os.urandom(i % 90), headers={"I": str(i)} if i % 2 else None)
            await js.delete_msg("X", 150)
            await api(nc, "$JS.API.CONSUMER.CREATE.X.C", {"stream_name": "X", "config": {
                "durable_name": "C", "ack_policy": "all"}})
            sub = await js.pull_subscribe_bind("C", "X")
            fetched = await sub.fetch(40, timeout=2)
            await fetched[29].ack_sync()
            info = await api(nc, "$JS.API.STREAM.INFO.X")
            consumer = await api(nc, "$JS.API.CONSUMER.INFO.X.C")
            before = await messages(nc, "X", 1, 300)
            resp, data, _chunks = await snapshot(nc, "X")
            restored = await restore(nc2, "X", {"config": resp["config"], "state": resp["state"]}, data,
                                     chunk=64 * 1024)
            after = await messages(nc2, "X", 1, 300)
            consumer2 = await api(nc2, "$JS.API.CONSUMER.INFO.X.C")
            return info, consumer, before, restored, after, consumer2

    info, consumer, before, restored, after, consumer2 = run(scenario())
    assert "error" not in restored, restored
    assert restored["state"]["messages"] == info["state"]["messages"] == 299
    assert (restored["state"]["first_seq"], restored["state"]["last_seq"]) == (1, 300)
    assert after == before and after[149] is None
    assert _consumer_view(consumer2) == _consumer_view(consumer)
    assert consumer2["ack_floor"]["stream_seq"] == 30 and consumer2["num_ack_pending"] == 10


def test_a_restore_cut_off_by_kill_9_leaves_nothing_behind(embedded_js):
    """The embedded server's own promise: a restore half received when the server dies is gone after the restart
    (nats-server does the same with its __snapshots__ directory; its on-disk layout is not compared)."""
    async def half_restore():
        async with connected(embedded_js) as (nc, js):
            await js.add_stream(name="K", subjects=["k.>"])
            for i in range(50):
                await js.publish("k.x", os.urandom(200))
            resp, data, _ = await snapshot(nc, "K")
            await js.delete_stream("K")
            started = await api(nc, "$JS.API.STREAM.RESTORE.K", {"config": resp["config"], "state": resp["state"]})
            await nc.request(started["deliver_subject"], data[:len(data) // 2], timeout=2)

    async def after():
        async with connected(embedded_js) as (nc, _js):
            return await api(nc, "$JS.API.STREAM.NAMES")

    run(half_restore())
    staging = streams_dir(embedded_js).parent / "__snapshots__"
    assert any(staging.iterdir())
    embedded_js.kill()
    embedded_js.restart()
    assert run(after()).get("streams") is None
    assert not staging.exists() and not (streams_dir(embedded_js) / "K").exists()


def test_a_restore_that_does_not_fit_the_storage_is_refused(js_server, start_server, tmp_path_factory):
    """A snapshot too big for the storage, or holding a consumer above the server's limits, is refused."""
    store = tmp_path_factory.mktemp("small")
    small = start_server(config=f'jetstream {{ store_dir: "{store}", max_file_store: 100KB\n'
                                'limits { max_ack_pending: 50 } }\n')

    async def scenario():
        async with connected(js_server) as (nc, js), connected(small) as (nc2, _js2):
            await js.add_stream(name="B", subjects=["b"])
            for _ in range(150):
                await js.publish("b", os.urandom(1000))
            resp, data, _ = await snapshot(nc, "B")
            refused = await restore(nc2, "B", {"config": resp["config"], "state": resp["state"]}, data,
                                    chunk=64 * 1024)
            await js.add_stream(name="C", subjects=["c"])
            await js.add_consumer("C", durable_name="D", ack_policy="explicit")   # max_ack_pending 1,000
            resp, data, _ = await snapshot(nc, "C")
            over = await restore(nc2, "C", {"config": resp["config"], "state": resp["state"]}, data)
            return refused, over, await api(nc2, "$JS.API.STREAM.NAMES")

    refused, over, names = run(scenario())
    assert error_of(refused) == (500, 10047, "insufficient storage resources available")
    assert error_of(over) == (500, 10062, 'restore failed: failed to add consumer "D": consumer max ack pending '
                                          'exceeds system limit of 50 (10121)')
    # nats-server keeps the stream it had made, without the consumer; a failed restore leaves nothing here
    assert names["streams"] == (["C"] if small.kind == "nats-server" else None)


def test_snapshot_restore_and_api_audit_advisories_name_the_requesting_client(js_server):
    async def scenario():
        async with connected(js_server, name="backup-job") as (nc, js):
            got, audits = [], []

            async def on_advisory(m):
                got.append((m.subject, json.loads(m.data)))

            async def on_audit(m):
                audits.append(json.loads(m.data))

            await nc.subscribe("$JS.EVENT.ADVISORY.STREAM.>", cb=on_advisory)
            await nc.subscribe("$JS.EVENT.ADVISORY.API", cb=on_audit)
            await js.add_stream(name="B", subjects=["b.>"])
            for i in range(5):
                await js.publish("b.x", b"%d" % i)
            resp, data, _chunks = await snapshot(nc, "B")
            await js.delete_stream("B")
            restored = await restore(nc, "B", {"config": resp["config"], "state": resp["state"]}, data)
            # nats-server queues its advisories: the last may come after the restore's answer
            for _ in range(100):
                if len(got) >= 7:
                    break
                await asyncio.sleep(0.05)
            missing = await api(nc, "$JS.API.STREAM.INFO.NOPE", {})
            for _ in range(100):
                if audits and audits[-1]["subject"] == "$JS.API.STREAM.INFO.NOPE":
                    break
                await asyncio.sleep(0.05)
            return got, audits, resp, missing, data, restored, nc._client_id, nc._server_info["server_id"]

    got, audits, resp, missing, data, restored, cid, server_id = run(scenario())
    assert "error" not in restored
    kinds = [s.split(".")[4] for s, _ in got]
    assert sorted(kinds) == sorted(["CREATED", "SNAPSHOT_CREATE", "SNAPSHOT_COMPLETE", "DELETED", "RESTORE_CREATE",
                                    "CREATED", "RESTORE_COMPLETE"]), kinds
    assert {s.split(".")[5] for s, _ in got} == {"B"}
    if js_server.kind == "embedded":
        assert kinds[:5] == ["CREATED", "SNAPSHOT_CREATE", "SNAPSHOT_COMPLETE", "DELETED", "RESTORE_CREATE"], kinds
    else:  # nats-server sends SNAPSHOT_COMPLETE from the snapshot's goroutine: it may come after the delete's
        def at(kind, nth=0):
            return [i for i, k in enumerate(kinds) if k == kind][nth]
        assert at("CREATED") == 0 and at("SNAPSHOT_CREATE") < at("SNAPSHOT_COMPLETE"), kinds
        assert at("SNAPSHOT_CREATE") < at("DELETED") < at("RESTORE_CREATE") < at("CREATED", 1), kinds
    events = {s.split(".")[4]: e for s, e in got}
    for kind in ("SNAPSHOT_CREATE", "SNAPSHOT_COMPLETE", "RESTORE_CREATE", "RESTORE_COMPLETE"):
        e = events[kind]
        assert e["type"] == "io.nats.jetstream.advisory.v1." + kind.lower() and e["stream"] == "B"
        client = e["client"]
        assert (client["id"], client["acc"], client["name"], client["lang"], client["server"]) == \
            (cid, "$G", "backup-job", "python3", server_id)
        assert client["kind"] == "Client" and client["client_type"] == "nats" and "jwt" not in client
    assert events["SNAPSHOT_CREATE"]["state"] == resp["state"]
    assert "error" not in events["SNAPSHOT_COMPLETE"]
    def ns(text):  # RFC 3339 with up to nine fraction digits, as nanoseconds since the day began
        clock, _, frac = text.rstrip("Z").partition("T")[2].partition(".")
        h, m, s = (int(x) for x in clock.split(":"))
        return ((h * 60 + m) * 60 + s) * 10 ** 9 + int((frac + "000000000")[:9])

    for kind in ("SNAPSHOT_COMPLETE", "RESTORE_COMPLETE"):
        assert ns(events[kind]["start"]) <= ns(events[kind]["end"])
    assert events["RESTORE_COMPLETE"]["bytes"] == len(data)
    # Every answered API request is audited (nats-server's api_audit): its body and the answer as text.
    by_subject = {a["subject"]: a for a in audits}
    snap = by_subject["$JS.API.STREAM.SNAPSHOT.B"]
    assert snap["type"] == "io.nats.jetstream.advisory.v1.api_audit" and json.loads(snap["response"]) == resp
    assert json.loads(snap["request"])["deliver_subject"].startswith("_INBOX.")
    assert snap["client"]["name"] == "backup-job" and snap["server"] == server_id
    nope = by_subject["$JS.API.STREAM.INFO.NOPE"]
    assert json.loads(nope["response"]) == missing and nope["request"] == "{}"
    assert "$JS.API.STREAM.CREATE.B" in by_subject and "$JS.API.STREAM.DELETE.B" in by_subject
