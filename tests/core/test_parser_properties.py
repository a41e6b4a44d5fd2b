"""Properties of the sans-IO parser: how a stream is cut into reads never changes the operations it yields;
runs of publishes stand for exactly the publishes they contain; any bytes at all either parse or raise
ProtocolError, nothing else; and memory held for an unfinished operation stays bounded."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from embedded_server import errors, protocol
from embedded_server.jetstream.batch import RUN_RECORD
from embedded_server.protocol import Parser, ProtocolError

subjects = st.text(alphabet="abcxyz.*>_-0123456789", min_size=1, max_size=12).map(str.encode)
tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10).map(str.encode)
payloads = st.binary(max_size=40)


@st.composite
def operations(draw) -> bytes:
    kind = draw(st.sampled_from(["pub", "pub_reply", "pub_natspy", "hpub", "sub", "qsub", "unsub", "ping",
                                 "pong", "connect", "ok"]))
    subject = draw(subjects)
    payload = draw(payloads)
    if kind == "pub":
        return b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "pub_reply":
        return b"PUB %s %s %d\r\n%s\r\n" % (subject, draw(tokens), len(payload), payload)
    if kind == "pub_natspy":
        return b"PUB %s  %d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "hpub":
        hdr = b"NATS/1.0\r\nK: %s\r\n\r\n" % draw(tokens)
        return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject, len(hdr), len(hdr) + len(payload), hdr, payload)
    if kind == "sub":
        return b"SUB %s %s\r\n" % (subject, draw(tokens))
    if kind == "qsub":
        return b"SUB %s %s %s\r\n" % (subject, draw(tokens), draw(tokens))
    if kind == "unsub":
        return b"UNSUB %s %d\r\n" % (draw(tokens), draw(st.integers(0, 99)))
    if kind == "connect":
        return b'CONNECT {"verbose":false,"headers":true}\r\n'
    return {"ping": b"PING\r\n", "pong": b"PONG\r\n", "ok": b"+OK\r\n"}[kind]


@st.composite
def hpub_runs(draw) -> bytes:
    """HPUBs to one subject without reply, back to back, as nats-py writes them (two spaces) or with one; now and
    then one with a reply, another subject or sizes that do not fit in the middle."""
    out = []
    sep = draw(st.sampled_from([b" ", b"  "]))
    for _ in range(draw(st.integers(2, 6))):
        hdr = b"NATS/1.0\r\nNats-Batch-Id: b\r\nNats-Batch-Sequence: %d\r\n\r\n" % draw(st.integers(1, 9))
        payload = draw(payloads)
        odd = draw(st.sampled_from([b"", b"", b"", b" r", b"x"]))
        subject = b"run" + (odd if odd == b"x" else b"")
        gap = sep + odd[1:] + b" " if odd == b" r" else sep
        out.append(b"HPUB %s%s%d %d\r\n%s%s\r\n" % (subject, gap, len(hdr), len(hdr) + len(payload), hdr, payload))
    return b"".join(out)


@st.composite
def fast_runs(draw) -> bytes:
    """PUBs to one subject with a fast batch's reply (ending in .$FI), back to back; now and then one with another
    subject, another reply, two spaces or a payload ending in CR in the middle."""
    out = []
    for seq in range(1, draw(st.integers(2, 6)) + 1):
        payload = draw(payloads)
        odd = draw(st.sampled_from([b"", b"", b"", b"subject", b"reply", b"spaces", b"cr"]))
        subject = b"fb.x" if odd == b"subject" else b"fb"
        reply = b"_INBOX.%s.b.100.fail.%d.1%s" % (draw(tokens), seq, b"" if odd == b"reply" else b".$FI")
        gap = b"  " if odd == b"spaces" else b" "
        payload += b"\r" if odd == b"cr" else b""
        out.append(b"PUB %s %s%s%d\r\n%s\r\n" % (subject, reply, gap, len(payload), payload))
    return b"".join(out)


streams = st.lists(st.one_of(operations(), hpub_runs(), fast_runs(),
                             st.lists(st.just(b"PUB run 3\r\nabc\r\n"), min_size=2, max_size=5).map(b"".join)),
                   min_size=1, max_size=25).map(b"".join)


def parse(chunks, runs: bool = True) -> list[tuple]:
    """All operations from feeding `chunks` in order, PUBS and HPUBS runs and PUBB batches expanded into their
    PUBs and HPUBs."""
    p = Parser(headers=True, runs=runs)
    p.hpub_runs = lambda subject: RUN_RECORD if subject == b"run" else None
    p.fast_runs = True
    out = []
    for chunk in chunks:
        for op in p.feed(chunk):
            if op[0] in (protocol.PUBS, protocol.PUBB, protocol.HPUBS, protocol.PUBF):
                out.extend(protocol.expand_run(op))
            else:
                out.append(op)
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points})
    bounds = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None)
@given(streams, st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_of_a_valid_stream_gives_the_same_operations(data, points):
    whole = parse([data])
    assert parse(cut(data, points)) == whole


@settings(max_examples=100, deadline=None)
@given(streams)
def test_byte_by_byte_gives_the_same_operations(data):
    assert parse([data[i:i + 1] for i in range(len(data))]) == parse([data])


@settings(max_examples=200, deadline=None)
@given(streams)
def test_runs_stand_for_exactly_their_publishes(data):
    assert parse([data], runs=True) == parse([data], runs=False)


def test_a_fast_batch_stream_is_one_run_of_its_publishes():
    """A publisher's fast batch in one read is one PUBF holding each PUB as the parser gives it alone; a message
    that is not one of the run (another subject) ends it."""
    pubs = [b"PUB fb _INBOX.a.b.100.fail.%d.1.$FI 3\r\nab%d\r\n" % (seq, seq % 10) for seq in range(1, 6)]
    data = b"".join(pubs[:3]) + b"PUB fb.other _INBOX.a.b.100.fail.4.1.$FI 1\r\nx\r\n" + b"".join(pubs[3:])
    p = Parser()
    p.fast_runs = True
    ops = list(p.feed(data))
    assert [op[0] for op in ops] == [protocol.PUBF, protocol.PUB, protocol.PUBF] and ops[1][1] == b"fb.other"
    assert len(ops[0][3]) == 3 and len(ops[2][3]) == 2 and ops[0][4] == 9
    one_by_one = [op for pub in pubs for op in Parser().feed(pub)]
    assert list(protocol.expand_run(ops[0])) + list(protocol.expand_run(ops[2])) == one_by_one


@settings(max_examples=200, deadline=None)
@given(streams)
def test_a_publish_tail_is_what_a_subscriber_receives(data):
    """tail[body_at:] is the body plus CRLF, and the tail starts with the size fields the MSG line needs."""
    for op in parse([data]):
        if op[0] == protocol.PUB:
            _, _, _, tail, body_at = op
            size = tail[:body_at - 2]
            assert tail[body_at - 2:body_at] == b"\r\n" and tail.endswith(b"\r\n")
            assert int(size) == len(tail) - body_at - 2
        elif op[0] == protocol.HPUB:
            _, _, _, tail, body_at, hdr_len = op
            hdr_size, total = tail[:body_at - 2].split(b" ")
            assert int(hdr_size) == hdr_len and int(total) == len(tail) - body_at - 2
            assert tail[body_at:body_at + hdr_len].startswith(b"NATS/1.0")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=6))
def test_random_bytes_parse_or_raise_protocol_error_only(data, points):
    p = Parser(headers=True)
    try:
        for chunk in cut(data, points):
            for _ in p.feed(chunk):
                pass
    except ProtocolError as e:
        assert e.err in (None, errors.ERR_UNKNOWN_PROTOCOL, errors.ERR_MAX_CONTROL_LINE, errors.ERR_MAX_PAYLOAD,
                         errors.ERR_AUTHORIZATION_VIOLATION)
    assert p.buffered <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"PUB foo ", b"SUB ", b"CONNECT ", b"UNSUB ", b"HPUB x "]), st.integers(1, 20))
def test_a_control_line_that_never_ends_is_refused_before_memory_grows(verb, rounds):
    p = Parser(max_control_line=1024)
    try:
        for _ in range(rounds):
            for _ in p.feed(verb + b"a" * 300):
                pass
            verb = b""
    except ProtocolError as e:
        assert e.err == errors.ERR_MAX_CONTROL_LINE
    assert p.buffered <= 1024 + 300 + 10


def test_endless_ping_junk_and_spaces_hold_no_memory():
    for start in (b"PING", b"PUB", b"+OK"):
        p = Parser()
        for data in [start] + [b" " * 10_000] * 20:
            for _ in p.feed(data):
                pass
        assert p.buffered < 16


def test_a_huge_declared_payload_is_refused_at_the_control_line():
    p = Parser(max_payload=1024)
    try:
        list(p.feed(b"PUB foo 1025\r\n"))
    except ProtocolError as e:
        assert e.err == errors.ERR_MAX_PAYLOAD
    else:
        raise AssertionError("no error")
    assert p.buffered == 0


def test_operations_after_an_error_are_never_yielded():
    p = Parser()
    ops = []
    try:
        for op in p.feed(b"PING\r\nXXX\r\nPING\r\n"):
            ops.append(op)
    except ProtocolError as e:
        assert e.err == errors.ERR_UNKNOWN_PROTOCOL
    assert ops == [(protocol.PING,)]
    try:
        list(p.feed(b"PING\r\n"))
    except ProtocolError:
        pass
    else:
        raise AssertionError("a failed parser must stay failed")


def test_nothing_but_connect_is_accepted_while_auth_is_expected():
    p = Parser(expect_connect=True)
    gen = p.feed(b"CONNECT {}\r\nPING\r\n")
    assert next(gen) == (protocol.CONNECT, b"{}")
    try:
        next(gen)
    except ProtocolError as e:
        assert e.err == errors.ERR_AUTHORIZATION_VIOLATION
    else:
        raise AssertionError("PING before auth was accepted")
    p = Parser(expect_connect=True)
    gen = p.feed(b"CONNECT {}\r\nPING\r\n")
    next(gen)
    p.expect_connect = False  # the connection authenticated the CONNECT
    assert list(gen) == [(protocol.PING,)]


def parse_until_error(data: bytes, runs: bool, points=(), **limits) -> tuple[list[tuple], str | None]:
    p = Parser(headers=True, runs=runs, **limits)
    out = []
    try:
        for chunk in cut(data, list(points)):
            for op in p.feed(chunk):
                out.extend(protocol.expand_run(op) if op[0] in (protocol.PUBS, protocol.PUBB) else [op])
    except ProtocolError as e:
        return out, e.err
    return out, None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=8), st.integers(0, 30), st.binary(max_size=12), st.integers(0, 30),
       st.sampled_from([b"PUB a ", b"PUB a  ", b"PUB a.b "]), st.lists(st.integers(0, 2000), max_size=4))
def test_runs_of_identical_messages_agree_with_one_by_one_parsing(payload, k, junk, j, head, points):
    """Long runs of identical messages are checked in bulk; with junk in between, or a payload that looks like
    a header, the result (operations, and the error where it stops) is the same as parsing one by one."""
    record = head + b"%d\r\n%s\r\n" % (len(payload), payload)
    data = record * k + junk + record * j
    assert parse_until_error(data, runs=True, points=points) == parse_until_error(data, runs=False)


def test_a_payload_holding_the_header_is_not_mistaken_for_a_message():
    inner = b"PUB a 3\r\nxyz\r\n"
    record = b"PUB a %d\r\n%s\r\n" % (len(inner), inner)
    assert parse_until_error(record * 10, runs=True)[0] == [(protocol.PUB, b"a", None, b"%d\r\n%s\r\n" % (
        len(inner), inner), 4)] * 10


@st.composite
def publishes(draw) -> bytes:
    """A PUB as a batch takes it, or one just outside what it takes (reply, tab, lower case, two spaces, a size
    or control line over the limits below, a bad trailer, junk)."""
    subject = draw(st.sampled_from([b"a", b"b.c", b"d", b"x" * 40]))
    payload = draw(st.binary(max_size=30))
    kind = draw(st.sampled_from(["pub"] * 6 + ["natspy", "reply", "tab", "lower", "big", "trailer", "junk"]))
    if kind == "natspy":
        return b"PUB %s  %d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "reply":
        return b"PUB %s r %d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "tab":
        return b"PUB %s\t%d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "lower":
        return b"pub %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    if kind == "big":
        return b"PUB %s 25\r\n%s\r\n" % (subject, b"y" * 25)
    if kind == "trailer":
        return b"PUB %s %d\r\n%sxy" % (subject, len(payload), payload)
    if kind == "junk":
        return draw(st.binary(max_size=6))
    return b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)


@settings(max_examples=400, deadline=None)
@given(st.lists(publishes(), min_size=1, max_size=30).map(b"".join), st.lists(st.integers(0, 2000), max_size=4),
       st.booleans())
def test_batches_agree_with_one_by_one_parsing(data, points, warm):
    """Batches of publishes to changing subjects (PUBB) give the same operations, and stop with the same error at
    the same place, as parsing one by one, under any cut into reads; with limits a batch must not pass: a
    control line over 40 bytes, a payload over 24. `warm`: ten small publishes and one with a reply first, after
    which the parser cuts the next batch with one split of the read (its other way)."""
    if warm:
        data = b"".join(b"PUB w.%d 1\r\nw\r\n" % i for i in range(10)) + b"PUB w r 1\r\nw\r\n" + data
    limits = {"max_control_line": 40, "max_payload": 24}
    assert parse_until_error(data, runs=True, points=points, **limits) == \
        parse_until_error(data, runs=False, **limits)


def test_a_split_batch_stops_where_one_by_one_parsing_stops():
    """Each way a message can fall outside a batch, met while the parser cuts batches with a split (within the
    batch, or as its first message): the same operations and the same error as one by one."""
    warm = b"".join(b"PUB w.%d 1\r\nw\r\n" % i for i in range(10)) + b"PUB w r 1\r\nw\r\n"
    before = b"PUB a 1\r\nx\r\nPUB b 2\r\nxy\r\n"
    after = b"PUB e 1\r\nx\r\nPUB f 1\r\nx\r\n"
    inner = b"PUB q 3\r\nabc\r\n"
    for odd in (b"PUB c 1\r\nxyz", b"PUB c 0\r\nxy", b"PUB c 25\r\n" + b"y" * 25 + b"\r\n",
                b"PUB " + b"c" * 39 + b" 1\r\nx\r\n", b"PUB " + b"c" * 31 + b" 1\r\nx\r\n", b"PUB c  1\r\nx\r\n",
                b"PUB c r 1\r\nx\r\n", b"PUB c %d\r\n%s\r\n" % (len(inner), inner), b"PING\r\n",
                b"PUB c 1\r\nx\r\nPUB c 1\r\nx\r\n", b"PUB c  1\r\nx\r\nPUB d 1\r\nx\r\nPUB e r 1\r\nx\r\n",
                b"PUB c 1\r\nx\r\n" * 3, b"PUB c 1\r\nx\r\n" * 2 + b"PUB d 1\r\nx\r\n" * 2 + b"PUB c 1\r\nx\r\n" * 3):
        for data in (warm + before + odd + after, warm + odd + before + after):   # odd within, or first
            assert parse_until_error(data, runs=True, max_control_line=40, max_payload=24) == \
                parse_until_error(data, runs=False, max_control_line=40, max_payload=24), odd
