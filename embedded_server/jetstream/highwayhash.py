"""HighwayHash-64 (Google's keyed hash), which nats-server's file store puts at the end of every message record and
into its meta.sum files: the restore of an older nats-server snapshot (snapshot_tar.py) checks each record with it.

Pure Python on 64-bit lanes kept as ints and masked; written from the algorithm's description (four lanes of
v0, v1, mul0, mul1; a 32-byte packet per update; the remainder packed into a last packet; four permuting
updates to finish). hash64_many hashes many inputs at once, with numpy when it is importable (below).
"""
from __future__ import annotations

import functools
import struct
import sys

_M = 0xFFFFFFFFFFFFFFFF
_L = 0xFFFFFFFF
_INIT0 = (0xDBE6D5D5FE4CCE2F, 0xA4093822299F31D0, 0x13198A2E03707344, 0x243F6A8885A308D3)
_INIT1 = (0x3BD39E10CB0EF593, 0xC0ACF169B5F18A8C, 0xBE5466CF34E90C6C, 0x452821E638D01377)
_LANES = struct.Struct("<4Q")


def _update(st: list, l0: int, l1: int, l2: int, l3: int) -> None:
    """One packet of four lanes into the state [v0 x4, v1 x4, mul0 x4, mul1 x4], unrolled, the zipper merges
    inline (calls and lists are most of the cost in Python)."""
    a0, a1, a2, a3, b0, b1, b2, b3, m0, m1, m2, m3, n0, n1, n2, n3 = st
    b0 = (b0 + m0 + l0) & _M; m0 ^= (b0 & _L) * (a0 >> 32); a0 = (a0 + n0) & _M; n0 ^= (a0 & _L) * (b0 >> 32)  # noqa: E702
    b1 = (b1 + m1 + l1) & _M; m1 ^= (b1 & _L) * (a1 >> 32); a1 = (a1 + n1) & _M; n1 ^= (a1 & _L) * (b1 >> 32)  # noqa: E702
    b2 = (b2 + m2 + l2) & _M; m2 ^= (b2 & _L) * (a2 >> 32); a2 = (a2 + n2) & _M; n2 ^= (a2 & _L) * (b2 >> 32)  # noqa: E702
    b3 = (b3 + m3 + l3) & _M; m3 ^= (b3 & _L) * (a3 >> 32); a3 = (a3 + n3) & _M; n3 ^= (a3 & _L) * (b3 >> 32)  # noqa: E702
    # zipper merges: v1's lane pairs into v0's, then v0's into v1's
    a0 = (a0 + ((((b0 & 0xFF000000) | (b1 & 0xFF00000000)) >> 24) | (((b0 & 0xFF0000000000) | (b1 & 0xFF000000000000)) >> 16) | (b0 & 0xFF0000) | ((b0 & 0xFF00) << 32) | ((b1 & 0xFF00000000000000) >> 8) | ((b0 & 0xFF) << 56))) & _M  # noqa: E501
    a1 = (a1 + ((((b1 & 0xFF000000) | (b0 & 0xFF00000000)) >> 24) | (b1 & 0xFF0000) | ((b1 & 0xFF0000000000) >> 16) | ((b1 & 0xFF00) << 24) | ((b0 & 0xFF000000000000) >> 8) | ((b1 & 0xFF) << 48) | (b0 & 0xFF00000000000000))) & _M  # noqa: E501
    a2 = (a2 + ((((b2 & 0xFF000000) | (b3 & 0xFF00000000)) >> 24) | (((b2 & 0xFF0000000000) | (b3 & 0xFF000000000000)) >> 16) | (b2 & 0xFF0000) | ((b2 & 0xFF00) << 32) | ((b3 & 0xFF00000000000000) >> 8) | ((b2 & 0xFF) << 56))) & _M  # noqa: E501
    a3 = (a3 + ((((b3 & 0xFF000000) | (b2 & 0xFF00000000)) >> 24) | (b3 & 0xFF0000) | ((b3 & 0xFF0000000000) >> 16) | ((b3 & 0xFF00) << 24) | ((b2 & 0xFF000000000000) >> 8) | ((b3 & 0xFF) << 48) | (b2 & 0xFF00000000000000))) & _M  # noqa: E501
    b0 = (b0 + ((((a0 & 0xFF000000) | (a1 & 0xFF00000000)) >> 24) | (((a0 & 0xFF0000000000) | (a1 & 0xFF000000000000)) >> 16) | (a0 & 0xFF0000) | ((a0 & 0xFF00) << 32) | ((a1 & 0xFF00000000000000) >> 8) | ((a0 & 0xFF) << 56))) & _M  # noqa: E501
    b1 = (b1 + ((((a1 & 0xFF000000) | (a0 & 0xFF00000000)) >> 24) | (a1 & 0xFF0000) | ((a1 & 0xFF0000000000) >> 16) | ((a1 & 0xFF00) << 24) | ((a0 & 0xFF000000000000) >> 8) | ((a1 & 0xFF) << 48) | (a0 & 0xFF00000000000000))) & _M  # noqa: E501
    b2 = (b2 + ((((a2 & 0xFF000000) | (a3 & 0xFF00000000)) >> 24) | (((a2 & 0xFF0000000000) | (a3 & 0xFF000000000000)) >> 16) | (a2 & 0xFF0000) | ((a2 & 0xFF00) << 32) | ((a3 & 0xFF00000000000000) >> 8) | ((a2 & 0xFF) << 56))) & _M  # noqa: E501
    b3 = (b3 + ((((a3 & 0xFF000000) | (a2 & 0xFF00000000)) >> 24) | (a3 & 0xFF0000) | ((a3 & 0xFF0000000000) >> 16) | ((a3 & 0xFF00) << 24) | ((a2 & 0xFF000000000000) >> 8) | ((a3 & 0xFF) << 48) | (a2 & 0xFF00000000000000))) & _M  # noqa: E501
    st[:] = (a0, a1, a2, a3, b0, b1, b2, b3, m0, m1, m2, m3, n0, n1, n2, n3)


def _swap(x: int) -> int:
    return ((x >> 32) | (x << 32)) & _M


@functools.lru_cache(maxsize=64)
def _initial(key: tuple[int, int, int, int]) -> tuple:
    """The state a key starts from (a block's records share their key)."""
    return (tuple(_INIT0[i] ^ key[i] for i in range(4)) + tuple(_INIT1[i] ^ _swap(key[i]) for i in range(4))
            + _INIT0 + _INIT1)


def _start(key: tuple[int, int, int, int]) -> list:
    return list(_initial(key))


def _remainder(st: list, tail: bytes) -> None:
    """The last 1-31 bytes: the lengths folded into v0, v1's halves rotated, the bytes packed into a packet."""
    size = len(tail)
    mod4 = size & 3
    whole = size & ~3
    for i in range(4):
        st[i] = (st[i] + (size << 32) + size) & _M
        lo, hi = st[4 + i] & _L, st[4 + i] >> 32
        st[4 + i] = (((lo << size) | (lo >> (32 - size))) & _L) | ((((hi << size) | (hi >> (32 - size))) & _L) << 32)
    packet = bytearray(32)
    packet[:whole] = tail[:whole]
    if size & 16:
        packet[28:32] = tail[whole + mod4 - 4:whole + mod4]
    elif mod4:
        rest = tail[whole:]
        packet[16:19] = bytes((rest[0], rest[mod4 >> 1], rest[mod4 - 1]))
    _update(st, *_LANES.unpack(packet))


def _finish(st: list) -> int:
    for _ in range(4):   # v0's lanes permuted, each with its halves swapped
        a0, a1, a2, a3 = st[0], st[1], st[2], st[3]
        _update(st, ((a2 >> 32) | (a2 << 32)) & _M, ((a3 >> 32) | (a3 << 32)) & _M,
                ((a0 >> 32) | (a0 << 32)) & _M, ((a1 >> 32) | (a1 << 32)) & _M)
    return (st[0] + st[4] + st[8] + st[12]) & _M


def key_lanes(key: bytes) -> tuple[int, int, int, int]:
    """A 32-byte key as the hash's four little-endian lanes."""
    if len(key) != 32:
        raise ValueError("highwayhash: the key must be 32 bytes")
    return _LANES.unpack(key)


def hash64(key: tuple[int, int, int, int], *parts: bytes) -> bytes:
    """HighwayHash-64 of the concatenated `parts`, as the 8 little-endian bytes nats-server stores."""
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    st = _start(key)
    n = len(data) & ~31
    for l0, l1, l2, l3 in _LANES.iter_unpack(memoryview(data)[:n]):
        _update(st, l0, l1, l2, l3)
    if len(data) > n:
        _remainder(st, bytes(data[n:]))
    return struct.pack("<Q", _finish(st))


def hash64_sliced(key: tuple[int, int, int, int], data: bytes, step: int = 1 << 16):
    """hash64 of a large `data` as a generator that yields after every `step` bytes (so an event loop can run
    meanwhile); the digest is its return value."""
    st = _start(key)
    n = len(data) & ~31
    view = memoryview(data)
    for at in range(0, n, step):
        for l0, l1, l2, l3 in _LANES.iter_unpack(view[at:min(at + step, n)]):
            _update(st, l0, l1, l2, l3)
        yield
    if len(data) > n:
        _remainder(st, bytes(data[n:]))
    return struct.pack("<Q", _finish(st))


# -- many independent inputs at once (numpy, when importable) ------------------------------------------------------
# Each of HighwayHash's rounds does the same lane operations on every input's state, so the states of a batch of
# inputs (a block's message records) are rows of one (n, 16) uint64 array and each round is a few numpy operations
# on all of them: uint64 arithmetic wraps as the algorithm's does, and a zipper merge is one byte gather (the
# 16-byte shuffle of the algorithm's SIMD form) per half of the state. Rows are sorted by their number of whole
# packets, longest first, so packet k updates the leading rows that have one; the 1-31 remaining bytes of each
# input are laid into a packet by one gather through a per-length template. Where fewer than _FEW inputs are left
# with packets to go, those few finish on the scalar code (a numpy round costs as much as several scalar ones).
try:
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the machine (the lab's venv has numpy)
    _np = None
if sys.byteorder != "little":  # pragma: no cover - the byte gathers read lanes little-endian
    _np = None

_FEW = 8
_BATCH = 4096


def vectorised() -> bool:
    """Whether hash64_many runs on numpy (else it is hash64 in a loop)."""
    return _np is not None


def _vector_tables():
    zipper = [3, 12, 2, 5, 14, 1, 15, 0, 11, 4, 10, 13, 9, 6, 8, 7]   # byte i of a merged lane pair: byte zipper[i]
    zip_v1 = _np.array([32 + z for z in zipper] + [48 + z for z in zipper], dtype=_np.intp)   # bytes of v1 (row 4..7)
    zip_v0 = zip_v1 - 32                                                                     # bytes of v0 (row 0..3)
    # template[r][j]: which of the last r bytes goes to byte j of the final packet (-1: a zero byte)
    template = _np.full((32, 32), -1, dtype=_np.intp)
    for r in range(1, 32):
        whole, mod4 = r & ~3, r & 3
        template[r, :whole] = range(whole)
        if r & 16:
            template[r, 28:32] = range(r - 4, r)
        elif mod4:
            template[r, 16:19] = (whole, whole + (mod4 >> 1), whole + mod4 - 1)
    return zip_v0, zip_v1, template, _np.arange(32, dtype=_np.intp)


_TABLES = _vector_tables() if _np is not None else None


def _vupdate(st, lanes) -> None:
    """_update on every row of the (n, 16) state `st` with the (n, 4) packet lanes `lanes`, in place."""
    zip_v0, zip_v1 = _TABLES[0], _TABLES[1]
    v0, v1, mul0, mul1 = st[:, 0:4], st[:, 4:8], st[:, 8:12], st[:, 12:16]
    low = _np.uint64(_L)
    s32 = _np.uint64(32)
    v1 += mul0
    v1 += lanes
    mul0 ^= (v1 & low) * (v0 >> s32)
    v0 += mul1
    mul1 ^= (v0 & low) * (v1 >> s32)
    as_bytes = st.view(_np.uint8)
    v0 += _np.take(as_bytes, zip_v1, axis=1).view(_np.uint64)
    v1 += _np.take(as_bytes, zip_v0, axis=1).view(_np.uint64)


def hash64_many(key: tuple[int, int, int, int], data, starts, lengths) -> list[int]:
    """HighwayHash-64 of each input data[starts[i]:starts[i] + lengths[i]], as ints (the 8 stored bytes read
    little-endian). numpy across the inputs when it is importable, else hash64 one by one."""
    if _np is None:
        view = memoryview(data)
        return [int.from_bytes(hash64(key, bytes(view[s:s + n])), "little") for s, n in zip(starts, lengths)]
    count = len(starts)
    if not count:
        return []
    buf = _np.frombuffer(data, dtype=_np.uint8)
    buf = _np.concatenate((buf, _np.zeros(1, dtype=_np.uint8)))     # a zero byte for the packets' padding
    starts = _np.asarray(starts, dtype=_np.intp)
    lengths = _np.asarray(lengths, dtype=_np.intp)
    order = _np.argsort(-(lengths >> 5), kind="stable")
    starts, lengths = starts[order], lengths[order]
    out = _np.empty(count, dtype=_np.uint64)
    for at in range(0, count, _BATCH):   # batches whose states stay in the CPU's cache
        out[at:at + _BATCH] = _hash_sorted(key, data, buf, starts[at:at + _BATCH], lengths[at:at + _BATCH])
    result = _np.empty(count, dtype=_np.uint64)
    result[order] = out
    return result.tolist()


def _hash_sorted(key, data, buf, starts, lengths):
    """The digests of inputs sorted by their number of whole packets, longest first (buf: data and a zero byte)."""
    _zip_v0, _zip_v1, template, span = _TABLES
    count = len(starts)
    zero = len(buf) - 1
    packets = lengths >> 5
    st = _np.tile(_np.array(_initial(key), dtype=_np.uint64), (count, 1))
    out = _np.zeros(count, dtype=_np.uint64)
    done = 0                        # rows st[:done] finished on the scalar code
    asc = packets[::-1]
    for k in range(int(packets[0])):
        n = count - int(_np.searchsorted(asc, k, side="right"))   # the rows with a packet k
        if n < _FEW:
            view = memoryview(data)
            for row in range(n):    # the few long inputs left: on in the scalar code from packet k
                s = [int(x) for x in st[row]]
                at, size = int(starts[row]), int(lengths[row])
                whole = size & ~31
                for l0, l1, l2, l3 in _LANES.iter_unpack(view[at + 32 * k:at + whole]):
                    _update(s, l0, l1, l2, l3)
                if size > whole:
                    _remainder(s, bytes(view[at + whole:at + size]))
                out[row] = _finish(s)
            done = n
            break
        pos = starts[:n] + 32 * k
        _vupdate(st[:n], buf[pos[:, None] + span].view(_np.uint64))
    rows = _np.arange(done, count, dtype=_np.intp)
    has = rows[(lengths[rows] & 31) > 0]
    if len(has):                    # the last 1-31 bytes: lengths into v0, v1's halves rotated, a last packet
        size = lengths[has] & 31
        r = size.astype(_np.uint64)
        sub = st[has]
        sub[:, 0:4] += ((r << _np.uint64(32)) + r)[:, None]
        half, s32, rc = _np.uint64(_L), _np.uint64(32), r[:, None]
        v1 = sub[:, 4:8]
        lo, hi = v1 & half, v1 >> s32
        lo = ((lo << rc) | (lo >> (s32 - rc))) & half
        hi = ((hi << rc) | (hi >> (s32 - rc))) & half
        sub[:, 4:8] = lo | (hi << s32)
        tmpl = template[size]
        idx = _np.where(tmpl < 0, zero, (starts[has] + (lengths[has] & ~31))[:, None] + tmpl)
        _vupdate(sub, buf[idx].view(_np.uint64))
        st[has] = sub
    fin = st[rows]
    s32 = _np.uint64(32)
    for _ in range(4):              # v0's lanes permuted, each with its halves swapped
        v0 = fin[:, 0:4]
        _vupdate(fin, ((v0 >> s32) | (v0 << s32))[:, [2, 3, 0, 1]])
    out[rows] = fin[:, 0] + fin[:, 4] + fin[:, 8] + fin[:, 12]
    return out
