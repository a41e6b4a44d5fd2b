"""The file store against the memory store: random sequences of stores, removals, purges and compactions
applied to both, with tiny blocks and a tiny journal so that block roll-over, block removal and journal
rewrites all happen; after every sequence the file store is reopened from disk and must hold exactly what the
memory store holds.
"""
import errno
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedded_server.jetstream.store import StoreError, StreamStore
from embedded_server.jetstream.store import file as file_store
from embedded_server.jetstream.store.file import FileStore
from embedded_server.jetstream.store.memory import MemoryStore

CFG = {"max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": -1, "discard": "old"}
LIMITS = [CFG, dict(CFG, max_msgs=5), dict(CFG, max_msgs_per_subject=2), dict(CFG, max_bytes=400),
          dict(CFG, max_msgs=4, discard="new")]

op = st.one_of(
    st.tuples(st.just("store"), st.sampled_from(["a", "b", "c.d"]), st.binary(max_size=40), st.booleans()),
    st.tuples(st.just("remove"), st.integers(1, 60)),
    st.tuples(st.just("purge_ex"), st.sampled_from(["", "a", "c.*"]), st.sampled_from([0, 5, 20]),
              st.sampled_from([0, 1, 3])),
    st.tuples(st.just("compact"), st.integers(1, 70)),
    st.tuples(st.just("purge"),),
    st.tuples(st.just("skip"),),
    # a run of skipped sequences (an interest stream nobody listens to, a mirror of a stream with deletes): a
    # block of nothing but skips, unlinked once nothing before it is left, whose sequences a start still accounts for
    st.tuples(st.just("skips"), st.integers(5, 25)),
)
ops = st.lists(op, max_size=60)


def contents(store):
    st_ = store.state(with_deleted=True)
    if st_.first_seq == st_.last_seq == 0:
        st_.num_deleted, st_.deleted = 0, None  # the file store's sequence-0 quirk (nats-server's too)
    msgs = []
    seq = st_.first_seq
    while True:
        sm = store.load_next_msg((), seq)
        if sm is None:
            break
        msgs.append((sm.seq, sm.subject, sm.hdr, sm.data, sm.ts))
        seq = sm.seq + 1
    return (st_.msgs, st_.first_seq, st_.last_seq, st_.num_deleted, st_.deleted), msgs, \
        {k: (v.msgs, v.first, v.last) for k, v in store.subjects_state(">").items()}


def apply(store, op):
    kind = op[0]
    if kind == "store":
        _, subject, data, with_hdr = op
        try:
            return store.store_msg(subject, b"NATS/1.0\r\nK: v\r\n\r\n" if with_hdr else None, data)[0]
        except StoreError as e:
            return str(e)
    if kind == "remove":
        return store.remove_msg(op[1])
    if kind == "purge_ex":
        _, subject, seq, keep = op
        if seq and keep:
            keep = 0
        return store.purge_ex(subject, seq, keep)
    if kind == "compact":
        return store.compact(op[1])
    if kind == "purge":
        return store.purge()
    if kind == "skips":
        return [store.skip_msg() for _ in range(op[1])][-1]
    return store.skip_msg()


@settings(max_examples=int(__import__("os").environ.get("JS_STORE_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops, cfg=st.sampled_from(LIMITS))
def test_file_store_reopens_to_what_the_memory_store_holds(ops, cfg):
    old_rewrite = file_store.JOURNAL_REWRITE_AT
    file_store.JOURNAL_REWRITE_AT = 200
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mem = MemoryStore(dict(cfg))
            fs = FileStore(tmp, dict(cfg), block_size=300)
            for op in ops:
                assert apply(fs, op) == apply(mem, op), op
            expected = contents(mem)
            before = contents(fs)
            seqs = range(mem.state().last_seq + 2)
            held = [mem.load_msg(s) is not None for s in seqs]
            assert [mem.has_msg(s) for s in seqs] == held and [fs.has_msg(s) for s in seqs] == held
            fs.stop()
            reopened = FileStore(tmp, dict(cfg), block_size=300)
            assert [reopened.has_msg(s) for s in seqs] == held
            got = contents(reopened)
            assert got[0] == expected[0]
            assert [m[:4] for m in got[1]] == [m[:4] for m in expected[1]]
            assert got[2] == expected[2]
            assert got[1] == before[1]  # timestamps and headers come back exactly
            assert not reopened.errors and not reopened.warnings
            reopened.stop()
    finally:
        file_store.JOURNAL_REWRITE_AT = old_rewrite


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops, cfg=st.sampled_from(LIMITS),
       subjects=st.lists(st.sampled_from(["a", "b", "c.d"]), min_size=5, max_size=40),
       removed=st.sets(st.integers(0, 39), max_size=20), starts=st.lists(st.integers(-2, 42), min_size=1, max_size=4))
def test_pending_counts_and_filtered_state_match_a_count_of_the_messages(ops, cfg, subjects, removed, starts):
    """num_pending, filtered_state and load_next_msg with a filter (what consumers and direct gets report and
    deliver) against the stored messages one by one, after random stores, removals and purges, then a run of
    stores with holes (`removed` and `starts` count from the run's first sequence)."""
    from embedded_server.jetstream.filters import matches_any

    mem = MemoryStore(dict(cfg))
    for op in ops:
        apply(mem, op)
    first = mem.last_seq + 1
    for subject in subjects:
        apply(mem, ("store", subject, b"x", False))
    for i in sorted(removed):
        mem.remove_msg(first + i)
    starts = [max(first + i, 0) for i in starts]
    msgs = contents(mem)[1]
    for start in starts:
        for filters in ((), (">",), ("a",), ("c.*",), ("a", "c.d")):
            want = [seq for seq, subject, *_ in msgs if seq >= start and (
                not filters or matches_any(filters, subject))]
            assert mem.num_pending(start, filters) == len(want), (start, filters)
        for subject in (">", "a", "b", "c.*", "c.d"):
            want = [seq for seq, name, *_ in msgs if seq >= start and matches_any((subject,), name)]
            got = mem.filtered_state(start, subject)
            assert (got.msgs, got.first if want else 0) == (len(want), want[0] if want else 0), (start, subject)
            nxt = mem.load_next_msg((subject,), start)
            assert (nxt.seq if nxt else None) == (want[0] if want else None), (start, subject)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops, cfg=st.sampled_from(LIMITS),
       batch=st.lists(st.tuples(st.sampled_from(["a", "b", "c.d"]), st.binary(max_size=40), st.booleans()),
                      min_size=1, max_size=12), one_subject=st.booleans())
def test_a_batch_stored_in_one_pass_is_what_storing_it_message_by_message_gives(ops, cfg, batch, one_subject):
    """MemoryStore.store_batch (a committed atomic batch) against store_msg one message at a time, after random
    operations, under each limit: the same messages, sequences, subjects and counts, timestamps going up; or
    nothing stored (0) when a limit would act on the way. Batches of mixed subjects, and of one subject (stored
    in bulk)."""
    one, bulk = MemoryStore(dict(cfg)), MemoryStore(dict(cfg))
    for op in ops:
        apply(one, op)
        apply(bulk, op)
    if one_subject:
        batch = [(batch[0][0], data, with_hdr) for _, data, with_hdr in batch]
    msgs = [(subject, b"NATS/1.0\r\nK: v\r\n\r\n" if with_hdr else None, data) for subject, data, with_hdr in batch]
    last = None
    for msg in msgs:
        last = apply(one, ("store", msg[0], msg[2], msg[1] is not None))
    before = contents(bulk)
    got = bulk.store_batch(msgs)
    if not got:
        assert contents(bulk) == before
        for msg in msgs:
            apply(bulk, ("store", msg[0], msg[2], msg[1] is not None))
    else:
        assert got == last == bulk.last_seq
    want, have = contents(one), contents(bulk)
    assert have[0] == want[0] and have[2] == want[2]
    assert [m[:4] for m in have[1]] == [m[:4] for m in want[1]]
    stamps = [m[4] for m in have[1]]
    assert stamps == sorted(set(stamps)) and bulk.state().bytes == one.state().bytes
    assert bulk.num_pending(0, ("a",)) == one.num_pending(0, ("a",))


held_ops = st.lists(st.one_of(
    op,
    st.tuples(st.just("held"), st.sampled_from(["a", "b", "c.d"]), st.binary(max_size=40)),
    st.tuples(st.just("write"),),
    st.tuples(st.just("remove_last"),),
), max_size=60)


@settings(max_examples=int(os.environ.get("JS_STORE_EXAMPLES", "60")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(ops=held_ops, cfg=st.sampled_from([CFG] * 3 + LIMITS))  # without limits, store_held takes its own path
def test_held_fast_batch_records_reach_disk_before_anything_else_and_a_crash_loses_only_them(ops, cfg):
    """A fast batch's records held (FileStore.hold_writes/store_held, written by write_held or end_writes)
    among random stores, removals and purges: the store reads as the memory store throughout (and a memory
    store given the same messages by store_held holds what store_msg gives); a copy of its
    directory taken as it is (what a kill -9 leaves) opens without damage, holding every message up to the
    first record still held and nothing after it; once the hold ends, it reopens to the memory store."""
    old_rewrite = file_store.JOURNAL_REWRITE_AT
    file_store.JOURNAL_REWRITE_AT = 200
    try:
        with tempfile.TemporaryDirectory() as tmp:
            live, crashed = os.path.join(tmp, "live"), os.path.join(tmp, "crashed")
            mem, mem_held = MemoryStore(dict(cfg)), MemoryStore(dict(cfg))
            fs = FileStore(live, dict(cfg), block_size=300)
            for op in ops:
                if op[0] == "held":
                    fs.hold_writes()
                    got = []
                    for store in (fs, mem_held):
                        try:
                            got.append(store.store_held(op[1], op[2]))
                        except StoreError as e:
                            got.append(str(e))
                    assert got == [apply(mem, ("store", op[1], op[2], False))] * 2, op
                    assert mem_held.state().bytes == mem.state().bytes
                elif op[0] == "write":
                    fs.write_held()
                elif op[0] == "remove_last":  # most likely one still held
                    last = mem.last_seq
                    assert fs.remove_msg(last) == mem.remove_msg(last) == mem_held.remove_msg(last)
                else:
                    assert apply(fs, op) == apply(mem, op) == apply(mem_held, op), op
            by_held, want = contents(mem_held), contents(mem)
            assert by_held[0] == want[0] and by_held[2] == want[2] and mem_held.state().bytes == mem.state().bytes
            assert [m[:4] for m in by_held[1]] == [m[:4] for m in want[1]]
            now, want = contents(fs), contents(mem)
            assert now[0] == want[0] and now[2] == want[2] and [m[:4] for m in now[1]] == [m[:4] for m in want[1]]
            assert fs.state().bytes == sum(file_store.file_msg_size(m[1], m[2], m[3]) for m in want[1])
            held = len(fs._held or ())
            shutil.copytree(live, crashed)
            after_crash = FileStore(crashed, dict(cfg), block_size=300)
            assert not after_crash.errors and not after_crash.lost_msgs
            last = after_crash.state().last_seq
            assert last == mem.state().last_seq - held
            assert [m[:4] for m in contents(after_crash)[1]] == [m[:4] for m in contents(mem)[1] if m[0] <= last]
            after_crash.stop()
            fs.end_writes()
            size = fs.state().bytes
            fs.stop()
            reopened = FileStore(live, dict(cfg), block_size=300)
            assert contents(reopened)[0] == contents(mem)[0] and reopened.state().bytes == size
            assert [m[:4] for m in contents(reopened)[1]] == [m[:4] for m in contents(mem)[1]]
            assert not reopened.errors and not reopened.warnings
            reopened.stop()
    finally:
        file_store.JOURNAL_REWRITE_AT = old_rewrite


def _everything(store):
    """What a start gives, down to the TTL timers and the losses reported."""
    said = [text.replace(store.directory, "D") for text in store.errors + store.warnings]
    return (contents(store), store.state().bytes, store.first_ts, store.last_ts,
            dict(store._ttls), set(store._never), store.state().lost_msgs, said)


def _abandon(fs):
    """Leave the store as kill -9 does: nothing written on the way out (the mapped state head is in the page
    cache already), every file descriptor closed (the read ones too: left open, they piled up over the examples).
    A sync's checkpoint still being written by its thread is let finish first (as if the kill came just after it):
    the files are then what they are, not changing under the copy and the starts that follow."""
    if fs._ckp_thread is not None:
        fs._ckp_thread.join()
    fs._unmap()
    for fd in (fs._fd, fs._jfd, fs._sfd, *fs._rfds.values()):
        os.close(fd)


ttl_ops = st.lists(st.tuples(st.just("ttl"), st.sampled_from(["a", "b", "t.x"]), st.sampled_from([-1, 60, 3600])),
                   max_size=8)


@settings(max_examples=int(os.environ.get("JS_STORE_EXAMPLES", "100")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(filled=st.integers(0, 30), first=ops, more=ops, ttls=ttl_ops, cfg=st.sampled_from(LIMITS))
def test_a_checkpoint_loads_what_a_scan_of_the_blocks_gives(filled, first, more, ttls, cfg):
    """Stop cleanly (the index checkpoint is written), start from it, go on storing and removing, then die as
    by kill -9: the start after that (checkpoint for the blocks it still describes, the rest read) and a start
    that reads every block (the same files without the checkpoint) give the same store, and it holds what the
    memory store holds (unless a byte limit removed messages: the two stores count bytes differently), with
    nothing reported lost; so does a clean restart after it."""
    old_rewrite = file_store.JOURNAL_REWRITE_AT
    file_store.JOURNAL_REWRITE_AT = 200
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "S")
            sized = cfg["max_bytes"] > 0  # the stores count a message's bytes differently (as nats-server's do)
            mem = MemoryStore(dict(cfg))
            fs = FileStore(d, dict(cfg), block_size=300)
            filling = [("store", "abc"[i % 3], bytes(40), i % 4 == 0) for i in range(filled)]
            for op in filling + first + ttls:
                if op[0] == "ttl":
                    results = []
                    for store in (fs, mem):
                        try:
                            results.append(store.store_msg(op[1], None, b"t", ttl=op[2])[0])
                        except StoreError as e:
                            results.append(str(e))
                    assert results[0] == results[1] or sized, op
                else:
                    assert apply(fs, op) == apply(mem, op) or sized, op
            stopped = _everything(fs)
            fs.stop()
            assert os.path.exists(os.path.join(d, "index.ckp"))
            fs = FileStore(d, dict(cfg), block_size=300)
            assert _everything(fs) == stopped
            for op in more:
                assert apply(fs, op) == apply(mem, op) or sized, op
            died = _everything(fs)
            _abandon(fs)
            scanned_dir = os.path.join(tmp, "scan")
            shutil.copytree(d, scanned_dir, ignore=shutil.ignore_patterns("index.ckp"))
            scanned = FileStore(scanned_dir, dict(cfg), block_size=300)
            from_checkpoint = FileStore(d, dict(cfg), block_size=300)
            got = _everything(from_checkpoint)
            assert got == _everything(scanned)
            # Nothing was damaged: whatever a start finds in no block (a skip or removal whose block was unlinked, a
            # journal rewritten since) is accounted for, never reported lost.
            assert got[6] == [] and not from_checkpoint.errors and not scanned.errors, got[7]
            assert from_checkpoint.state().lost_bytes == scanned.state().lost_bytes == 0
            for store in (from_checkpoint, mem):  # what the de-duplication rebuild reads, against load_next_msg
                assert list(store.headers_from(0)) == list(StreamStore.headers_from(store, 0))
            assert got[0] == died[0]
            if not sized:
                assert got[0][0] == contents(mem)[0]
                assert [m[:4] for m in got[0][1]] == [m[:4] for m in contents(mem)[1]]
            scanned.stop()
            from_checkpoint.stop()
            again = FileStore(d, dict(cfg), block_size=300)
            assert _everything(again) == got
            again.stop()
    finally:
        file_store.JOURNAL_REWRITE_AT = old_rewrite


def test_journal_rewrites_keep_every_removal_and_every_unlinked_block(tmp_path, monkeypatch):
    """The journal of removals is rewritten (smaller) once it passes JOURNAL_REWRITE_AT. After kill -9 the start
    (reading every block, or the checkpoint and the blocks since) must still hold what the memory store holds,
    with nothing reported lost: (1) a rewrite after a block in the middle was unlinked (its messages all removed,
    and it holds skips, which are in no removal) still accounts for its sequences; (2) a removal of more than one
    journal record's worth of sequences (a subject purge of 9,000 messages) that crosses the rewrite threshold
    keeps all of them removed."""
    monkeypatch.setattr(file_store, "JOURNAL_REWRITE_AT", 200)
    rewrites = []
    original = FileStore._rewrite_journal
    monkeypatch.setattr(FileStore, "_rewrite_journal", lambda self: rewrites.append(1) or original(self))

    def after_kill_9(fs, mem, d):
        _abandon(fs)
        shutil.copytree(d, d + "-scan", ignore=shutil.ignore_patterns("index.ckp"))
        for directory in (d + "-scan", d):
            again = FileStore(directory, dict(CFG), block_size=300)
            got, want = contents(again), contents(mem)
            assert (got[0], [m[:4] for m in got[1]], got[2]) == (want[0], [m[:4] for m in want[1]], want[2])
            assert again.state().lost_msgs == [] and again.state().lost_bytes == 0, again.errors
            assert again.errors == [] and again.warnings == []
            again.stop()

    d, mem = str(tmp_path / "middle"), MemoryStore(dict(CFG))
    fs = FileStore(d, dict(CFG), block_size=300)
    for store in (fs, mem):
        for i in range(40):
            store.store_msg("a", None, b"x" * 20)
        for _ in range(12):
            store.skip_msg()
        store.store_msg("b", None, b"y")
        for seq in range(5, 41):  # every block but the first and the last is left with nothing in it
            store.remove_msg(seq)
    fs.stop()
    fs = FileStore(d, dict(CFG), block_size=300)  # unlinks them
    assert len(fs._blocks) == 2
    rewrites.clear()
    for store in (fs, mem):
        store.store_msg("b", None, b"z")
        for seq in (2, 3, 4):
            store.remove_msg(seq)
    assert rewrites, "the journal was rewritten"
    after_kill_9(fs, mem, d)

    monkeypatch.setattr(file_store, "JOURNAL_REWRITE_AT", 1000)
    d, mem = str(tmp_path / "purge"), MemoryStore(dict(CFG))
    fs = FileStore(d, dict(CFG), block_size=300_000)
    for store in (fs, mem):
        store.store_msg("b", None, b"kept")
        for i in range(9000):
            store.store_msg("a", None, b"x")
        assert store.purge_ex("a", 0, 0) == 9000
    assert fs._jsize > file_store.JOURNAL_REWRITE_AT  # crossed it: the next change rewrites the journal
    after_kill_9(fs, mem, d)


@pytest.mark.parametrize("failing", ["write_atomic", "fsync_dir"])
def test_a_journal_rewrite_that_fails_loses_no_later_removal(tmp_path, monkeypatch, failing):
    """A journal rewrite that fails (disk full before the new journal took the old one's place, or a failed
    directory sync after it did) fails that one removal, which is then not made; later removals are journaled
    in the journal on disk, so after kill -9 the store holds exactly what a memory store given the same
    successful changes holds, with nothing reported lost."""
    monkeypatch.setattr(file_store, "JOURNAL_REWRITE_AT", 200)
    real = getattr(file_store, failing)
    armed = []

    def fail_once(*args, **kwargs):
        if armed:
            armed.clear()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(file_store, failing, fail_once)
    d, mem = str(tmp_path / "s"), MemoryStore(dict(CFG))
    fs = FileStore(d, dict(CFG), block_size=4096)
    for store in (fs, mem):
        for i in range(60):
            store.store_msg(f"s.{i % 3}", None, b"x" * 20)
    failed = None
    for seq in range(2, 60):
        if fs._jsize > file_store.JOURNAL_REWRITE_AT and failed is None:
            armed.append(1)
            with pytest.raises(OSError):
                fs.remove_msg(seq)
            failed = seq
            continue
        fs.remove_msg(seq)
        mem.remove_msg(seq)
    assert failed is not None and not armed
    assert fs.load_msg(failed) is not None  # the failed removal was not made
    _abandon(fs)
    again = FileStore(d, dict(CFG), block_size=4096)
    got, want = contents(again), contents(mem)
    assert (got[0], [m[:4] for m in got[1]], got[2]) == (want[0], [m[:4] for m in want[1]], want[2])
    assert again.state().lost_msgs == [] and again.errors == []
    again.stop()
