"""%consumer why on every JetStream server kind: each stuck case is built for real, recognised with its
numbers, and (where a fix is one command) fixed, after which the finding is gone. Nothing is changed by
asking."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest

import pynats_lab
from pynats_lab.reports import api_request
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, eventually, magic


def _stream(shell, name="ORDERS", n=10, extra=""):
    magic(shell, f"%stream add {name} --subjects {name.lower()}.> {extra}")
    if n:
        magic(shell, f"%nats pub {name.lower()}.new m{{{{Count}}}} --count {n} --js")


def _why(stream, name, idle_consumer=True, **kw) -> pd.DataFrame:
    before = pynats_lab.consumer_info(stream, name)
    df = pynats_lab.consumer_why(stream, name, **kw)
    after = pynats_lab.consumer_info(stream, name)
    # asking changes nothing: same positions (of a consumer nothing else reads), and no consumer was made
    if idle_consumer:
        assert (after.delivered.consumer_seq, after.ack_floor.consumer_seq) == \
            (before.delivered.consumer_seq, before.ack_floor.consumer_seq)
    assert pynats_lab.stream_info(stream).state.consumer_count == len(pynats_lab.consumer_report(stream))
    assert list(df.columns) == ["finding", "severity", "detail", "what to do"]
    return df


def _row(df, finding) -> pd.Series:
    hits = df[df["finding"] == finding]
    assert len(hits) == 1, (finding, df[["finding", "severity"]].values.tolist())
    return hits.iloc[0]


def test_healthy_consumer(lab_js, shell, capsys):
    _stream(shell, n=5)
    magic(shell, "%consumer add ORDERS worker --pull")
    magic(shell, "%consumer next ORDERS worker --count 5")
    capsys.readouterr()
    df = magic(shell, "%consumer why ORDERS worker")
    assert df["finding"].tolist()[0] == "healthy" and df["severity"].iloc[0] == "ok"
    assert not df["severity"].isin(["stuck", "warning"]).any()
    out = capsys.readouterr()
    assert "ORDERS > worker is healthy" in out.out and out.err == ""


def test_max_ack_pending_reached_and_fixed(lab_js, shell):
    _stream(shell, n=10)
    magic(shell, "%consumer add ORDERS worker --pull --max-pending 3 --ack-wait 1m")
    magic(shell, "%consumer next ORDERS worker --count 3 --no-ack")
    df = _why("ORDERS", "worker")
    row = _row(df, "max_ack_pending reached")
    assert row["severity"] == "stuck" and df["finding"].iloc[0] == "max_ack_pending reached"
    assert "3 messages were delivered and not acknowledged, which is max_ack_pending (3)" in row["detail"]
    assert "7 more are waiting" in row["detail"] and "--max-pending" in row["what to do"]
    got = magic(shell, "%consumer next ORDERS worker --count 5 --timeout 500ms")
    assert got.empty  # the server really delivers nothing more
    pynats_lab.consumer_edit("ORDERS", "worker", max_ack_pending=100)
    assert "max_ack_pending reached" not in _why("ORDERS", "worker")["finding"].tolist()


def test_pull_consumer_nobody_pulls(lab_js, shell):
    _stream(shell, n=10)
    magic(shell, "%consumer add ORDERS never --pull")
    row = _row(_why("ORDERS", "never"), "nobody is pulling")
    assert row["severity"] == "stuck" and "10 messages to deliver" in row["detail"]
    assert "it has never delivered a message" in row["detail"]
    magic(shell, "%consumer add ORDERS stopped --pull")
    magic(shell, "%consumer next ORDERS stopped --count 2")
    recent = _why("ORDERS", "stopped", idle="1h")
    assert _row(recent, "no pull request right now")["severity"] == "info"
    time.sleep(1.2)
    row = _row(_why("ORDERS", "stopped", idle="1s"), "nobody is pulling")
    assert "8 messages to deliver" in row["detail"] and "last delivery was 1" in row["detail"]
    # a waiting pull request: someone is pulling
    s = get_session()
    inbox = s.nc.new_inbox()
    sub = s.run(s.nc.subscribe(inbox))
    s.run(s.nc.publish("$JS.API.CONSUMER.MSG.NEXT.ORDERS.never", json.dumps({"batch": 1, "expires": 30_000_000_000,
                                                                            "no_wait": False}).encode(), reply=inbox))
    s.run(s.nc.flush())
    eventually(lambda: "nobody is pulling" not in _why("ORDERS", "never")["finding"].tolist())
    s.run(sub.unsubscribe())


def test_max_waiting_reached(lab_js, shell):
    _stream(shell, "IDLE", n=0)
    magic(shell, "%consumer add IDLE worker --pull --max-waiting 2")
    s = get_session()
    inbox = s.nc.new_inbox()
    sub = s.run(s.nc.subscribe(inbox + ".*"))
    for i in range(2):
        s.run(s.nc.publish("$JS.API.CONSUMER.MSG.NEXT.IDLE.worker",
                           json.dumps({"batch": 1, "expires": 30_000_000_000}).encode(), reply=f"{inbox}.{i}"))
    s.run(s.nc.flush())
    eventually(lambda: pynats_lab.consumer_info("IDLE", "worker").num_waiting == 2)
    row = _row(_why("IDLE", "worker"), "max_waiting reached")
    assert "2 pull requests are waiting on IDLE > worker, which is its max_waiting (2)" in row["detail"]
    assert "--max-waiting 8" in row["what to do"]
    s.run(sub.unsubscribe())


def test_push_consumer_without_subscriber(lab_js, shell):
    _stream(shell, n=4)
    magic(shell, "%consumer add ORDERS pusher --push --target deliver.orders")
    row = _row(_why("ORDERS", "pusher"), "push consumer without subscriber")
    assert row["severity"] == "stuck" and "deliver.orders" in row["detail"] and "4 messages wait" in row["detail"]
    s = get_session()
    sub = s.run(s.nc.subscribe("deliver.orders"))
    eventually(lambda: "push consumer without subscriber" not in _why("ORDERS", "pusher", idle_consumer=False)[
        "finding"].tolist())
    s.run(sub.unsubscribe())
    magic(shell, "%consumer add ORDERS grouped --push --target deliver.g --deliver-group workers")
    assert "queue subscription in group 'workers'" in _row(_why("ORDERS", "grouped"),
                                                           "push consumer without subscriber")["what to do"]


def test_paused_consumer(lab_js, shell):
    _stream(shell, n=3)
    magic(shell, "%consumer add ORDERS worker --pull")
    s = get_session()
    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta("2h")).isoformat().replace("+00:00", "Z")
    s.run(api_request(s, "$JS.API.CONSUMER.PAUSE.ORDERS.worker", {"pause_until": until}))
    df = _why("ORDERS", "worker")
    row = _row(df, "paused")
    assert row["severity"] == "stuck" and df["finding"].iloc[0] == "paused"
    assert pd.Timestamp(until).strftime("%Y-%m-%d %H:%M") in row["detail"] and "3 messages wait" in row["detail"]
    assert "%consumer resume ORDERS worker" in row["what to do"]
    assert "nobody is pulling" not in df["finding"].tolist()  # a paused consumer is not blamed on its worker


def test_filter_that_matches_no_stored_subject(lab_js, shell):
    _stream(shell, n=6)
    magic(shell, "%consumer add ORDERS typo --pull --filter orders.neww")
    row = _row(_why("ORDERS", "typo"), "filter matches no stored subject")
    assert row["severity"] == "warning" and "'orders.neww'" in row["detail"] and "6 messages" in row["detail"]
    assert "%stream subjects ORDERS" in row["what to do"]
    magic(shell, "%consumer add ORDERS right --pull --filter orders.new")
    assert "filter matches no stored subject" not in _why("ORDERS", "right")["finding"].tolist()


def test_a_filter_on_transformed_subjects_is_not_outside_the_stream(lab_js, shell):
    magic(shell, "%stream add SHOP --subjects shop.* --transform shop.* stored.shop.{{wildcard(1)}}")
    magic(shell, "%nats pub shop.eu x --js")
    magic(shell, "%consumer add SHOP eu --pull --filter stored.shop.eu")
    magic(shell, "%consumer add SHOP wrong --pull --filter other.>")
    assert "filter outside the stream's subjects" not in _why("SHOP", "eu")["finding"].tolist()
    assert _row(_why("SHOP", "wrong"), "filter outside the stream's subjects")["severity"] == "stuck"


def test_start_sequence_past_the_end(lab_js, shell):
    _stream(shell, n=10)
    magic(shell, "%consumer add ORDERS late --pull --deliver 100")
    row = _row(_why("ORDERS", "late"), "start sequence past the stream's end")
    assert row["severity"] == "stuck"
    assert "starts at sequence 100" in row["detail"] and "last message is 10" in row["detail"]
    assert "skips the messages there and the next 89 to be stored" in row["detail"]


def test_max_deliver_exhausted_on_a_work_queue(lab_js, shell):
    _stream(shell, "JOBS", n=3, extra="--retention workqueue")
    magic(shell, "%consumer add JOBS worker --pull --max-deliver 2")
    for _ in range(2):
        assert magic(shell, "%consumer next JOBS worker --nak")["seq"].tolist() == [1]
    got = magic(shell, "%consumer next JOBS worker --count 3 --timeout 1s")
    assert got["seq"].tolist() == [2, 3]  # seq 1 is given up after 2 deliveries
    row = _row(_why("JOBS", "worker"), "messages exhausted max_deliver")
    assert "1 message of this workqueue stream is still stored" in row["detail"]
    assert "Sequences: 1." in row["detail"] and "delivered 2 times" in row["detail"]
    assert "%stream get JOBS 1" in row["what to do"]


def test_max_deliver_exhausted_counted_from_kept_advisories(lab_js, shell):
    magic(shell, "%stream add DLQ --subjects $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.> --storage memory")
    _stream(shell, n=4)
    magic(shell, "%consumer add ORDERS worker --pull --max-deliver 1 --ack-wait 1s")
    assert len(magic(shell, "%consumer next ORDERS worker --count 2 --nak")) == 2
    got = magic(shell, "%consumer next ORDERS worker --count 4 --timeout 1s")
    assert got["seq"].tolist() == [3, 4]
    eventually(lambda: pynats_lab.stream_info("DLQ").state.messages == 2)
    row = _row(_why("ORDERS", "worker"), "messages exhausted max_deliver")
    assert "2 messages of ORDERS > worker were delivered 1 times" in row["detail"] and "stream DLQ" in row["detail"]


def test_ack_wait_shorter_than_processing(lab_js, shell):
    _stream(shell, n=3)
    magic(shell, "%consumer add ORDERS slow --pull --ack-wait 1s")
    held = magic(shell, "%consumer next ORDERS slow --count 3 --no-ack")  # a worker takes longer than 1s
    assert len(held) == 3
    time.sleep(1.3)
    again = magic(shell, "%consumer next ORDERS slow --count 3 --timeout 3s")
    assert again["delivered"].tolist() == [2, 2, 2]
    row = _row(_why("ORDERS", "slow"), "ack_wait shorter than processing")
    assert row["severity"] == "warning" and "3 deliveries more than it has messages" in row["detail"]
    assert "--ack-wait" in row["what to do"]
    magic(shell, "%consumer add ORDERS known --pull --ack-wait 2s")
    row = _row(_why("ORDERS", "known", processing="5s"), "ack_wait shorter than processing")
    assert "takes about 5s to process but ack_wait is 2s" in row["detail"]


@pytest.mark.parametrize("retention", ["interest", "workqueue"])
def test_messages_removed_by_another_consumer(lab_js, shell, retention):
    _stream(shell, "EVT", n=0, extra=f"--retention {retention}")
    magic(shell, "%consumer add EVT first --pull")
    magic(shell, "%nats pub evt.new e{{Count}} --count 5 --js")
    magic(shell, "%consumer next EVT first --count 5")
    eventually(lambda: pynats_lab.stream_info("EVT").state.messages == 0)
    if retention == "workqueue":
        magic(shell, "%consumer rm EVT first")  # a work queue takes one consumer per subject
    magic(shell, "%consumer add EVT late --pull")
    row = _row(_why("EVT", "late"), f"messages removed by another consumer ({retention})")
    assert "sequences 1..5 are gone from EVT" in row["detail"]
    if retention == "interest":
        assert "by first (acknowledged up to 5)" in row["detail"]
    else:
        assert "consumers no longer there" in row["detail"]


def test_why_mistakes_are_one_line(lab_js, shell, capsys):
    _stream(shell, n=1)
    assert_one_line_errors(shell, capsys, {
        "%consumer why ORDERS nope": "%consumer why: consumer not found",
        "%consumer why NOPE x": "%consumer why: stream not found",
        "%consumer why ORDERS x --idle soon": "%consumer why: invalid --idle",
    })


def test_pinned_client_that_stopped_asking_and_the_unpin(lab_js, shell):
    _stream(shell, n=5)
    magic(shell, "%consumer add ORDERS pc --priority-policy pinned_client --priority-group A --priority-timeout 5m")
    pinned = magic(shell, "%consumer next ORDERS pc --group A")
    pin = pinned["headers"].iloc[0]["Nats-Pin-Id"]
    assert _row(_why("ORDERS", "pc"), "pinned client")["severity"] == "info"
    # a stand-by asks without the pin and waits; the pinned client asks no more
    s = get_session()
    standby = s.run(s.nc.subscribe(s.nc.new_inbox()))
    s.run(s.nc.publish("$JS.API.CONSUMER.MSG.NEXT.ORDERS.pc", json.dumps(
        {"batch": 1, "expires": 30_000_000_000, "group": "A"}).encode(), reply=standby.subject))
    s.run(s.nc.flush())
    eventually(lambda: pynats_lab.consumer_info("ORDERS", "pc").num_waiting == 1)
    seen = []

    def stuck() -> bool:
        seen.append(_why("ORDERS", "pc", idle="200ms"))
        return "pinned client stopped asking" in seen[-1]["finding"].tolist()

    eventually(stuck)
    row = _row(seen[-1], "pinned client stopped asking")
    assert row["severity"] == "stuck" and pin in row["detail"]
    assert "1 pull request(s) and 4 messages wait" in row["detail"]
    assert "5m0s" in row["detail"] and row["what to do"].startswith("%consumer unpin ORDERS pc --group A")
    magic(shell, "%consumer unpin ORDERS pc --group A")
    got = s.run(standby.next_msg(timeout=10))
    assert got.headers.get("Nats-Pin-Id") not in (None, pin)
    s.run(standby.unsubscribe())
    assert "pinned client stopped asking" not in _why("ORDERS", "pc", idle="200ms", idle_consumer=False)[
        "finding"].tolist()
