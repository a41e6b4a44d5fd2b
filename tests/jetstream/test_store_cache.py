"""The file store's bounded memory (embedded server only: the store's own internals): payloads are read back from
the blocks through a BlockCache that never holds more bytes than its limit, a single read of a cold block does
not load the block, and the in-memory index costs a few dozen bytes per message whatever the payload size.
"""
import gc
import random
import tracemalloc

from embedded_server.jetstream.store.cache import BlockCache
from embedded_server.jetstream.store.file import FileStore

CFG = {"max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": -1, "discard": "old"}
HDR = b"NATS/1.0\r\nK: v\r\n\r\n"


def _fill(fs, n, rng):
    stored = {}
    for i in range(n):
        subject = f"s.{i % 7}" if i % 5 else "s.é"
        hdr = HDR if i % 3 == 0 else None
        data = rng.randbytes(rng.randint(0, 300))
        seq, ts = fs.store_msg(subject, hdr, data, ttl=0)
        stored[seq] = (subject, hdr, data, ts)
    return stored


def _same(sm, want):
    return sm is not None and (sm.subject, sm.hdr, sm.data, sm.ts) == want


def test_reads_go_through_a_cache_that_never_exceeds_its_limit(tmp_path):
    rng = random.Random(7)
    limit = 10_000
    cache = BlockCache(limit)
    fs = FileStore(str(tmp_path), dict(CFG), block_size=4096, cache=cache)
    stored = _fill(fs, 1500, rng)
    assert len(fs._blocks) > 20
    # Writing caches the block being written only, as it was written.
    written = set(cache._blocks)
    assert written == {(fs._cid, fs._blocks[-1].index)} and cache.bytes == fs._blocks[-1].size
    _cached_as_on_disk(fs, cache)

    # A single read of a block that is not cached reads its record alone: the cache holds what it held (backwards,
    # so that no read is of the sequence after the one before, which counts as a scan).
    for seq in sorted(rng.sample(sorted(stored), 50), reverse=True):
        assert _same(fs.load_msg(seq), stored[seq])
    assert set(cache._blocks) == written and cache.peak <= limit

    # A scan reads whole blocks through the cache, evicting the least recently used ones.
    seq, seen = 0, 0
    while (sm := fs.load_next_msg((), seq)) is not None:
        assert _same(sm, stored[sm.seq])
        seq, seen = sm.seq + 1, seen + 1
    assert seen == len(stored)
    assert 0 < cache.bytes <= limit and cache.peak <= limit and cache.evictions > 0
    for subject in ("s.3", "s.é", "s.*"):
        want = max(s for s, v in stored.items() if v[0] == subject or subject == "s.*")
        assert _same(fs.load_last_msg(subject), stored[want])
        first = min(s for s, v in stored.items() if v[0] == subject or subject == "s.*")
        assert _same(fs.load_next_msg((subject,), 1), stored[first])

    # Removals, a compaction and limits work on what is on disk; the bytes count stays exact.
    for seq in rng.sample(sorted(stored), 200):
        assert fs.remove_msg(seq)
        del stored[seq]
    assert fs.compact(300) > 0
    stored = {s: v for s, v in stored.items() if s >= 300}
    fs.update_config(dict(CFG, max_msgs_per_subject=40))
    by_subject = {}
    for s in sorted(stored):
        by_subject.setdefault(stored[s][0], []).append(s)
    stored = {s: stored[s] for seqs in by_subject.values() for s in seqs[-40:]}
    assert fs.state().msgs == len(stored)
    assert fs.state().first_ts == stored[min(stored)][3]
    total = fs.bytes
    fs.stop()

    again_cache = BlockCache(limit)
    again = FileStore(str(tmp_path), dict(CFG, max_msgs_per_subject=40), block_size=4096, cache=again_cache)
    assert not again.errors and not again.warnings
    assert again.bytes == total and again.state().msgs == len(stored)
    for seq, want in stored.items():
        assert _same(again.load_msg(seq), want)
    assert again_cache.peak <= limit
    again.stop()
    assert again_cache.bytes == 0  # a stopped store leaves nothing in the cache


def _newest_read_from_cache(fs, cache, stored):
    """The messages of `stored` in the block being written read back as stored, each a cache hit."""
    newest = {seq: want for seq, want in stored.items() if fs._block_for(seq) is fs._blocks[-1]}
    assert newest
    hits, misses = cache.hits, cache.misses
    for seq in sorted(newest, reverse=True):
        assert _same(fs.load_msg(seq), newest[seq])
    assert (cache.hits, cache.misses) == (hits + len(newest), misses)


def _cached_as_on_disk(fs, cache):
    """Every block of `fs` in the cache holds what its file holds, byte for byte."""
    indexes = {b.index: b for b in fs._blocks}
    for (cid, index), data in cache._blocks.items():
        if cid == fs._cid:
            assert index in indexes  # no block removed from disk is still cached
            with open(indexes[index].path, "rb") as f:
                assert bytes(data) == f.read(), index


def test_the_block_being_written_is_read_from_memory(tmp_path):
    """The newest block is cached as it is written: reading what was just stored reads it from the cache (a hit,
    no miss), through held writes, removals, a compaction and a purge; the cache stays within its limit, and a block that
    outgrows the limit leaves it (its messages then read from the file)."""
    rng = random.Random(11)
    limit = 3 * 4096
    cache = BlockCache(limit)
    fs = FileStore(str(tmp_path / "a"), dict(CFG), block_size=4096, cache=cache)
    for i in range(300):  # each message read back as soon as it is stored
        subject, hdr, data = f"s.{i % 7}", HDR if i % 3 == 0 else None, rng.randbytes(rng.randint(0, 300))
        seq, ts = fs.store_msg(subject, hdr, data, ttl=0)
        assert _same(fs.load_msg(seq), (subject, hdr, data, ts))
    assert len(fs._blocks) > 5 and cache.hits == 300 and cache.misses == 0 and cache.peak <= limit
    _cached_as_on_disk(fs, cache)

    fs.begin_writes()  # a mirror catching up: records held back, then written in one go
    held = _fill(fs, 40, rng)
    assert all(_same(fs.load_msg(seq), want) for seq, want in held.items())
    fs.end_writes()
    _newest_read_from_cache(fs, cache, held)
    _cached_as_on_disk(fs, cache)

    for seq in list(held)[::3]:
        assert fs.remove_msg(seq)
    assert fs.compact(fs.last_seq - 10) > 0
    _cached_as_on_disk(fs, cache)
    assert fs.purge() > 0
    _cached_as_on_disk(fs, cache)
    again = _fill(fs, 30, rng)
    _newest_read_from_cache(fs, cache, again)
    assert cache.peak <= limit
    _cached_as_on_disk(fs, cache)
    fs.stop()
    assert cache.bytes == 0

    small = BlockCache(1000)  # smaller than a block: the block being written leaves the cache as it outgrows it
    fs = FileStore(str(tmp_path / "b"), dict(CFG), block_size=4096, cache=small)
    stored = _fill(fs, 60, rng)
    assert small.bytes <= 1000 and small.peak <= 1000
    assert all(_same(fs.load_msg(seq), want) for seq, want in stored.items())
    _cached_as_on_disk(fs, small)
    fs.stop()

    # After a restart the block being written is loaded by a scan, then kept as it grows.
    reopened_cache = BlockCache(limit)
    fs = FileStore(str(tmp_path / "b"), dict(CFG), block_size=4096, cache=reopened_cache)
    seq = 0
    while (sm := fs.load_next_msg((), seq)) is not None:
        assert _same(sm, stored[sm.seq])
        seq = sm.seq + 1
    _newest_read_from_cache(fs, reopened_cache, _fill(fs, 5, rng))
    _cached_as_on_disk(fs, reopened_cache)
    fs.stop()


def test_the_index_costs_bytes_per_message_not_the_payload(tmp_path):
    """20,000 messages of 1 KB (20 MB of payload) cost the store well under 1 MB of memory: the index only."""
    n, payload = 20_000, b"x" * 1024
    gc.collect()
    tracemalloc.start()
    try:
        fs = FileStore(str(tmp_path), dict(CFG), cache=BlockCache(0))
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            fs.store_msg("orders.new", None, payload)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        fs.stop()
        reopened = FileStore(str(tmp_path), dict(CFG), cache=BlockCache(0))
        gc.collect()
        after_recovery = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert reopened.state().msgs == n and reopened.load_msg(n // 2).data == payload
    reopened.stop()
    per_message = grown / n
    assert per_message < 40, f"{per_message:.1f} bytes per message while storing"
    assert after_recovery / n < 80, f"{after_recovery / n:.1f} bytes per message after recovery (both stores)"
