"""A backup taken on a nats-server before 2.15 (an S2-framed tar of its file store, what `nats stream backup` gets
from the 2.10-2.14 servers most production runs) restores on the embedded server as on nats-server 2.15: the
same stream, messages, times, deletions and consumer state. The old server is the wheel `make test` caches
under build/cache (see the Makefile)."""
import glob
import io
import os
import random
import re
import tarfile

import pytest

from embedded_server.jetstream import archive, snapshot_tar
from tests.servers import REPO, RunningServer

from .helpers import api, connected, error_of, run
from .test_snapshot import _consumer_view, messages, restore, snapshot


def old_nats_server() -> str:
    """The pre-2.15 nats-server binary. `make test` sets OLD_NATS_SERVER (as CI runs it): there it must exist."""
    named = os.environ.get("OLD_NATS_SERVER")
    found = [named] if named else sorted(glob.glob(str(REPO / "build/cache/nats-server-*/nats-server")))
    if found and os.access(found[-1], os.X_OK):
        return found[-1]
    if named or os.environ.get("CI"):
        pytest.fail(f"the old nats-server is missing ({named or 'build/cache'}): `make old-nats-server` fetches it")
    pytest.skip("no nats-server before 2.15 under build/cache: `make old-nats-server` fetches it")


def _reframe(raw: bytes) -> bytes:
    """Decoded snapshot bytes framed again (uncompressed S2 frames)."""
    out = [archive.STREAM_ID]
    for i in range(0, len(raw), archive.MAX_FRAME):
        out.append(archive.frame(raw[i:i + archive.MAX_FRAME]))
    return b"".join(out)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _tar_files(raw: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r|") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf}


def _tar(files: dict, links: dict | None = None) -> bytes:
    """A tar of `files` (name: bytes) and symbolic `links` (name: target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def test_an_old_nats_server_backup_restores_as_on_nats_server_2_15(tmp_path, monkeypatch):
    old_binary = old_nats_server()
    servers = {}
    for kind, command in (("old", [old_binary]), ("embedded", None), ("nats-server", None)):
        work = tmp_path / kind
        work.mkdir()
        srv = RunningServer("nats-server" if kind == "old" else kind, ["-js", "-sd", str(work / "js")], work,
                            command=command)
        servers[kind] = srv
    rnd = random.Random(7)

    async def on_old(nc, js):
        # A hot subject with a per-subject limit: its oldest messages go out of order, by limits (no tombstone:
        # only the old server's index.db knows); user deletes (erased, and not) leave tombstones; a purge moves the
        # first sequence.
        await js.add_stream(name="ORDERS", subjects=["orders.>"], max_msgs_per_subject=60)
        for i in range(1, 301):
            subject = "orders.hot" if i > 100 and i % 2 else f"orders.{i % 5}"
            await js.publish(subject, rnd.randbytes(rnd.randrange(0, 120)),
                             headers={"I": str(i), "Kind": subject} if i % 3 else None)
        await api(nc, "$JS.API.STREAM.PURGE.ORDERS", {"seq": 4})
        for seq in (150, 152, 260):
            await js.delete_msg("ORDERS", seq)
        await api(nc, "$JS.API.STREAM.MSG.DELETE.ORDERS", {"seq": 200, "no_erase": True})
        await api(nc, "$JS.API.CONSUMER.CREATE.ORDERS.D", {"stream_name": "ORDERS", "config": {
            "durable_name": "D", "ack_policy": "explicit", "filter_subject": "orders.hot", "max_deliver": 5}})
        sub = await js.pull_subscribe_bind("D", "ORDERS")
        got = await sub.fetch(25, timeout=2)
        for m in got[:6] + got[9:11]:
            await m.ack_sync()
        await nc.request(got[7].reply, b"-NAK", timeout=2)
        again = await sub.fetch(1, timeout=2)
        assert again[0].metadata.num_delivered == 2
        await sub.unsubscribe()
        info = await api(nc, "$JS.API.STREAM.INFO.ORDERS")
        consumer = await api(nc, "$JS.API.CONSUMER.INFO.ORDERS.D")
        msgs = await messages(nc, "ORDERS", 1, 300)
        resp, data, _ = await snapshot(nc, "ORDERS", chunk_size=64 * 1024)
        # Streams ending without a message: never written (an empty block), emptied by a purge (its first
        # sequence moved), its last messages deleted (the last sequence and time are the deleted one's).
        for name in ("NEVER", "PURGED", "TAIL"):
            await js.add_stream(name=name, subjects=[name.lower()])
        for i in range(10):
            await js.publish("purged", b"x")
            await js.publish("tail", b"%d" % i)
        await api(nc, "$JS.API.STREAM.PURGE.PURGED")
        for seq in (8, 9, 10):
            await js.delete_msg("TAIL", seq)
        empties = {name: (await snapshot(nc, name))[:2] for name in ("NEVER", "PURGED", "TAIL")}
        return info, consumer, msgs, resp, data, empties

    async def restored(srv, meta, data, empties):
        async with connected(srv) as (nc, _js):
            answer = await restore(nc, "ORDERS", meta, data, chunk=16 * 1024)
            emptied = {name: (await restore(nc, name, {"config": r["config"], "state": r["state"]}, d))["state"]
                       for name, (r, d) in empties.items()}
            return (answer, await api(nc, "$JS.API.STREAM.INFO.ORDERS"), await messages(nc, "ORDERS", 1, 300),
                    await api(nc, "$JS.API.CONSUMER.INFO.ORDERS.D"), emptied)

    async def as_memory(srv, meta, data):
        async with connected(srv) as (nc, js):
            await js.delete_stream("ORDERS")
            memory = {"config": {**meta["config"], "storage": "memory"}, "state": meta["state"]}
            answer = await restore(nc, "ORDERS", memory, data, chunk=64 * 1024)
            return answer, await api(nc, "$JS.API.CONSUMER.INFO.ORDERS.D")

    async def refusals(srv, meta, linked, renamed, data):
        async with connected(srv) as (nc, _js):
            await api(nc, "$JS.API.STREAM.DELETE.ORDERS")
            return (error_of(await restore(nc, "ORDERS", meta, linked, chunk=64 * 1024)),
                    error_of(await restore(nc, "OTHER", renamed, data, chunk=64 * 1024)),
                    sorted((await api(nc, "$JS.API.STREAM.NAMES")).get("streams") or ()))

    async def variants(srv, meta, *snapshots):
        """Each snapshot restored in turn on `srv`: (its answer, its messages)."""
        out = []
        async with connected(srv) as (nc, js):
            for data in snapshots:
                await api(nc, "$JS.API.STREAM.DELETE.ORDERS")
                answer = await restore(nc, "ORDERS", meta, data, chunk=64 * 1024)
                out.append((answer, await messages(nc, "ORDERS", 1, 300) if "error" not in answer else None))
        return out

    try:
        old = servers["old"].start()
        async def first():
            async with connected(old) as (nc, js):
                version = tuple(int(x) for x in nc._server_info["version"].split("-")[0].split("."))
                return version, *(await on_old(nc, js))
        old_version, info, consumer, before, resp, data, empties = run(first())
        old.stop()
        raw = b"".join(archive.unframe(io.BytesIO(data)))
        assert raw[257:262] == b"ustar", "the old server's snapshot is a tar"
        meta = {"config": resp["config"], "state": resp["state"]}
        after = {kind: run(restored(servers[kind].start(), meta, data, empties))
                 for kind in ("embedded", "nats-server")}
        memory = {kind: run(as_memory(servers[kind], meta, data)) for kind in ("embedded", "nats-server")}
        # Refused alike: a tar with a link in it, and a backup restored under another name.
        files = _tar_files(raw)
        linked = _reframe(_tar(files, {"msgs/2.blk": "/etc/passwd"}))
        renamed = {"config": {**meta["config"], "name": "OTHER", "subjects": ["other.>"]}, "state": meta["state"]}
        refused = {kind: run(refusals(servers[kind], meta, linked, renamed, data)) for kind in ("embedded", "nats-server")}

        # The snapshot again with one message's bytes changed inside its block, and with an encryption key added.
        block = bytearray(files["msgs/1.blk"])
        victim = next(m for m in before if m and m[0] > 100 and len(m[3]) > 10)
        at = block.find(victim[3])
        block[at] ^= 0xFF
        bad = _reframe(_tar({**files, "msgs/1.blk": bytes(block)}))
        keyed = _reframe(_tar({**files, "msgs/1.key": b"k" * 32}))
        # A block as a store with `compression: s2` keeps it on disk (the old writer decompresses; a copy of a
        # store directory would not): "cmp", the algorithm, the size, the S2 stream, the last checksum as is.
        plain = files["msgs/1.blk"]
        packed = b"cmp\x01" + _uvarint(len(plain)) + _reframe(plain[:-8]) + plain[-8:]
        compressed = _reframe(_tar({**files, "msgs/1.blk": packed}))
        # Without index.db the state is rebuilt from the blocks: deletes from their tombstones, the first sequence
        # from the purge's, what the per-subject limit removed by applying it again (as nats-server rebuilds).
        no_index = _reframe(_tar({k: v for k, v in files.items() if k != "msgs/index.db"}))
        cut = _reframe(_tar({**files, "msgs/1.blk": plain[:len(plain) // 2]}))   # a block cut in the middle
        failed = _reframe(_tar({**files, "errors.txt": b"Could not read message block [1]: EOF"}))
        (bad_answer, bad_msgs), (keyed_answer, _), (packed_answer, packed_msgs), (bare_answer, bare_msgs), \
            (cut_answer, cut_msgs), (failed_answer, _) = run(
                variants(servers["embedded"], meta, bad, keyed, compressed, no_index, cut, failed))
    finally:
        for srv in servers.values():
            srv.stop()

    assert info["state"]["first_seq"] == 4 and info["state"]["num_deleted"] > 40, info["state"]
    for kind, (answer, sinfo, msgs, cinfo, emptied) in after.items():
        assert emptied == {name: {**r["state"], "consumer_count": 0} for name, (r, _d) in empties.items()}, kind
        assert "error" not in answer, (kind, answer)
        assert answer["state"] == sinfo["state"]
        state = {k: v for k, v in sinfo["state"].items() if k != "deleted"}
        assert state == {**info["state"], "consumer_count": 1}, kind
        assert sinfo["created"] == info["created"], kind
        assert msgs == before, kind
        assert _consumer_view(cinfo) == _consumer_view(consumer), kind
        assert cinfo["num_redelivered"] == 1 and cinfo["num_ack_pending"] == 17, kind
    # A consumer's `created` comes from its meta.inf (written a moment after the consumer was made), on both.
    assert after["embedded"][3]["created"] == after["nats-server"][3]["created"]
    assert after["embedded"][1]["config"] == after["nats-server"][1]["config"] | {
        "metadata": after["embedded"][1]["config"]["metadata"]}
    assert "[WRN] Restore of stream" not in servers["embedded"].logs.split("Completed restore")[0]  # index.db used
    live = [m for m in before if m]
    assert [m[0] for m in live][:3] == [4, 5, 6] and before[149] is None and before[199] is None
    assert before[100] is None and before[101] is not None   # the hot subject's oldest, gone by its limit
    assert any(m[2] for m in live) and any(not m[2] for m in live) and len({m[1] for m in live}) == 6

    # Restored as a memory stream: the embedded server keeps the messages and the consumer's state; nats-server
    # 2.15's memory store never reads the files it moved in (docs/differences.md).
    answer, cinfo = memory["embedded"]
    assert answer["config"]["storage"] == "memory" and answer["state"]["messages"] == info["state"]["messages"]
    assert (answer["state"]["first_seq"], answer["state"]["last_seq"]) == (4, 300)
    assert _consumer_view(cinfo)["delivered"] == _consumer_view(consumer)["delivered"]
    assert memory["nats-server"][0]["state"]["messages"] == 0

    assert refused["embedded"] == refused["nats-server"] == (
        (500, 10062, "restore failed: unexpected content (account=$G)"),
        (500, 10062, "restore failed: stream names do not match"), ["NEVER", "PURGED", "TAIL"])

    # A record that fails its checksum is passed over (its message not restored) and said once in the log.
    assert "error" not in bad_answer, bad_answer
    assert [m for m in bad_msgs if m] == [m for m in live if m[0] != victim[0]]
    assert re.search(r"\[ERR\] Restore of stream '\$G > ORDERS': 1 damaged place\(s\) in the snapshot's message "
                     r"blocks passed over, their messages are not restored: msgs/1\.blk at offset \d+ "
                     r"\(invalid checksum\)", servers["embedded"].logs)
    # A block cut short: what it still holds is restored, the rest passed over and said; index.db no longer
    # matches it (a warning), but the deletes it records (the purge, the deleted messages, whose tombstones were
    # in the part cut off) still hold: nothing deleted comes back.
    kept = [m for m in cut_msgs if m]
    assert "error" not in cut_answer and 0 < len(kept) < len(live) and kept == live[:len(kept)]
    assert re.search(r"\[ERR\] Restore of stream '\$G > ORDERS': 1 damaged place\(s\) .* msgs/1\.blk at offset \d+ "
                     r"\(record lengths do not add up, the block's last \d+ bytes passed over\)", servers["embedded"].logs)
    assert "[WRN] Restore of stream '$G > ORDERS': stream state (index.db) does not match the message blocks" in \
        servers["embedded"].logs
    assert "error" not in packed_answer and packed_msgs == before
    assert "error" not in bare_answer and all(bare_msgs[m[0] - 1] == m for m in live), bare_answer
    if old_version >= (2, 11):   # 2.10 leaves no tombstone for a purge: without index.db its messages come back
        assert bare_msgs == before and bare_answer["state"] == after["embedded"][1]["state"]
    # The old writer's errors.txt (its snapshot stopped half-way) is refused with its text.
    assert error_of(failed_answer) == (500, 10062, "restore failed: snapshot is incomplete, the server that made it "
                                                   "said: Could not read message block [1]: EOF")
    assert error_of(keyed_answer) == (500, 10062, "restore failed: snapshot holds encryption keys (an encrypted "
                                                  "store); the embedded server has no store encryption")

    # The last pass removes each block file once its messages are out, so the extracted snapshot shrinks as the new
    # store grows (the restore needs the snapshot's size on disk, not twice it). Read in-process, a few records at a
    # time (as a large block is read in parts, hashed part by part), with the damaged record: passed over and said.
    monkeypatch.setattr(snapshot_tar, "_PART", 7)
    root = tmp_path / "extracted"
    for name, content in {**files, "msgs/1.blk": bytes(block)}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    snap = snapshot_tar.TarSnapshot(str(root))
    for _ in snap.scan():
        pass
    reader, seqs = snapshot_tar.EntryReader(snap), []
    assert sorted(p.name for p in (root / "msgs").glob("*.blk"))
    while (e := reader.next()) is None or e.seq:
        if e is not None:
            seqs.append(e.seq)
    assert seqs == [m[0] for m in live if m[0] != victim[0]] and not list((root / "msgs").glob("*.blk"))
    assert list(snap.damaged.values()) == ["invalid checksum"]
