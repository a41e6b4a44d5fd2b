"""Stream snapshots of nats-server before 2.15 (what `nats stream backup` gets from 2.10-2.14): an S2-framed tar
of the stream's file store directory. Extracted into the restore's staging directory, then read as nats-server's
file store reads itself, into what the archive path restores: messages in sequence order, consumers.

Files read: `meta.inf` (the stream's config JSON with `Created`), `msgs/<n>.blk` (message records, checked with
their HighwayHash), `msgs/index.db` (the store's state: first sequence, each block's deleted sequences), and
`obs/<consumer>/meta.inf` + `o.dat` (the consumer's config JSON, its binary state). The snapshot writer stores
blocks decrypted and uncompressed; a block that is still compressed (`cmp` + S2) is read too.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tarfile

from . import archive
from .archive import ArchiveError, Entry
from .clock import parse_rfc3339
from .highwayhash import hash64, hash64_many, hash64_sliced, key_lanes, vectorised

PIECE = 1 << 20
_REC = struct.Struct("<IQqH")     # record length (header bit), sequence (erase/tombstone bits), time, subject length
_REC_SIZE = 22                     # nats-server's msgHdrSize
_U32 = struct.Struct("<I")
_PART = 2048                       # records read and hashed together (a few ms, so the event loop runs between)
_HASH = 8
_HBIT = 1 << 31
_EBIT = 1 << 63
_TBIT = 1 << 62
_RL_BAD = 32 * 1024 * 1024         # nats-server's rlBadThresh
_BLOCK = re.compile(r"^(\d+)\.blk$")
_STATE_MAGIC, _SEQSET_MAGIC, _CONSUMER_MAGIC = 11, 22, 22


def looks_like_tar(head: bytes) -> bool:
    return len(head) >= 512 and head[257:262] == b"ustar"


class _ChunkFile:
    """A read-only file over an iterator of byte chunks (the decoded S2 stream), for tarfile's stream mode."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        parts, have = [self._buf], len(self._buf)
        while (n < 0 or have < n):
            try:
                part = next(self._chunks)
            except StopIteration:
                break
            parts.append(part)
            have += len(part)
        data = b"".join(parts)
        if n < 0:
            self._buf = b""
            return data
        self._buf = data[n:]
        return data[:n]


def extract(chunks, dest: str, check_size, account: str = "$G"):
    """Write the tar's regular files under `dest` (a generator: yields between pieces). `check_size(total)` is
    called with the bytes so far and raises when they do not fit. Anything but a regular file inside `dest` is
    refused, with nats-server's words."""
    total = 0
    root = os.path.realpath(dest) + os.sep
    try:
        with tarfile.open(fileobj=_ChunkFile(chunks), mode="r|") as tf:
            for member in tf:
                if not member.isreg():
                    raise ArchiveError(f"unexpected content (account={account})")
                path = os.path.realpath(os.path.join(dest, os.path.normpath(member.name)))
                if not path.startswith(root):
                    raise ArchiveError(f"unexpected content (account={account})")
                total += member.size
                check_size(total)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                src = tf.extractfile(member)
                with open(path, "wb") as out:
                    while True:
                        piece = src.read(PIECE)
                        if not piece:
                            break
                        out.write(piece)
                        yield
    except tarfile.TarError as e:
        raise ArchiveError(f"tar: {e}") from None
    except EOFError:
        raise ArchiveError("unexpected EOF") from None


class _Cursor:
    """Go's binary.Uvarint/Varint fields read one after the other; ValueError when the buffer ends first."""

    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def u(self, n: int = 1):
        """The next unsigned varint (or a tuple of the next `n`)."""
        out = []
        for _ in range(n):
            try:
                v, self.pos = archive._read_uvarint(self.buf, self.pos)
            except (IndexError, ArchiveError):
                raise ValueError("truncated") from None
            out.append(v)
        return out[0] if n == 1 else tuple(out)

    def i(self) -> int:
        z = self.u()
        return (z >> 1) ^ -(z & 1)


def _seqset(c: _Cursor) -> set[int]:
    """nats-server's encoded SequenceSet (avl): nodes of a base and bit buckets (v1: 64 buckets, v2: 32)."""
    buf, pos = c.buf, c.pos
    if len(buf) < pos + 10 or buf[pos] != _SEQSET_MAGIC or buf[pos + 1] not in (1, 2):
        raise ValueError("bad deleted-sequence set")
    buckets = 64 if buf[pos + 1] == 1 else 32
    nodes, size = struct.unpack_from("<II", buf, pos + 2)
    pos += 10
    if len(buf) < pos + nodes * ((buckets + 1) * 8 + 2):
        raise ValueError("bad deleted-sequence set")
    out = set()
    for _ in range(nodes):
        base, *bits = struct.unpack_from(f"<Q{buckets}Q", buf, pos)
        pos += (buckets + 1) * 8 + 2
        for b, word in enumerate(bits):
            at = base + b * 64
            while word:
                low = word & -word
                out.add(at + low.bit_length() - 1)
                word ^= low
    if len(out) != size:
        raise ValueError("bad deleted-sequence set")
    c.pos = pos
    return out


def parse_index(buf: bytes, name: str):
    """index.db, the store's full state (versions 1-4): the stream's first and last sequence, each block's first
    and last sequence and deleted sequences, and the last block with its last record's checksum. A generator
    (it yields now and then: a store of many subjects has a large index.db) returning that; raises ValueError
    when it does not hold."""
    if len(buf) < 32:
        raise ValueError("too short")
    body, want = buf[:-_HASH], buf[-_HASH:]
    if (yield from hash64_sliced(key_lanes(hashlib.sha256(name.encode()).digest()), body)) != want:
        raise ValueError("checksum did not match")
    if body[0] != _STATE_MAGIC or not 1 <= body[1] <= 4:
        raise ValueError("magic and version mismatch")
    version, c = body[1], _Cursor(body, 2)
    msgs, nbytes, first = c.u(3)
    c.i()
    last = c.u()
    last_ts = c.i()
    for n in range(c.u()):           # the subjects: name, count, first block (and last block)
        if not n & 0x3FFF:
            yield
        skip = c.u()
        c.pos += skip
        total, _fblk = c.u(2)
        if total > 1 or version >= 4:
            c.u()
    blocks = {}
    for _ in range(c.u()):
        yield
        index, _bytes, bfirst = c.u(3)
        c.i()
        blast = c.u()
        c.i()
        deleted = c.u()
        if version >= 2:             # the TTL count, then (version 3 on) the schedule count
            c.u(2 if version >= 3 else 1)
        blocks[index] = (bfirst, blast, _seqset(c) if deleted else set())
    last_block = c.u()
    if c.pos + 8 > len(body):
        raise ValueError("no last checksum")
    return {"msgs": msgs, "bytes": nbytes, "first_seq": first, "last_seq": last, "last_ts": last_ts, "blocks": blocks,
            "last_block": last_block, "last_check": body[c.pos:c.pos + 8]}


def decode_consumer_state(buf: bytes) -> dict:
    """o.dat (nats-server's encodeConsumerState, versions 1 and 2) as the archive's consumer state JSON."""
    if len(buf) < 2 or buf[0] != _CONSUMER_MAGIC or buf[1] not in (1, 2):
        raise ValueError("corrupt state")
    version, c = buf[1], _Cursor(buf, 2)
    afc, afs, dc, ds = c.u(4)
    if version == 1:   # version 1 kept the next to deliver
        dc += afc - 1 if afc > 1 else 0
        ds += afs - 1 if afs > 1 else 0
    if afs >> 63 or ds >> 63:
        raise ValueError("corrupt state")
    pending, redelivered = {}, {}
    n = c.u()
    if n:
        mints = c.i()
        for _ in range(n):
            sseq = c.u() + afs
            dseq = c.u() + afc if version == 2 else 0
            ts = c.i()
            ts = (ts + mints) if version == 1 else (mints - ts)
            pending[str(sseq)] = {"sequence": dseq, "ts": ts * 1_000_000_000}
    if c.pos < len(buf):
        for _ in range(c.u()):
            seq, count = c.u(2)
            if seq and count:
                redelivered[str(seq + afs)] = count
    return {"delivered": {"consumer_seq": dc, "stream_seq": ds}, "ack_floor": {"consumer_seq": afc, "stream_seq": afs},
            "pending": pending, "redelivered": redelivered}


def _block_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:3] == b"cmp" and len(buf) > 4:   # nats-server's compressed block: cmp, algorithm, original size, S2
        alg = buf[3]
        c = _Cursor(buf, 4)
        c.u()
        at = c.pos
        if alg == 1:   # S2: the framed stream, then the last record's checksum uncompressed
            body = b"".join(archive.unframe(io.BytesIO(buf[at:-_HASH])))
            return body + buf[-_HASH:]
        if alg != 0:
            raise ValueError(f"unknown compression {alg}")
        return buf[at:]
    return buf


class _Checks:
    """Whether each of some records of a block (up to _PART) matches its HighwayHash-64 (of bytes 4-20 of the
    record's header, then its subject, then its headers and payload without their length field), asked record by
    record. With numpy, the first question hashes all of them at once (highwayhash.hash64_many); without it, each
    record is hashed when asked (the pass over deleted records asks nothing)."""

    def __init__(self, buf: bytes, key, records):
        self._buf, self._key, self._records = buf, key, records
        self._ok = None

    def ok(self, n: int) -> bool:
        if self._ok is None and vectorised():
            self._ok = self._all()
        if self._ok is not None:
            return self._ok[n]
        pos, _seq, _ts, slen, hdr, rl = self._records[n]
        buf, body = self._buf, pos + _REC_SIZE
        return hash64(self._key, buf[pos + 4:pos + 20], buf[body:body + slen],
                      buf[body + slen + hdr:pos + rl - _HASH]) == buf[pos + rl - _HASH:pos + rl]

    def _all(self) -> list[bool]:
        """Every record's verdict: the hashed bytes made contiguous in a copy of the records' part of the block
        (header bytes 4-20 and the subject moved up to meet the headers and payload), hashed in one batch, compared
        with the stored hashes."""
        buf, records = self._buf, self._records
        base = records[0][0]
        joined = bytearray(buf[base:records[-1][0] + records[-1][5]])
        starts, lengths, wants = [], [], []
        for at, _seq, _ts, slen, hdr, rl in records:
            pos = at - base
            end = pos + rl - _HASH
            start = pos + 6 + hdr      # the headers' length field (hdr: 4 bytes or none) is not hashed either
            if hdr:
                joined[start + 16:start + 16 + slen] = buf[at + _REC_SIZE:at + _REC_SIZE + slen]
            joined[start:start + 16] = buf[at + 4:at + 20]
            starts.append(start)
            lengths.append(end - start)
            wants.append(int.from_bytes(buf[at + rl - _HASH:at + rl], "little"))
        got = hash64_many(self._key, joined, starts, lengths)
        self._buf = self._records = None
        return [a == b for a, b in zip(got, wants)]


class TarSnapshot:
    """An extracted snapshot: its stream meta, consumers, sequences, and its messages read block by block."""

    def __init__(self, root: str, logger=None, label: str = ""):
        self.root, self.logger, self.label = root, logger, label
        for _dir, _subdirs, files in os.walk(root):
            for f in files:
                if f == "meta.key" or f.endswith(".key"):
                    raise ArchiveError("snapshot holds encryption keys (an encrypted store); "
                                       "the embedded server has no store encryption")
        errors = os.path.join(root, "errors.txt")
        if os.path.exists(errors):
            with open(errors, "rb") as f:
                text = f.read(300).decode("utf-8", "replace").strip()
            raise ArchiveError(f"snapshot is incomplete, the server that made it said: {text}")
        self.meta, self.created = self._meta(os.path.join(root, "meta.inf"), "stream")
        self.name = self.meta.get("name", "")
        self.damaged = {}          # (block file, offset): reason, of each record passed over
        self._blocks = self._block_files()
        self._index = None
        self.tombstones: set[int] = set()
        self.first_seq = self.last_seq = self.last_ts = 0

    # -- meta and consumers ---------------------------------------------------------------------------------------
    @staticmethod
    def _meta(path: str, what: str) -> tuple[dict, int]:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            raise ArchiveError(f"snapshot has no {what} meta.inf") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ArchiveError(f"{what} meta.inf is not JSON (an encrypted store?)") from None
        if not isinstance(doc, dict):
            raise ArchiveError(f"{what} meta.inf is not a JSON object")
        created = 0
        stamp = doc.pop("Created", None)
        if isinstance(stamp, str):
            try:
                created = parse_rfc3339(stamp)
            except ValueError:
                created = 0
        return doc, created

    def consumers(self) -> list[tuple[str, dict, int]]:
        """(name, {"config", "state"}, created) of each consumer in obs/, by name."""
        out = []
        odir = os.path.join(self.root, "obs")
        names = sorted(os.listdir(odir)) if os.path.isdir(odir) else []
        for name in names:
            cdir = os.path.join(odir, name)
            try:
                cfg, created = self._meta(os.path.join(cdir, "meta.inf"), "consumer")
            except ArchiveError as e:
                raise ArchiveError(f"error restoring consumer [{json.dumps(name)}]: {e}") from None
            cfg.pop("Name", None)
            state = {"delivered": {}, "ack_floor": {}}
            try:
                with open(os.path.join(cdir, "o.dat"), "rb") as f:
                    state = decode_consumer_state(f.read())
            except FileNotFoundError:
                pass
            except ValueError as e:
                raise ArchiveError(f"error restoring consumer [{json.dumps(name)}]: {e}") from None
            out.append((name, {"config": cfg, "state": state}, created))
        return out

    # -- messages ----------------------------------------------------------------------------------------------------
    def _block_files(self) -> list[tuple[int, str]]:
        mdir = os.path.join(self.root, "msgs")
        out = []
        for f in os.listdir(mdir) if os.path.isdir(mdir) else ():
            m = _BLOCK.match(f)
            if m:
                out.append((int(m.group(1)), os.path.join(mdir, f)))
        return sorted(out)

    def _read_index(self):
        """index.db when its checksum holds (a generator), else None (the state is rebuilt from the blocks, with a
        warning). `matched` says whether it also matches the blocks (its last block and that block's last
        checksum), as nats-server requires to trust it whole; when it does not, the deletes it records still
        stand (a deletion is never undone) and the blocks give the rest."""
        path = os.path.join(self.root, "msgs", "index.db")
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            buf = f.read()
        try:
            index = yield from parse_index(buf, self.name)
        except ValueError as e:
            self._warn(f"stream state (index.db) not used, {e}; rebuilding it from the message blocks")
            return None
        last = dict(self._blocks).get(index["last_block"])
        tail = b""
        if last is not None and index["last_block"] == self._blocks[-1][0]:
            try:
                block = _block_bytes(last)
                tail = block[-_HASH:] if len(block) >= _HASH else bytes(_HASH)   # an empty block's is zeros
            except (OSError, ValueError, ArchiveError):
                pass
        index["matched"] = tail == index["last_check"]
        if not index["matched"]:
            self._warn("stream state (index.db) does not match the message blocks (written before or after them); "
                       "the deletes it records are kept, the rest is rebuilt from the blocks")
        return index

    def _warn(self, text: str) -> None:
        if self.logger is not None:
            self.logger.warn(f"Restore of stream {self.label}: {text}")

    def _damage(self, path: str, pos: int, reason: str) -> None:
        self.damaged.setdefault((os.path.relpath(path, self.root), pos), reason)

    def _records(self, index: int, path: str, bodies: bool = True):
        """(offset, sequence with its bits, time, subject, headers + payload, headers' length, the block's _Checks,
        the record's number in it) of each record of a block (subject and the rest None unless `bodies`). Where the
        lengths stop adding up (a cut or overwritten block) the rest of the block is passed over, as nats-server
        stops reading there."""
        try:
            buf = _block_bytes(path)
        except (OSError, ValueError, ArchiveError) as e:
            self._damage(path, 0, f"unreadable block: {e}")
            return
        key = key_lanes(hashlib.sha256(f"{self.name}-{index}".encode()).digest())
        cut = None
        at, end = 0, len(buf)
        unpack, hlen_at = _REC.unpack_from, _U32.unpack_from
        while at < end and cut is None:    # _PART records at a time: read, then handed out (hashed together)
            records = []
            pos = at
            while pos < end and len(records) < _PART:
                if pos + _REC_SIZE > end:
                    cut = pos
                    break
                rl, seq, ts, slen = unpack(buf, pos)
                hdr = 4 if rl & _HBIT else 0
                rl &= ~_HBIT
                if not (_REC_SIZE + _HASH + slen + hdr <= rl <= _RL_BAD and pos + rl <= end) or (
                        hdr and hlen_at(buf, pos + _REC_SIZE + slen)[0] > rl - _REC_SIZE - _HASH - slen - hdr):
                    cut = pos
                    break
                records.append((pos, seq, ts, slen, hdr, rl))
                pos += rl
            at = pos
            checks = _Checks(buf, key, records)
            for n, (pos, seq, ts, slen, hdr, rl) in enumerate(records):
                if bodies:
                    body = pos + _REC_SIZE
                    yield (pos, seq, ts, buf[body:body + slen], buf[body + slen + hdr:pos + rl - _HASH],
                           hlen_at(buf, body + slen)[0] if hdr else 0, checks, n)
                else:
                    yield pos, seq, ts, None, None, 0, checks, n
        if cut is not None:
            self._damage(path, cut, f"record lengths do not add up, the block's last {end - cut} bytes passed over")

    def _check(self, path, pos, checks, n) -> bool:
        if checks.ok(n):
            return True
        self._damage(path, pos, "invalid checksum")
        return False

    def scan(self):
        """The first pass (a generator: yields now and then): the tombstones, which live in later blocks than the
        messages they delete, and the first and last sequence (index.db read first)."""
        self._index = yield from self._read_index()
        last = last_ts = 0
        for index, path in self._blocks:
            for n, (pos, seq, ts, _subject, _payload, _hl, checks, i) in enumerate(
                    self._records(index, path, bodies=False)):
                if not n & 1023:
                    yield
                if seq & _TBIT:   # a tombstone holds the deleted message's sequence and time
                    if not self._check(path, pos, checks, i):
                        continue
                    self.tombstones.add(seq & ~_TBIT)
                seq &= ~(_TBIT | _EBIT)
                if seq >= last:
                    last, last_ts = seq, ts
        if self._index is not None and self._index["matched"]:
            self.first_seq = self._index["first_seq"]
            self.last_seq = max(last, self._index["last_seq"])
            self.last_ts = self._index["last_ts"] if self.last_seq == self._index["last_seq"] else last_ts
        else:
            self.last_seq, self.last_ts = last, last_ts
            self.first_seq = last + 1
            for e in self.entries():
                if e is None:
                    yield
                    continue
                if e.seq:
                    self.first_seq = e.seq
                break

    def entries(self, release: bool = False):
        """The messages in sequence order as archive entries (Entry.seq > 0), then the end entry; None now and
        then while passing over deleted records. With `release`, each block file is removed once its messages are
        out (the last pass: the extracted snapshot shrinks as the new store grows)."""
        index = self._index
        blocks = index["blocks"] if index is not None else {}
        floor = index["first_seq"] if index is not None else 0
        lseq = 0
        for bindex, path in self._blocks:
            bfirst, _blast, dmap = blocks.get(bindex, (0, 0, ()))
            for n, (pos, seq, ts, subject, payload, hlen, checks, i) in enumerate(self._records(bindex, path)):
                if (seq & (_TBIT | _EBIT) or seq == 0 or seq < bfirst or seq < floor or seq <= lseq
                        or seq in dmap or seq in self.tombstones):
                    if not n & 0x3FF:
                        yield None   # a long run of deleted records: the caller's turn to let others run
                    continue
                if not self._check(path, pos, checks, i):
                    continue
                lseq = seq
                yield Entry(subject.decode("utf-8", "replace"), ts, seq, bytes(payload[:hlen]), bytes(payload[hlen:]))
            if release:
                try:
                    os.remove(path)
                except OSError:
                    pass    # the staging directory goes as a whole at the end anyway
        yield Entry("", 0, 0, b"", b"")


class EntryReader:
    """The entries of a TarSnapshot behind the archive Reader's `next()`, each block file removed once read."""

    def __init__(self, snap: TarSnapshot):
        self._it = snap.entries(release=True)

    def next(self) -> Entry:
        return next(self._it)
