"""Stream lifecycle through the JetStream API: defaults, create/update/delete, names and lists, info, purge,
message get and delete, and the errors nats-server answers with."""
import json

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from .helpers import api, connected, error_of, eventually, publish_raw, run


def test_create_fills_in_nats_server_defaults(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            return await api(nc, "$JS.API.STREAM.CREATE.ORDERS", {"name": "ORDERS", "subjects": ["orders.>"]})

    resp = run(scenario())
    assert resp["type"] == "io.nats.jetstream.api.v1.stream_create_response"
    cfg = resp["config"]
    assert cfg["retention"] == "limits" and cfg["storage"] == "file" and cfg["discard"] == "old"
    assert cfg["duplicate_window"] == 120_000_000_000
    for limit in ("max_msgs", "max_bytes", "max_msgs_per_subject", "max_msg_size", "max_consumers"):
        assert cfg[limit] == -1, limit
    assert cfg["num_replicas"] == 1 and cfg["max_age"] == 0
    assert cfg["metadata"]["_nats.req.level"] == "0"
    assert resp["state"]["messages"] == 0 and resp["state"]["first_ts"] == "0001-01-01T00:00:00Z"
    assert resp["did_create"] is True


def test_subjects_default_to_the_name_and_duplicate_window_to_max_age(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            return await api(nc, "$JS.API.STREAM.CREATE.EVENTS", {"name": "EVENTS", "max_age": 30_000_000_000})

    cfg = run(scenario())["config"]
    assert cfg["subjects"] == ["EVENTS"]
    assert cfg["duplicate_window"] == 30_000_000_000


def test_identical_create_is_idempotent_and_a_different_one_is_refused(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            first = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"]})
            again = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"]})
            other = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "max_msgs": 5})
            return first, again, other

    first, again, other = run(scenario())
    assert again["created"] == first["created"]
    assert error_of(other) == (400, 10058, "stream name already in use with a different configuration")


@pytest.mark.parametrize("body, expected", [
    ({"name": "A", "subjects": ["a.b"]}, (400, 10065, "subjects overlap with an existing stream")),
    ({"name": "B"}, (400, 10056, "stream name in subject does not match request")),
    ({"name": "A", "subjects": ["a b"]}, (500, 10052, "invalid subject")),
    ({"name": "A", "max_age": 50_000_000}, (500, 10052, "max age needs to be >= 100ms")),
    ({"name": "A", "num_replicas": 3}, (500, 10074, "replicas > 1 not supported in non-clustered mode")),
    ({"name": "A", "sealed": True}, (500, 10052, "stream configuration for create can not be sealed")),
    ({"name": "A", "subjects": ["x.*", "x.y"]}, (500, 10052, 'subject "x.*" overlaps with "x.y"')),
    ({"name": "A", "deny_purge": True, "allow_rollup_hdrs": True},
     (500, 10052, "roll-ups require the purge permission")),
    ({"name": "A", "duplicate_window": 5_000_000_000, "max_age": 1_000_000_000},
     (500, 10052, "duplicates window can not be larger then max age")),
])
def test_invalid_stream_configs_get_nats_server_errors(js_server, body, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.OTHER", {"name": "OTHER", "subjects": ["a.>"]})
            return await api(nc, "$JS.API.STREAM.CREATE.A", body)

    assert error_of(run(scenario())) == expected


def test_invalid_json_and_wrong_types_are_rejected(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            bad_type = await api(nc, "$JS.API.STREAM.CREATE.T", {"name": "T", "max_msgs": "many"})
            bad_enum = await api(nc, "$JS.API.STREAM.CREATE.T", {"name": "T", "retention": "forever"})
            return bad_type, bad_enum

    bad_type, bad_enum = run(scenario())
    assert error_of(bad_type) == (400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field "
                                              "StreamConfigRequest.max_msgs of type int64")
    assert error_of(bad_enum)[:2] == (400, 10025)


def test_unknown_stream_is_not_found(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            info = await api(nc, "$JS.API.STREAM.INFO.NOPE")
            delete = await api(nc, "$JS.API.STREAM.DELETE.NOPE")
            with pytest.raises(NotFoundError):
                await js.stream_info("NOPE")
            return info, delete

    info, delete = run(scenario())
    assert error_of(info) == (404, 10059, "stream not found")
    assert info["total"] == 0 and info["limit"] == 0
    assert error_of(delete) == (404, 10059, "stream not found")


def test_update_changes_limits_and_refuses_storage_change(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="U", subjects=["u.>"], storage=StorageType.MEMORY)
            for i in range(10):
                await js.publish(f"u.{i}", b"x")
            info = await js.update_stream(StreamConfig(name="U", subjects=["u.>", "w"], storage=StorageType.MEMORY,
                                                       max_msgs=3))
            refused = await api(nc, "$JS.API.STREAM.UPDATE.U", {"name": "U", "subjects": ["u.>"], "storage": "file"})
            missing = await api(nc, "$JS.API.STREAM.UPDATE.ZZ", {"name": "ZZ"})
            return info, refused, missing

    info, refused, missing = run(scenario())
    assert info.config.subjects == ["u.>", "w"]
    assert info.state.messages == 3 and info.state.first_seq == 8
    assert error_of(refused) == (500, 10052, "stream configuration update can not change storage type")
    assert error_of(missing) == (404, 10059, "stream not found")


def test_names_and_list_with_subject_filter(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            empty = await api(nc, "$JS.API.STREAM.NAMES")
            for name, subject in (("B", "b.>"), ("A", "a.>"), ("C", "c.*")):
                await js.add_stream(name=name, subjects=[subject], storage=StorageType.MEMORY)
            names = await api(nc, "$JS.API.STREAM.NAMES")
            filtered = await api(nc, "$JS.API.STREAM.NAMES", {"subject": "c.x"})
            listed = await api(nc, "$JS.API.STREAM.LIST", {"offset": 1})
            return empty, names, filtered, listed

    empty, names, filtered, listed = run(scenario())
    assert empty["streams"] is None and empty["total"] == 0
    assert names["streams"] == ["A", "B", "C"] and names["limit"] == 1024
    assert filtered["streams"] == ["C"]
    assert listed["total"] == 3 and listed["offset"] == 1 and listed["limit"] == 256
    assert [s["config"]["name"] for s in listed["streams"]] == ["B", "C"]


def test_info_reports_state_deleted_details_and_subjects(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="I", subjects=["i.>"])
            for subject in ("i.a", "i.b", "i.a", "i.c"):
                await js.publish(subject, b"payload")
            await js.delete_msg("I", 2)
            return await api(nc, "$JS.API.STREAM.INFO.I", {"deleted_details": True, "subjects_filter": "i.*"})

    info = run(scenario())
    st = info["state"]
    assert (st["messages"], st["first_seq"], st["last_seq"]) == (3, 1, 4)
    assert st["num_deleted"] == 1 and st["deleted"] == [2]
    assert st["subjects"] == {"i.a": 2, "i.c": 1} and st["num_subjects"] == 2
    assert info["total"] == 2
    assert st["bytes"] > 0 and st["first_ts"] != "0001-01-01T00:00:00Z"


def test_purge_all_by_subject_keep_and_sequence(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="P", subjects=["p.>"])
            for i in range(12):
                await js.publish(f"p.{i % 3}", str(i).encode())
            by_subject = await api(nc, "$JS.API.STREAM.PURGE.P", {"filter": "p.0"})
            keep = await api(nc, "$JS.API.STREAM.PURGE.P", {"filter": "p.1", "keep": 1})
            below = await api(nc, "$JS.API.STREAM.PURGE.P", {"seq": 9})
            both = await api(nc, "$JS.API.STREAM.PURGE.P", {"seq": 9, "keep": 1})
            state = (await js.stream_info("P")).state
            rest = await api(nc, "$JS.API.STREAM.PURGE.P")
            after = (await js.stream_info("P")).state
            return by_subject, keep, below, both, state, rest, after

    by_subject, keep, below, both, state, rest, after = run(scenario())
    assert by_subject == {"type": "io.nats.jetstream.api.v1.stream_purge_response", "success": True, "purged": 4}
    assert keep["purged"] == 3
    assert below["purged"] == 2
    assert error_of(both) == (400, 10003, "bad request") and both["purged"] == 0
    assert (state.messages, state.first_seq, state.last_seq) == (3, 9, 12)
    assert rest["purged"] == 3
    assert (after.messages, after.first_seq, after.last_seq) == (0, 13, 12)


def test_msg_get_and_delete(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="G", subjects=["g.>"], storage=StorageType.MEMORY)
            await js.publish("g.a", b"one", headers={"X-Key": "v"})
            await js.publish("g.b", b"two")
            await js.publish("g.a", b"three")
            first = await js.get_msg("G", 1)
            last_a = await api(nc, "$JS.API.STREAM.MSG.GET.G", {"last_by_subj": "g.a"})
            next_b = await api(nc, "$JS.API.STREAM.MSG.GET.G", {"next_by_subj": "g.b", "seq": 1})
            bad = await api(nc, "$JS.API.STREAM.MSG.GET.G", {"seq": 1, "last_by_subj": "g.a"})
            empty = await api(nc, "$JS.API.STREAM.MSG.GET.G")
            deleted = await api(nc, "$JS.API.STREAM.MSG.DELETE.G", {"seq": 2})
            again = await api(nc, "$JS.API.STREAM.MSG.DELETE.G", {"seq": 2})
            gone = await api(nc, "$JS.API.STREAM.MSG.GET.G", {"seq": 2})
            return first, last_a, next_b, bad, empty, deleted, again, gone

    first, last_a, next_b, bad, empty, deleted, again, gone = run(scenario())
    assert first.data == b"one" and first.headers["X-Key"] == "v" and first.subject == "g.a"
    assert last_a["message"]["seq"] == 3 and last_a["message"]["subject"] == "g.a"
    assert next_b["message"]["seq"] == 2
    assert error_of(bad) == (400, 10003, "bad request")
    assert error_of(empty) == (400, 10003, "bad request")
    assert deleted == {"type": "io.nats.jetstream.api.v1.stream_msg_delete_response", "success": True}
    assert error_of(again) == (400, 10043, "sequence 2 not found")
    assert error_of(gone) == (404, 10037, "no message found")


def test_msg_get_with_a_pipelined_reads_body_answers_as_any_other_body(js_server):
    """`{"seq":N,"next_by_subj":"S"}` exactly (what the lab sends per message, which the embedded server answers
    by a shorter path) gets byte for byte the answer of the same request spaced out, found or not, bad, for an
    unknown stream, with a required API level header. A message found is answered outside the API layer: not
    counted in the account's API total, no API audit advisory; the errors are counted and audited."""
    asks = [(1, "mg.>"), (2, "mg.b"), (2, "mg.*"), (0, "mg.a"), (4, "mg.>"), (99, "mg.>"), (1, "nope"), (0, ""),
            (3, ""), (18446744073709551615, "mg.>")]
    too_new = {"Nats-Required-Api-Level": "999"}

    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="MG", subjects=["mg.>"])
            await js.publish("mg.a", b"one", headers={"X-Key": "v"})
            await js.publish("mg.b", b"")
            await js.publish("mg.a", b"three <&>")
            audits = []

            async def audited(msg):
                audit = json.loads(msg.data)
                if "MSG.GET" in audit["subject"]:
                    audits.append(audit)

            async def count():
                return len(audits)

            await nc.subscribe("$JS.EVENT.ADVISORY.API", cb=audited)
            await nc.flush()
            before = (await api(nc, "$JS.API.INFO"))["api"]
            pairs = []
            for stream, headers in (("MG", None), ("NOPE", None), ("MG", too_new)):
                for seq, subject in asks:
                    tight = b'{"seq":%d,"next_by_subj":"%s"}' % (seq, subject.encode())
                    spaced = b'{"seq": %d, "next_by_subj": "%s"}' % (seq, subject.encode())
                    pairs.append([(await nc.request(f"$JS.API.STREAM.MSG.GET.{stream}", body, timeout=2,
                                                    headers=headers)).data for body in (tight, spaced)])
            after = (await api(nc, "$JS.API.INFO"))["api"]
            errors = 2 * sum(b'"error"' in tight for tight, _ in pairs)
            # Audits go out in order: once the last request's is in, any of a found message would be too.
            await eventually(count, lambda n: n >= errors)
            return pairs, before, after, errors, audits

    pairs, before, after, errors, audits = run(scenario())
    assert errors == 50
    assert (after["total"] - before["total"], after["errors"] - before["errors"]) == (errors + 1, errors)
    assert len(audits) == errors and all('"error"' in a["response"] for a in audits)
    for tight, spaced in pairs:
        assert tight == spaced
    answers = [json.loads(tight) for tight, _ in pairs]
    found = [a["message"]["seq"] for a in answers[:len(asks)] if "message" in a]
    assert found == [1, 2, 2, 1, 3]  # the last, (3, ""), is a get by sequence
    assert [error_of(a)[1] for a in answers[:len(asks)] if "error" in a] == [10037, 10037, 10037, 10003, 10037]
    assert [error_of(a) for a in answers[len(asks):2 * len(asks)]].count((404, 10059, "stream not found")) == 9
    assert {error_of(a)[1] for a in answers[2 * len(asks):]} == {10185}


def test_deny_delete_deny_purge_and_sealed(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.D", {"name": "D", "deny_delete": True, "deny_purge": True,
                                                        "storage": "memory"})
            await js.publish("D", b"x")
            no_delete = await api(nc, "$JS.API.STREAM.MSG.DELETE.D", {"seq": 1})
            no_purge = await api(nc, "$JS.API.STREAM.PURGE.D")
            cancel = await api(nc, "$JS.API.STREAM.UPDATE.D", {"name": "D", "storage": "memory"})
            sealed = await api(nc, "$JS.API.STREAM.UPDATE.D", {"name": "D", "deny_delete": True, "deny_purge": True,
                                                                 "storage": "memory", "sealed": True})
            publish = await publish_raw(nc, "D", b"y")
            return no_delete, no_purge, cancel, sealed, publish

    no_delete, no_purge, cancel, sealed, publish = run(scenario())
    assert error_of(no_delete) == (500, 10057, "message delete not permitted")
    assert error_of(no_purge) == (500, 10110, "stream purge not permitted")
    assert error_of(cancel) == (500, 10052, "stream configuration update can not cancel deny message deletes")
    assert sealed["config"]["sealed"] is True and sealed["config"]["discard"] == "new"
    assert publish == {"error": {"code": 400, "err_code": 10109, "description": "invalid operation on sealed stream"},
                       "stream": "D", "seq": 0}


def test_delete_stream_and_account_info(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="X", subjects=["x"], storage=StorageType.MEMORY)
            await js.publish("x", b"12345")
            before = await js.account_info()
            assert await js.delete_stream("X") is True
            after = await js.account_info()
            not_empty = await api(nc, "$JS.API.STREAM.DELETE.Y", b"x")
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request("x", b"after delete", timeout=1)
            return before, after, not_empty

    before, after, not_empty = run(scenario())
    assert before.streams == 1 and before.memory > 0
    assert after.streams == 0 and after.memory == 0
    assert error_of(not_empty) == (400, 10038, "expected an empty request payload")


def test_retention_and_storage_types_round_trip(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            return await js.add_stream(name="R", subjects=["r.>"], retention=RetentionPolicy.INTEREST,
                                       storage=StorageType.MEMORY, description="interest", metadata={"team": "a"})

    info = run(scenario())
    assert info.config.retention == RetentionPolicy.INTEREST
    assert info.config.description == "interest"
    assert info.config.metadata["team"] == "a"


def test_bad_request_error_maps_to_nats_py_error(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="E", subjects=["e"])
            with pytest.raises(BadRequestError) as err:
                await js.add_stream(name="E2", subjects=["e"])
            return err.value

    err = run(scenario())
    assert err.err_code == 10065




def test_cluster_only_endpoints_answer_that_they_need_clustering(js_server):
    """A lone server answers leader step-down, peer removal and 2.15's peer evacuation and move cancelling
    (of a stream or consumer that exists or not) with 10010, as nats-server does."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
            await api(nc, "$JS.API.CONSUMER.CREATE.S.c", {"stream_name": "S", "config": {"name": "c"}})
            out = {}
            for subject, body in (("STREAM.LEADER.STEPDOWN.S", b""), ("CONSUMER.LEADER.STEPDOWN.S.c", b""),
                                  ("STREAM.PEER.REMOVE.S", b'{"peer": "x"}'), ("STREAM.LEADER.STEPDOWN.NONE", b""),
                                  ("STREAM.PEER.EVACUATE.S", b'{"peer": "x"}'), ("STREAM.CANCEL_MOVE.S", b""),
                                  ("CONSUMER.PEER.EVACUATE.S.c", b'{"peer": "x"}'), ("STREAM.CANCEL_MOVE.NONE", b""),
                                  ("CONSUMER.PEER.EVACUATE.S.NONE", b"{}")):
                out[subject] = json.loads((await nc.request(f"$JS.API.{subject}", body, timeout=3)).data)
            return out

    error = {"code": 503, "err_code": 10010, "description": "JetStream clustering support required"}
    prefix = "io.nats.jetstream.api.v1."
    assert run(scenario()) == {
        "STREAM.LEADER.STEPDOWN.S": {"type": prefix + "stream_leader_stepdown_response", "error": error},
        "CONSUMER.LEADER.STEPDOWN.S.c": {"type": prefix + "consumer_leader_stepdown_response", "error": error},
        "STREAM.PEER.REMOVE.S": {"type": prefix + "stream_remove_peer_response", "error": error},
        "STREAM.LEADER.STEPDOWN.NONE": {"type": prefix + "stream_leader_stepdown_response", "error": error},
        "STREAM.PEER.EVACUATE.S": {"type": prefix + "stream_evacuate_peer_response", "error": error},
        "STREAM.CANCEL_MOVE.S": {"type": prefix + "stream_cancel_move_response", "error": error},
        "CONSUMER.PEER.EVACUATE.S.c": {"type": prefix + "consumer_evacuate_peer_response", "error": error},
        "STREAM.CANCEL_MOVE.NONE": {"type": prefix + "stream_cancel_move_response", "error": error},
        "CONSUMER.PEER.EVACUATE.S.NONE": {"type": prefix + "consumer_evacuate_peer_response", "error": error},
    }


def test_answers_escape_html_characters_as_go_does(js_server):
    """nats-server's answers are Go's encoding/json: `<`, `>` and `&` inside strings are written \\u003c,
    \\u003e and \\u0026, non-ASCII is written as UTF-8. A client comparing raw answers sees the same bytes."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            body = {"name": "ESC", "subjects": ["esc.>", "a<b&c"], "description": "café <html>"}
            created = await nc.request("$JS.API.STREAM.CREATE.ESC", json.dumps(body).encode(), timeout=5)
            await nc.request("a<b&c", b"x", timeout=5)
            got = await nc.request("$JS.API.STREAM.MSG.GET.ESC", b'{"seq":1}', timeout=5)
            return created.data, got.data

    created, got = run(scenario())
    assert b'"subjects":["esc.\\u003e","a\\u003cb\\u0026c"]' in created
    assert '"description":"café \\u003chtml\\u003e"'.encode() in created
    assert b'"subject":"a\\u003cb\\u0026c"' in got
    assert json.loads(got)["message"]["subject"] == "a<b&c"
