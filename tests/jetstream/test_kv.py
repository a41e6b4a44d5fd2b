"""Key-value buckets through nats-py's key_value(): they are streams with KV-shaped settings, so this checks
the stream features a bucket relies on (per-subject limits, rollups, direct get, ordered watchers, TTLs)."""

import nats
import pytest
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError

from .helpers import connected, eventually, run


async def replay(watcher) -> list:
    """The entries a watcher replays before live updates: up to the one the server sends with nothing pending
    after it (delta 0). nats-py's own end marker (None) can overtake entries still in flight on a busy machine:
    it compares the pending count of a separate consumer info with what it has read so far (nats-io/nats.py
    #842), so keys(), history() and a watcher's first None can come too early. The server's count decides."""
    entries = []
    while not entries or entries[-1].delta:
        entry = await watcher.updates(timeout=5)
        if entry is not None:
            entries.append(entry)
    return entries


async def next_entry(watcher):
    """The next live entry, past nats-py's end marker if it comes after the replay."""
    while (entry := await watcher.updates(timeout=5)) is None:
        pass
    return entry


async def history(kv, key: str) -> list:
    """What kv.history(key) returns, ended by the server's count (see replay)."""
    watcher = await kv.watch(key, include_history=True)
    try:
        return await replay(watcher)
    finally:
        await watcher.stop()


def test_bucket_create_status_delete(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(KeyValueConfig(bucket="config", history=5, storage=StorageType.MEMORY,
                                                          description="settings", direct=True))
            await kv.put("a", b"1")
            status = await kv.status()
            info = await js.stream_info("KV_config")
            same = await js.key_value("config")
            deleted = await js.delete_key_value("config")
            with pytest.raises(BucketNotFoundError):
                await js.key_value("config")
            return status, info, same, deleted

    status, info, same, deleted = run(scenario())
    assert status.bucket == "config" and status.values == 1 and status.history == 5
    assert info.config.subjects == ["$KV.config.>"] and info.config.allow_rollup_hdrs and info.config.deny_delete
    assert info.config.max_msgs_per_subject == 5 and info.config.allow_direct
    assert same is not None and deleted is True


def test_put_get_create_update_delete_purge(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(bucket="b", history=3)
            out = {}
            out["r1"] = await kv.put("k", b"v1")
            out["r2"] = await kv.put("k", b"v2")
            out["get"] = await kv.get("k")
            out["old"] = await kv.get("k", revision=1)
            out["created"] = await kv.create("new", b"n")
            with pytest.raises(KeyWrongLastSequenceError):
                await kv.create("new", b"again")
            out["updated"] = await kv.update("k", b"v3", last=2)
            with pytest.raises(KeyWrongLastSequenceError):
                await kv.update("k", b"v4", last=2)
            await kv.delete("k")
            with pytest.raises(KeyNotFoundError):
                await kv.get("k")
            out["recreated"] = await kv.create("k", b"after delete")
            await kv.purge("new")
            with pytest.raises(KeyNotFoundError):
                await kv.get("new")
            out["history"] = [(e.value, e.operation) for e in await history(kv, "k")]
            with pytest.raises(KeyNotFoundError):
                await kv.get("missing")
            return out

    out = run(scenario())
    assert (out["r1"], out["r2"]) == (1, 2)
    assert out["get"].value == b"v2" and out["get"].revision == 2
    assert out["old"].value == b"v1"
    assert out["created"] == 3 and out["updated"] == 4
    assert out["recreated"] == 6
    assert out["history"] == [(b"v3", None), (b"", "DEL"), (b"after delete", None)]


def test_keys_and_watch(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(bucket="w", history=10)
            with pytest.raises(NoKeysError):
                await kv.keys()
            await kv.put("a", b"1")
            await kv.put("b.x", b"2")
            await kv.put("a", b"3")
            await kv.delete("b.x")
            # What keys() asks for: the latest entry per key, headers only; the deleted key is a DEL marker.
            listing = await kv.watchall(meta_only=True)
            keys = [(e.key, e.value, e.operation) for e in await replay(listing)]
            await listing.stop()
            watcher = await kv.watchall()
            initial = [(e.key, e.value, e.operation) for e in await replay(watcher)]
            await kv.put("c", b"live")
            live = await next_entry(watcher)
            await watcher.stop()
            return keys, initial, live, [e.value for e in await history(kv, "a")]

    keys, initial, live, history_of_a = run(scenario())
    assert keys == [("a", b"", None), ("b.x", b"", "DEL")]
    assert initial == [("a", b"3", None), ("b.x", b"", "DEL")]
    assert (live.key, live.value) == ("c", b"live")
    assert history_of_a == [b"1", b"3"]


def test_history_limit_keeps_latest(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(bucket="h", history=2, storage=StorageType.MEMORY)
            for i in range(5):
                await kv.put("k", str(i).encode())
            return [e.value for e in await history(kv, "k")]

    assert run(scenario()) == [b"3", b"4"]


async def _gone(kv, key: str) -> bool:
    try:
        await kv.get(key)
    except KeyNotFoundError:
        return True
    return False


def test_bucket_ttl_expires_values(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            # Long enough that the get right after the put is inside it even on a busy machine.
            kv = await js.create_key_value(bucket="t", ttl=1, storage=StorageType.MEMORY)
            await kv.put("k", b"short lived")
            first = await kv.get("k")
            return first, await eventually(lambda: _gone(kv, "k"), bool)

    first, gone = run(scenario())
    assert first.value == b"short lived" and gone


def test_per_key_ttl_on_create(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(bucket="pk", storage=StorageType.MEMORY)
            await kv.create("lease", b"mine", msg_ttl=1)
            await kv.put("keep", b"forever")
            held = await kv.get("lease")
            gone = await eventually(lambda: _gone(kv, "lease"), bool)
            return held, gone, (await kv.get("keep")).value

    held, gone, kept = run(scenario())
    assert held.value == b"mine" and gone and kept == b"forever"


def test_kv_without_direct_get_uses_msg_get(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(KeyValueConfig(bucket="nd", direct=False, storage=StorageType.MEMORY))
            await kv.put("k", b"v")
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request("$JS.API.DIRECT.GET.KV_nd.$KV.nd.k", b"", timeout=3)
            return (await kv.get("k")).value

    assert run(scenario()) == b"v"


def test_direct_get_headers_and_not_found(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            kv = await js.create_key_value(KeyValueConfig(bucket="dg", storage=StorageType.MEMORY, direct=True))
            await kv.put("k", b"v")
            found = await nc.request("$JS.API.DIRECT.GET.KV_dg.$KV.dg.k", b"", timeout=3)
            missing = await nc.request("$JS.API.DIRECT.GET.KV_dg.$KV.dg.nope", b"", timeout=3)
            by_seq = await nc.request("$JS.API.DIRECT.GET.KV_dg", b'{"seq":1}', timeout=3)
            empty = await nc.request("$JS.API.DIRECT.GET.KV_dg", b"", timeout=3)
            return found, missing, by_seq, empty

    found, missing, by_seq, empty = run(scenario())
    assert found.data == b"v"
    assert found.headers["Nats-Stream"] == "KV_dg" and found.headers["Nats-Subject"] == "$KV.dg.k"
    assert found.headers["Nats-Sequence"] == "1" and found.headers["Nats-Time-Stamp"]
    assert missing.headers["Status"] == "404" and missing.headers["Description"] == "Message Not Found"
    assert by_seq.data == b"v"
    assert empty.headers["Status"] == "408" and empty.headers["Description"] == "Empty Request"


def test_direct_get_batch_ends_with_eob(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="B", subjects=["b.*"], allow_direct=True, storage=StorageType.MEMORY)
            for i in range(5):
                await js.publish(f"b.{i % 2}", str(i).encode())
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("$JS.API.DIRECT.GET.B", b'{"seq":2,"batch":3,"next_by_subj":"b.*"}', reply=inbox)
            got = [await sub.next_msg(3) for _ in range(4)]
            return got

    got = run(scenario())
    assert [m.data for m in got[:3]] == [b"1", b"2", b"3"]
    assert [m.headers["Nats-Num-Pending"] for m in got[:3]] == ["3", "2", "1"]
    assert got[1].headers["Nats-Last-Sequence"] == "2"
    assert got[3].headers["Status"] == "204" and got[3].headers["Description"] == "EOB"
    assert got[3].headers["Nats-Num-Pending"] == "1" and got[3].headers["Nats-Last-Sequence"] == "4"
