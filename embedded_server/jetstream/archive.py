"""The byte format of a stream snapshot: nats-server's "NATSARC1" archive (stream state, consumers, messages)
inside an S2/Snappy framed stream, so a snapshot moves between this server and nats-server 2.15 both ways.

Written with uncompressed frames only (no compressor in the standard library; S2 and Snappy readers take
them); read with either kind, compressed frames decoded by the S2 block decoder below (S2 is a superset of
Snappy's block format).
"""
from __future__ import annotations

import struct

MAGIC = b"NATSARC1"
STREAM_ID = b"\xff\x06\x00\x00S2sTwO"
_IDS = (b"S2sTwO", b"sNaPpY")
MAX_FRAME = 65536          # the largest uncompressed frame every Snappy/S2 reader takes
_MAX_BLOCK = 4 << 20       # S2's largest block


class ArchiveError(Exception):
    """The snapshot cannot be read; the text follows what nats-server says of the same input."""


# -- CRC-32C (Castagnoli), masked as the framing format wants ----------------------------------------

def _tables() -> list[list[int]]:
    """Slicing-by-16 tables: table k advances a byte by k further positions (16 bytes per step in pure Python)."""
    first = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        first.append(c)
    out = [first]
    for _ in range(15):
        prev = out[-1]
        out.append([(v >> 8) ^ first[v & 0xFF] for v in prev])
    return out


_TABLES = _tables()
_T = _TABLES[0]
_WORDS = struct.Struct("<IIII")

try:  # a C implementation when installed (the `speed` extra); the standard library has no CRC-32C
    from crc32c import crc32c as _crc32c_c   # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    _crc32c_c = None


def crc32c(data: bytes) -> int:
    if _crc32c_c is not None:
        return _crc32c_c(data)
    t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15 = _TABLES
    c = 0xFFFFFFFF
    n = len(data) & ~15
    for a, b, d, e in _WORDS.iter_unpack(memoryview(data)[:n]):
        c ^= a
        c = (t15[c & 0xFF] ^ t14[(c >> 8) & 0xFF] ^ t13[(c >> 16) & 0xFF] ^ t12[c >> 24]
             ^ t11[b & 0xFF] ^ t10[(b >> 8) & 0xFF] ^ t9[(b >> 16) & 0xFF] ^ t8[b >> 24]
             ^ t7[d & 0xFF] ^ t6[(d >> 8) & 0xFF] ^ t5[(d >> 16) & 0xFF] ^ t4[d >> 24]
             ^ t3[e & 0xFF] ^ t2[(e >> 8) & 0xFF] ^ t1[(e >> 16) & 0xFF] ^ t0[e >> 24])
    for x in data[n:]:
        c = t0[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """`data` (at most MAX_FRAME bytes) as one uncompressed frame."""
    n = len(data) + 4
    return bytes((0x01, n & 0xFF, (n >> 8) & 0xFF, n >> 16)) + struct.pack("<I", _masked(data)) + data


# -- the archive ------------------------------------------------------------------------------------

_SMALL = [bytes((i,)) for i in range(128)]


def _uvarint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint(n: int) -> bytes:  # Go's zig-zag PutVarint
    return _uvarint((n << 1) ^ (n >> 63) if n >= 0 else ((-n - 1) << 1) | 1)


def entry(name: str, ts: int = 0, seq: int = 0, hdr: bytes = b"", data: bytes = b"") -> bytes:
    """One archive entry; with `name` "" and nothing else, the end-of-backup marker."""
    raw = name.encode()
    return (_uvarint(len(raw)) + _varint(ts) + _uvarint(seq) + _uvarint(len(hdr)) + _uvarint(len(data))
            + raw + hdr + data)


class Entry:
    __slots__ = ("name", "ts", "seq", "hdr", "data")

    def __init__(self, name, ts, seq, hdr, data):
        self.name, self.ts, self.seq, self.hdr, self.data = name, ts, seq, hdr, data

    @property
    def end(self) -> bool:
        return not self.name and not self.seq and not self.ts and not self.hdr and not self.data


# -- reading ----------------------------------------------------------------------------------------

def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); IndexError when `buf` ends inside it."""
    n, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ArchiveError("archive: invalid archive stream")


def _s2_block(src: bytes) -> bytes:
    """Decode one S2 (or Snappy) block."""
    try:
        n, s = _read_uvarint(src, 0)
    except (IndexError, ArchiveError):
        raise ArchiveError("s2: corrupt input") from None
    if n > _MAX_BLOCK:
        raise ArchiveError("s2: decoded block is too large")
    dst = bytearray()
    offset = 0
    end = len(src)
    try:
        while s < end:
            tag = src[s]
            kind = tag & 3
            if kind == 0:
                x = tag >> 2
                if x < 60:
                    s += 1
                else:
                    k = x - 59
                    x = int.from_bytes(src[s + 1:s + 1 + k], "little")
                    s += 1 + k
                length = x + 1
                if s + length > end:
                    raise ArchiveError("s2: corrupt input")
                dst += src[s:s + length]
                s += length
                continue
            if kind == 1:
                length = (tag >> 2) & 7
                toffset = ((tag & 0xE0) << 3) | src[s + 1]
                s += 2
                if toffset == 0:  # S2's repeat of the last offset
                    if length == 5:
                        length = src[s] + 4
                        s += 1
                    elif length == 6:
                        length = int.from_bytes(src[s:s + 2], "little") + (1 << 8)
                        s += 2
                    elif length == 7:
                        length = int.from_bytes(src[s:s + 3], "little") + (1 << 16)
                        s += 3
                else:
                    offset = toffset
                length += 4
            elif kind == 2:
                offset = int.from_bytes(src[s + 1:s + 3], "little")
                length = 1 + (tag >> 2)
                s += 3
            else:
                offset = int.from_bytes(src[s + 1:s + 5], "little")
                length = 1 + (tag >> 2)
                s += 5
            d = len(dst)
            if offset <= 0 or d < offset or d + length > n:
                raise ArchiveError("s2: corrupt input")
            if offset >= length:
                dst += dst[d - offset:d - offset + length]
            else:
                for i in range(length):
                    dst.append(dst[d - offset + i])
    except IndexError:
        raise ArchiveError("s2: corrupt input") from None
    if len(dst) != n:
        raise ArchiveError("s2: corrupt input")
    return bytes(dst)


def unframe(f):
    """Yield the decoded bytes of an S2/Snappy framed stream read from file object `f`."""
    first = True
    while True:
        head = f.read(4)
        if not head:
            if first:
                raise ArchiveError("unexpected EOF")
            return
        if len(head) < 4:
            raise ArchiveError("s2: corrupt input")
        kind, n = head[0], head[1] | (head[2] << 8) | (head[3] << 16)
        if first and (kind != 0xFF or n != 6):
            raise ArchiveError("s2: corrupt input")
        body = f.read(n)
        if len(body) < n:
            raise ArchiveError("s2: corrupt input")
        if first:
            if kind != 0xFF or body not in _IDS:
                raise ArchiveError("s2: corrupt input")
            first = False
            continue
        if kind == 0xFF:
            if body not in _IDS:
                raise ArchiveError("s2: corrupt input")
            continue
        if kind in (0x00, 0x01):
            if n < 4:
                raise ArchiveError("s2: corrupt input")
            want = struct.unpack("<I", body[:4])[0]
            data = body[4:] if kind == 0x01 else _s2_block(body[4:])
            if _masked(data) != want:
                raise ArchiveError("s2: corrupt input, crc mismatch")
            yield data
        elif 0x02 <= kind <= 0x7F:
            raise ArchiveError("s2: unsupported input")
        # 0x80-0xfe: skippable (padding, S2's index)


class Reader:
    """Entries of an archive from the decoded stream (an iterator of bytes)."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self._eof = False
        if self._take(len(MAGIC)) != MAGIC:
            raise ArchiveError("snapshot is neither a nats-server archive (NATSARC1) nor an older nats-server's "
                               "tar snapshot")

    def _fill(self, n: int) -> bool:
        """At least `n` bytes after the position, unless the stream ends first."""
        if len(self._buf) - self._pos >= n:
            return True
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        while have < n and not self._eof:
            try:
                part = next(self._chunks)
            except StopIteration:
                self._eof = True
                break
            parts.append(part)
            have += len(part)
        self._buf, self._pos = b"".join(parts), 0
        return have >= n

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise ArchiveError("unexpected EOF")
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def next(self) -> Entry:
        if not self._fill(1):
            raise ArchiveError("backup was truncated")
        self._fill(64)   # an entry's five lengths take at most 50 bytes
        buf, pos = self._buf, self._pos
        vals = []
        try:
            for _ in range(5):
                b = buf[pos]
                if b < 0x80:
                    vals.append(b)
                    pos += 1
                else:
                    n, pos = _read_uvarint(buf, pos)
                    vals.append(n)
        except IndexError:
            raise ArchiveError("unexpected EOF") from None
        self._pos = pos
        name_len, z, seq, hlen, plen = vals
        if name_len > 1 << 20:
            raise ArchiveError("archive: invalid archive stream")
        name = self._take(name_len).decode("utf-8", "replace")
        hdr = self._take(hlen) if hlen else b""
        return Entry(name, (z >> 1) ^ -(z & 1), seq, hdr, self._take(plen) if plen else b"")
