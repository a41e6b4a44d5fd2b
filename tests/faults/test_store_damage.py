"""Damage to every kind of file of the embedded server's file store, one case at a time: delete, truncate at and
between record boundaries, flip bits in headers, payloads and checksums, and content rewritten with a valid
checksum. For each case the store is reopened and must: start (no exception), give back every message the
damage did not hit exactly as it was stored, list every message it cannot give back in `lost` and say so in an
error line (never "0 message(s) lost"), keep its last sequence (the next message gets a new one), and report
the same loss again on the next start.

The on-disk format is the embedded server's own, so these cases are embedded-only by nature; they run on the
store in-process (what the server logs and puts in stream info is the store's `errors`, `warnings` and
`state().lost_msgs`, see tests/faults/test_start_up.py for the same through a running server).
`FAULTS_SCALE=N` (or `python -m bench faults`) adds N random bit flips per file kind.
"""
from __future__ import annotations

import json
import os
import random
import re
import struct
import time
import zlib
from pathlib import Path

import pytest

from embedded_server.jetstream import recovery
from embedded_server.jetstream.store import StoreCorrupt
from embedded_server.jetstream.store.file import FileConsumerStore, FileStore, read_records

SCALE = int(os.environ.get("FAULTS_SCALE", "0"))
BLOCK = 4096
N_MSGS = 120


def _build(tmp: Path, closing: str):
    """A stream of 120 messages over several blocks (some with headers), a few removed (in the journal), closed
    cleanly or abandoned as by kill -9. Returns (directory, messages still stored, last sequence)."""
    d = tmp / "S"
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    rng = random.Random(7)
    stored = {}
    for i in range(N_MSGS):
        subject = f"s.{i % 3}"
        hdr = b"NATS/1.0\r\nk: v\r\n\r\n" if i % 5 == 0 else None
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(20, 120)))
        seq, _ = fs.store_msg(subject, hdr, data)
        stored[seq] = (subject, hdr, data)
    for seq in (3, 50, 51, 90):
        fs.remove_msg(seq)
        del stored[seq]
    last = fs.last_seq
    if closing == "stop":
        fs.stop()
    else:
        fs._unmap()  # what the process had mapped stays in the page cache, as after kill -9
        for fd in (fs._fd, fs._jfd, fs._sfd):
            os.close(fd)
    return d, stored, last


def _blocks(d: Path) -> list[Path]:
    return sorted((d / "msgs").glob("*.blk"), key=lambda p: int(p.stem))


def _record_offsets(path: Path) -> list[tuple[int, int]]:
    return [(pos, end) for pos, end, _, _ in read_records(path.read_bytes()) if pos != "bad"]


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x10
    path.write_bytes(bytes(raw))


def _rewrite_record(path: Path, index: int, change) -> None:
    """Replace record `index` by `change(body)`, framed and checksummed as the store would write it."""
    raw = path.read_bytes()
    pos, end = _record_offsets(path)[index]
    head = raw[pos:pos + 8]
    body = change(raw[pos + 8:end - 4])
    head = head[:4] + struct.pack("<I", len(body))
    path.write_bytes(raw[:pos] + head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head))) + raw[end:])


def _set_seq(seq: int):
    return lambda body: struct.pack("<Q", seq) + body[8:]


# Each case: (name, damage(directory)). Block cases pick the first, a middle and the newest block.
def _block_damage(which: int, action: str):
    def damage(d: Path):
        blk = _blocks(d)[which]
        recs = _record_offsets(blk)
        mid = recs[len(recs) // 2] if which != -1 else recs[-1]
        if action == "delete":
            blk.unlink()
        elif action == "truncate at a record boundary":
            with open(blk, "r+b") as f:
                f.truncate(recs[len(recs) // 2][0])
        elif action == "truncate inside a record":
            with open(blk, "r+b") as f:
                f.truncate(mid[0] + (mid[1] - mid[0]) // 2)
        elif action == "flip a header bit":
            _flip(blk, mid[0] + 5)  # the length
        elif action == "flip a payload bit":
            _flip(blk, mid[1] - 10)
        elif action == "flip a checksum bit":
            _flip(blk, mid[1] - 2)
        elif action == "valid checksum, sequence going back":
            _rewrite_record(blk, recs.index(mid), _set_seq(1))
        elif action == "valid checksum, body cut short":
            _rewrite_record(blk, recs.index(mid), lambda body: body[:5])
        elif action == "zeros over a record":
            raw = bytearray(blk.read_bytes())
            raw[mid[0]:mid[1]] = bytes(mid[1] - mid[0])
            blk.write_bytes(bytes(raw))
    return damage


BLOCK_ACTIONS = ["delete", "truncate at a record boundary", "truncate inside a record", "flip a header bit",
                 "flip a payload bit", "flip a checksum bit", "valid checksum, sequence going back",
                 "valid checksum, body cut short", "zeros over a record"]
CASES = [(f"{where} block: {action}", _block_damage(which, action))
         for where, which in (("first", 0), ("middle", 1), ("newest", -1)) for action in BLOCK_ACTIONS]


def _other_damage(kind: str):
    def damage(d: Path):
        journal, state = d / "msgs" / "index.db", d / "state.dat"
        if kind == "journal deleted":
            journal.unlink()
        elif kind == "journal truncated inside a record":
            with open(journal, "r+b") as f:
                f.truncate(journal.stat().st_size - 3)
        elif kind == "journal bit flipped":
            _flip(journal, 10)
        elif kind == "state file deleted":
            state.unlink()
        elif kind == "state file bit flipped":
            _flip(state, 30)
        elif kind == "state file with a valid checksum and wrong content":
            data = json.dumps({"first_seq": "one", "last_seq": [], "blocks": 7}).encode()
            state.write_bytes(state.read_bytes()[:32] + b"%08x %d\n" % (zlib.crc32(data), len(data)) + data)
        elif kind == "msgs directory emptied":
            for p in (d / "msgs").iterdir():
                p.unlink()
    return damage


OTHER = ["journal deleted", "journal truncated inside a record", "journal bit flipped", "state file deleted",
         "state file bit flipped", "state file with a valid checksum and wrong content", "msgs directory emptied"]
CASES += [(kind, _other_damage(kind)) for kind in OTHER]


def _random_flips(n: int):
    rng = random.Random(n)

    def damage(d: Path):
        files = [p for p in (d / "msgs").iterdir()] + [d / "state.dat"]
        for _ in range(3):
            target = rng.choice(files)
            size = target.stat().st_size
            if size:
                _flip(target, rng.randrange(size))
    return damage


CASES += [(f"random bit flips #{i}", _random_flips(i)) for i in range(SCALE * 10)]


def _check(d: Path, stored: dict, last: int, name: str):
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    try:
        lost = set(fs.state().lost_msgs)
        gone = []
        for seq, (subject, hdr, data) in stored.items():
            sm = fs.load_msg(seq)
            if sm is None:
                gone.append(seq)
                continue
            assert (sm.subject, sm.hdr, sm.data) == (subject, hdr, data), f"{name}: seq {seq} changed"
        text = "\n".join(fs.errors)
        assert not re.search(r"(?<!\d)0 message\(s\) lost", text)
        unreported = sorted(set(gone) - lost)
        if name in ("journal deleted", "journal bit flipped"):
            assert fs.errors, f"{name}: removed messages came back without a word"
        if "journal" in name or "emptied" in name:
            # Removals the journal no longer knows of cannot be told from losses; nothing may pass unseen.
            assert not unreported or fs.errors, f"{name}: {unreported} gone without a word"
        else:
            assert not unreported, f"{name}: gone but not in lost: {unreported}"
        if gone:
            assert fs.errors, f"{name}: messages gone and no error logged"
            assert sum(int(n) for n in re.findall(r"(\d+) message\(s\) lost", text)) >= len(set(gone) & lost)
        assert lost <= set(range(1, last + 1)), f"{name}: lost names sequences that never existed"
        assert fs.last_seq >= last, f"{name}: last sequence went back from {last} to {fs.last_seq}"
        seq, _ = fs.store_msg("after", None, b"new")
        assert seq > last
    finally:
        fs.stop()
    again = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    try:
        assert set(again.state().lost_msgs) >= lost, f"{name}: the loss is no longer reported after a restart"
        assert again.last_seq >= seq and again.load_msg(seq).data == b"new"
    finally:
        again.stop()
    return gone, lost


def _damaged(d: Path, damage) -> None:
    """Apply `damage`. A file it changed keeps no modification time it had before: a change within the same
    tick of the file system's clock as the stop (same size, same time, same last 4 KiB) is not told from the
    block the index checkpoint saw, as on nats-server; that damage is found when the record is read."""
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}
    damage(d)
    for p, (raw, mtime) in before.items():
        if p.exists() and p.read_bytes() != raw and p.stat().st_mtime_ns == mtime:
            os.utime(p, ns=(mtime + 1_000_000, mtime + 1_000_000))


@pytest.mark.parametrize("closing", ["stop", "kill -9"])
@pytest.mark.parametrize("name,damage", CASES, ids=[c[0] for c in CASES])
def test_damage_is_survived_and_reported(tmp_path, closing, name, damage):
    d, stored, last = _build(tmp_path, closing)
    _damaged(d, damage)
    gone, lost = _check(d, stored, last, name)
    if name.split(":")[0].endswith("block") and "delete" in name or "emptied" in name:
        assert gone, f"{name}: the damage removed nothing?"


def test_the_untouched_store_reports_nothing(tmp_path):
    """The control case: without damage, every message comes back and nothing is reported."""
    for closing in ("stop", "kill -9"):
        d, stored, last = _build(tmp_path / closing, closing)
        fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
        assert fs.errors == [] and fs.warnings == [] and fs.state().lost_msgs == []
        assert fs.last_seq == last and all(fs.load_msg(s).data == v[2] for s, v in stored.items())
        fs.stop()


# -- consumer state ---------------------------------------------------------------------------------

def _consumer(tmp: Path) -> tuple[Path, dict, dict]:
    d = tmp / "obs" / "C"
    cs = FileConsumerStore(str(d), sync_always=False)
    older = {"delivered": {"consumer_seq": 5, "stream_seq": 5}, "ack_floor": {"consumer_seq": 3, "stream_seq": 3},
             "pending": {"4": [4, 1], "5": [5, 2]}, "redelivered": {}}
    newer = dict(older, ack_floor={"consumer_seq": 5, "stream_seq": 5}, pending={})
    cs.update(older)
    cs.flush()
    cs.update(newer)
    cs.flush()
    cs.stop()
    return d, older, newer


def _newest_slot(d: Path) -> Path:
    return max(d.glob("o.*.dat"), key=lambda p: int(p.read_bytes().split(b" ")[1]))


@pytest.mark.parametrize("damage", ["truncate", "flip a data bit", "flip the generation", "flip the checksum"])
def test_a_damaged_consumer_state_falls_back_to_the_one_before(tmp_path, damage):
    d, older, _ = _consumer(tmp_path)
    slot = _newest_slot(d)
    raw = slot.read_bytes()
    if damage == "truncate":
        slot.write_bytes(raw[:-4])
    elif damage == "flip a data bit":
        _flip(slot, len(raw) - 3)
    elif damage == "flip the generation":
        slot.write_bytes(raw.replace(b" 2 ", b" x ", 1))
    else:
        _flip(slot, 0)
    cs = FileConsumerStore(str(d), sync_always=False)
    assert recovery.consumer_state(cs.load_state()) == older
    cs.close()


@pytest.mark.parametrize("content", [
    {}, {"delivered": "5"}, {"delivered": {}, "ack_floor": {"stream_seq": -1}}, {"pending": {"x": [1, 2]}}, {"pending": {"4": "a"}},
    {"redelivered": {"4": "two"}}, [], "text"])
def test_a_consumer_state_with_a_valid_checksum_and_wrong_content_is_refused(tmp_path, content):
    d, _, _ = _consumer(tmp_path)
    data = json.dumps(content).encode()
    slot = _newest_slot(d)
    generation = slot.read_bytes().split(b" ")[1]
    slot.write_bytes(b"%08x %s %d\n" % (zlib.crc32(data), generation, len(data)) + data)
    cs = FileConsumerStore(str(d), sync_always=False)
    with pytest.raises(recovery.Unloadable):
        recovery.consumer_state(cs.load_state())
    cs.close()


def test_both_consumer_slots_unreadable_is_reported(tmp_path):
    d, _, _ = _consumer(tmp_path)
    for slot in d.glob("o.*.dat"):
        slot.write_bytes(b"garbage")
    cs = FileConsumerStore(str(d), sync_always=False)
    with pytest.raises(StoreCorrupt):
        cs.load_state()
    cs.close()


# -- directories ------------------------------------------------------------------------------------

def test_new_directories_are_fsynced(tmp_path, monkeypatch):
    """A new stream (and consumer) is only safe from a power loss once the directories holding its files are
    synced too: at once with sync_interval always, at the next sync otherwise."""
    from embedded_server.jetstream.store import file as file_store

    synced: list[str] = []
    real = file_store.fsync_dir
    monkeypatch.setattr(file_store, "fsync_dir", lambda path: (synced.append(path), real(path)))
    streams = tmp_path / "streams"
    streams.mkdir()
    fs = FileStore(str(streams / "S"), {"name": "S"}, sync_always=True)
    fs.consumer_store("C").stop()
    assert {str(streams), str(streams / "S"), str(streams / "S" / "msgs"), str(streams / "S" / "obs"),
            str(streams / "S" / "obs" / "C")} <= set(synced)
    fs.stop()
    synced.clear()
    fs = FileStore(str(streams / "T"), {"name": "T"}, sync_always=False)
    assert str(streams / "T") not in synced
    fs.flush()
    assert {str(streams), str(streams / "T"), str(streams / "T" / "msgs")} <= set(synced)
    fs.stop()
    # What a stream create does (account.add_stream): the meta is written with the new directories, each
    # directory fsynced once, before the create is answered; msgs/ waits for the next sync with its files.
    synced.clear()
    fs = FileStore(str(streams / "U"), {"name": "U"}, sync_always=False)
    file_store.write_meta(fs.directory, {"config": {"name": "U"}}, sync=True, new_dirs=fs.take_new_dirs())
    assert sorted(synced) == sorted([str(streams), str(streams / "U")])
    assert file_store.read_meta(fs.directory) == {"config": {"name": "U"}}
    assert not [n for n in os.listdir(fs.directory) if n.endswith(".tmp")]
    fs.flush()
    assert str(streams / "U" / "msgs") in synced
    fs.stop()


def test_a_power_loss_as_a_block_is_unlinked_loses_no_sequence(tmp_path, monkeypatch):
    """With the default sync_interval, a block left with nothing in it (its messages removed, its skips recorded
    nowhere else) is unlinked after its sequences are journaled as gone. A power loss right after an unlink may
    leave the journal as it was at its last fsync while the unlink (and every other write) reached the disk: the
    journal is fsynced before a block goes, so the start after that finds every sequence accounted for and
    reports nothing lost."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which file an fsync was for")
    import shutil

    d = tmp_path / "S"
    journal = str(d / "msgs" / "index.db")
    synced = {}  # path -> its size at its last fsync
    images = []  # what the disk may hold after a power loss at each unlink of a block, and the removal then
    removing = [0]
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd):
        real_fsync(fd)
        synced[os.readlink(f"/proc/self/fd/{fd}")] = os.fstat(fd).st_size

    def unlink(path, *a, **k):
        if str(path).endswith(".blk"):
            image = tmp_path / f"power-loss-{len(images)}"
            shutil.copytree(d, image)
            real_unlink(image / "msgs" / os.path.basename(path))
            os.truncate(image / "msgs" / "index.db", synced.get(journal, 0))
            images.append((image, removing[-1]))
        return real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    fs = FileStore(str(d), {"name": "S"}, block_size=300)
    for _ in range(10):
        fs.store_msg("a", None, b"x" * 40)
    for _ in range(12):  # a block of nothing but skips (an interest stream nobody listened to)
        fs.skip_msg()
    fs.store_msg("b", None, b"kept")
    for seq in range(1, 11):  # the blocks go as they empty, the skips' blocks with the last of them
        removing.append(seq)
        fs.remove_msg(seq)
    assert len(images) >= 3 and len(fs._blocks) == 1
    monkeypatch.undo()
    fs.stop()
    for image, removed_to in images:
        after = FileStore(str(image), {"name": "S"}, block_size=300)
        st = after.state()
        assert (st.lost_msgs, st.lost_bytes, after.errors) == ([], 0, []), image.name
        held = [s for s in range(1, 24) if after.load_msg(s) is not None]
        assert held == list(range(removed_to + 1, 11)) + [23] and st.last_seq == 23, image.name
        after.stop()


def test_a_block_emptied_across_a_kill_9_still_goes(tmp_path):
    """Removals journaled before a kill -9 count against their blocks on the start that reads the blocks again:
    a block whose last message goes after that start is unlinked with the first block, as without the crash
    (each block counted every message record in it, so it stayed on disk until the stream's first sequence
    passed it)."""
    d = tmp_path / "S"
    fs = FileStore(str(d), {"name": "S"}, block_size=300)  # three messages a block
    for _ in range(12):
        fs.store_msg("a", None, b"x" * 40)
    fs.remove_msg(4)
    fs.remove_msg(5)
    fs._unmap()
    for fd in (fs._fd, fs._jfd, fs._sfd):
        os.close(fd)
    fs = FileStore(str(d), {"name": "S"}, block_size=300)
    for seq in (6, 1, 2, 3):
        fs.remove_msg(seq)
    assert [p.name for p in _blocks(d)] == ["3.blk", "4.blk"] and not fs.errors and fs.state().lost_msgs == []
    fs.stop()


def test_a_purge_clears_the_losses_it_covers(tmp_path):
    """Lost sequences stay reported across restarts until a purge or compaction discards that part of the
    stream (as nats-server forgets lost data for removed messages)."""
    d, stored, last = _build(tmp_path, "stop")
    _blocks(d)[0].unlink()
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    lost = fs.state().lost_msgs
    assert lost and lost[0] == 1
    fs.store_msg("after", None, b"new")
    assert fs.state().lost_msgs == lost, "storing does not change the report"
    fs.compact(fs.first_seq + 1)
    assert fs.state().lost_msgs == [] and fs.state().lost_bytes == 0
    fs.stop()
    again = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    assert again.state().lost_msgs == [] and again.errors == []
    again.stop()


def test_a_block_file_put_back_is_no_longer_lost(tmp_path):
    d, stored, last = _build(tmp_path, "stop")
    middle = _blocks(d)[1]
    kept = middle.read_bytes()
    middle.unlink()
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    assert fs.state().lost_msgs
    fs.stop()
    middle.write_bytes(kept)
    again = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    assert again.state().lost_msgs == [] and all(again.load_msg(s).data == v[2] for s, v in stored.items())
    again.stop()


def test_a_record_damaged_while_the_store_is_open_is_passed_over_by_scans(tmp_path):
    """A record that stops reading back intact after the start (the store found it sound) is logged and passed
    over, as nats-server's LoadNextMsg does: a scan (a snapshot, a consumer) goes on with the next message."""
    d, stored, last = _build(tmp_path, "stop")
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    first = _blocks(d)[0]
    _pos, end = _record_offsets(first)[1]  # sequence 2, subject s.1
    _flip(first, end - 10)
    seqs, seq = [], 0
    while (sm := fs.load_next_msg((), seq + 1)) is not None:
        seqs.append(seq := sm.seq)
    assert seqs == sorted(set(stored) - {2})
    assert fs.load_next_msg(("s.1",), 2).seq == 5 and fs.load_next_msg(("s.*",), 2).seq == 4
    assert any("sequence 2 " in e and "no longer reads back intact" in e for e in fs.errors)
    fs.stop()


# -- the index checkpoint (index.ckp) -------------------------------------------------------------------
def _starts(d: Path, monkeypatch) -> tuple[FileStore, int]:
    """The store opened from `d`, and how many block files it read record by record."""
    read = []
    original = FileStore._load_block
    monkeypatch.setattr(FileStore, "_load_block", lambda self, *a, **k: read.append(a) or original(self, *a, **k))
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    monkeypatch.setattr(FileStore, "_load_block", original)
    return fs, len(read)


def _view(fs: FileStore):
    st = fs.state(with_deleted=True)
    msgs = [(s, fs.load_msg(s)) for s in range(st.first_seq, st.last_seq + 1)]
    return ((st.msgs, st.bytes, st.first_seq, st.last_seq, st.deleted, st.lost_msgs, fs.first_ts, fs.last_ts),
            [(s, m.subject, m.hdr, m.data, m.ts) for s, m in msgs if m is not None],
            {k: (v.msgs, v.first, v.last) for k, v in fs.subjects_state(">").items()})


def _scanned(d: Path, tmp: Path):
    """What a start that reads every block gives (the same files without the checkpoint)."""
    import shutil
    copy = tmp / f"scan-{len(list(tmp.iterdir()))}"
    shutil.copytree(d, copy, ignore=shutil.ignore_patterns("index.ckp"))
    fs = FileStore(str(copy), {"name": "S"}, block_size=BLOCK)
    try:
        return _view(fs)
    finally:
        fs.stop()


def test_a_checkpoint_stands_in_for_reading_the_blocks(tmp_path, monkeypatch):
    """A clean stop writes index.ckp; the next start reads no block and holds what a start reading them all
    holds. After more removals (the first block goes) and stores, kill -9: the start after that takes the blocks
    the checkpoint still describes from it and reads only the others."""
    d, stored, last = _build(tmp_path, "stop")
    blocks = len(_blocks(d))
    assert (d / "index.ckp").exists() and blocks >= 4
    fs, read = _starts(d, monkeypatch)
    assert read == 0 and not fs.errors and not fs.warnings
    assert _view(fs) == _scanned(d, tmp_path)
    first_block_last = max(s for s in range(1, 40) if fs._block_for(s) is fs._blocks[0])
    for seq in range(1, first_block_last + 1):
        fs.remove_msg(seq)
    for i in range(40):
        fs.store_msg(f"s.{i % 4}", None, b"more %d" % i)
    fs.remove_msg(fs.last_seq - 3)
    assert not (d / "msgs" / "1.blk").exists()
    want = _view(fs)
    fs._unmap()
    for fd in (fs._fd, fs._jfd, fs._sfd):
        os.close(fd)
    fs, read = _starts(d, monkeypatch)
    assert 0 < read < len(_blocks(d)), "the unchanged blocks come from the checkpoint, the rest are read"
    assert _view(fs) == want == _scanned(d, tmp_path)
    assert not fs.errors and not fs.warnings
    fs.stop()


def _ckp_damage(kind: str):
    def damage(p: Path):
        raw = p.read_bytes()
        if kind == "truncated":
            p.write_bytes(raw[:len(raw) // 2])
        elif kind == "bit flipped":
            _flip(p, len(raw) // 2)
        elif kind == "emptied":
            p.write_bytes(b"")
        elif kind == "another file":
            p.write_bytes(b"NATS/1.0" * 100)
        elif kind == "valid checksum, wrong content":
            from embedded_server.jetstream.store import checkpoint
            header, arrays = checkpoint.decode(raw)
            header["last_seq"] += 5
            p.write_bytes(b"".join(checkpoint.encode(header, arrays)))
        elif kind == "a directory":
            p.unlink()
            p.mkdir()
    return damage


@pytest.mark.parametrize("kind", ["truncated", "bit flipped", "emptied", "another file",
                                  "valid checksum, wrong content", "a directory"])
def test_a_damaged_checkpoint_is_passed_over_with_a_warning(tmp_path, monkeypatch, kind):
    d, stored, last = _build(tmp_path, "stop")
    _ckp_damage(kind)(d / "index.ckp")
    fs, read = _starts(d, monkeypatch)
    try:
        assert read == len(_blocks(d))
        assert [w for w in fs.warnings if "index.ckp" in w] and fs.errors == [] and fs.state().lost_msgs == []
        assert _view(fs) == _scanned(d, tmp_path)
        assert fs.last_seq == last and all(fs.load_msg(s).data == v[2] for s, v in stored.items())
    finally:
        fs.stop()


def test_a_sync_writes_a_checkpoint_once_enough_is_new(tmp_path, monkeypatch):
    """Without a clean stop: a sync writes the checkpoint once CHECKPOINT_EVERY sequences and a quarter of the
    index are new since the last one, so a kill -9 after a long run reads only the blocks written since."""
    from embedded_server.jetstream.store import file as file_store
    monkeypatch.setattr(file_store, "CHECKPOINT_EVERY", 30)
    d = tmp_path / "S"
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    for i in range(20):
        fs.store_msg(f"s.{i % 3}", None, bytes(100))
    fs.flush()
    assert not (d / "index.ckp").exists(), "20 new sequences: not yet"
    for i in range(100):
        fs.store_msg(f"s.{i % 3}", b"NATS/1.0\r\nNats-Msg-Id: %d\r\n\r\n" % i if i % 9 == 0 else None, bytes(100))
    fs.remove_msg(7)
    fs.flush()  # copies the index; a thread writes it (renamed into place when whole) while the store goes on
    for i in range(30):
        fs.store_msg("s.after", None, bytes(100))
    fs.remove_msg(60)
    deadline = time.monotonic() + 30
    while not (d / "index.ckp").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (d / "index.ckp").exists()
    want = _view(fs)
    fs._unmap()
    for fd in (fs._fd, fs._jfd, fs._sfd):
        os.close(fd)
    fs, read = _starts(d, monkeypatch)
    try:
        assert 0 < read < len(_blocks(d)) and not fs.errors and not fs.warnings
        assert _view(fs) == want == _scanned(d, tmp_path)
    finally:
        fs.stop()


@pytest.mark.parametrize("held,changes", [("before it reads the blocks", "blocks go"),
                                           ("before it writes", "blocks go"),
                                           ("before it reads the blocks", "no block goes")])
def test_a_sync_checkpoint_held_while_the_stream_changes(tmp_path, monkeypatch, held, changes):
    """The thread of a sync's checkpoint is held (after the copies were taken on the loop) while the stream goes
    on: messages are stored, removed and skipped, a subject is purged, new blocks start, the journal is rewritten;
    with "blocks go" the blocks it copied also empty and go. Then it writes (or, held before it read
    blocks that went since, writes nothing). After a kill -9 the start (from whatever checkpoint is there, and
    the blocks) is what a start reading every block gives, nothing lost, no warning. A stop while a checkpoint
    is held waits for it and writes its own after it (the next start reads no block); a delete waits for it too
    and leaves nothing behind."""
    import threading

    from embedded_server.jetstream.store import checkpoint
    from embedded_server.jetstream.store import file as file_store
    monkeypatch.setattr(file_store, "CHECKPOINT_EVERY", 30)
    monkeypatch.setattr(file_store, "JOURNAL_REWRITE_AT", 200)
    go = threading.Event()

    def hold(real):  # a sync's thread waits for `go`; a stop's checkpoint (written on the loop) does not
        return lambda *a: (threading.current_thread() is threading.main_thread() or go.wait(60)) and real(*a)

    if held == "before it reads the blocks":
        monkeypatch.setattr(file_store, "_tail_crc", hold(file_store._tail_crc))
    else:
        monkeypatch.setattr(checkpoint, "encode", hold(checkpoint.encode))
    rewrites = []
    rewrite = FileStore._rewrite_journal
    monkeypatch.setattr(FileStore, "_rewrite_journal", lambda self: rewrites.append(1) or rewrite(self))
    d = tmp_path / "S"
    fs = FileStore(str(d), {"name": "S"}, block_size=BLOCK)
    for i in range(150):
        fs.store_msg(f"s.{i % 3}", None, bytes(100))
    fs.flush()
    thread = fs._ckp_thread
    assert thread is not None and thread.is_alive()
    for seq in range(1, 80) if changes == "blocks go" else range(2, 80, 4):
        fs.remove_msg(seq)
    fs.purge_ex("s.1", 0, 0)
    for _ in range(40):
        fs.skip_msg()
    for i in range(60):
        fs.store_msg("s.after" if i % 2 else "s.0", None, bytes(100))
    assert (d / "msgs" / "1.blk").exists() == (changes == "no block goes") and rewrites, "the journal was rewritten"
    go.set()
    thread.join()
    assert (d / "index.ckp").exists() == (held == "before it writes" or changes == "no block goes")
    want = _view(fs)
    fs._unmap()
    for fd in (fs._fd, fs._jfd, fs._sfd, *fs._rfds.values()):
        os.close(fd)
    fs, read = _starts(d, monkeypatch)
    assert _view(fs) == want == _scanned(d, tmp_path)
    assert not fs.errors and not fs.warnings and fs.state().lost_msgs == []

    # A held thread goes on only once it is waited for: a stop that wrote its own checkpoint before waiting would
    # then have it replaced by the older one; a delete that did not wait would have it written into the directory
    # it removes.
    for ending in ("stop", "delete"):
        go.clear()
        fs._ckp_seq = 0  # due again at the next sync
        fs.store_msg("s.more", None, b"x")
        fs.flush()
        thread = fs._ckp_thread
        assert thread is not None and thread.is_alive()
        thread.join = lambda *a, _thread=thread: (go.set(), threading.Thread.join(_thread, *a))[1]
        fs.store_msg("s.more", None, b"after the copies")
        if ending == "stop":
            fs.stop()
            assert not thread.is_alive()
            fs, read = _starts(d, monkeypatch)
            assert read == 0 and fs.load_msg(fs.last_seq).data == b"after the copies", \
                "the stop's checkpoint, not the older one held"
            assert not fs.errors and not fs.warnings
        else:
            fs.delete()
            assert not thread.is_alive()
    assert not d.exists()
