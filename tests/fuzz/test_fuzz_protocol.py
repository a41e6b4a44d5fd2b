"""Differential fuzzing of the client protocol with bad input: CONNECT with odd JSON (wrong types, huge numbers,
invalid UTF-8), operations with missing, extra or overlong arguments, wrong sizes, bad subjects, stray bytes and
byte flips of valid frames. nats-server and the embedded server get the same bytes on a fresh connection; what
they send back (INFO masked) and whether they close must be the same.

tests/core/test_wire_model.py covers well-formed sessions; this covers the malformed ones.
"""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from tests.core.wire import exchange
from tests.servers import RunningServer

from .differential import SEED, corpus_line, examples, load_corpus

CONNECT_VALUES = st.sampled_from(['true', 'false', '0', '1', '-1', '1.5', '2', '9223372036854775808', '1e400', '""',
                                  '"x"', 'null', '[]', '{}', '"\\u0000"', '"\xff"', '"\\ud800"'])
CONNECT_KEYS = st.sampled_from(["verbose", "pedantic", "echo", "headers", "no_responders", "protocol", "lang",
                                "version", "name", "user", "pass", "auth_token", "tls_required", "bogus"])


@st.composite
def connects(draw) -> bytes:
    pairs = draw(st.lists(st.tuples(CONNECT_KEYS, CONNECT_VALUES), max_size=4))
    body = "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
    return b"CONNECT " + body.encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff") + b"\r\n"


SUBJECTS = st.sampled_from(["a", "a.b", "a.*", "a.>", ">", "*", "a..b", ".a", "a.", "a b", "a\tb", "\xe9",
                            "a" * 300, "foo.bar.baz"])
NUMBERS = st.sampled_from(["0", "1", "3", "-1", "x", "", "99999999999999999999", "1048577", "2147483648"])


@st.composite
def operations(draw) -> bytes:
    kind = draw(st.sampled_from(["pub", "hpub", "sub", "unsub", "ping", "pong", "junk", "connect", "flip"]))
    subject = draw(SUBJECTS).encode("utf-8")
    if kind == "pub":
        payload = draw(st.binary(max_size=8))
        size = draw(st.sampled_from([str(len(payload)).encode(), draw(NUMBERS).encode()]))
        reply = draw(st.sampled_from([b"", b" r", b" r extra", b" a.*"]))
        return b"PUB " + subject + reply + b" " + size + b"\r\n" + payload + b"\r\n"
    if kind == "hpub":
        hdr = draw(st.sampled_from([b"NATS/1.0\r\n\r\n", b"NATS/1.0\r\nK: v\r\n\r\n", b"XX/1.0\r\n\r\n", b"\r\n"]))
        payload = draw(st.binary(max_size=4))
        hsize = draw(st.sampled_from([str(len(hdr)).encode(), draw(NUMBERS).encode()]))
        tsize = draw(st.sampled_from([str(len(hdr) + len(payload)).encode(), draw(NUMBERS).encode()]))
        return b"HPUB " + subject + b" " + hsize + b" " + tsize + b"\r\n" + hdr + payload + b"\r\n"
    if kind == "sub":
        queue = draw(st.sampled_from([b"", b" q", b" q extra"]))
        return b"SUB " + subject + queue + b" " + draw(NUMBERS).encode() + b"\r\n"
    if kind == "unsub":
        return b"UNSUB " + draw(NUMBERS).encode() + draw(st.sampled_from([b"", b" 1", b" x", b" 1 2"])) + b"\r\n"
    if kind == "ping":
        return draw(st.sampled_from([b"PING\r\n", b"ping\r\n", b"PING x\r\n", b"PINGX\r\n"]))
    if kind == "pong":
        return draw(st.sampled_from([b"PONG\r\n", b"PONG x\r\n"]))
    if kind == "connect":
        return draw(connects())
    if kind == "flip":
        frame = b"PUB foo 3\r\nabc\r\n"
        at = draw(st.integers(0, len(frame) - 1))
        return frame[:at] + bytes([frame[at] ^ draw(st.integers(1, 255))]) + frame[at + 1:]
    return draw(st.binary(min_size=1, max_size=12))


@st.composite
def sessions(draw) -> bytes:
    first = draw(connects()) if draw(st.booleans()) else b'CONNECT {"verbose":true,"pedantic":true}\r\n'
    ops = draw(st.lists(operations(), max_size=4))
    return first + b"".join(ops) + b"PING\r\n"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    servers = [RunningServer(kind, [], tmp_path_factory.mktemp(kind)).start() for kind in ("nats-server", "embedded")]
    yield servers
    for srv in servers:
        srv.stop()


def answers(servers, data: bytes):
    async def run():
        return await asyncio.gather(*(exchange(srv.port, data, settle=0.05, timeout=3, pongs=1)
                                      for srv in servers))
    nats_answer, embedded_answer = asyncio.run(asyncio.wait_for(run(), 20))
    return (nats_answer.masked, nats_answer.state), (embedded_answer.masked, embedded_answer.state)


@pytest.mark.parametrize("case", load_corpus("protocol"), ids=lambda c: c["send"][:40])
def test_corpus_sessions_agree(both, case):
    nats_answer, embedded_answer = answers(both, case["send"].encode("latin-1"))
    assert embedded_answer == nats_answer


def test_generated_sessions_agree(both):
    @seed(SEED)
    @settings(max_examples=examples(40), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(sessions())
    def check(data):
        nats_answer, embedded_answer = answers(both, data)
        assert embedded_answer == nats_answer, \
            f"add to tests/fuzz/corpus/protocol.json: {corpus_line({'send': data.decode('latin-1')})}"

    check()
