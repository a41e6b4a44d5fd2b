"""STREAM.MSG.GET's answer is put together from bytes (api.msg_get_answer, api.typed_answer) and its time from a
cached second (clock.rfc3339): byte for byte what `dumps` of the answer as a dict, with base64 text and an
uncached time, gives: field order, escapes, base64, the time's trimmed fraction. Sans-IO: no server; the answers
themselves are compared with nats-server's in test_streams.py and by the differential fuzzer."""
from __future__ import annotations

import base64
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_server.jetstream import api
from embedded_server.jetstream.clock import ZERO_TIME, rfc3339
from embedded_server.jetstream.store import StoreMsg


def _old_time(ns: int) -> str:
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}".rstrip("0") + "Z" if frac else base + "Z"


def _old_answer(sm: StoreMsg, no_hdr: bool) -> bytes:
    """The answer as built before: a dict through dumps."""
    message = {"subject": sm.subject, "seq": sm.seq}
    if sm.hdr and not no_hdr:
        message["hdrs"] = base64.b64encode(sm.hdr).decode()
    if sm.data:
        message["data"] = base64.b64encode(sm.data).decode()
    message["time"] = _old_time(sm.ts)
    return api.dumps({"type": api.PREFIX + "stream_msg_get_response", "message": message})


def _new_answer(sm: StoreMsg, no_hdr: bool) -> bytes:
    return api.typed_answer("stream_msg_get_response", api.msg_get_answer(sm, no_hdr))


ODD_SUBJECTS = ["orders.new", "a", "a.b.c.d.e.f.g.h", 'q"uote', "back\\slash", "tab\tin", "nl\nin", "ctl\x01\x1f",
                "del\x7f", "café.naïve", "emoji.\U0001f600", "<html>&amp;", "ünï.\u2028.\u2029", "a/b:c=d;e,f",
                "x" * 300, "$KV.bucket.key", "_INBOX.abc.123", "sp ace"]
PAYLOADS = [b"", b"x", b"xy", b"xyz", b'{"v": "xxx"}', bytes(range(256)), b"\x00" * 1000, b"+/=" * 33]
HEADERS = [None, b"", b"NATS/1.0\r\n\r\n", b"NATS/1.0\r\nA: b\r\nNats-Msg-Id: 1\r\n\r\n",
           b"NATS/1.0 404 No Messages\r\n\r\n"]
TIMES = [0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_000_000_000, 1_700_000_000_123_456_789,
         1_700_000_000_100_000_000, 1_700_000_001_000_000_001, 253_402_300_799_999_999_999, -1, -1_500_000_000]
SEQS = [1, 2, 99, 2**31, 2**53 + 1, 2**64 - 1]


def test_every_mix_of_subject_headers_payload_time_and_sequence_is_byte_identical():
    n = 0
    for i, subject in enumerate(ODD_SUBJECTS):
        for j, data in enumerate(PAYLOADS):
            for k, hdr in enumerate(HEADERS):
                ts = TIMES[(i + j + k) % len(TIMES)]
                seq = SEQS[(i * 7 + j + k) % len(SEQS)]
                sm = StoreMsg(subject, hdr, data, seq, ts)
                for no_hdr in (False, True):
                    assert _new_answer(sm, no_hdr) == _old_answer(sm, no_hdr), (subject, hdr, data, seq, ts, no_hdr)
                    n += 1
    assert n == len(ODD_SUBJECTS) * len(PAYLOADS) * len(HEADERS) * 2


@settings(max_examples=300, deadline=None)
@given(subject=st.text(min_size=1, max_size=40), hdr=st.none() | st.binary(max_size=200),
       data=st.binary(max_size=300), seq=st.integers(1, 2**64 - 1),
       ts=st.integers(-2**62, 2**62) | st.just(0), no_hdr=st.booleans())
def test_generated_messages_answer_byte_identically(subject, hdr, data, seq, ts, no_hdr):
    sm = StoreMsg(subject, hdr, data, seq, ts)
    assert _new_answer(sm, no_hdr) == _old_answer(sm, no_hdr)


def test_cached_second_gives_the_same_time_text_in_any_order():
    # Runs of one second, jumps back and forth, the same second again after another: each as formatted afresh.
    base = 1_764_633_600 * 1_000_000_000
    stamps = [base + d for d in (0, 1, 500_000_000, 999_999_999, 1_000_000_000, 3, 1_000_000_010, 0,
                                 86_400_000_000_000, 5, -base + 7, -base, base)]
    stamps += [base + i * 333_333_333 for i in range(40)] + [0, 1, 0, -1, -1]
    assert [rfc3339(ns) for ns in stamps] == [_old_time(ns) for ns in stamps]
