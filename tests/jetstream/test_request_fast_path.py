"""The request decoder's fast path (simple flat bodies of the requests sent most: direct and message gets, pulls)
gives exactly what the general Go-rules decoder gives: the same fields, or the same error text after falling back.
Sans-IO: no server; the general decoder is the one the differential fuzzer holds to nats-server."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_server.jetstream import requests as r

GET, NEXT = r.MSG_GET_REQUEST, r.CONSUMER_NEXT_REQUEST

# Bodies the fast path must take (what the lab, nats-py, nats.go and natscli send).
SIMPLE = [
    (GET, b'{"seq":5}'), (GET, b'{"seq": 18446744073709551615}'), (GET, b'{"seq":0}'),
    (GET, b'{"last_by_subj":"orders.new"}'), (GET, b'{"seq":7,"next_by_subj":"frame.>"}'),
    (GET, b'{"seq": 1, "next_by_subj": "a.*.c"}'), (GET, b' {\t"batch":100,"seq":1,"next_by_subj":"x"}\r\n'),
    (GET, b'{"batch":10,"max_bytes":1024,"seq":3,"next_by_subj":"a"}'), (GET, b'{"no_hdr":true,"seq":2}'),
    (GET, b'{"up_to_seq":100,"batch":5,"seq":1}'), (GET, b'{}'), (GET, b'{"next_by_subj":"caf\\u00e9"}'),
    (GET, '{"last_by_subj":"caf\u00e9.\U0001f600"}'.encode()),
    (GET, b'{"seq":1,"next_by_subj":"frame.x"}'), (GET, b'{"seq":0,"next_by_subj":""}'),
    (GET, b'{"seq":18446744073709551615,"next_by_subj":"a b~!#[]{}<>&\'/*"}'),  # the lab's body, matched as is
    (NEXT, b'{"batch":2000,"expires":30000000000}'), (NEXT, b'{"batch":1,"no_wait":true}'),
    (NEXT, b'{"expires":-1,"batch":-5}'), (NEXT, b'{"min_pending":-9223372036854775808,"group":"g"}'),
]

# Bodies that must fall back, each to its own result or error: repeated names, case variants, floats, nulls,
# signs, leading zeros, escapes that matter, wrong types, ranges, unknown fields, several values, nesting.
TRICKY = [
    b'{"seq":1,"seq":2}', b'{"seq":"x","seq":2}', b'{"seq":2,"seq":"x"}', b'{"SEQ":5}', b'{"Seq":5,"seq":6}',
    b'{"seq":5.0}', b'{"seq":5e0}', b'{"seq":1e400}', b'{"seq":null}', b'{"seq":-1}', b'{"seq":-0}', b'{"seq":01}',
    b'{"seq":18446744073709551616}', b'{"seq":"5"}', b'{"seq":true}', b'{"no_hdr":1}', b'{"no_hdr":"true"}',
    b'{"last_by_subj":5}', b'{"last_by_subj":null}', b'{"last_by_subj":"a\\ud800"}', b'{"last_by_subj":"a:b"}',
    b'{"last_by_subj":"\xff"}', b'{"nope":1}', b'{"seq":1}{"seq":2}', b'{"seq":1} x', b'[]', b'null', b'5', b'"x"',
    b'{"multi_last":["a","b"]}', b'{"start_time":"2024-01-01T00:00:00Z"}', b'{"seq":{"a":1}}', b'{"seq":NaN}',
    b'{"seq":Infinity}', b'{"seq":1,}', b'{"seq" 1}', b'\xef\xbb\xbf{"seq":1}', b'{"se\\u0071":3}',
    b'{"last_by_subj":"a\x01b"}', b'{"batch":9223372036854775808}', b'{' * 50 + b'}' * 50, b'{"seq":1' + b'0' * 5000 + b'}',
    '{"seq":1}'.encode("utf-16"), b'{"\xc3\xa9":1}', b'{"seq":1 }junk', b'  ', b'',
]

# Near the lab's body (matched without parsing): too large, signed, leading zero, an escape, a control or non-ASCII
# byte, a second value: each decodes as the general decoder decodes it.
NEAR_LAB = [
    b'{"seq":18446744073709551616,"next_by_subj":"a"}', b'{"seq":99999999999999999999,"next_by_subj":"a"}',
    b'{"seq":-0,"next_by_subj":"a"}', b'{"seq":-1,"next_by_subj":"a"}', b'{"seq":007,"next_by_subj":"a"}',
    b'{"seq":1,"next_by_subj":"a\\u0041"}', b'{"seq":1,"next_by_subj":"a\x7f"}', b'{"seq":1,"next_by_subj":"a\x1f"}',
    b'{"seq":1,"next_by_subj":"\xc3"}', b'{"seq":1,"next_by_subj":"a"}{"seq":2,"next_by_subj":"a"}',
    b'{"seq":1,"next_by_subj":"a\\"}', b'{"seq":1e3,"next_by_subj":"a"}',
]


def _either(fn, payload, typ, strict):
    try:
        return "ok", fn(payload, typ, strict=strict)
    except r.GoJsonError as e:
        return "error", str(e)


def _same(payload: bytes, typ, strict: bool) -> None:
    assert _either(r.decode, payload, typ, strict) == _either(r.decode_full, payload, typ, strict), payload


@pytest.mark.parametrize("typ,payload", SIMPLE)
def test_simple_bodies_take_the_fast_path_with_the_same_fields(typ, payload):
    assert r._decode_simple(payload, typ) is not None, payload
    for strict in (True, False):
        _same(payload, typ, strict)
    assert r.decode(payload, typ) == r.decode_full(payload, typ)


def test_tricky_bodies_fall_back_and_get_the_general_decoders_answer():
    for payload in TRICKY:
        for typ in (GET, NEXT):
            if r._decode_simple(payload, typ) is not None:
                # Only bodies that really are simple for this type may be taken (e.g. '{"seq":1}' for a pull is
                # an unknown field, so not taken).
                assert _either(r.decode_full, payload, typ, True)[0] == "ok", payload
            for strict in (True, False):
                _same(payload, typ, strict)
    # The ones that must not be taken for a message get, whatever they decode to.
    for payload in TRICKY:
        if payload not in (b'{"se\\u0071":3}',):  # an escaped name equal to a field is simple once unescaped
            assert r._decode_simple(payload, GET) is None, payload


def test_bodies_near_the_labs_decode_as_the_general_decoder_decodes_them():
    for payload in NEAR_LAB:
        for strict in (True, False):
            _same(payload, GET, strict)
    taken = [p for _t, p in SIMPLE if r._SEQ_NEXT.fullmatch(p)]
    assert len(taken) == 4 and all(r.decode(p, GET)["next_by_subj"] == json.loads(p)["next_by_subj"] for p in taken)
    assert _either(r.decode, NEAR_LAB[0], GET, True)[0] == "error"  # too large a sequence: refused, not wrapped


_names = st.sampled_from(["seq", "last_by_subj", "next_by_subj", "batch", "max_bytes", "no_hdr", "up_to_seq",
                          "expires", "no_wait", "SEQ", "Batch", "start_time", "multi_last", "other"])
_values = st.one_of(
    st.integers(min_value=-(1 << 65), max_value=1 << 65), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["orders.>", "a.*", "2024-01-01T00:00:00Z", "a:b"]), st.lists(st.text(max_size=3), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_names, _values), max_size=5), st.sampled_from(["", " ", "\n"]),
       st.sampled_from([(",", ":"), (", ", ": ")]))
def test_generated_bodies_decode_the_same_either_way(pairs, pad, separators):
    body = "{" + ",".join(f"{json.dumps(k)}{separators[1]}{json.dumps(v)}" for k, v in pairs) + "}"
    payload = (pad + body + pad).encode()
    for typ in (GET, NEXT):
        for strict in (True, False):
            _same(payload, typ, strict)
