"""The file store: a stream's messages in checksummed, append-only block files, its deletes in a journal.

Layout under `<store_dir>/jetstream/<account>/streams/<stream>/`:

- `meta.inf` + `meta.sum`: the stream's configuration (JSON) and its CRC-32, replaced atomically.
- `msgs/<n>.blk`: message records, appended with one os.write each *before* the PubAck is sent, so a
  SIGKILL of the server loses no acknowledged message. With `sync_interval: always` the block is also
  fsynced before the ack (power-loss safe); otherwise files are fsynced every `sync_interval` (2m default).
- `msgs/index.db`: the journal of removals (deleted sequences, "everything below N is gone" markers).
  It is rewritten atomically when it grows; block files whose messages are all gone are unlinked.
- `obs/<consumer>/`: each consumer's `meta.inf`/`meta.sum` and its state in two alternating slots
  `o.0.dat`/`o.1.dat` (see FileConsumerStore), written shortly after every change (coalesced) and at shutdown.

Every record is framed as `magic(2) type(1) flags(1) length(4) body crc32(4)`. On start every record is
verified: a torn record at the end of the newest file is cut off with a warning; a bad record anywhere else
is reported loudly (its sequences become `lost` in the stream state) and nothing on disk is deleted.
The messages are also kept in memory (the index of memory.py), so reads never touch the disk.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib

from . import ConsumerStore, StoreCorrupt, file_msg_size
from .memory import MemoryStore

log = logging.getLogger("embedded_server.jetstream")

MAGIC = 0x4A53  # "JS"
_FRAME = struct.Struct("<HBBI")
_CRC = struct.Struct("<I")
_MSG_HEAD = struct.Struct("<QqiHI")  # seq, ts, ttl, subject length, header length
_SKIP = struct.Struct("<Qq")
_PURGE = struct.Struct("<Q")
T_MSG, T_SKIP, T_DEL, T_PURGE = 1, 2, 3, 4
BLOCK_SIZE = 8 * 1024 * 1024
JOURNAL_REWRITE_AT = 1 * 1024 * 1024


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
    if magic != MAGIC or rtype not in (T_MSG, T_SKIP, T_DEL, T_PURGE):
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


def write_atomic(path: str, data: bytes, sync: bool) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(os.path.dirname(path))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_meta(directory: str, meta: dict, sync: bool = True) -> None:
    """meta.inf and its checksum meta.sum, each replaced atomically (sum last)."""
    data = json.dumps(meta, separators=(",", ":")).encode()
    write_atomic(os.path.join(directory, "meta.inf"), data, sync)
    write_atomic(os.path.join(directory, "meta.sum"), b"%08x" % zlib.crc32(data), sync)


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


class _Block:
    __slots__ = ("index", "path", "first", "last", "live", "size")

    def __init__(self, index: int, path: str):
        self.index, self.path = index, path
        self.first = self.last = self.live = self.size = 0


class FileStore(MemoryStore):
    storage = "file"
    msg_size = staticmethod(file_msg_size)

    def __init__(self, directory: str, cfg: dict, sync_always: bool = False, block_size: int = BLOCK_SIZE):
        self.directory = directory
        self.msgs_dir = os.path.join(directory, "msgs")
        self.sync_always = sync_always
        self.block_size = block_size
        self._blocks: list[_Block] = []
        self._fd = -1
        self._jfd = -1
        self._jsize = 0
        self._dirty = False
        self._recovering = True
        self._purged = False
        self.lost_msgs: list[int] = []
        self.lost_bytes = 0
        self.warnings: list[str] = []
        self.errors: list[str] = []
        os.makedirs(self.msgs_dir, exist_ok=True)
        super().__init__(dict(cfg, first_seq=0))
        self._recover()
        if self.last_seq == 0 and (cfg.get("first_seq") or 0) > 1 and not self._blocks_have_data():
            self._persist_purge(cfg["first_seq"])
            self._reset_to(cfg["first_seq"])
        self._recovering = False
        if sync_always:
            fsync_dir(self.msgs_dir)
            fsync_dir(directory)
        self._enforce_after_recovery()

    def _blocks_have_data(self) -> bool:
        return any(b.size for b in self._blocks)

    # -- recovery -------------------------------------------------------------------------------
    def _recover(self) -> None:
        names = sorted((int(n[:-4]), n) for n in os.listdir(self.msgs_dir)
                       if n.endswith(".blk") and n[:-4].isdigit())
        for pos, (index, name) in enumerate(names):
            self._load_block(index, os.path.join(self.msgs_dir, name), last=pos == len(names) - 1)
        if not self._blocks:
            self._new_block(1)
        else:
            self._open_active()
        self._load_journal()
        if self.msgs == 0:
            self.first_seq, self.first_ts = self.last_seq + 1, 0
            if self.last_seq == 0 and not self._purged:
                self.first_seq = 0

    def _load_block(self, index: int, path: str, last: bool) -> None:
        with open(path, "rb") as f:
            buf = f.read()
        blk = _Block(index, path)
        self._blocks.append(blk)
        good_end = 0
        pending_bad = None
        for pos, end, rtype, body in read_records(buf):
            if pos == "bad":
                pending_bad = end  # offset of the bad record
                continue
            if pending_bad is not None:
                self._report_corruption(path, pending_bad, pos - pending_bad, self._peek_seq(rtype, body))
                pending_bad = None
            self._apply_block_record(blk, rtype, body)
            good_end = end
        if pending_bad is not None:
            if last:
                self._drop_torn_tail(path, pending_bad, len(buf) - good_end, good_end)
            else:
                self._report_corruption(path, pending_bad, len(buf) - pending_bad, 0)
        blk.size = good_end if last else len(buf)

    def _peek_seq(self, rtype, body) -> int:
        if rtype in (T_MSG, T_SKIP):
            return struct.unpack_from("<Q", body)[0]
        return 0

    def _drop_torn_tail(self, path: str, offset: int, size: int, good_end: int) -> None:
        """An interrupted write at the end of a file: cut it off, with a warning."""
        msg = (f"Stream store {self.directory}: dropped a torn record at the end of {path} "
               f"(offset {offset}, {size} bytes)")
        self.warnings.append(msg)
        log.warning(msg)
        with open(path, "r+b") as f:
            f.truncate(good_end)

    def _report_corruption(self, path: str, offset: int, size: int, end_seq: int) -> None:
        """Corruption inside a file: the sequences between the last good record and the next one are lost."""
        start = self.last_seq + 1
        stop = end_seq - 1 if end_seq else start - 1
        lost = list(range(start, stop + 1))
        self.lost_msgs.extend(lost)
        self.lost_bytes += size
        if lost:
            # Keep the sequence numbers consistent: the lost messages leave a gap.
            for _ in lost:
                self._recs.append(None)
            self.last_seq = stop
        msg = (f"Stream store {self.directory}: corrupt record in {path} at offset {offset}; "
               f"{len(lost)} message(s) lost" + (f" (sequences {lost[0]}-{lost[-1]})" if lost else "")
               + "; the file is left untouched")
        self.errors.append(msg)
        log.error(msg)

    def _apply_block_record(self, blk: _Block, rtype: int, body: bytes) -> None:
        if rtype == T_MSG:
            seq, ts, ttl, slen, hlen = _MSG_HEAD.unpack_from(body)
            at = _MSG_HEAD.size
            subject = body[at:at + slen].decode()
            at += slen
            hdr = body[at:at + hlen] if hlen else None
            data = body[at + hlen:]
            if seq <= self.last_seq:
                raise StoreCorrupt(f"{blk.path}: sequence {seq} after {self.last_seq}")
            self._fill_gap(seq)
            ttl_left = ttl
            self._insert(seq, subject, hdr, data, ts, ttl_left, self._fss.get(subject),
                         self.msg_size(subject, hdr, data))
            blk.live += 1
        elif rtype == T_SKIP:
            seq, ts = _SKIP.unpack_from(body)
            if seq <= self.last_seq:
                raise StoreCorrupt(f"{blk.path}: sequence {seq} after {self.last_seq}")
            self._fill_gap(seq)
            self._recs.append(None)
            self.last_seq, self.last_ts = seq, ts
        else:
            return
        if not blk.first:
            blk.first = seq
        blk.last = seq

    def _fill_gap(self, seq: int) -> None:
        if self.last_seq == 0 and not self._recs:
            self._base = seq
            return
        while self.last_seq + 1 < seq:
            self._recs.append(None)
            self.last_seq += 1

    def _load_journal(self) -> None:
        path = os.path.join(self.msgs_dir, "index.db")
        buf = b""
        if os.path.exists(path):
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
                log.error(msg)
                bad = None
            good_end = end
            if rtype == T_DEL:
                (count,) = struct.unpack_from("<I", body)
                for seq in struct.unpack_from(f"<{count}Q", body, 4):
                    self._remove(seq, persist=False)
            elif rtype == T_PURGE:
                (first,) = _PURGE.unpack_from(body)
                self._apply_purge(first)
        if bad is not None:
            self._drop_torn_tail(path, bad, len(buf) - good_end, good_end)
            buf = buf[:good_end]
        self._jfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._jsize = len(buf)

    def _apply_purge(self, first: int) -> None:
        self._purged = True
        if first > self.last_seq:
            self._reset_to(first)
            return
        for s in range(max(self.first_seq, self._base), first):
            self._remove(s, persist=False)
        if self.msgs == 0:
            self.first_seq, self.first_ts = first, 0

    def _enforce_after_recovery(self) -> None:
        """Limits may have been lowered (or a removal lost) since these messages were written."""
        self.update_config({"max_msgs": self.max_msgs, "max_bytes": self.max_bytes,
                            "max_msgs_per_subject": self.max_per,
                            "discard": "new" if self.discard_new else "old",
                            "discard_new_per_subject": self.discard_new_per})
        self._release_blocks()

    # -- blocks ---------------------------------------------------------------------------------
    def _new_block(self, index: int) -> None:
        if self._fd >= 0:
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
        blk = _Block(index, os.path.join(self.msgs_dir, f"{index}.blk"))
        self._fd = os.open(blk.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._blocks.append(blk)
        if not self._recovering:
            fsync_dir(self.msgs_dir)

    def _open_active(self) -> None:
        self._fd = os.open(self._blocks[-1].path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def _write(self, record: bytes, seq: int, is_msg: bool) -> None:
        blk = self._blocks[-1]
        if blk.size and blk.size + len(record) > self.block_size:
            self._new_block(blk.index + 1)
            blk = self._blocks[-1]
        os.write(self._fd, record)
        if self.sync_always:
            os.fsync(self._fd)
        else:
            self._dirty = True
        blk.size += len(record)
        if not blk.first:
            blk.first = seq
        blk.last = seq
        if is_msg:
            blk.live += 1

    def _block_for(self, seq: int):
        lo, hi = 0, len(self._blocks) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            b = self._blocks[mid]
            if b.first and seq < b.first:
                hi = mid - 1
            elif b.last and seq > b.last:
                lo = mid + 1
            else:
                return b if b.first else None
        return None

    def _release_blocks(self) -> None:
        """Unlink older blocks that hold no live message any more; never the active one."""
        keep = []
        removed = False
        for b in self._blocks[:-1]:
            if b.live <= 0 or (b.last and b.last < self.first_seq):
                try:
                    os.unlink(b.path)
                except FileNotFoundError:
                    pass
                removed = True
            else:
                keep.append(b)
        if removed:
            self._blocks = keep + [self._blocks[-1]]

    # -- persistence hooks ----------------------------------------------------------------------
    def _persist_msg(self, seq, subject, hdr, data, ts, ttl):
        sb = subject.encode()
        hlen = len(hdr) if hdr else 0
        body = b"".join((_MSG_HEAD.pack(seq, ts, ttl, len(sb), hlen), sb, hdr or b"", data))
        self._write(_frame(T_MSG, body), seq, True)

    def _persist_skip(self, seq, ts):
        self._write(_frame(T_SKIP, _SKIP.pack(seq, ts)), seq, False)

    def _journal(self, record: bytes) -> None:
        if self._recovering:
            return
        if self._jsize > JOURNAL_REWRITE_AT:
            # Rewritten here, before the next change is journaled: the in-memory state is complete now
            # (the hooks run before the store applies a change).
            self._rewrite_journal()
        os.write(self._jfd, record)
        self._jsize += len(record)
        if self.sync_always:
            os.fsync(self._jfd)
        else:
            self._dirty = True

    def _persist_removes(self, seqs):
        if self._recovering:
            return
        for i in range(0, len(seqs), 8192):
            chunk = seqs[i:i + 8192]
            self._journal(_frame(T_DEL, struct.pack(f"<I{len(chunk)}Q", len(chunk), *chunk)))
        for seq in seqs:
            b = self._block_for(seq)
            if b is not None:
                b.live -= 1
        self._after_removal()

    def _persist_purge(self, first_seq):
        if self._recovering:
            return
        self._journal(_frame(T_PURGE, _PURGE.pack(first_seq)))
        for b in self._blocks:
            if b.last and b.last < first_seq:
                b.live = 0
            elif b.first and b.first < first_seq:
                b.live = sum(1 for s in range(first_seq, b.last + 1) if self._rec(s) is not None)
        if first_seq > self.last_seq and self._blocks[-1].size:
            # Everything is gone: start a fresh active block so the old ones can go.
            self._new_block(self._blocks[-1].index + 1)
        self._after_removal()

    def _after_removal(self) -> None:
        if len(self._blocks) > 1 and (self._blocks[0].live <= 0 or self._blocks[0].last < self.first_seq):
            self._release_blocks()

    def _rewrite_journal(self) -> None:
        """Replace the journal by the smallest one with the same effect, atomically."""
        first = self.first_seq if self.msgs else self.last_seq + 1
        deleted = [s for b in self._blocks if b.first for s in range(max(b.first, first), b.last + 1)
                   if self._rec(s) is None]
        parts = [_frame(T_PURGE, _PURGE.pack(first))]
        for i in range(0, len(deleted), 8192):
            chunk = deleted[i:i + 8192]
            parts.append(_frame(T_DEL, struct.pack(f"<I{len(chunk)}Q", len(chunk), *chunk)))
        data = b"".join(parts)
        path = os.path.join(self.msgs_dir, "index.db")
        os.close(self._jfd)
        write_atomic(path, data, sync=True)
        self._jfd = os.open(path, os.O_WRONLY | os.O_APPEND, 0o640)
        self._jsize = len(data)

    # -- durability and life cycle --------------------------------------------------------------
    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            if self._fd >= 0:
                os.fsync(self._fd)
            if self._jfd >= 0:
                os.fsync(self._jfd)

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
        for fd in (self._fd, self._jfd):
            if fd >= 0:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._fd = self._jfd = -1

    def delete(self) -> None:
        self.stop()
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
        os.makedirs(directory, exist_ok=True)
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
            data = rest[:int(length)]
        except ValueError:
            return None
        if len(data) != int(length) or checksum != b"%08x" % zlib.crc32(data):
            return None
        return int(generation), data

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
