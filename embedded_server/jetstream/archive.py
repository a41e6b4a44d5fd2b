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

def _table() -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        out.append(c)
    return out


_T = _table()

try:  # an optional C implementation, when installed (not a dependency)
    from crc32c import crc32c as _crc32c_c   # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    _crc32c_c = None


def crc32c(data: bytes) -> int:
    if _crc32c_c is not None:
        return _crc32c_c(data)
    t = _T
    c = 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """`data` (at most MAX_FRAME bytes) as one uncompressed frame."""
    n = len(data) + 4
    return bytes((0x01, n & 0xFF, (n >> 8) & 0xFF, n >> 16)) + struct.pack("<I", _masked(data)) + data


# -- the archive ------------------------------------------------------------------------------------

def _uvarint(n: int) -> bytes:
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

def _s2_block(src: bytes) -> bytes:
    """Decode one S2 (or Snappy) block."""
    n, s, shift = 0, 0, 0
    while True:
        if s >= len(src) or shift > 63:
            raise ArchiveError("s2: corrupt input")
        b = src[s]
        s += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
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
        self._buf = bytearray()
        self._eof = False
        magic = self._take(len(MAGIC))
        if magic != MAGIC:
            raise ArchiveError("snapshot is not a nats-server 2.15 archive (NATSARC1); "
                               "older tar snapshots cannot be restored here")

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n and not self._eof:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._eof = True
        return len(self._buf) >= n

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise ArchiveError("unexpected EOF")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _uvarint(self) -> int:
        n, shift = 0, 0
        while True:
            b = self._take(1)[0]
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 63:
                raise ArchiveError("archive: invalid archive stream")

    def next(self) -> Entry:
        if not self._fill(1):
            raise ArchiveError("backup was truncated")
        name_len = self._uvarint()
        z = self._uvarint()
        ts = (z >> 1) ^ -(z & 1)
        seq = self._uvarint()
        hlen = self._uvarint()
        plen = self._uvarint()
        if name_len > 1 << 20:
            raise ArchiveError("archive: invalid archive stream")
        name = self._take(name_len).decode("utf-8", "replace")
        body = self._take(hlen + plen)
        return Entry(name, ts, seq, body[:hlen], body[hlen:])
