"""Random client sessions sent to both servers, answers compared byte for byte (the fakeredis way): hypothesis
writes sequences of SUB, UNSUB (with and without max), PUB, HPUB and PING over a small subject space, in verbose,
pedantic, echo and header modes; both servers must answer each one identically.

One subscription per distinct subject: nats-server delivers to subscriptions that sit on the same trie node in
Go map order (random), so those orders are not comparable."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.core.wire import exchange
from tests.servers import RunningServer

TOKENS = ["a", "b"]
literal = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3).map(".".join)
wild = st.lists(st.sampled_from(TOKENS + ["*"]), min_size=1, max_size=3).map(".".join) | \
    st.lists(st.sampled_from(TOKENS), max_size=2).map(lambda t: ".".join(t + [">"]))


@st.composite
def sessions(draw) -> bytes:
    opts = draw(st.fixed_dictionaries({"verbose": st.booleans(), "pedantic": st.booleans(), "echo": st.booleans(),
                                       "headers": st.booleans(), "no_responders": st.booleans()}))
    connect = "CONNECT {%s}\r\n" % ",".join(f'"{k}":{str(v).lower()}' for k, v in opts.items())
    out = [connect.encode()]
    subjects: set[str] = set()
    sids: list[int] = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["sub", "sub", "qsub", "unsub", "pub", "pub", "pub", "hpub", "ping"]))
        if kind in ("sub", "qsub"):
            subject = draw(wild | literal)
            if subject in subjects:
                continue
            subjects.add(subject)
            sids.append(len(sids) + 1)
            # A queue group of one member (which member of a bigger group gets a message is random).
            queue = b" q%d" % sids[-1] if kind == "qsub" else b""
            out.append(b"SUB %s%s %d\r\n" % (subject.encode(), queue, sids[-1]))
        elif kind == "unsub" and sids:
            sid = draw(st.sampled_from(sids))
            limit = draw(st.sampled_from(["", " 0", " 1", " 2"]))
            out.append(b"UNSUB %d%s\r\n" % (sid, limit.encode()))
        elif kind == "pub":
            subject = draw(literal | wild)
            payload = draw(st.binary(max_size=6))
            reply = draw(st.sampled_from(["", " r.1"]))
            out.append(b"PUB %s%s %d\r\n%s\r\n" % (subject.encode(), reply.encode(), len(payload), payload))
        elif kind == "hpub":
            subject = draw(literal)
            hdr = b"NATS/1.0\r\nK: %d\r\n\r\n" % draw(st.integers(0, 9))
            payload = draw(st.binary(max_size=6))
            out.append(b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(hdr), len(hdr) + len(payload), hdr,
                                                       payload))
        elif kind == "ping":
            out.append(b"PING\r\n")
    out.append(b"PING\r\n")
    return b"".join(out)


def subscriptions(srv: RunningServer) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/varz", timeout=5) as resp:
        return json.load(resp)["subscriptions"]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    servers = [RunningServer(kind, ["-m", "-1"], tmp_path_factory.mktemp(kind)).start()
               for kind in ("nats-server", "embedded")]
    for srv in servers:
        srv.idle_subscriptions = subscriptions(srv)
    yield servers
    for srv in servers:
        srv.stop()


def wait_until_idle(servers) -> None:
    """nats-server removes a closed connection's subscriptions on another goroutine, and removing them empties
    match-cache entries: a session that starts before that has happened sees another delivery order. Each
    session starts once the one before has left no subscription behind on either server."""
    deadline = time.monotonic() + 10
    while any(subscriptions(srv) != srv.idle_subscriptions for srv in servers):
        if time.monotonic() > deadline:
            raise AssertionError("the previous session's subscriptions were never removed")
        time.sleep(0.005)


def answers(servers, data: bytes):
    wait_until_idle(servers)
    async def run():
        pongs = data.count(b"PING\r\n")
        return await asyncio.gather(*(exchange(srv.port, data, settle=0.03, pongs=pongs) for srv in servers))
    return asyncio.run(asyncio.wait_for(run(), 30))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions())
# nats-server appends a new subscription to the match results it has cached: a subject published before its
# overlapping subscriptions existed delivers in subscription order, not in the trie's `>`-first order.
@example(data=b'CONNECT {"verbose":false,"pedantic":false,"echo":true,"headers":false,"no_responders":false}\r\n'
         b"PUB a 0\r\n\r\nSUB a 1\r\nSUB > 2\r\nPUB a 0\r\n\r\nPING\r\n")
# A plain subscriber and queue members on one connection: the members join the plain subscribers' delivery
# unless one needs a check (an auto-unsubscribe limit here), when that group and the next go the checked way.
@example(data=b'CONNECT {"verbose":false,"pedantic":false,"echo":true,"headers":false,"no_responders":false}\r\n'
         b"SUB a 1\r\nSUB * q2 2\r\nSUB > q3 3\r\nPUB a 1\r\nx\r\nUNSUB 2 2\r\nPUB a r.1 1\r\ny\r\n"
         b"PUB a 1\r\nz\r\nPUB a 0\r\n\r\nPING\r\n")
@example(data=b'CONNECT {"verbose":false,"pedantic":false,"echo":false,"headers":false,"no_responders":false}\r\n'
         b"SUB a 1\r\nSUB > q2 2\r\nPUB a 1\r\nx\r\nPING\r\n")
def test_random_sessions_get_the_same_answers(both, data):
    real, ours = answers(both, data)
    assert (ours.masked, ours.state) == (real.masked, real.state), data
