"""HighwayHash-64 (Google's keyed hash), which nats-server's file store puts at the end of every message record and
into its meta.sum files: the restore of an older nats-server snapshot (snapshot_tar.py) checks each record with it.

Pure Python on 64-bit lanes kept as ints and masked; written from the algorithm's description (four lanes of
v0, v1, mul0, mul1; a 32-byte packet per update; the remainder packed into a last packet; four permuting
updates to finish).
"""
from __future__ import annotations

import functools
import struct

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
