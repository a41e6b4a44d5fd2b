"""The byte format of a stream snapshot: nats-server's "NATSARC1" archive (stream state, consumers, messages)
inside an S2/Snappy framed stream, so a snapshot moves between this server and nats-server 2.15 both ways.

Written with uncompressed frames only (no compressor in the standard library; S2 and Snappy readers take
them); read with either kind, compressed frames decoded by the S2 block decoder below (S2 is a superset of
Snappy's block format).
"""
from __future__ import annotations

import struct
import sys

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


# -- CRC-32C of many frames at once (numpy, when importable and the `crc32c` package is not) --------------------
# Each frame is cut into chunks of _CHUNK bytes whose CRC registers are computed side by side (slicing by 4 on
# every chunk of every frame in one numpy operation per step), then joined pairwise: a register followed by s zero
# bytes is a linear map of the register (four byte tables per s), so crc(a + b) = zeros_s(crc(a)) ^ crc(b) when b
# is s bytes. A frame is laid right-aligned into a row of zeros (leading zeros leave a zero register as it is) and
# its first four bytes are flipped, which is what the initial register of all ones does.
try:
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the machine (the lab's venv has numpy)
    _np = None
if sys.byteorder != "little":  # pragma: no cover - the word views read little-endian
    _np = None

_CHUNK = 64
_ZEROS: dict = {}


def _zeros_map(size: int):
    """The map "the register after `size` zero bytes" (size: _CHUNK times a power of two): (the image of each
    register bit, the (4, 256) uint32 tables of each register byte's image)."""
    if size not in _ZEROS:
        if size == _CHUNK:
            images = []
            for bit in range(32):
                c = 1 << bit
                for _ in range(size):
                    c = _T[c & 0xFF] ^ (c >> 8)
                images.append(c)
        else:   # twice the half's map
            half = _zeros_map(size // 2)[0]
            images = [_apply(half, _apply(half, 1 << bit)) for bit in range(32)]
        tables = []
        for k in range(4):
            t = [0] * 256
            for b in range(1, 256):
                low = b & -b
                t[b] = t[b ^ low] ^ images[8 * k + low.bit_length() - 1]
            tables.append(t)
        _ZEROS[size] = (images, _np.array(tables, dtype=_np.uint32))
    return _ZEROS[size]


def _apply(images: list[int], c: int) -> int:
    out = 0
    while c:
        low = c & -c
        out ^= images[low.bit_length() - 1]
        c ^= low
    return out


_NP_TABLES = None


def crc32c_many(frames: list) -> list[int]:
    """crc32c of each of `frames` (bytes-like), all at once with numpy when it is importable and the `crc32c`
    package is not (that one is faster frame by frame)."""
    global _NP_TABLES
    if _crc32c_c is not None or _np is None or sum(len(f) for f in frames) < 4 * _CHUNK:
        return [crc32c(f) for f in frames]
    if _NP_TABLES is None:
        _NP_TABLES = _np.array(_TABLES[:4], dtype=_np.uint32)
    out = [0] * len(frames)
    by_width: dict[int, list[int]] = {}     # frames of about the same length share a grid
    for i, f in enumerate(frames):
        if len(f) < 4:
            out[i] = crc32c(f)
            continue
        width = _CHUNK
        while width < len(f):
            width *= 2
        by_width.setdefault(width, []).append(i)
    for width, rows in by_width.items():
        for i, c in zip(rows, _crc32c_grid([frames[i] for i in rows], width)):
            out[i] = c
    return out


def _crc32c_grid(frames: list, width: int):
    """crc32c of frames of 4 to `width` bytes (width: _CHUNK times a power of two)."""
    grid = _np.zeros((len(frames), width), dtype=_np.uint8)
    for r, f in enumerate(frames):
        grid[r, width - len(f):] = _np.frombuffer(f, dtype=_np.uint8)
        grid[r, width - len(f):width - len(f) + 4] ^= 0xFF
    words = grid.view(_np.uint32).reshape(-1, _CHUNK // 4)     # every chunk of every frame, as 32-bit words
    t0, t1, t2, t3 = _NP_TABLES
    c = _np.zeros(len(words), dtype=_np.uint32)
    m = _np.uint32(0xFF)
    for j in range(_CHUNK // 4):    # slicing by 4 on all chunks at once
        c ^= words[:, j]
        c = t3.take(c & m) ^ t2.take((c >> 8) & m) ^ t1.take((c >> 16) & m) ^ t0.take(c >> 24)
    c = c.reshape(len(frames), -1)
    size = _CHUNK
    while c.shape[1] > 1:           # neighbours joined: the left one carried over the right one's zero bytes
        z0, z1, z2, z3 = _zeros_map(size)[1]
        left, right = c[:, 0::2], c[:, 1::2]
        c = z0.take(left & m) ^ z1.take((left >> 8) & m) ^ z2.take((left >> 16) & m) ^ z3.take(left >> 24) ^ right
        size *= 2
    return [int(x) ^ 0xFFFFFFFF for x in c[:, 0]]


def _mask(c: int) -> int:
    """A CRC-32C as the framing format stores it."""
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes, crc: int | None = None) -> bytes:
    """`data` (at most MAX_FRAME bytes) as one uncompressed frame (`crc`: its crc32c when known)."""
    n = len(data) + 4
    c = _mask(crc32c(data) if crc is None else crc)
    return bytes((0x01, n & 0xFF, (n >> 8) & 0xFF, n >> 16)) + struct.pack("<I", c) + data


def frames(pieces: list[bytes]) -> list[bytes]:
    """Each of `pieces` as a frame, their checksums computed together (crc32c_many)."""
    return [frame(p, c) for p, c in zip(pieces, crc32c_many(pieces))]


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


def unframe(f, batch: int = 1 << 20):
    """Yield the decoded bytes of an S2/Snappy framed stream read from file object `f`. The frames' checksums are
    checked `batch` decoded bytes at a time (crc32c_many), each frame yielded only once its own has matched, so
    what comes out before an error is what it was frame by frame."""
    pending: list[tuple[bytes, int]] = []
    size = 0

    def checked():
        sums = crc32c_many([data for data, _want in pending])
        for (data, want), c in zip(pending, sums):
            if _mask(c) != want:
                pending.clear()
                raise ArchiveError("s2: corrupt input, crc mismatch")
            yield data
        pending.clear()

    first = True
    try:
        while True:
            head = f.read(4)
            if not head:
                if first:
                    raise ArchiveError("unexpected EOF")
                break
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
                pending.append((data, want))
                size += len(data)
                if size >= batch:
                    yield from checked()
                    size = 0
            elif 0x02 <= kind <= 0x7F:
                raise ArchiveError("s2: unsupported input")
            # 0x80-0xfe: skippable (padding, S2's index)
    except ArchiveError:
        yield from checked()    # the frames before the error, as they came
        raise
    yield from checked()


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
