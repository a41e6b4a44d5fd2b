"""The checksums of a snapshot restore computed many at once with numpy give what the scalar code gives.
HighwayHash-64, which checks every message record of an old nats-server's snapshot (snapshot_tar.py): the scalar
code gives Google's published test vectors, and the batch form gives the scalar code's digest for any key, any
lengths 0-300 mixed in one batch (the 32-byte packet boundaries among them), and inputs long enough to finish on
the scalar code. CRC-32C of the S2 frames likewise, and unframe checks every frame."""
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_server.jetstream import archive, highwayhash
from embedded_server.jetstream.highwayhash import hash64, hash64_many

# Google's highwayhash_test.cc: key bytes 0..31, input bytes 0..n-1, for n = 0..64 (a selection)
_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908, 0x1716151413121110, 0x1F1E1D1C1B1A1918)
_EXPECTED = {0: 0x907A56DE22C26E53, 1: 0x7EAB43AAC7CDDD78, 2: 0xB8D0569AB0B53D62, 3: 0x5C6BEFAB8A463D80,
             4: 0xF205A46893007EDA, 7: 0x4D02AE1738F59482, 15: 0x40793F86A449F33B, 16: 0xCFAB3489F97EB832,
             17: 0x19FE67D2C8C5C0E2, 31: 0x9FC7007CCF035A68, 32: 0xA0C964D9ECD580FC, 33: 0x2C90F73CA03181FC,
             63: 0xAB8EEBE9BF2139A0}
_BOUNDARY = [0, 1, 2, 3, 4, 5, 15, 16, 17, 19, 28, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 255, 256, 300]


def _digest(key, data: bytes) -> int:
    return int.from_bytes(hash64(key, data), "little")


def test_the_published_vectors_scalar_and_in_one_batch():
    data = bytes(range(64))
    assert {n: _digest(_KEY, data[:n]) for n in _EXPECTED} == _EXPECTED
    sizes = list(_EXPECTED)
    assert hash64_many(_KEY, data, [0] * len(sizes), sizes) == [_EXPECTED[n] for n in sizes]
    # the other key of the published tests: bytes 128..160, and one 0xff byte
    key = (1, 2, 3, 4)
    assert hash64_many(key, bytes(range(128, 161)) + b"\xff", [0, 33], [33, 1]) == [0x53C516CCE478CAD7,
                                                                                     0x7858F24D2D79B2B2]


@settings(max_examples=40, deadline=None)
@given(key=st.tuples(*[st.integers(0, 2 ** 64 - 1)] * 4),
       sizes=st.lists(st.sampled_from(_BOUNDARY) | st.integers(0, 300), min_size=1, max_size=60),
       long=st.lists(st.integers(301, 3000), max_size=3), seed=st.binary(min_size=1, max_size=64))
def test_a_batch_hashes_as_one_by_one(key, sizes, long, seed):
    sizes = sizes + long
    blob = (seed * ((sum(sizes) + 7) // len(seed) + 1))[:sum(sizes) + 7]
    starts, at = [], 7
    for n in sizes:
        starts.append(at)
        at += n
    want = [_digest(key, blob[s:s + n]) for s, n in zip(starts, sizes)]
    assert hash64_many(key, blob, starts, sizes) == want
    saved = highwayhash._np, highwayhash._BATCH
    try:
        highwayhash._BATCH = 5      # the inputs in several batches
        assert hash64_many(key, blob, starts, sizes) == want
        highwayhash._np = None      # without numpy: the scalar loop, the same digests
        assert hash64_many(key, blob, starts, sizes) == want
    finally:
        highwayhash._np, highwayhash._BATCH = saved


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 1, 3, 4, 5, 63, 64, 65, 128, 4096, 65536]) | st.integers(0, 70000),
                      min_size=1, max_size=6), seed=st.binary(min_size=1, max_size=64))
def test_the_frames_crc32c_all_at_once_as_one_by_one(sizes, seed):
    """The S2 frames' CRC-32C (archive.crc32c_many: numpy across the frames' chunks, joined) as the scalar code's,
    any lengths mixed; and unframe gives the frames back as they were, or the checksum error."""
    frames = [(seed * (n // len(seed) + 1))[:n] for n in sizes]
    assert archive.crc32c_many(frames) == [archive.crc32c(f) for f in frames]
    assert archive.crc32c(b"123456789") == 0xE3069283   # the published check value
    stream = archive.STREAM_ID + b"".join(archive.frame(f) for f in frames if f)
    assert b"".join(archive.unframe(io.BytesIO(stream), batch=70000)) == b"".join(frames)
    if any(frames):
        bad = bytearray(stream)
        bad[-1] ^= 1                    # the last frame's last byte: every frame before it still comes out
        got = []
        with pytest.raises(archive.ArchiveError, match="crc mismatch"):
            for part in archive.unframe(io.BytesIO(bytes(bad)), batch=70000):
                got.append(part)
        assert b"".join(got) == b"".join(f for f in frames if f)[:-len([f for f in frames if f][-1])]
