"""The file store: a stream's messages in checksummed, append-only block files, its deletes in a journal.

Layout under `<store_dir>/jetstream/<account>/streams/<stream>/`:

- `meta.inf` + `meta.sum`: the stream's configuration (JSON) and its CRC-32, replaced atomically.
- `msgs/<n>.blk`: message records, appended with one os.write each *before* the PubAck is sent, so a
  SIGKILL of the server loses no acknowledged message (a fast batch's: one os.write per read, before anything
  is answered; see hold_writes). With `sync_interval: always` the block is also
  fsynced before the ack (power-loss safe); otherwise files are fsynced every `sync_interval` (2m default).
  A block is closed at nats-server's block size (a quarter of `max_bytes`, 32 kB to 8 MB; else 8 MB).
- `msgs/index.db`: the journal of removals (deleted sequences, "everything below N is gone" markers, and the
  sequences of each block file unlinked once nothing in it was left: its skips are recorded nowhere else;
  the journal is fsynced before a block is unlinked). It is rewritten atomically when it grows.
- `state.dat`: the last sequence (rewritten in place after every record), then the blocks as last seen and
  the lost data (rewritten at every new block, sync and stop): what nats-server keeps in its index.db.
- `index.ckp`: the index checkpoint (checkpoint.py), written at a clean stop (and at a sync now and then); the
  next start loads the index of the blocks it still describes from it instead of reading them, and reads only
  the others.
- `obs/<consumer>/`: each consumer's `meta.inf`/`meta.sum` and its state in two alternating slots
  `o.0.dat`/`o.1.dat` (see FileConsumerStore), written shortly after every change (coalesced) and at shutdown.

Every record is framed as `magic(2) type(1) flags(1) length(4) body crc32(4)`. On start every record read is
verified (all of them, unless the checkpoint stands in for their blocks), and every sequence up to the last
one recorded is accounted for (a record in a block, or a removal in the journal): a record cut short at the end
of the newest block is a torn write, cut off with a warning; any other damage, and any sequence that is nowhere
(a block file deleted or cut), is reported with an error and listed in the stream state's `lost`; nothing
damaged is deleted, and the last sequence never goes back.

Only the index is in memory (memory.py's list of subjects, plus each message's offset in its block and its
size: see docs/jetstream.md for the bytes per message); subjects, headers and payloads stay in the blocks and
are read through the server's BlockCache (cache.py) or, for a single record of a block that is not cached,
with one os.pread. The block being written is in the cache from its first record (what is appended to its file
is appended there too) for as long as the cache keeps it. Reads check each record's checksum again.
"""
from __future__ import annotations

import json
import logging
import mmap
import os
import itertools
import struct
import threading
import zlib
from time import time_ns
from zlib import crc32
from array import array
from bisect import bisect_left, bisect_right

from . import MAX_SEQ, ConsumerStore, StoreCorrupt, StoreMsg, StreamStore, checkpoint, file_msg_size
from .cache import BlockCache
from .memory import _HEAD, _LSTALE, _N, _NAME, _SEQS, MemoryStore
from .memory import _LAST as _SUBJECT_LAST
from ..clock import now_ns

log = logging.getLogger("embedded_server.jetstream")

MAGIC = 0x4A53  # "JS"
_FRAME = struct.Struct("<HBBI")
_CRC = struct.Struct("<I")
_MSG_HEAD = struct.Struct("<QqiHI")  # seq, ts, ttl, subject length, header length
_MSG_FRAME = struct.Struct("<HBBIQqiHI")  # a message record's frame and head in one (FileStore.store_held)
_HLEN = struct.Struct("<I")
_SKIP = struct.Struct("<Qq")
_PURGE = struct.Struct("<Q")
_GONE = struct.Struct("<QQ")  # first, last
T_MSG, T_SKIP, T_DEL, T_PURGE, T_GONE = 1, 2, 3, 4, 5
_JOURNAL_TYPES = (T_DEL, T_PURGE, T_GONE)
BLOCK_SIZE = 8 * 1024 * 1024
MIN_BLOCK_SIZE = 32 * 1000
JOURNAL_REWRITE_AT = 1 * 1024 * 1024
STATE_FILE = "state.dat"
CHECKPOINT_FILE = "index.ckp"
# A sync (every sync_interval) writes a new checkpoint once this many sequences and a quarter of the index are new
# since the last one: a crash after a long run then reads only the blocks written since. Its cost is in
# proportion to the index (about 0.07 s per million messages), hence the quarter; only copying the index is done
# on the event loop, the rest (numbering the subjects, checksums, the write) in a thread.
CHECKPOINT_EVERY = 100_000
# The state file starts with the stream's last sequence, rewritten (one pwrite, not synced) after every record:
# even with its newest records gone, the stream does not hand their sequences out again.
STATE_MAGIC = b"JSLS"
_LAST_BODY = struct.Struct("<4sQqQ")  # magic, last sequence, its time, size of the journal
_LAST = struct.Struct("<4sQqQI")
# A hole in the sequences wider than this is not believed (a record or a state file saying so is damage): no
# block holds that many records, and the in-memory index keeps a slot per sequence.
MAX_GAP = 1 << 22
# A record (frame 8, head 26, subject, headers, data, crc 4) is at most this many bytes longer than the size its
# message counts for (file_msg_size: 30 + subject + data, 4 more with headers): reading size + _SLACK bytes at
# its offset gets all of it (unless its subject has multi-byte characters).
_SLACK = _FRAME.size + _MSG_HEAD.size + _CRC.size - 30
_TS_AT = _FRAME.size + 8  # where a message record's timestamp is
_TS = struct.Struct("<q")
_READ_FDS = 16  # blocks kept open for single-record reads
_store_ids = itertools.count(1)


def _frame(rtype: int, body: bytes) -> bytes:
    head = _FRAME.pack(MAGIC, rtype, 0, len(body))
    return head + body + _CRC.pack(zlib.crc32(body, zlib.crc32(head)))


def read_records(buf: bytes):
    """Yield (offset, end, type, body) for each intact record; then ("bad", offset) items where a record fails.

    After a bad record the reader resynchronises on the next intact frame, so one flipped bit costs only
    the records it touches.
    """
    pos, n = 0, len(buf)
    while pos < n:
        rec = _parse_at(buf, pos)
        if rec is not None:
            end, rtype, body = rec
            yield pos, end, rtype, body
            pos = end
            continue
        yield "bad", pos, None, None
        nxt = buf.find(b"SJ", pos + 1)  # MAGIC little-endian
        while nxt >= 0 and _parse_at(buf, nxt) is None:
            nxt = buf.find(b"SJ", nxt + 1)
        if nxt < 0:
            return
        pos = nxt


def _parse_at(buf: bytes, pos: int):
    if pos + _FRAME.size + _CRC.size > len(buf):
        return None
    magic, rtype, _flags, length = _FRAME.unpack_from(buf, pos)
    if magic != MAGIC or rtype not in (T_MSG, T_SKIP, T_DEL, T_PURGE, T_GONE):
        return None
    body_at = pos + _FRAME.size
    end = body_at + length + _CRC.size
    if end > len(buf):
        return None
    body = buf[body_at:body_at + length]
    (crc,) = _CRC.unpack_from(buf, body_at + length)
    if zlib.crc32(body, zlib.crc32(buf[pos:body_at])) != crc:
        return None
    return end, rtype, body


def _msg_at(buf: memoryview, pos: int, seq: int, subject: str) -> StoreMsg | None:
    """The message record of `seq` at `pos` of `buf` if it is intact (its checksum is verified again); else None.
    Reads in place: only the headers and the data are copied out."""
    if pos + _FRAME.size + _CRC.size > len(buf):
        return None
    magic, rtype, _flags, length = _FRAME.unpack_from(buf, pos)
    body_at = pos + _FRAME.size
    end = body_at + length
    if magic != MAGIC or rtype != T_MSG or length < _MSG_HEAD.size or end + _CRC.size > len(buf):
        return None
    if zlib.crc32(buf[pos:end]) != _CRC.unpack_from(buf, end)[0]:
        return None
    rseq, ts, _ttl, slen, hlen = _MSG_HEAD.unpack_from(buf, body_at)
    at = body_at + _MSG_HEAD.size + slen
    if rseq != seq or at + hlen > end:
        return None
    return StoreMsg(subject, bytes(buf[at:at + hlen]) if hlen else None, bytes(buf[at + hlen:end]), seq, ts)


def _write_tmp(path: str, data: bytes, sync: bool) -> None:
    """`path`.tmp holding `data` (fsynced with `sync`), to be renamed over `path`."""
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, sync: bool) -> None:
    _write_tmp(path, data, sync)
    os.replace(path + ".tmp", path)
    if sync:
        fsync_dir(os.path.dirname(path))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str, sync: bool) -> list[str]:
    """os.makedirs; returns the directories whose entries changed (those it created and the one holding them),
    fsynced already with `sync`, so that a new stream or consumer is still there after a power loss."""
    changed = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        changed.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(path, exist_ok=True)
    if changed:
        changed.append(probe)
        if sync:
            for d in changed:
                fsync_dir(d)
    return changed


def write_meta(directory: str, meta: dict, sync: bool = True, new_dirs: list[str] | tuple = ()) -> None:
    """meta.inf and its checksum meta.sum, each replaced atomically (sum last). With `sync` both files are on
    disk before either is renamed, and the directory is then fsynced once for both renames, together with
    `new_dirs` (directories just created whose entries must be durable too: a new stream's own and its parent)."""
    data = json.dumps(meta, separators=(",", ":")).encode()
    paths = [os.path.join(directory, "meta.inf"), os.path.join(directory, "meta.sum")]
    _write_tmp(paths[0], data, sync)
    _write_tmp(paths[1], b"%08x" % zlib.crc32(data), sync)
    for path in paths:
        os.replace(path + ".tmp", path)
    if sync:
        for d in dict.fromkeys([os.path.abspath(directory)] + [os.path.abspath(d) for d in new_dirs]):
            fsync_dir(d)


def read_meta(directory: str) -> dict:
    """The metadata written by write_meta; StoreCorrupt if missing, unreadable or not matching its checksum."""
    try:
        with open(os.path.join(directory, "meta.inf"), "rb") as f:
            data = f.read()
        with open(os.path.join(directory, "meta.sum"), "rb") as f:
            checksum = f.read().strip()
    except OSError as e:
        raise StoreCorrupt(f"cannot read metadata in {directory}: {e}") from None
    if checksum != b"%08x" % zlib.crc32(data):
        raise StoreCorrupt(f"metadata checksum mismatch in {directory}")
    try:
        return json.loads(data)
    except ValueError as e:
        raise StoreCorrupt(f"metadata in {directory} is not JSON: {e}") from None


def _valid_state(state) -> bool:
    """Whether a decoded state file has the shape _write_state gives it (a checksum says nothing about that)."""
    def seq(v):
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEQ
    if not isinstance(state, dict) or not all(seq(state.get(k)) for k in ("first_seq", "last_seq", "last_ts")):
        return False
    blocks = state.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(b, list) and len(b) == 4 and all(map(seq, b))
                                               for b in blocks):
        return False
    if not seq(state.get("journal", 0)):
        return False
    lost = state.get("lost", {"msgs": [], "bytes": 0})
    return (isinstance(lost, dict) and isinstance(lost.get("msgs"), list) and all(map(seq, lost["msgs"]))
            and seq(lost.get("bytes")))


class _Block:
    __slots__ = ("index", "path", "first", "last", "last_ts", "live", "size", "hdrs")

    def __init__(self, index: int, path: str):
        self.index, self.path = index, path
        self.first = self.last = self.last_ts = self.live = self.size = 0
        self.hdrs = 0  # message records with headers written to it (removed or not): 0 = none to look for


def block_size_for(cfg: dict) -> int:
    """nats-server's dynBlkSize: a quarter of `max_bytes` (32 kB to 8 MB), else 8 MB (4 MB unless limits)."""
    max_bytes = cfg.get("max_bytes") or -1
    if max_bytes > 0:
        size = max_bytes // 4 + 1
        size += -size % 100
        if size <= MIN_BLOCK_SIZE:
            return MIN_BLOCK_SIZE
        return BLOCK_SIZE if size >= BLOCK_SIZE else BLOCK_SIZE // 2
    return BLOCK_SIZE if cfg.get("retention", "limits") == "limits" else BLOCK_SIZE // 2


def _tail_crc(path: str, size: int) -> int:
    """CRC-32 of the last 4 KiB (or fewer) of a block's first `size` bytes."""
    n = min(size, checkpoint.TAIL)
    with open(path, "rb") as f:
        f.seek(size - n)
        return zlib.crc32(f.read(n))


def _unchanged(path: str, saved: list) -> bool:
    """Whether a block file is still what the checkpoint saw: size, modification time, checksum of its end."""
    try:
        st = os.stat(path)
        return (st.st_size == saved[5] and st.st_mtime_ns == saved[6]
                and _tail_crc(path, saved[5]) == saved[7])
    except OSError:
        return False


def _concat(arrays: list) -> array:
    out = array("Q")
    for a in arrays:
        out += a
    return out


def _name_dupes(subjects: list) -> bool:
    return len(set(subjects)) != len(subjects)


def _is_torn(tail: bytes, types=(T_MSG, T_SKIP)) -> bool:
    """Whether the bytes after the last good record of the newest block are an interrupted append: a record
    shorter than its own header says (or zeros, which is what a power loss leaves in a file's unsynced end).
    A record complete in length that fails its checksum, or bytes that are no record at all, are damage."""
    if not tail.strip(b"\0"):
        return True
    head = _FRAME.pack(MAGIC, T_MSG, 0, 0)
    if len(tail) < 3:
        return tail == head[:len(tail)]
    if tail[:2] != head[:2] or tail[2] not in types:
        return False
    if len(tail) < _FRAME.size:
        return True
    length = _FRAME.unpack_from(tail)[3]
    return _FRAME.size + length + _CRC.size > len(tail)


def _records_in(region: bytes) -> int:
    """How many records a damaged region at the end of a block held, as far as their headers tell (at least 1)."""
    count, pos = 0, 0
    while pos + _FRAME.size <= len(region):
        magic, rtype, _flags, length = _FRAME.unpack_from(region, pos)
        if magic != MAGIC or rtype not in (T_MSG, T_SKIP):
            break
        count += 1
        pos += _FRAME.size + length + _CRC.size
    return max(count, 1)


def _uncovered(lo: int, hi: int, ranges: list) -> list[tuple[int, int]]:
    """The parts of lo..hi that none of the (first, last) `ranges` (sorted, not overlapping) covers."""
    out = []
    for first, last in itertools.islice(ranges, max(bisect_right(ranges, (lo, MAX_SEQ + 1)) - 1, 0), None):
        if lo > hi or first > hi:
            break
        if first > lo:
            out.append((lo, min(first - 1, hi)))
        lo = max(lo, last + 1)
    if lo <= hi:
        out.append((lo, hi))
    return out


def _without(first: int, last: int, lost: list[int]) -> list[tuple[int, int]]:
    """first..last in ranges that leave out the sorted sequences `lost` (reported lost: not to be called removed)."""
    out = []
    for s in lost[bisect_left(lost, first):bisect_right(lost, last)]:
        if s > first:
            out.append((first, s - 1))
        first = s + 1
    if first <= last:
        out.append((first, last))
    return out


def _merged(ranges: list) -> list[tuple[int, int]]:
    """(first, last) ranges sorted and joined where they touch or overlap."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _ranges(seqs: list[int]) -> str:
    """1-3,7,9-10: sequences as the log shows them."""
    out, i = [], 0
    while i < len(seqs):
        j = i
        while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
            j += 1
        out.append(str(seqs[i]) if i == j else f"{seqs[i]}-{seqs[j]}")
        i = j + 1
    if len(out) > 8:
        out = out[:4] + ["..."] + out[-3:]
    return ",".join(out)


class FileStore(MemoryStore):
    storage = "file"
    msg_size = staticmethod(file_msg_size)
    store_batch = StreamStore.store_batch  # each message written as it is stored: store_msg one by one

    def __init__(self, directory: str, cfg: dict, sync_always: bool = False, block_size: int | None = None,
                 cache: BlockCache | None = None, logger=None):
        self.directory = directory
        self.logger = logger  # the server's (warn/error); None: Python logging
        self.cache = cache if cache is not None else BlockCache()
        self._cid = next(_store_ids)
        self._offs = array("I")  # per slot: the record's offset in its block
        self._lens = array("I")  # per slot: the bytes the message counts for (0: no message)
        self._loc = 0  # the offset of the record being indexed
        self._rfds: dict[int, int] = {}  # block index -> a read-only fd (insertion order: oldest first)
        self._held_at = 0
        self._last_block: _Block | None = None
        self._read_next = 0  # the sequence after the last one read
        self.msgs_dir = os.path.join(directory, "msgs")
        self.state_path = os.path.join(directory, STATE_FILE)
        self.checkpoint_path = os.path.join(directory, CHECKPOINT_FILE)
        self._ckp_seq = 0  # the last sequence the newest checkpoint covers
        self._ckp_thread: threading.Thread | None = None  # a sync's checkpoint being written
        self._ckp_failed: str | None = None  # what went wrong in it, said on the event loop
        self.sync_always = sync_always
        self.block_size = block_size or block_size_for(cfg)
        self._blocks: list[_Block] = []
        self._fd = -1
        self._jfd = -1
        self._sfd = -1
        self._state_data = b""  # the JSON part of the state file as last written
        self._head = None  # the state file's head, mapped: rewriting it after each record costs no system call
        self._jsize = 0
        self._jsynced = -1  # the journal's size at its last fsync (-1: not known to be on disk)
        self._jdir_synced = True  # False while a journal created by this store may be missing from msgs/ on disk
        self._dirty = False
        self._recovering = True
        self._purged = False
        self.lost_msgs: list[int] = []
        self.lost_bytes = 0
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self._unreadable = 0  # the last sequence whose record no longer read back intact
        self._purge_floor = 0
        self._damage_records = 1
        self._start_new_block = False
        self._held: list | None = None  # records held back between begin_writes and end_writes
        self._fast_hold = False  # the hold is a fast batch's (hold_writes)
        self._werr: OSError | None = None  # a held write failed (hold_writes)
        self._held_last = (0, 0)
        # Without sync_always, new directories are fsynced with the files at the next sync.
        self._new_dirs = [] if sync_always else make_dirs(self.msgs_dir, False)
        if sync_always:
            make_dirs(self.msgs_dir, True)
        self._dirty = bool(self._new_dirs)
        super().__init__(dict(cfg, first_seq=0))
        self._start_seq = max(cfg.get("first_seq") or 0, 1)
        self._recover()
        if self.last_seq == 0 and (cfg.get("first_seq") or 0) > 1 and not self._blocks_have_data():
            self._persist_purge(cfg["first_seq"])
            self._reset_to(cfg["first_seq"])
        self._recovering = False
        self._write_state(sync=False)  # opens the state file the removals below record their journal size in
        self._enforce_after_recovery()
        self._write_state(sync=sync_always)  # a write only if the limits removed something

    def take_new_dirs(self) -> list[str]:
        """The directories created for this store whose entries are not yet fsynced, except msgs/ (what it
        holds is fsynced with its files at the next sync): the caller fsyncs them now, with the meta."""
        dirs = [d for d in self._new_dirs if d != os.path.abspath(self.msgs_dir)]
        self._new_dirs = [d for d in self._new_dirs if d not in dirs]
        return dirs

    def _blocks_have_data(self) -> bool:
        return any(b.size for b in self._blocks)

    # -- the index: a slot's record offset and size; the rest is read from the blocks --------------
    def _keep(self, hdr, data, ts, size) -> None:
        self._offs.append(self._loc)
        self._lens.append(size)

    def _keep_holes(self, n: int) -> None:
        zeros = bytes(4 * n)
        self._offs.frombytes(zeros)
        self._lens.frombytes(zeros)

    def _drop(self, i: int) -> int:
        size = self._lens[i]
        self._lens[i] = 0
        return size

    def _trim_vals(self, k: int) -> None:
        del self._offs[:k]
        del self._lens[:k]

    def _clear_vals(self) -> None:
        self._offs = array("I")
        self._lens = array("I")

    def _size_at(self, i: int) -> int:
        return self._lens[i]

    def _first_ts_at(self, i: int):
        return None  # a removal run (limits, a purge) moves the first message often: its time is read once asked

    @property
    def first_ts(self) -> int:
        if self._first_ts is None:
            i = self.first_seq - self._base
            self._first_ts = self._ts_at(i) if self.msgs and 0 <= i < len(self._recs) else 0
        return self._first_ts

    @first_ts.setter
    def first_ts(self, value) -> None:
        self._first_ts = value

    def _ts_at(self, i: int) -> int:
        buf, pos = self._read(self._block_for(self._base + i), self._offs[i] + _TS_AT, _TS.size, False)
        return _TS.unpack_from(buf, pos)[0] if pos + _TS.size <= len(buf) else 0

    def _load(self, seq: int, subject: str, sequential: bool = False) -> StoreMsg | None:
        # Reading the sequence after the last one read is a scan too (a mirror copying its origin with load_msg).
        if seq == self._read_next:
            sequential = True
        self._read_next = seq + 1
        i = seq - self._base
        blk = self._block_for(seq)
        sm = None
        if blk is not None:
            off = self._offs[i]
            buf, pos = self._read(blk, off, self._lens[i] + _SLACK, sequential)
            if pos + _FRAME.size <= len(buf):
                need = _FRAME.size + _FRAME.unpack_from(buf, pos)[3] + _CRC.size
                if pos + need > len(buf):  # a subject of multi-byte characters counts fewer bytes than it has
                    buf, pos = self._read(blk, off, need, sequential)
            sm = _msg_at(memoryview(buf), pos, seq, subject)
        if sm is None:
            msg = (f"Stream store {self.directory}: the record of sequence {seq} in "
                   f"{blk.path if blk else 'no block'} no longer reads back intact")
            self.errors.append(msg)
            self._say("error", msg)
            self._unreadable = seq
        return sm

    def load_next_msg(self, filters, start: int) -> StoreMsg | None:
        """As the memory store's, passing over a record damaged since it was written (logged, counted in
        `errors`), as nats-server's LoadNextMsg does: a snapshot or a consumer goes on with the next message."""
        sm = MemoryStore.load_next_msg(self, filters, start)
        while sm is None and self._unreadable >= start:
            start, self._unreadable = self._unreadable + 1, 0
            sm = MemoryStore.load_next_msg(self, filters, start)
        return sm

    def headers_from(self, seq: int):
        """As StreamStore's, reading each block once, and only blocks that hold a message with headers: there a
        message without headers costs one look at its record's head (its header length); one with headers is
        read and checked as load_msg does."""
        recs, base, offs = self._recs, self._base, self._offs
        i, n = max(seq, self.first_seq, base) - base, len(recs)
        hlen_at = _FRAME.size + _MSG_HEAD.size - 4
        while i < n:
            if recs[i] is None:
                i += 1
                continue
            blk = self._block_for(base + i)
            end = min(blk.last - base + 1, n) if blk is not None else i + 1
            if blk is not None and not blk.hdrs:
                i = end  # no message of this block has headers
                continue
            buf = self._read(blk, 0, blk.size, True)[0] if blk is not None and not self._held else None
            for j in range(i, end):
                if recs[j] is None:
                    continue
                try:
                    if buf is not None and not _HLEN.unpack_from(buf, offs[j] + hlen_at)[0]:
                        continue
                except struct.error:
                    pass
                sm = self._load(base + j, recs[j], True)
                if sm is not None and sm.hdr:
                    yield sm.seq, sm.ts, sm.hdr
            i = end

    def _read(self, blk: "_Block", off: int, n: int, sequential: bool) -> tuple[bytes, int]:
        """A buffer holding the `n` bytes (fewer at the end of the file) at `off` of a block, and where they start
        in it: the records held back, the cached block (loaded whole if `sequential`: a scan reads on), or what
        one pread returns."""
        if self._held and off >= self._held_at and blk is self._blocks[-1]:
            return b"".join(self._held), off - self._held_at
        key = (self._cid, blk.index)
        data = self.cache.get(key)
        if data is None and sequential and blk.size <= self.cache.limit:
            # (the block being written too: what is appended to its file from now on is appended to this copy)
            with open(blk.path, "rb") as f:
                data = f.read()
            self.cache.put(key, data)
        if data is not None:
            return data, off
        fd = self._rfds.pop(blk.index, -1)
        if fd < 0:
            fd = os.open(blk.path, os.O_RDONLY)
            if len(self._rfds) >= _READ_FDS:
                os.close(self._rfds.pop(next(iter(self._rfds))))
        self._rfds[blk.index] = fd
        return os.pread(fd, n, off), 0

    def _let_go(self, blk: "_Block") -> None:
        """A block file is going away: forget its cached bytes and its read fd."""
        if self._last_block is blk:
            self._last_block = None
        self.cache.drop((self._cid, blk.index))
        fd = self._rfds.pop(blk.index, -1)
        if fd >= 0:
            os.close(fd)

    def _let_go_all(self) -> None:
        self.cache.drop_store(self._cid)
        for fd in self._rfds.values():
            os.close(fd)
        self._rfds = {}

    # -- recovery -------------------------------------------------------------------------------
    # Every sequence from the stream's first to its last is accounted for on disk: a message or a skip in a
    # block, or a removal in the journal. Sequences that are neither are lost, and reported; the last sequence
    # recorded in the state file keeps a stream whose newest records are gone from handing their numbers out
    # again.
    def _recover(self) -> None:
        saved = self._read_state()
        self._saved_journal = (saved or {}).get("journal", 0)
        self._released: list[tuple[int, int]] = []  # sequences of unlinked blocks (the journal's T_GONE records)
        self._gaps: list[list] = []  # [first, last, reason, removed-by-journal set]
        self._damage: str | None = None  # a damaged region waiting for the next good record to end it
        names = sorted((int(n[:-4]), n) for n in os.listdir(self.msgs_dir)
                       if n.endswith(".blk") and n[:-4].isdigit())
        # The blocks the checkpoint of the last clean stop still describes are not read; the rest are.
        loaded = self._load_checkpoint(names)
        for pos, (index, name) in enumerate(names):
            if pos >= loaded:
                self._load_block(index, os.path.join(self.msgs_dir, name), last=pos == len(names) - 1)
        saved_last = saved.get("last_seq", 0) if saved else 0
        if saved_last - self.last_seq > MAX_GAP and (self.last_seq or self._recs):
            self._warn(f"{self.state_path} says the last sequence is {saved_last}, far beyond the blocks "
                       f"({self.last_seq}); not believed")
            saved = None
            saved_last = 0
        if saved_last > self.last_seq:
            reason = self._damage or self._missing_tail_reason(saved)
            self._gap(self.last_seq + 1, saved_last, reason)
            self._extend_to(saved_last, saved.get("last_ts", 0))
        elif self._damage:
            # Damage after the last good record with nothing on disk to say how far it went: at least the one
            # record it held is gone, so its sequence is not handed out again.
            self._gap(self.last_seq + 1, self.last_seq + self._damage_records, self._damage)
            self._extend_to(self.last_seq + self._damage_records, self.last_ts)
        self._damage = None
        if not self._blocks:
            self._new_block(1)
        elif self._start_new_block:
            self._new_block(self._blocks[-1].index + 1)
        else:
            self._open_active()
        self._load_journal()
        if self.msgs == 0:
            self.first_seq, self.first_ts = self.last_seq + 1, 0
            if self.last_seq == 0 and not self._purged:
                self.first_seq = 0
        self._released = _merged(self._released)
        if saved:
            self._count_missing_bytes(saved)
        self._settle_gaps(saved)

    # -- the index checkpoint (checkpoint.py) ----------------------------------------------------
    # Written at a clean stop; read at the next start. It stands in for reading the blocks it describes only
    # while they are the files it saw (same size, modification time and checksum of their last 4 KiB): the
    # longest run of on-disk blocks, from the first, that it describes so is loaded from it, and every block
    # after that run is read record by record as before (kill -9 after more writes: the active block grew).
    # The removal journal is replayed whole over it either way, so removals made since are applied, and the
    # sequences before its first block go through the same accounting as a scan's (lost unless removed).
    def _load_checkpoint(self, names: list) -> int:
        """Load the index of the leading on-disk blocks from the checkpoint; how many blocks it covered."""
        try:
            with open(self.checkpoint_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return 0
        except OSError as e:
            self._warn(f"cannot read {self.checkpoint_path} ({e}); every block is read instead")
            return 0
        try:
            header, arrays = checkpoint.decode(raw)
            del raw
            return self._install_checkpoint(header, arrays, names)
        except (checkpoint.Damaged, KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            self._warn(f"{self.checkpoint_path} is damaged ({e}); every block is read instead")
            return 0

    def _install_checkpoint(self, header: dict, arrays: dict, names: list) -> int:
        """Everything is checked and built in locals first: a checkpoint that does not add up changes nothing."""
        blocks = header["blocks"]
        if not isinstance(blocks, list) or not all(
                isinstance(b, list) and len(b) == 9 and all(isinstance(v, int) and v >= 0 for v in b[:3] + b[4:])
                and isinstance(b[3], int) for b in blocks):
            raise checkpoint.Damaged("bad block list")
        at = {b[0]: i for i, b in enumerate(blocks)}
        j = at.get(names[0][0]) if names else None
        if j is None:
            return 0
        k = 0
        while (k < len(names) and j + k < len(blocks) and blocks[j + k][0] == names[k][0]
               and _unchanged(os.path.join(self.msgs_dir, names[k][1]), blocks[j + k])):
            k += 1
        if k == 0:
            return 0
        matched = blocks[j:j + k]
        base, last_seq, subjects = header["base"], header["last_seq"], header["subjects"]
        ids, offs, lens, counts, all_seqs = (arrays[n] for n in ("ids", "offs", "lens", "counts", "seqs"))
        if not (isinstance(base, int) and isinstance(last_seq, int) and isinstance(subjects, list)
                and all(isinstance(n, str) and n for n in subjects) and len(counts) == len(subjects)
                and sum(counts) == len(all_seqs) and len(ids) == len(offs) == len(lens) == last_seq - base + 1
                and len(arrays["ttls"]) % 2 == 0):
            raise checkpoint.Damaged("its parts do not add up")
        lo = next((b[1] for b in matched if b[1]), 0)
        hi, hi_ts = max((b[2], b[3]) for b in matched)
        if hi > last_seq or (lo and lo > hi):
            raise checkpoint.Damaged("its blocks go beyond its index")
        start = max(lo, base)
        state = None
        if lo and start <= hi:
            a, b = start - base, hi - base + 1
            ids, offs, lens = ids[a:b], offs[a:b], lens[a:b]
            if ids and max(ids) > len(subjects):
                raise checkpoint.Damaged("a subject out of range")
            table = [None] + subjects
            recs = list(map(table.__getitem__, ids))
            fss, pos, msgs = {}, 0, 0
            for name, count in zip(subjects, counts):
                seqs = all_seqs[pos:pos + count]
                pos += count
                i0, i1 = bisect_left(seqs, start), bisect_right(seqs, hi)
                if i1 > i0:
                    if i0 or i1 < len(seqs):
                        seqs = seqs[i0:i1]
                    fss[name] = [len(seqs), seqs[0], seqs[-1], False, False, name, seqs, 0]
                    msgs += len(seqs)
            if msgs != len(ids) - ids.count(0) or _name_dupes(subjects):
                raise checkpoint.Damaged("its subjects do not match its index")
            pairs = arrays["ttls"]
            ttls = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2) if start <= pairs[i] <= hi}
            never = {s for s in arrays["never"] if start <= s <= hi}
            first = min(ss[1] for ss in fss.values()) if msgs else hi + 1
            state = (recs, offs, lens, fss, msgs, sum(lens), first, ttls, never)
        # Believed from here on.
        if lo and lo > self._start_seq:
            self._gap(self._start_seq, lo - 1, f"not in any block file (before {lo}, in {self.msgs_dir})")
        if state is not None:
            (self._recs, self._offs, self._lens, self._fss, self.msgs, self.bytes, self.first_seq, self._ttls,
             self._never) = state
            self._base = start
            self.first_ts = None if self.msgs else 0  # read when asked
            self.last_seq, self.last_ts = hi, hi_ts
        elif lo:  # every message of these blocks had been removed and the index trimmed past them
            self._base = self.first_seq = hi + 1
            self.last_seq, self.last_ts = hi, hi_ts
        for (index, name), (_, bfirst, blast, blast_ts, live, size, _, _, hdrs) in zip(names, matched):
            blk = _Block(index, os.path.join(self.msgs_dir, name))
            blk.first, blk.last, blk.last_ts, blk.live, blk.size, blk.hdrs = bfirst, blast, blast_ts, live, size, hdrs
            self._blocks.append(blk)
        self._start_new_block = False
        self._ckp_seq = hi
        return k

    def _checkpoint_if_due(self) -> None:
        self._join_checkpoint(wait=False)
        new = self.last_seq - self._ckp_seq
        if (self._fd >= 0 and new >= CHECKPOINT_EVERY and new * 4 >= len(self._recs)
                and self._ckp_thread is None):
            self._write_checkpoint(at_stop=False)

    def _join_checkpoint(self, wait: bool = True) -> None:
        """Wait for (or, without `wait`, look at) the checkpoint a sync left to its thread; say on the event loop
        what went wrong in it. Whatever else touches the checkpoint file (a stop, a delete) waits first."""
        thread = self._ckp_thread
        if thread is not None and (wait or not thread.is_alive()):
            thread.join()
            self._ckp_thread = None
        if self._ckp_failed is not None and self._ckp_thread is None:
            failed, self._ckp_failed = self._ckp_failed, None
            self._warn(failed)

    def _write_checkpoint(self, at_stop: bool = True) -> None:
        """At a clean stop, after the last write to the blocks (and at a sync, see CHECKPOINT_EVERY). A store that
        knows of damage (lost messages, records that did not read back, a failed write) writes none, and drops
        an older one: its next start reads every block and reports what it finds, as it does today.

        What the checkpoint holds is copied at one moment, here (memory copies of the index); a sync's is then
        numbered, checksummed and written by a thread, so that the event loop does not wait for it."""
        self._join_checkpoint()
        path = self.checkpoint_path
        try:
            damaged = bool(self.lost_msgs or self.errors or self._werr is not None)
            snap = None
            if not (damaged or self._held or self._recovering):
                snap = self._checkpoint_snapshot()  # None if a block's file is not what the index says
            if snap is None:
                if (at_stop or damaged) and os.path.exists(path):
                    os.unlink(path)
                return
            self._ckp_seq = self.last_seq
        except (OSError, OverflowError, ValueError) as e:
            self._checkpoint_failed(path, e)
            self._join_checkpoint()
            return
        if at_stop:
            self._finish_checkpoint(path, snap)
            self._join_checkpoint()
        else:
            self._ckp_thread = threading.Thread(target=self._finish_checkpoint, args=(path, snap),
                                                name=f"checkpoint {self.directory}", daemon=True)
            self._ckp_thread.start()

    def _checkpoint_failed(self, path: str, e: Exception) -> None:
        self._ckp_failed = f"could not write {path} ({e}); the next start reads every block"
        for p in (path, path + ".tmp"):
            try:
                os.unlink(p)
            except OSError:
                pass

    def _checkpoint_snapshot(self):
        """Copies of what the checkpoint holds, all taken now; None if they do not add up."""
        if len(self._recs) != len(self._offs) or len(self._recs) != self.last_seq - self._base + 1:
            return None
        blocks = []
        for b in self._blocks:
            st = os.stat(b.path)
            if st.st_size != b.size:
                return None
            blocks.append([b.index, b.first, b.last, b.last_ts, b.live, b.size, st.st_mtime_ns, b.path, b.hdrs])
        subjects = list(self._fss)
        seqs = []
        for name in subjects:
            ss = self._fix(self._fss[name])
            mine = ss[_SEQS][ss[_HEAD]:]  # a copy
            if len(mine) != ss[_N]:
                return None
            seqs.append(mine)
        ttls = array("Q")
        for seq, at in self._ttls.items():
            ttls.append(seq)
            ttls.append(at)
        header = {"base": self._base, "last_seq": self.last_seq, "last_ts": self.last_ts, "subjects": subjects,
                  "blocks": blocks}
        return (header, self._recs[:], array("I", self._offs), array("I", self._lens), seqs, ttls,
                array("Q", sorted(self._never)))

    def _finish_checkpoint(self, path: str, snap) -> None:
        """Number the subjects, checksum and write the checkpoint of a snapshot: uses nothing but the snapshot and
        the block files' first bytes (which never change), so it may run in a thread. Written to a temporary file
        and renamed over the checkpoint; not fsynced: one torn by a power loss fails its checksum and the blocks
        are read instead."""
        header, recs, offs, lens, seqs, ttls, never = snap
        try:
            for b in header["blocks"]:
                b[7] = _tail_crc(b[7], b[5])
        except OSError:
            return  # a block unlinked since the snapshot (nothing left in it): this one is not written, no harm
        try:
            number = dict(zip(header["subjects"], range(1, len(header["subjects"]) + 1)))
            number[None] = 0
            ids, get = array("I"), number.__getitem__
            for i in range(0, len(recs), 32768):  # in slices: the event loop may take the interpreter between two
                ids.extend(map(get, recs[i:i + 32768]))
            del recs
            counts = array("I", map(len, seqs))
            seqs = _concat(seqs)
            parts = checkpoint.encode(header, {"ids": ids, "offs": offs, "lens": lens, "counts": counts,
                                               "seqs": seqs, "ttls": ttls, "never": never})
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                for part in parts:
                    view = memoryview(part).cast("B")
                    while view:  # a write may take less than it is given
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(path + ".tmp", path)
        except (OSError, OverflowError, ValueError) as e:
            self._checkpoint_failed(path, e)

    def _count_missing_bytes(self, saved: dict) -> None:
        """Bytes of block files gone or shorter than the state file last saw them (what nats-server's lost
        `bytes` counts); damage inside the files is counted where it is found. A block unlinked since because
        nothing in it was left (its sequences below the first one, or journaled as gone) is no loss."""
        on_disk = {b.index: b.size for b in self._blocks}
        floor = max(self._purge_floor, saved.get("first_seq", 0))
        for index, first, last, size in saved["blocks"]:
            if index not in on_disk and (not last or not _uncovered(max(first, floor), last, self._released)):
                continue
            if on_disk.get(index, 0) < size:
                self.lost_bytes += size - on_disk.get(index, 0)

    def _missing_tail_reason(self, saved: dict) -> str:
        blocks = saved.get("blocks") or []
        newest = blocks[-1][0] if blocks else 0
        if newest and not any(b.index == newest for b in self._blocks):
            return f"{newest}.blk missing from {self.msgs_dir}"
        if self._blocks:
            return f"missing at the end of {self._blocks[-1].path}"
        return f"no block file left in {self.msgs_dir}"

    def _gap(self, first: int, last: int, reason: str) -> None:
        """Sequences with no record on disk; `reason` says why if damage was seen there (else they are lost
        only if no removal of theirs is recorded either: a released block or a purge leaves such gaps too)."""
        if first <= last:
            self._gaps.append([first, last, reason, set()])

    def _extend_to(self, last: int, ts: int) -> None:
        if self.last_seq == 0 and not self._recs:
            self._base = last + 1
        else:
            self._recs.extend([None] * (last - self.last_seq))
            self._keep_holes(last - self.last_seq)
        self.last_seq, self.last_ts = last, max(self.last_ts, ts)

    def _settle_gaps(self, saved: dict | None) -> None:
        """Sequences of a gap that the journal (or the saved state) says were removed are not lost; the rest is."""
        floor = max(self._purge_floor, (saved or {}).get("first_seq", 0))
        lost = set((saved or {}).get("lost", {}).get("msgs") or ())
        self.lost_bytes += (saved or {}).get("lost", {}).get("bytes", 0)
        on_disk = {b.index for b in self._blocks}
        gone = [b for b in (saved or {}).get("blocks", ()) if b[0] not in on_disk and b[1]]
        for first, last, reason, removed in self._gaps:
            if reason.startswith("not in any block"):
                names = [f"{i}.blk" for i, bfirst, blast, _ in gone if bfirst <= last and blast >= first]
                if names:
                    reason = f"{', '.join(names)} missing from {self.msgs_dir}"
            seqs = [s for s in lost if first <= s < floor]
            lo = max(first, floor)
            seqs += [s for a, b in _uncovered(lo, min(last, lo + MAX_GAP - 1), self._released) for s in range(a, b + 1)
                     if s not in removed]
            lost.update(seqs)
            seqs.sort()
            if not seqs and not reason.startswith(("corrupt", "unreadable")):
                continue
            if seqs:
                msg = (f"Stream store {self.directory}: {len(seqs)} message(s) lost "
                       f"(sequences {_ranges(seqs)}): {reason}")
            else:
                msg = (f"Stream store {self.directory}: {reason}; the sequences there "
                       f"({first}-{last}) had been removed before, no message lost")
            self.errors.append(msg)
            self._say("error", msg)
        self._gaps = []
        # A block file put back brings its messages back: they are no longer lost.
        self.lost_msgs = sorted(s for s in lost if self._rec(s) is None)

    def _read_state(self) -> dict | None:
        """The state file as last written: its JSON (blocks, lost data, first sequence) with the last sequence
        of its head, which is rewritten after every record. None if absent or unreadable."""
        try:
            with open(self.state_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(f"cannot read {self.state_path}: {e}")
            return None
        head = None
        if len(raw) >= _LAST.size:
            magic, last_seq, last_ts, journal, crc = _LAST.unpack_from(raw)
            if magic == STATE_MAGIC and crc == zlib.crc32(raw[:_LAST.size - _CRC.size]):
                head = last_seq, last_ts, journal
        line, _, rest = raw[_LAST.size:].partition(b"\n")
        try:
            checksum, length = line.split(b" ")
            data = rest[:int(length)]
            ok = len(data) == int(length) and checksum == b"%08x" % zlib.crc32(data)
            state = json.loads(data) if ok else None
        except ValueError:
            state = None
        if not _valid_state(state):
            if head is None:
                self._warn(f"{self.state_path} is unreadable; the last sequence is taken from the blocks")
                return None
            self._warn(f"{self.state_path} is partly unreadable; its last sequence ({head[0]}) is used")
            state = {"first_seq": 0, "last_seq": 0, "last_ts": 0, "blocks": []}
        if head is not None:
            state["journal"] = head[2]
            if head[0] > state["last_seq"]:
                state["last_seq"], state["last_ts"] = head[:2]
        return state

    def _warn(self, text: str) -> None:
        msg = f"Stream store {self.directory}: {text}"
        self.warnings.append(msg)
        self._say("warn", msg)

    def _say(self, level: str, msg: str) -> None:
        """A warning or error of the store, once, in the server's log (its [WRN]/[ERR] lines) when the server
        gave its logger: at once while the store is open, by the caller from `warnings`/`errors` for what the
        opening found. Without a logger (the store used on its own), through Python logging."""
        if self.logger is None:
            (log.warning if level == "warn" else log.error)(msg)
        elif not self._recovering:
            getattr(self.logger, level)(msg)

    def _load_block(self, index: int, path: str, last: bool) -> None:
        with open(path, "rb") as f:
            buf = f.read()
        blk = _Block(index, path)
        self._blocks.append(blk)
        bad_at = None
        for pos, _end, rtype, body in read_records(buf):
            if pos == "bad":
                bad_at = _end  # offset of the bad record
                continue
            if bad_at is not None:
                self._damaged(path, bad_at, pos - bad_at)
                bad_at = None
            self._apply_block_record(blk, rtype, body, pos)
        self._start_new_block = False
        blk.size = len(buf)
        if bad_at is None:
            return
        tail = buf[bad_at:]
        if last and _is_torn(tail):
            self._warn(f"dropped a torn record at the end of {path} (offset {bad_at}, {len(tail)} bytes)")
            with open(path, "r+b") as f:
                f.truncate(bad_at)
            blk.size = bad_at
            return
        self._damaged(path, bad_at, len(tail))
        self._damage_records = _records_in(tail)
        # The damaged file is kept as it is; new messages go to a new block after it.
        self._start_new_block = last

    def _damaged(self, path: str, offset: int, size: int) -> None:
        self.lost_bytes += size
        self._damage = f"corrupt record in {path} at offset {offset} ({size} bytes); the file is left untouched"

    def _apply_block_record(self, blk: _Block, rtype: int, body: bytes, pos: int) -> bool:
        """Load one checksummed record. A record that decodes to nonsense is damage like a bad checksum."""
        try:
            if rtype == T_MSG:
                seq, ts, ttl, slen, hlen = _MSG_HEAD.unpack_from(body)
                at = _MSG_HEAD.size
                subject = body[at:at + slen].decode()
                dlen = len(body) - at - slen - hlen
                if not subject or dlen < 0:
                    raise ValueError("lengths do not add up")
            elif rtype == T_SKIP:
                seq, ts = _SKIP.unpack_from(body)
            else:
                raise ValueError(f"a record of type {rtype} in a block")
            if seq <= self.last_seq or seq == 0:
                raise ValueError(f"sequence {seq} after {self.last_seq}")
            if (self.last_seq or self._recs) and seq - self.last_seq > MAX_GAP:
                raise ValueError(f"sequence {seq} after {self.last_seq}")
        except (struct.error, ValueError) as e:
            self.lost_bytes += len(body)
            self._damage = f"unreadable record in {blk.path} at offset {pos} ({e}); the file is left untouched"
            return False
        self._fill_gap(seq)
        if rtype == T_MSG:
            self._loc = pos
            self._insert(seq, subject, None, None, ts, ttl, self._fss.get(subject),
                         30 + len(subject) + (hlen + 4 if hlen else 0) + dlen)
            blk.live += 1
            if hlen:
                blk.hdrs += 1
        else:
            self._recs.append(None)
            self._keep_holes(1)
            self.last_seq, self.last_ts = seq, ts
        if not blk.first:
            blk.first = seq
        blk.last, blk.last_ts = seq, ts
        return True

    def _fill_gap(self, seq: int) -> None:
        expected = self.last_seq + 1 if (self.last_seq or self._recs) else self._start_seq
        if seq > expected:
            self._gap(expected, seq - 1, self._damage or f"not in any block file (before {seq}, in {self.msgs_dir})")
        self._damage = None
        if self.last_seq == 0 and not self._recs:
            self._base = seq
            return
        if self.last_seq + 1 < seq:
            self._recs.extend([None] * (seq - 1 - self.last_seq))
            self._keep_holes(seq - 1 - self.last_seq)
            self.last_seq = seq - 1

    def _load_journal(self) -> None:
        path = os.path.join(self.msgs_dir, "index.db")
        buf = b""
        self._jdir_synced = os.path.exists(path)
        if self._jdir_synced:
            with open(path, "rb") as f:
                buf = f.read()
        good_end = 0
        bad = None
        for pos, end, rtype, body in read_records(buf):
            if pos == "bad":
                bad = end
                continue
            if bad is not None:
                msg = (f"Stream store {self.directory}: corrupt record in {path} at offset {bad}; "
                       "some removed messages may reappear; the file is left untouched")
                self.errors.append(msg)
                self._say("error", msg)
                bad = None
            good_end = end
            try:
                if rtype == T_DEL:
                    (count,) = struct.unpack_from("<I", body)
                    seqs = struct.unpack_from(f"<{count}Q", body, 4)
                    for seq in seqs:
                        self._replay_remove(seq)
                    if self._gaps:
                        self._note_removed(seqs)
                elif rtype == T_PURGE:
                    (first,) = _PURGE.unpack_from(body)
                    self._apply_purge(first)
                elif rtype == T_GONE:
                    self._apply_gone(*_GONE.unpack(body))
            except struct.error:
                msg = (f"Stream store {self.directory}: unreadable record in {path} at offset {pos}; "
                       "some removed messages may reappear; the file is left untouched")
                self.errors.append(msg)
                self._say("error", msg)
        if bad is not None and _is_torn(buf[bad:], _JOURNAL_TYPES):
            self._warn(f"dropped a torn record at the end of {path} (offset {bad}, {len(buf) - good_end} bytes)")
            with open(path, "r+b") as f:
                f.truncate(good_end)
            buf = buf[:good_end]
        elif bad is not None:
            msg = (f"Stream store {self.directory}: corrupt record in {path} at offset {bad}; "
                   "some removed messages may reappear; the file is left untouched")
            self.errors.append(msg)
            self._say("error", msg)
        self._jfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._jsize = len(buf)
        if self._saved_journal > len(buf) and bad is None:
            msg = (f"Stream store {self.directory}: {path} holds {len(buf)} bytes where {self._saved_journal} "
                   "were recorded; messages removed before may reappear")
            self.errors.append(msg)
            self._say("error", msg)

    def _note_removed(self, seqs) -> None:
        for first, last, _, removed in self._gaps:
            removed.update(s for s in seqs if first <= s <= last)

    def _replay_remove(self, seq: int) -> None:
        """A removal read from the journal at start: a message a block read just now holds (or one stored since the
        checkpoint) leaves its block's live count too, so that a block emptied before a crash goes as it would have
        (a block read record by record counted every message record in it)."""
        if self._remove(seq, persist=False):
            b = self._block_for(seq)
            if b is not None:
                b.live -= 1

    def _apply_gone(self, first: int, last: int) -> None:
        """The block that held sequences first..last was unlinked, nothing in it left: none of them is lost. (A
        record found there, of a block file put back, is one removed before: removed again.)"""
        if first > last:
            raise struct.error("a range that ends before it starts")
        lo, hi = max(first, self._base), min(last, self.last_seq)
        if lo <= hi:
            held = self._recs[lo - self._base:hi - self._base + 1]
            if held.count(None) != len(held):
                for i, subject in enumerate(held):
                    if subject is not None:
                        self._replay_remove(lo + i)
        self._released.append((first, last))

    def _apply_purge(self, first: int) -> None:
        self._purged = True
        self._purge_floor = max(self._purge_floor, first)
        if first > self.last_seq:
            self._reset_to(first)
            return
        for s in range(max(self.first_seq, self._base), first):
            self._replay_remove(s)
        if self.msgs == 0:
            self.first_seq, self.first_ts = first, 0

    def _enforce_after_recovery(self) -> None:
        """Limits may have been lowered (or a removal lost) since these messages were written."""
        self.update_config({"max_msgs": self.max_msgs, "max_bytes": self.max_bytes,
                            "max_msgs_per_subject": self.max_per,
                            "discard": "new" if self.discard_new else "old",
                            "discard_new_per_subject": self.discard_new_per})
        self._release_blocks()

    # -- the state file -------------------------------------------------------------------------
    def _write_state(self, sync: bool) -> None:
        """Record the last sequence, the blocks and the lost data (rewritten in place, checksummed)."""
        if self._held:
            self.write_held()  # the last sequence recorded must be on disk
        state = {"first_seq": self.first_seq if self.msgs else self.last_seq + 1, "last_seq": self.last_seq,
                 "last_ts": self.last_ts, "blocks": [[b.index, b.first, b.last, b.size] for b in self._blocks],
                 "journal": self._jsize}
        if self.lost_msgs:
            state["lost"] = {"msgs": self.lost_msgs, "bytes": self.lost_bytes}
        data = json.dumps(state, separators=(",", ":")).encode()
        if self._sfd >= 0 and data == self._state_data and not sync:
            self._head[:] = self._last_head()  # the JSON on disk is this one already
            return
        self._state_data = data
        if self._sfd < 0:
            new = not os.path.exists(self.state_path)
            self._sfd = os.open(self.state_path, os.O_RDWR | os.O_CREAT, 0o640)
            if new and self.sync_always:
                fsync_dir(self.directory)
        os.pwrite(self._sfd, self._last_head() + b"%08x %d\n" % (zlib.crc32(data), len(data)) + data, 0)
        if self._head is None:
            # A shared mapping writes to the page cache as pwrite does: it survives kill -9 and fsync syncs it.
            self._head = mmap.mmap(self._sfd, _LAST.size)
        if sync:
            os.fsync(self._sfd)

    def _last_head(self) -> bytes:
        head = _LAST_BODY.pack(STATE_MAGIC, self.last_seq, self.last_ts, self._jsize)
        return head + _CRC.pack(zlib.crc32(head))

    # -- blocks ---------------------------------------------------------------------------------
    def _new_block(self, index: int) -> None:
        if self._fd >= 0:
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
        if self._blocks:
            # What is written stays cached only while it is the newest block: writing fills no more memory than
            # a block (a scan loads a closed block when it reads it).
            self.cache.drop((self._cid, self._blocks[-1].index))
        blk = _Block(index, os.path.join(self.msgs_dir, f"{index}.blk"))
        self._fd = os.open(blk.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._blocks.append(blk)
        if os.fstat(self._fd).st_size == 0:
            self.cache.put((self._cid, index), bytearray())  # cached as it is written (_write_records)
        if not self._recovering:
            fsync_dir(self.msgs_dir)
            self._jdir_synced = True
            # The state file learns of every block: if this one goes missing, its first sequence is known.
            self._write_state(sync=self.sync_always)

    def _open_active(self) -> None:
        self._fd = os.open(self._blocks[-1].path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def begin_writes(self) -> None:
        """Hold the records of what is stored from now on and write them in one go at end_writes (a mirror
        catching up stores thousands of messages in one turn of the event loop, none of them acknowledged)."""
        if self._held is None:
            self._held = []

    def end_writes(self) -> None:
        try:
            if self._held:
                self.write_held()
        finally:
            self._held = None
            self._fast_hold = False

    # A fast batch's messages are written once per read (fastbatch.append_raw) rather than one os.write each:
    # held from hold_writes, written (write_held) before the batch answers anything, before any other store of
    # this stream (store_msg), before the journal, the state file, a new block, a sync or stop, and at the
    # latest by end_writes, which runs before the server writes what the read queued (Server.before_output). So
    # an acknowledged message is on disk before its ack leaves, as with one write per message.
    def hold_writes(self) -> bool:
        """Hold the records of what store_held stores: True if this started a hold (the caller then sees to
        end_writes). A write that failed while held fails every later store (OSError) until a restart: the
        messages it held are not on disk and must not be acknowledged by a later flow ack."""
        if self._werr is not None:
            raise self._werr
        if self._held is not None:
            return False
        self._held = []
        self._fast_hold = True
        return True

    def store_held(self, subject: str, data: bytes) -> int:
        """store_msg of a message without headers or TTL, held: with no limit to apply, its record framed
        (as _persist_msg does) and indexed without store_msg's checks. The usual one (held, its subject known,
        room in the block) is written and indexed here, as _write and _insert would (a fast batch's hot path)."""
        seq = self.last_seq + 1
        if not self._unlimited or seq > MAX_SEQ:
            return MemoryStore.store_msg(self, subject, None, data)[0]
        ts = time_ns()
        if ts <= self.last_ts:
            ts = self.last_ts + 1
        sb = subject.encode()
        n = len(sb)
        dn = len(data)
        head = _MSG_FRAME.pack(MAGIC, T_MSG, 0, _MSG_HEAD.size + n + dn, seq, ts, 0, n, 0)
        record = b"".join((head, sb, data, _CRC.pack(crc32(data, crc32(sb, crc32(head))))))
        size = 30 + len(subject) + dn
        held = self._held
        blk = self._blocks[-1]
        at = blk.size
        end = at + len(record)
        ss = self._fss.get(subject)
        if held is None or ss is None or not at or end > self.block_size or not self.msgs:
            self._write(record, seq, ts, True)
            self._insert(seq, subject, None, data, ts, 0, ss, size)
            return seq
        if not held:
            self._held_at = at
        held.append(record)
        self._held_last = (seq, ts)
        blk.size = end
        blk.last, blk.last_ts = seq, ts
        blk.live += 1
        ss[_N] += 1
        ss[_SUBJECT_LAST] = seq
        ss[_LSTALE] = False
        ss[_SEQS].append(seq)
        self._recs.append(ss[_NAME])
        self._offs.append(at)
        self._lens.append(size)
        self.last_seq, self.last_ts = seq, ts
        self.msgs += 1
        self.bytes += size
        return seq

    def store_msg(self, subject, hdr, data, ttl=0, ts=0):
        if self._fast_hold:
            self.write_held()
        if self._werr is not None:
            raise self._werr
        return MemoryStore.store_msg(self, subject, hdr, data, ttl, ts)

    def write_held(self) -> None:
        """Write the records held so far (holding on)."""
        held = self._held
        if held:
            self._held = []
            try:
                self._write_records(b"".join(held), *self._held_last)
            except OSError as e:
                self._werr = e
                self._held = None
                self._fast_hold = False
                self._say("error", f"Stream store {self.directory}: writing {len(held)} held records failed ({e}); "
                                   f"the stream stores nothing more until the server restarts")
                raise

    def _write_records(self, records: bytes, seq: int, ts: int) -> None:
        key = (self._cid, self._blocks[-1].index)
        if os.write(self._fd, records) == len(records):
            self.cache.append(key, records)
        else:  # a short write (a full disk): reads of this block go to the file, which tells what it holds
            self.cache.drop(key)
        head = _LAST_BODY.pack(STATE_MAGIC, seq, ts, self._jsize)
        self._head[:] = head + _CRC.pack(zlib.crc32(head))
        if self.sync_always:
            os.fsync(self._fd)
        else:
            self._dirty = True

    def _write(self, record: bytes, seq: int, ts: int, is_msg: bool) -> None:
        blk = self._blocks[-1]
        if blk.size and blk.size + len(record) > self.block_size:
            if self._held:
                self._write_records(b"".join(self._held), *self._held_last)
                self._held = []
            self._new_block(blk.index + 1)
            blk = self._blocks[-1]
        self._loc = blk.size
        if self._held is not None:
            if not self._held:
                self._held_at = blk.size
            self._held.append(record)
            self._held_last = (seq, ts)
        else:
            self._write_records(record, seq, ts)
        blk.size += len(record)
        if not blk.first:
            blk.first = seq
        blk.last, blk.last_ts = seq, ts
        if is_msg:
            blk.live += 1

    def _block_for(self, seq: int):
        b = self._last_block  # a scan asks for the same block again and again
        if b is not None and b.first <= seq <= b.last and b.first:
            return b
        lo, hi = 0, len(self._blocks) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            b = self._blocks[mid]
            if b.first and seq < b.first:
                hi = mid - 1
            elif b.last and seq > b.last:
                lo = mid + 1
            else:
                if b.first:
                    self._last_block = b
                    return b
                return None
        return None

    def _release_blocks(self) -> None:
        """Unlink older blocks that hold no live message any more; never the active one. Their sequences are
        journaled as gone first: the skips among them are recorded nowhere else (a removed message is in the
        journal already), and a start must not take a sequence that is in no block and no removal for lost."""
        keep, gone = [], []
        for b in self._blocks[:-1]:
            (gone if b.live <= 0 or (b.last and b.last < self.first_seq) else keep).append(b)
        if not gone:
            return
        runs: list[list[int]] = []  # consecutive blocks make one record
        for b in gone:
            if not b.first:
                continue
            if runs and runs[-1][1] + 1 == b.first:
                runs[-1][1] = b.last
            else:
                runs.append([b.first, b.last])
        for first, last in runs:
            for a, z in _without(max(first, self._purge_floor), last, self.lost_msgs):
                # Never a rewrite here: the change that released these blocks may be journaled and not yet applied.
                self._journal(_frame(T_GONE, _GONE.pack(a, z)), rewrite=False)
        # The journal is on disk before any block goes: an unlink can reach the disk before the journal's unsynced
        # end (a power loss would then find the block's sequences in no block and no removal, and report them
        # lost). One fsync per release (blocks go rarely: once every block's worth of messages at most).
        self._sync_journal()
        for b in gone:
            self._let_go(b)
            try:
                os.unlink(b.path)
            except FileNotFoundError:
                pass
        self._blocks = keep + [self._blocks[-1]]

    # -- persistence hooks ----------------------------------------------------------------------
    def _persist_msg(self, seq, subject, hdr, data, ts, ttl):
        sb = subject.encode()
        hlen = len(hdr) if hdr else 0
        body = b"".join((_MSG_HEAD.pack(seq, ts, ttl, len(sb), hlen), sb, hdr or b"", data))
        self._write(_frame(T_MSG, body), seq, ts, True)
        if hlen:
            self._blocks[-1].hdrs += 1

    def _persist_skip(self, seq, ts):
        self._write(_frame(T_SKIP, _SKIP.pack(seq, ts)), seq, ts, False)

    def _journal(self, record: bytes, rewrite: bool = True) -> None:
        if self._recovering:
            return
        if self._held:
            self.write_held()  # a removal recorded before the record it removes would read as damage
        if rewrite and self._jsize > JOURNAL_REWRITE_AT:
            # Rewritten here, before the change is journaled: the in-memory state is complete now (the hooks run
            # before the store applies a change). Only at a change's first record: once one of its records is
            # written, a rewrite from the index (which does not show the change yet) would leave it out.
            self._rewrite_journal()
        os.write(self._jfd, record)
        self._jsize += len(record)
        self._head[:] = self._last_head()
        if self.sync_always:
            os.fsync(self._jfd)
            self._jsynced = self._jsize
        else:
            self._dirty = True

    def _persist_removes(self, seqs):
        if self._recovering:
            return
        for i in range(0, len(seqs), 8192):
            chunk = seqs[i:i + 8192]
            self._journal(_frame(T_DEL, struct.pack(f"<I{len(chunk)}Q", len(chunk), *chunk)), rewrite=not i)
        for seq in seqs:
            b = self._block_for(seq)
            if b is not None:
                b.live -= 1
        self._after_removal()

    def _persist_purge(self, first_seq):
        if self._recovering:
            return
        self._journal(_frame(T_PURGE, _PURGE.pack(first_seq)))
        self._purge_floor = max(self._purge_floor, first_seq)
        if self.lost_msgs and self.lost_msgs[0] < first_seq:
            # A purge or compaction discards what was below: the report of losses there goes with it.
            self.lost_msgs = [s for s in self.lost_msgs if s >= first_seq]
            if not self.lost_msgs:
                self.lost_bytes = 0
            self._write_state(sync=self.sync_always)
        for b in self._blocks:
            if b.last and b.last < first_seq:
                b.live = 0
            elif b.first and b.first < first_seq:
                b.live = sum(1 for s in range(first_seq, b.last + 1) if self._rec(s) is not None)
        if first_seq > self.last_seq and self._blocks[-1].size:
            # Everything is gone: start a fresh active block so the old ones can go.
            self._new_block(self._blocks[-1].index + 1)
        self._after_removal()

    def _sync_journal(self) -> None:
        """fsync what the journal holds (and msgs/, if the journal is new there) unless it is on disk already."""
        if self._jsynced != self._jsize:
            os.fsync(self._jfd)
            self._jsynced = self._jsize
        if not self._jdir_synced:
            fsync_dir(self.msgs_dir)
            self._jdir_synced = True

    def _after_removal(self) -> None:
        if len(self._blocks) > 1 and (self._blocks[0].live <= 0 or self._blocks[0].last < self.first_seq):
            self._release_blocks()

    def _rewrite_journal(self) -> None:
        """Replace the journal by the smallest one with the same effect, atomically: everything below the first
        sequence gone, the removed sequences of the blocks on disk, and the sequences after the first that are in
        no block (those of unlinked blocks; not those reported lost)."""
        first = self.first_seq if self.msgs else self.last_seq + 1
        deleted = [s for b in self._blocks if b.first for s in range(max(b.first, first), b.last + 1)
                   if self._rec(s) is None]
        parts = [_frame(T_PURGE, _PURGE.pack(first))]
        for i in range(0, len(deleted), 8192):
            chunk = deleted[i:i + 8192]
            parts.append(_frame(T_DEL, struct.pack(f"<I{len(chunk)}Q", len(chunk), *chunk)))
        on_disk = [(b.first, b.last) for b in self._blocks if b.first]
        for a, z in _uncovered(first, self.last_seq, on_disk):
            parts += [_frame(T_GONE, _GONE.pack(*r)) for r in _without(a, z, self.lost_msgs)]
        data = b"".join(parts)
        path = os.path.join(self.msgs_dir, "index.db")
        try:
            write_atomic(path, data, sync=True)
        finally:
            # Whether or not the new journal took the old one's place (the rename is atomic; a failure goes on to
            # the caller), `path` is the journal now: append to it from here on, never to a replaced file.
            os.close(self._jfd)
            self._jfd = os.open(path, os.O_WRONLY | os.O_APPEND, 0o640)
            self._jsize = os.fstat(self._jfd).st_size
            self._jsynced = min(self._jsynced, self._jsize)
        self._jsynced = self._jsize  # written with a sync
        self._jdir_synced = True
        self._purge_floor = max(self._purge_floor, first)
        self._write_state(sync=True)

    # -- durability and life cycle --------------------------------------------------------------
    def flush(self) -> None:
        if self._held:
            self.write_held()
        if self._dirty:
            self._dirty = False
            if self._fd >= 0:
                os.fsync(self._fd)
            if self._jfd >= 0:
                os.fsync(self._jfd)
                self._jsynced = self._jsize
            self._write_state(sync=True)
            for d in self._new_dirs:
                fsync_dir(d)
            self._new_dirs = []
        self._checkpoint_if_due()

    def state(self, with_deleted: bool = False):
        st = super().state(with_deleted)
        if with_deleted and self.first_seq == 0 and self.last_seq == 0:
            # nats-server's file store reports sequence 0 of a never-written stream as deleted.
            st.num_deleted, st.deleted = 1, [0]
        st.lost_msgs = list(self.lost_msgs)
        st.lost_bytes = self.lost_bytes
        return st

    def consumer_store(self, name: str) -> "FileConsumerStore":
        return FileConsumerStore(os.path.join(self.directory, "obs", name), self.sync_always)

    def stop(self) -> None:
        if self._held and self._fd >= 0:
            self.write_held()
        self._held = None
        running = self._fd >= 0 and self._sfd >= 0
        if running:
            self._write_state(sync=False)
        self._unmap()
        self._let_go_all()
        for fd in (self._fd, self._jfd, self._sfd):
            if fd >= 0:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._fd = self._jfd = self._sfd = -1
        if running:
            self._write_checkpoint()

    def _unmap(self) -> None:
        if self._head is not None:
            self._head.close()
            self._head = None

    def delete(self) -> None:
        if self._ckp_thread is not None:  # writing into the directory about to go
            self._ckp_thread.join()
            self._ckp_thread, self._ckp_failed = None, None
        self._held = None
        self._fast_hold = False
        self._unmap()
        self._let_go_all()
        for fd in (self._fd, self._jfd, self._sfd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._jfd = self._sfd = -1
        _rmtree(self.directory)
        self._reset_to(1)


def _rmtree(path: str) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    if os.path.isdir(path):
        os.rmdir(path)


class FileConsumerStore(ConsumerStore):
    """A consumer's config and state on disk. State writes are coalesced by the caller's timer (flush).

    The state alternates between two slots, `o.0.dat` and `o.1.dat`, each `<crc32> <generation> <length>\n`
    and the JSON, written in place: a write never touches the slot holding the newest state, so a torn write
    leaves the one before it (whose acknowledgements are then redelivered: at-least-once), and no file is
    replaced, which would cost a forced flush of the file on ext4 on every state write. The newest valid slot
    wins on start; `o.dat` (the earlier single, atomically replaced file) is read when there is no slot yet."""

    def __init__(self, directory: str, sync_always: bool):
        self.directory = directory
        self.sync_always = sync_always
        self._pending: dict | None = None
        self._fds: list[int] = [-1, -1]
        self._legacy_checked = False
        make_dirs(directory, sync_always)
        # Continue after whatever is there, so a new state always outranks an older one left on disk.
        self._generation = max((g for g, _ in self._valid_slots()), default=0)

    def save_config(self, cfg: dict, created: int) -> None:
        write_meta(self.directory, {"config": cfg, "created": created})

    def update(self, state: dict) -> None:
        self._pending = state
        if self.sync_always:
            self.flush()

    @property
    def dirty(self) -> bool:
        return self._pending is not None

    def _slot_path(self, slot: int) -> str:
        return os.path.join(self.directory, f"o.{slot}.dat")

    def flush(self) -> None:
        if self._pending is None:
            return
        data = json.dumps(self._pending, separators=(",", ":")).encode()
        self._pending = None
        self._generation += 1
        slot = self._generation & 1
        fd = self._fds[slot]
        if fd < 0:
            fd = self._fds[slot] = os.open(self._slot_path(slot), os.O_RDWR | os.O_CREAT, 0o640)
            if self.sync_always:
                fsync_dir(self.directory)
        os.pwrite(fd, b"%08x %d %d\n" % (zlib.crc32(data), self._generation, len(data)) + data, 0)
        if self.sync_always:
            os.fsync(fd)
        if not self._legacy_checked:
            self._legacy_checked = True
            legacy = os.path.join(self.directory, "o.dat")
            if os.path.exists(legacy):
                os.unlink(legacy)

    def _read_slot(self, slot: int) -> tuple[int, bytes] | None:
        """(generation, JSON) of a slot, or None if it is missing or does not check out."""
        try:
            with open(self._slot_path(slot), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        head, _, rest = raw.partition(b"\n")
        try:
            checksum, generation, length = head.split(b" ")
            generation, length = int(generation), int(length)
        except ValueError:
            return None
        data = rest[:length]
        if generation < 0 or len(data) != length or checksum != b"%08x" % zlib.crc32(data):
            return None
        return generation, data

    def _valid_slots(self) -> list[tuple[int, bytes]]:
        return [s for s in (self._read_slot(0), self._read_slot(1)) if s is not None]

    def load_state(self) -> dict | None:
        valid = self._valid_slots()
        if valid:
            return json.loads(max(valid)[1])
        if any(os.path.exists(self._slot_path(i)) for i in (0, 1)):
            raise StoreCorrupt(f"consumer state checksum mismatch in {self._slot_path(0)} and {self._slot_path(1)}")
        path = os.path.join(self.directory, "o.dat")
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            raw = f.read()
        checksum, _, data = raw.partition(b"\n")
        if checksum != b"%08x" % zlib.crc32(data):
            raise StoreCorrupt(f"consumer state checksum mismatch in {path}")
        return json.loads(data)

    def close(self) -> None:
        """Let go of the files without writing anything (a consumer that could not be loaded)."""
        self._pending = None
        self._close()

    def _close(self) -> None:
        for i, fd in enumerate(self._fds):
            if fd >= 0:
                os.close(fd)
                self._fds[i] = -1

    def stop(self) -> None:
        self.flush()
        self._close()

    def delete(self) -> None:
        self._pending = None
        self._close()
        _rmtree(self.directory)
