"""Differential fuzzing of the JetStream API: the same request, with fields of the right and of every wrong JSON
type, boundary numbers (-1, 2^31, 2^63, 2^64, 1.0, 1.5), null, unknown fields and raw bodies, sent to nats-server
and to the embedded server; the answers must agree once ids and times are masked.

Each case is one request on a stream F (file storage, three messages, direct get on) or on a scratch stream X and
consumer C, both deleted after each case. The corpus of cases found so far is replayed first.
"""
from __future__ import annotations

import asyncio
import json

import nats
import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from embedded_server.jetstream import requests as R
from tests.servers import RunningServer

from .differential import Loop, SEED, corpus_line, difference, examples, load_corpus, mask

ENDPOINTS = {
    "STREAM.PURGE.F": R.STREAM_PURGE_REQUEST, "STREAM.MSG.GET.F": R.MSG_GET_REQUEST,
    "STREAM.MSG.DELETE.F": R.MSG_DELETE_REQUEST, "STREAM.INFO.F": R.STREAM_INFO_REQUEST,
    "STREAM.NAMES": R.STREAM_NAMES_REQUEST, "STREAM.LIST": R.STREAM_LIST_REQUEST,
    "CONSUMER.NAMES.F": R.CONSUMERS_REQUEST, "CONSUMER.LIST.F": R.CONSUMERS_REQUEST,
    "CONSUMER.PAUSE.F.C": R.CONSUMER_PAUSE_REQUEST, "STREAM.CREATE.X": R.STREAM_CONFIG_REQUEST,
    "CONSUMER.CREATE.F.C": R.CREATE_CONSUMER_REQUEST, "DIRECT.GET.F": R.MSG_GET_REQUEST,
    "CONSUMER.UNPIN.F.C": R.CONSUMER_UNPIN_REQUEST,
}

NASTY = st.sampled_from([None, -1, 0, 1, 2, 1.0, 1.5, 1e2, 2 ** 31, 2 ** 31 - 1, 2 ** 63, 2 ** 63 - 1, 2 ** 64,
                         -(2 ** 63) - 1, "1", "", "x", "-1", True, False, [], {}, [1], ["a"], {"a": 1}])
STRINGS = st.sampled_from(["", "F", "X", "C", "f.a", "f.*", "f.>", ">", "a b", "x.y", "ü"])
TIMES = st.sampled_from(["2024-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2024-01-01T00:00:00", "2024-02-30T00:00:00Z",
                         "2024-01-01T00:00:00.123456789123Z", "2024-01-01T25:00:00Z", "2024-01-01T00:00:00+24:00",
                         "2024-01-01t00:00:00z", "0001-01-01T00:00:00Z", "junk", ""])


def value_for(typ):
    if isinstance(typ, R.Enum):
        good = [json.loads(raw) for raw in typ.values] or ["s2", "none"]
        return st.sampled_from(good) | NASTY
    if typ is R.STRING:
        return STRINGS | NASTY
    if typ is R.BOOL:
        return st.booleans() | NASTY
    if typ is R.TIME:
        return TIMES | NASTY
    if isinstance(typ, R.Int):
        return st.integers(0, 5) | st.sampled_from([1_000_000_000, 100_000_000, 50_000_000]) | NASTY
    if isinstance(typ, R.Slice):
        return st.lists(value_for(typ.item), max_size=2) | NASTY
    if isinstance(typ, R.Map):
        return st.dictionaries(st.sampled_from(["a", "_nats.x"]), STRINGS | NASTY, max_size=2) | NASTY
    if isinstance(typ, R.Struct):
        return bodies_for(typ, max_fields=2) | NASTY
    raise TypeError(typ)


# Fields of features the embedded server refuses on purpose (docs/differences.md): not fuzzed.
UNSUPPORTED = {"mirror", "sources", "allow_msg_counter", "allow_atomic", "allow_msg_schedules"}


def bodies_for(typ: R.Struct, max_fields: int = 3):
    names = sorted(set(typ.fields) - UNSUPPORTED)
    field = st.sampled_from(names).flatmap(lambda n: st.tuples(st.just(n), value_for(typ.fields[n])))
    unknown = st.tuples(st.sampled_from(["bogus", "Seq", "NAME"]), NASTY)
    return st.lists(field | unknown, max_size=max_fields).map(dict)


@st.composite
def cases(draw) -> dict:
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    body = draw(bodies_for(ENDPOINTS[endpoint]))
    if endpoint == "STREAM.CREATE.X" and draw(st.booleans()):
        body["name"] = "X"
    if endpoint == "CONSUMER.CREATE.F.C" and draw(st.booleans()):
        body["stream_name"] = "F"
    raw = json.dumps(body)
    shape = draw(st.sampled_from(["plain"] * 8 + ["two values", "array", "empty", "number"]))
    if shape == "two values":
        raw = raw + " " + json.dumps(draw(bodies_for(ENDPOINTS[endpoint], 1)))
    elif shape == "array":
        raw = json.dumps([body])
    elif shape == "empty":
        raw = ""
    elif shape == "number":
        raw = "5"
    return {"subject": "$JS.API." + endpoint, "body": raw}


async def _request(nc, subject: str, body: bytes):
    """Every answer to one request: one JSON reply, or a direct get's messages up to its status."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, body, reply=inbox)
    out = []
    try:
        while True:
            try:
                msg = await sub.next_msg(0.5 if out or ".DIRECT." in subject else 3)
            except nats.errors.TimeoutError:
                out.append("no more")
                break
            hdrs = dict(msg.headers or {})
            if "Status" in hdrs:
                out.append({"status": hdrs["Status"], "description": hdrs.get("Description")})
                break
            if ".DIRECT." in subject:
                out.append({"headers": hdrs, "data": msg.data.decode("latin-1")})
                if not hdrs.get("Nats-Num-Pending"):
                    break
                continue
            out.append(json.loads(msg.data))
            break
    finally:
        await sub.unsubscribe()
    return mask(out)


async def _reset(nc):
    for subject in ("$JS.API.CONSUMER.DELETE.F.C", "$JS.API.STREAM.DELETE.X"):
        await nc.request(subject, b"", timeout=5)
    info = json.loads((await nc.request("$JS.API.STREAM.INFO.F", b"", timeout=5)).data)
    if info.get("state", {}).get("last_seq", 0) >= 2 ** 62:
        # A purge to a sequence near 2^63 happened: sequences past 2^63 in a file store are issue 11's store item,
        # not what this fuzzer looks at. Start F again.
        await nc.request("$JS.API.STREAM.DELETE.F", b"", timeout=5)
        info = {"error": "deleted"}
    while info.get("error"):
        info = json.loads((await nc.request("$JS.API.STREAM.CREATE.F", json.dumps(
            {"name": "F", "subjects": ["f.>"], "allow_direct": True, "allow_msg_ttl": True}).encode(), timeout=5)).data)
        if info.get("error"):
            await asyncio.sleep(0.05)  # nats-server may still be removing the deleted stream's files
    if info.get("state", {}).get("messages", 0) < 3 and not info.get("config", {}).get("sealed"):
        await nc.request("$JS.API.STREAM.PURGE.F", b"", timeout=5)
        for subject in ("f.a", "f.b", "f.a"):
            await nc.request(subject, b"x", timeout=5)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    servers = [RunningServer(kind, ["-js", "-sd", str(tmp_path_factory.mktemp(kind) / "store")],
                             tmp_path_factory.mktemp(kind)).start() for kind in ("nats-server", "embedded")]
    loop = Loop()
    conns = [loop.run(nats.connect(s.url)) for s in servers]
    yield loop, conns
    for nc in conns:
        loop.run(nc.close())
    loop.close()
    for srv in servers:
        srv.stop()


def _both(pair, case: dict):
    loop, conns = pair
    answers = []
    for nc in conns:
        loop.run(_reset(nc))
        answers.append(loop.run(_request(nc, case["subject"], case["body"].encode())))
    return answers


@pytest.mark.parametrize("case", load_corpus("api"), ids=lambda c: f"{c['subject']} {c['body'][:40]}")
def test_corpus_cases_agree(pair, case):
    nats_answer, embedded_answer = _both(pair, case)
    assert embedded_answer == nats_answer, difference(nats_answer, embedded_answer)


def test_generated_cases_agree(pair):
    @seed(SEED)
    @settings(max_examples=examples(40), deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def check(case):
        nats_answer, embedded_answer = _both(pair, case)
        assert embedded_answer == nats_answer, \
            f"add to tests/fuzz/corpus/api.json: {corpus_line(case)}\n{difference(nats_answer, embedded_answer)}"

    check()
