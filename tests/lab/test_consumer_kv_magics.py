"""%consumer and %kv through a real IPython shell, on every JetStream server kind."""
from __future__ import annotations

import time

import pandas as pd
import pytest
from nats.js.api import ConsumerInfo
from nats.js.errors import KeyWrongLastSequenceError

import pynats_lab
from pynats_lab import LabError
from tests.lab.conftest import assert_one_line_errors, cell, magic


def _orders(shell, n=6):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%nats pub orders.new o{{Count}} --count " + str(n) + " --js")


def test_pull_consumer_next_acks_naks_and_terms(lab_js, shell):
    _orders(shell)
    info = magic(shell, "%consumer add ORDERS worker --pull --ack-wait 30s --max-deliver 5")
    assert isinstance(info, ConsumerInfo) and info.config.ack_wait == 30 and info.config.max_deliver == 5
    got = magic(shell, "%consumer next ORDERS worker --count 2")
    assert got["data"].tolist() == ["o1", "o2"] and got["acked"].tolist() == ["ack", "ack"]
    assert got["consumer_seq"].tolist() == [1, 2] and got["delivered"].tolist() == [1, 1]
    assert got["pending"].tolist() == [5, 4]
    assert str(got["received"].dtype) == "datetime64[ns, UTC]"
    nak = magic(shell, "%consumer next ORDERS worker --nak")
    assert nak["data"].tolist() == ["o3"]
    again = magic(shell, "%consumer next ORDERS worker")
    assert again["data"].tolist() == ["o3"] and again["delivered"].tolist() == [2]
    magic(shell, "%consumer next ORDERS worker --term")
    held = magic(shell, "%consumer next ORDERS worker --no-ack")
    assert held["acked"].tolist() == [None]
    state = magic(shell, "%consumer info ORDERS worker")
    assert state.num_ack_pending == 1 and state.num_pending == 1 and state.num_redelivered == 0
    ls = magic(shell, "%consumer ls ORDERS")
    assert ls[["name", "kind", "pending", "ack_pending"]].values.tolist() == [["worker", "pull", 1, 1]]
    empty = magic(shell, "%consumer next ORDERS worker --count 5 --timeout 300ms")
    assert empty["data"].tolist() == ["o6"]
    assert str(magic(shell, "%consumer rm ORDERS worker")) == "deleted consumer worker on ORDERS"


def test_sub_acks_an_ack_flow_control_consumer_through_its_flow_control(lab_js, shell, capsys):
    """nats-server takes no per-message acks on `ack flow_control`: the answer to a flow control request acks."""
    _orders(shell, 5)
    magic(shell, "%consumer add ORDERS fc --push --target fc.in --ack flow_control --max-pending 10")
    got = magic(shell, "%consumer sub ORDERS fc --count 3")
    assert got["data"].tolist() == ["o1", "o2", "o3"] and got["acked"].tolist() == ["ack"] * 3
    assert got.summary.endswith("acknowledged through the answer to its flow control request (up to stream seq 3)")
    info = magic(shell, "%consumer info ORDERS fc")
    # o4 and o5 arrived after the third message and were not taken: delivered, not acknowledged
    assert (info.ack_floor.stream_seq, info.num_ack_pending) == (3, 2)
    magic(shell, "%nats pub orders.new o6 --js")
    kept = magic(shell, "%consumer sub ORDERS fc --count 1 --no-ack")
    assert kept["data"].tolist() == ["o6"] and kept["acked"].tolist() == [None]
    nothing = magic(shell, "%consumer sub ORDERS fc --timeout 300ms")
    assert len(nothing) == 0 and "3 delivered and not acknowledged (ack flow_control" in nothing.summary
    assert magic(shell, "%consumer info ORDERS fc").ack_floor.stream_seq == 3
    assert_one_line_errors(shell, capsys, {
        "%consumer next ORDERS fc": "%consumer next: fc is a push consumer: use %consumer sub ORDERS fc"})


def test_next_acks_what_arrived_while_it_waits_for_more(lab_js, shell):
    _orders(shell, 2)
    magic(shell, "%consumer add ORDERS short --pull --ack-wait 300ms")
    got = magic(shell, "%consumer next ORDERS short --count 5 --timeout 1s")
    assert got["data"].tolist() == ["o1", "o2"] and got["delivered"].tolist() == [1, 1], \
        "acked in time: nothing redelivered while next waited for messages that never came"
    assert magic(shell, "%consumer info ORDERS short").num_redelivered == 0


def test_push_consumer_sub_and_filters(lab_js, shell):
    _orders(shell, 4)
    magic(shell, "%nats pub orders.paid p{{Count}} --count 2 --js")
    magic(shell, "%consumer add ORDERS paid --push --target deliver.paid --filter orders.paid --deliver all")
    got = magic(shell, "%consumer sub ORDERS paid --count 2 --timeout 3s")
    assert got["data"].tolist() == ["p1", "p2"] and got["subject"].tolist() == ["orders.paid"] * 2
    assert magic(shell, "%consumer info ORDERS paid").num_ack_pending == 0
    magic(shell, "%consumer add ORDERS fromseq --pull --deliver 3")
    assert magic(shell, "%consumer next ORDERS fromseq")["seq"].tolist() == [3]
    magic(shell, "%consumer add ORDERS lastone --pull --deliver last")
    assert magic(shell, "%consumer next ORDERS lastone")["data"].tolist() == ["p2"]
    magic(shell, "%consumer add ORDERS recent --pull --deliver 1h")
    assert len(magic(shell, "%consumer next ORDERS recent --count 10 --timeout 500ms")) == 6


def test_consumer_mistakes_are_one_line(lab_js, shell, capsys):
    _orders(shell, 1)
    magic(shell, "%consumer add ORDERS pusher --push --target out.x")
    magic(shell, "%consumer add ORDERS puller")
    cases = {
        "%consumer add ORDERS p --push": "%consumer add: a push consumer needs --target SUBJECT",
        "%consumer add ORDERS p --deliver someday": "%consumer add: invalid --deliver 'someday'",
        "%consumer info ORDERS nobody": "%consumer info: consumer not found (10014)",
        "%consumer next ORDERS pusher": "%consumer next: pusher is a push consumer: use %consumer sub",
        "%consumer next NOPE x": "%consumer next: stream not found (10059)",
        "%consumer add ORDERS p --ack-wait 1fortnight": "%consumer add: invalid --ack-wait '1fortnight'",
        "%consumer next ORDERS puller --count 0": "%consumer next: --count must be at least 1",
        # a durable added again with a setting the server cannot change: what differs and the way on
        "%consumer add ORDERS puller --deliver last":
            "%consumer add: consumer puller on ORDERS exists with deliver_policy all (asked last); deliver policy "
            "can not be updated (10012). %consumer edit ORDERS puller cannot change that either: %consumer rm "
            "ORDERS puller and add it again",
        "%consumer add ORDERS pusher":
            "%consumer add: consumer pusher on ORDERS exists with deliver_subject out.x (asked none (pull)); can "
            "not update push consumer to pull based (10012)",
        "%consumer add ORDERS puller --ack none":
            "%consumer add: consumer puller on ORDERS exists with ack_policy explicit (asked none); ack policy",
    }
    assert_one_line_errors(shell, capsys, cases)


def test_replay_shows_stored_against_delivered_times(lab_js, shell):
    magic(shell, "%stream add TICKS --subjects ticks")
    for i in range(3):
        magic(shell, f"%nats pub ticks t{i} --js")
        time.sleep(0.4)
    original = pynats_lab.consumer_replay("TICKS", replay="original", timeout=5)
    instant = pynats_lab.consumer_replay("TICKS", replay="instant", timeout=5)
    assert original["data"].tolist() == instant["data"].tolist() == ["t0", "t1", "t2"]
    spread = lambda df: (df["received"].iloc[-1] - df["received"].iloc[0]).total_seconds()
    # Stored 0.4 s apart: original replays them at least that spread, instant far closer together (relative,
    # not an absolute bound, so a busy machine slowing both does not fail it).
    assert spread(original) > 0.6 and spread(instant) < spread(original) / 2
    assert magic(shell, "%consumer ls TICKS").empty


def test_kv_round_trip(lab_js, shell, capsys):
    added = magic(shell, "%kv add CONFIG --history 5 --ttl 1h")
    assert added[["bucket", "history", "ttl"]].values.tolist() == [["CONFIG", 5, 3600.0]]
    assert magic(shell, "%kv put CONFIG color blue").revision == 1
    magic(shell, "%kv put CONFIG color green")
    cell(shell, "%%kv put CONFIG doc\nline one\nline two\n")
    got = magic(shell, "%kv get CONFIG color")
    assert got[["key", "value", "revision", "operation"]].values.tolist() == [["color", "green", 2, "PUT"]]
    assert magic(shell, "%kv get CONFIG color --revision 1")["value"].tolist() == ["blue"]
    assert magic(shell, "%kv get CONFIG doc")["value"].tolist() == ["line one\nline two"]
    keys = magic(shell, "%kv ls CONFIG")
    assert keys[["key", "value"]].values.tolist() == [["color", "green"], ["doc", "line one\nline two"]]
    magic(shell, "%kv del CONFIG color")
    hist = magic(shell, "%kv history CONFIG color")
    assert hist["operation"].tolist() == ["PUT", "PUT", "DEL"] and hist["value"].tolist()[:2] == ["blue", "green"]
    assert magic(shell, "%kv get CONFIG color") is None
    assert capsys.readouterr().err == "%kv get: key not found: CONFIG > color\n"
    buckets = magic(shell, "%kv ls")
    assert buckets["bucket"].tolist() == ["CONFIG"]
    watched = magic(shell, "%kv watch CONFIG --timeout 300ms")
    assert watched[["key", "operation"]].values.tolist() == [["doc", "PUT"], ["color", "DEL"]]
    now = pd.Timestamp.now(tz="UTC")
    for frame in (got, hist, keys, watched):
        stamps = frame["created"]
        assert str(stamps.dtype).startswith("datetime64") and stamps.notna().all(), "created is the store time"
        assert ((now - stamps).abs() < pd.Timedelta("1min")).all(), stamps.tolist()
    assert magic(shell, "%kv get NOBUCKET k") is None
    assert capsys.readouterr().err == "%kv get: bucket not found: NOBUCKET\n"
    assert str(magic(shell, "%kv rm CONFIG")) == "deleted bucket CONFIG"
    assert magic(shell, "%kv ls").empty


def test_kv_watch_sees_changes_made_meanwhile(lab_js, shell):
    magic(shell, "%kv add LIVE")
    s = pynats_lab.get_session()

    async def writer():
        import asyncio
        kv = await s.js.key_value("LIVE")
        await asyncio.sleep(0.3)
        await kv.put("a", b"1")
        await kv.put("b", b"2")

    s.submit(writer())
    seen = magic(shell, "%kv watch LIVE --count 2 --timeout 5s")
    assert seen[["key", "value"]].values.tolist() == [["a", "1"], ["b", "2"]]


def test_kv_create_and_update_by_revision(lab_js, shell, capsys):
    magic(shell, "%kv add CAS --history 5")
    created = magic(shell, "%kv create CAS lock owner-1")
    assert str(created) == "CAS > lock: created, revision 1" and created.revision == 1
    assert magic(shell, "%kv update CAS lock owner-1-renewed --revision 1").revision == 2
    cell(shell, "%%kv update CAS lock --revision 2\nowner-1\nrenewed again\n")
    assert magic(shell, "%kv get CAS lock")[["value", "revision"]].values.tolist() == [["owner-1\nrenewed again", 3]]
    assert_one_line_errors(shell, capsys, {
        "%kv create CAS lock owner-2": "%kv create: CAS > lock exists (revision 3): wrong last sequence: 3 (10071)",
        "%kv update CAS lock owner-2 --revision 2":
            "%kv update: CAS > lock is at revision 3, not 2: wrong last sequence: 3 (10071)",
        "%kv update CAS nobody x --revision 1": "%kv update: CAS > nobody does not exist: wrong last sequence: 0 (10071)",
        "%kv update CAS lock x": "%kv update: the following arguments are required: --revision",
        "%kv create NOBUCKET k v": "%kv create: bucket not found: NOBUCKET",
    })
    with pytest.raises(LabError, match="is at revision 3, not 1") as stale:
        pynats_lab.kv_update("CAS", "lock", "x", last=1)
    assert isinstance(stale.value, KeyWrongLastSequenceError), "except KeyWrongLastSequenceError still works"
    magic(shell, "%kv del CAS lock")
    assert magic(shell, "%kv create CAS lock owner-3").revision == 5, "a deleted key can be created again"
    assert magic(shell, "%kv history CAS lock")["operation"].tolist() == ["PUT", "PUT", "PUT", "DEL", "PUT"]


def test_last_per_subject_needs_no_filter(lab_js, shell):
    magic(shell, "%stream add SENSORS --subjects sensors.>")
    for i in range(3):
        magic(shell, f"%nats pub sensors.a a{i} --js")
        magic(shell, f"%nats pub sensors.b b{i} --js")
    latest = pynats_lab.consumer_replay("SENSORS", deliver="last-per-subject", timeout=5)
    assert latest["data"].tolist() == ["a2", "b2"] and latest["seq"].tolist() == [5, 6]
    info = magic(shell, "%consumer add SENSORS newest --pull --deliver last-per-subject")
    assert info.config.filter_subject == ">", "natscli's default filter"
    assert magic(shell, "%consumer next SENSORS newest --count 5 --timeout 300ms")["data"].tolist() == ["a2", "b2"]
