"""Bad values in JetStream API requests get nats-server's answer: Go's JSON type and range rules, nats-server's
errors for null enums and unknown fields, and never silence or a wrong action (a negative `keep` must not purge).

Every case runs on both servers; the expected answers are the ones nats-server gives.
"""
import ast
import json
from pathlib import Path

import nats
import pytest

from embedded_server.jetstream import errors
from .helpers import api, connected, error_of, publish_raw, run

REPO = Path(__file__).resolve().parents[2]


def _bad_json(text: str):
    return (400, 10025, f"invalid JSON: {text}")


API_CASES = [
    ("STREAM.PURGE.S", {"keep": -1},
     _bad_json("json: cannot unmarshal number -1 into Go struct field JSApiStreamPurgeRequest.keep of type uint64")),
    ("STREAM.PURGE.S", {"keep": 1.5},
     _bad_json("json: cannot unmarshal number 1.5 into Go struct field JSApiStreamPurgeRequest.keep of type uint64")),
    ("STREAM.PURGE.S", {"seq": 2 ** 64},
     _bad_json("json: cannot unmarshal number 18446744073709551616 into Go struct field "
               "JSApiStreamPurgeRequest.seq of type uint64")),
    ("STREAM.PURGE.S", {"filter": 5},
     _bad_json("json: cannot unmarshal number into Go struct field JSApiStreamPurgeRequest.filter of type string")),
    ("STREAM.PURGE.S", {"bogus": 1}, _bad_json('json: unknown field "bogus"')),
    ("STREAM.PURGE.S", b"[1]",
     _bad_json("json: cannot unmarshal array into Go value of type server.JSApiStreamPurgeRequest")),
    ("STREAM.MSG.GET.S", {"seq": -1},
     _bad_json("json: cannot unmarshal number -1 into Go struct field JSApiMsgGetRequest.seq of type uint64")),
    ("STREAM.MSG.GET.S", b'{"seq": 1.0}',
     _bad_json("json: cannot unmarshal number 1.0 into Go struct field JSApiMsgGetRequest.seq of type uint64")),
    ("STREAM.MSG.GET.S", {"seq": "1"},
     _bad_json("json: cannot unmarshal string into Go struct field JSApiMsgGetRequest.seq of type uint64")),
    ("STREAM.MSG.GET.S", {"start_time": "2024-01-01T00:00:00"},
     _bad_json('parsing time "2024-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00"')),
    ("STREAM.MSG.GET.S", {"start_time": "2024-02-30T00:00:00Z"},
     _bad_json('parsing time "2024-02-30T00:00:00Z": day out of range')),
    ("STREAM.MSG.DELETE.S", {"seq": 3, "no_erase": "x"},
     _bad_json("json: cannot unmarshal string into Go struct field JSApiMsgDeleteRequest.no_erase of type bool")),
    ("STREAM.INFO.S", {"offset": "1"},
     _bad_json("json: cannot unmarshal string into Go struct field JSApiStreamInfoRequest.offset of type int")),
    ("STREAM.NAMES", {"offset": 1.5},
     _bad_json("json: cannot unmarshal number 1.5 into Go struct field JSApiStreamNamesRequest.offset of type int")),
    ("STREAM.LIST", {"subject": 5},
     _bad_json("json: cannot unmarshal number into Go struct field JSApiStreamListRequest.subject of type string")),
    ("CONSUMER.PAUSE.S.C", {"pause_until": 5},
     _bad_json("json: cannot unmarshal number into Go struct field JSApiConsumerPauseRequest.pause_until of type "
               "time.Time")),
    ("STREAM.CREATE.X", {"name": "X", "retention": None}, _bad_json('can not unmarshal "null"')),
    ("STREAM.CREATE.X", {"name": "X", "compression": None}, _bad_json("unknown compression algorithm")),
    ("STREAM.CREATE.X", {"name": "X", "max_msgs": 2 ** 63},
     _bad_json("json: cannot unmarshal number 9223372036854775808 into Go struct field StreamConfigRequest.max_msgs "
               "of type int64")),
    ("STREAM.CREATE.X", {"name": "X", "max_msg_size": 2 ** 31},
     _bad_json("json: cannot unmarshal number 2147483648 into Go struct field StreamConfigRequest.max_msg_size of "
               "type int32")),
    ("STREAM.CREATE.X", b'{"name": "X", "first_seq": -0}',
     _bad_json("json: cannot unmarshal number -0 into Go struct field StreamConfigRequest.first_seq of type uint64")),
    ("STREAM.CREATE.X", {"name": "X", "bogus": 1, "max_msgs": "x"}, _bad_json('json: unknown field "bogus"')),
    ("STREAM.CREATE.X", {"name": "X", "max_msgs": "x", "retention": "bad"},
     _bad_json("json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64")),
    ("STREAM.CREATE.X", {"name": "X", "mirror": {"name": "A", "bogus": 1}}, _bad_json('json: unknown field "bogus"')),
    ("STREAM.CREATE.X", {"name": "X", "sources": [5]},
     _bad_json("json: cannot unmarshal number into StreamConfigRequest.sources.0 of type server.StreamSource")),
    ("STREAM.CREATE.X", {"name": "X", "sources": [{"name": "A", "external": {"api": 5}}]},
     _bad_json("json: cannot unmarshal number into Go struct field StreamConfigRequest.sources.0.external.api of "
               "type string")),
    ("STREAM.CREATE.X", {"name": "X", "metadata": {"a": 5}},
     _bad_json("json: cannot unmarshal number into Go struct field StreamConfigRequest.metadata.a of type string")),
    ("STREAM.CREATE.X", b'{"name": "X"} 5',
     _bad_json("json: cannot unmarshal number into Go value of type server.StreamConfigRequest")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"sample_freq": "str"}},
     (400, 10095, 'failed to parse consumer sampling configuration: strconv.Atoi: parsing "str": invalid syntax')),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"sample_freq": "-5"}},
     (400, 10095, "failed to parse consumer sampling configuration: <nil>")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"sample_freq": "99999999999999999999%"}},
     (400, 10095, 'failed to parse consumer sampling configuration: strconv.Atoi: parsing "99999999999999999999": '
                  "value out of range")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"ack_policy": None}}, _bad_json('can not unmarshal "null"')),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"priority_policy": None}},
     _bad_json("unknown priority policy: null")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "action": None}, _bad_json("unknown consumer action: null")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"max_deliver": 2 ** 63}},
     _bad_json("json: cannot unmarshal number 9223372036854775808 into Go struct field "
               "CreateConsumerRequest.config.max_deliver of type int")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"backoff": [1.5]}},
     _bad_json("json: cannot unmarshal number 1.5 into CreateConsumerRequest.config.backoff.0 of type time.Duration")),
    ("CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {"bogus": 1}}, _bad_json('json: unknown field "bogus"')),
]


async def _setup(nc):
    await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "allow_direct": True,
                                              "allow_msg_ttl": True})
    for _ in range(3):
        await publish_raw(nc, "s.a", b"x")


def test_bad_request_values_get_nats_server_errors(js_server):
    async def scenario():
        async with connected(js_server) as (nc, _js):
            await _setup(nc)
            answers = []
            for suffix, body, _expected in API_CASES:
                answers.append(await api(nc, f"$JS.API.{suffix}", body))
            info = await api(nc, "$JS.API.STREAM.INFO.S")
            return answers, info

    answers, info = run(scenario(), timeout=90)
    got = [error_of(a) for a in answers]
    assert got == [expected for _s, _b, expected in API_CASES]
    assert info["state"]["messages"] == 3, "a refused purge or delete must not remove anything"


def test_case_of_field_names_does_not_matter_as_in_go(js_server):
    async def scenario():
        async with connected(js_server) as (nc, _js):
            return await api(nc, "$JS.API.STREAM.CREATE.Y", {"NAME": "Y", "Max_Msgs": 5})

    answer = run(scenario())
    assert answer["config"]["name"] == "Y" and answer["config"]["max_msgs"] == 5


DIRECT_CASES = [
    ({"seq": -1}, "408"), ({"seq": "1"}, "408"), ({"seq": 1.5}, "408"), ({"seq": 2 ** 64}, "408"),
    ({"seq": 1, "batch": "2"}, "408"), ({"multi_last": "s.a"}, "408"),
    ({"multi_last": ["s.a"], "up_to_time": 5}, "408"), ({"multi_last": ["s.a"], "up_to_time": "junk"}, "408"),
    ({"seq": 1, "batch": -1}, "204"), ({"seq": 1, "bogus": 1}, None),
]


async def _direct(nc, subject, body):
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, json.dumps(body).encode(), reply=inbox)
    try:
        msg = await sub.next_msg(5)
    finally:
        await sub.unsubscribe()
    return msg.headers.get("Status") if msg.headers else None


def test_direct_get_with_bad_values_is_answered_malformed(js_server):
    async def scenario():
        async with connected(js_server) as (nc, _js):
            await _setup(nc)
            return [await _direct(nc, "$JS.API.DIRECT.GET.S", body) for body, _ in DIRECT_CASES]

    statuses = run(scenario(), timeout=90)
    assert statuses == [status for _, status in DIRECT_CASES]


@pytest.mark.parametrize("ttl, accepted", [("2147483648", True), ("3000000000s", True),
                                           ("99999999999999999999999", True), ("100000000h", False),
                                           ("1.5s", True), ("-1", False)])
def test_long_message_ttls_on_a_file_stream_are_acknowledged(js_server, ttl, accepted):
    async def scenario():
        async with connected(js_server) as (nc, _js):
            await _setup(nc)
            return await publish_raw(nc, "s.ttl", b"x", headers={"Nats-TTL": ttl})

    ack = run(scenario())
    if accepted:
        assert ack == {"stream": "S", "seq": 4}
    else:
        assert error_of(ack) == (400, 10165, "invalid per-message TTL")


def test_pull_request_with_a_bad_value_gets_a_400_status(js_server):
    async def scenario():
        async with connected(js_server) as (nc, _js):
            await _setup(nc)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.P", {"stream_name": "S", "config": {"durable_name": "P",
                                                                                         "ack_policy": "explicit"}})
            try:
                msg = await nc.request("$JS.API.CONSUMER.MSG.NEXT.S.P", b'{"batch": "1"}', timeout=5)
            except nats.errors.TimeoutError:
                return None
            return msg.headers

    hdrs = run(scenario())
    assert hdrs["Status"] == "400"
    # nats-server decodes through a pointer to a pointer, and Go then names no struct before ".batch".
    assert hdrs["Description"] == "Bad Request - json: cannot unmarshal string into Go struct field .batch of type int"


def _error_keys_used() -> set[str]:
    found = set()
    for path in (REPO / "embedded_server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "api_error" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
    return found


def test_every_jetstream_error_the_code_raises_is_in_the_table():
    used = _error_keys_used()
    assert "JSConsumerInvalidSamplingErrF" in used and len(used) > 50
    assert sorted(k for k in used if not errors.known(k)) == []
