"""%stream report, %consumer report and %stream subjects on every JetStream server kind: the numbers a user
sees match the streams and consumers built, paging through more than one page of STREAM.LIST /
CONSUMER.LIST, and nothing is created or changed by looking."""
from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest

import pynats_lab
from pynats_lab.messaging import js_publish
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, cell, eventually, magic


def _pub(subject_of, count: int) -> None:
    s = get_session()

    async def go():
        await asyncio.gather(*(js_publish(s, subject_of(i), b"x" * 10, None) for i in range(count)))

    s.run(go())


def _consumer_counts() -> dict:
    return {n: pynats_lab.stream_info(n).state.consumer_count for n in pynats_lab.stream_names()}


def test_stream_report_rows_match_the_streams(lab_js, shell):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%stream add CACHE --subjects cache.> --storage memory --retention workqueue")
    _pub(lambda i: f"orders.{i % 4}", 40)
    _pub(lambda i: "cache.x", 3)
    s = get_session()
    for seq in (5, 6, 7):
        s.run(s.js.delete_msg("ORDERS", seq))
    magic(shell, "%consumer add ORDERS a --pull")
    magic(shell, "%consumer add ORDERS b --pull")
    before = _consumer_counts()
    df = magic(shell, "%stream report")
    assert df["stream"].tolist() == ["CACHE", "ORDERS"]
    orders = df.set_index("stream").loc["ORDERS"]
    assert (orders["storage"], orders["retention"], orders["replicas"], orders["consumers"]) == ("file", "limits", 1, 2)
    assert (orders["messages"], orders["first_seq"], orders["last_seq"], orders["deleted"]) == (37, 1, 40, 3)
    assert orders["subjects"] == 4 and orders["bytes"] > 37 * 10 and orders["lost"] == 0
    cache = df.set_index("stream").loc["CACHE"]
    assert (cache["storage"], cache["retention"], cache["messages"], cache["subjects"]) == ("memory", "workqueue", 3, 1)
    assert str(df["created"].dtype) == "datetime64[ns, UTC]"
    assert magic(shell, "%stream report --sort messages")["stream"].tolist() == ["ORDERS", "CACHE"]
    assert magic(shell, "%stream report --subject cache.>")["stream"].tolist() == ["CACHE"]
    assert _consumer_counts() == before


def test_stream_report_pages_through_many_streams(lab_js, shell):
    s = get_session()

    async def make():
        for start in range(0, 300, 50):
            await asyncio.gather(*(pynats_lab.reports.api_request(
                s, f"$JS.API.STREAM.CREATE.S{i:03d}", {"name": f"S{i:03d}", "subjects": [f"s.{i}"],
                                                        "storage": "memory", "num_replicas": 1})
                for i in range(start, start + 50)))

    s.run(make())
    df = pynats_lab.stream_report()
    assert df["stream"].tolist() == [f"S{i:03d}" for i in range(300)]  # more than one page of 256


def test_consumer_report_shows_each_consumers_state(lab_js, shell):
    magic(shell, "%stream add JOBS --subjects jobs.>")
    _pub(lambda i: "jobs.run", 10)
    magic(shell, "%consumer add JOBS worker --pull --ack-wait 30s --max-pending 50")
    magic(shell, "%consumer next JOBS worker --count 3")
    magic(shell, "%consumer next JOBS worker --count 2 --no-ack")
    magic(shell, "%consumer add JOBS pusher --push --target deliver.jobs --filter jobs.run")
    magic(shell, "%consumer add JOBS idle --pull --filter jobs.none")
    s = get_session()
    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h")).isoformat().replace("+00:00", "Z")
    s.run(pynats_lab.reports.api_request(s, "$JS.API.CONSUMER.PAUSE.JOBS.idle", {"pause_until": until}))
    # a pull request that waits: the report shows it as waiting
    inbox = s.nc.new_inbox()
    waiter = s.run(s.nc.subscribe(inbox))
    s.run(s.nc.publish("$JS.API.CONSUMER.MSG.NEXT.JOBS.idle", json.dumps({"batch": 1, "expires": 30_000_000_000}).encode(),
                       reply=inbox))
    s.run(s.nc.flush())
    before = _consumer_counts()
    df = magic(shell, "%consumer report JOBS").set_index("consumer")
    assert list(df.index) == ["idle", "pusher", "worker"]
    w = df.loc["worker"]
    assert (w["mode"], w["ack_policy"], w["ack_wait"], w["max_ack_pending"]) == ("pull", "explicit", 30.0, 50)
    assert (w["num_pending"], w["num_ack_pending"], w["delivered"], w["ack_floor"]) == (5, 2, 5, 3)
    assert w["pending_pct"] == 50.0 and not w["paused"] and w["num_redelivered"] == 0
    assert w["last_delivery"] is not pd.NaT and w["last_delivery"] > pd.Timestamp("2020-01-01", tz="UTC")
    p = df.loc["pusher"]
    assert (p["mode"], p["push_bound"], p["filter"]) == ("push", False, "jobs.run")
    i = df.loc["idle"]
    assert i["paused"] and abs(i["pause_until"] - pd.Timestamp(until)) < pd.Timedelta("1s")
    assert i["num_waiting"] == 1 and i["num_pending"] == 0
    assert magic(shell, "%consumer report JOBS --sort pending")["consumer"].tolist()[0] == "pusher"
    assert _consumer_counts() == before
    s.run(waiter.unsubscribe())


def test_consumer_report_pages_through_many_consumers(lab_js, shell):
    magic(shell, "%stream add MANY --subjects many.>")
    s = get_session()

    async def make():
        for start in range(0, 280, 40):
            await asyncio.gather(*(pynats_lab.reports.api_request(
                s, f"$JS.API.CONSUMER.CREATE.MANY.c{i:03d}",
                {"stream_name": "MANY", "config": {"durable_name": f"c{i:03d}", "ack_policy": "explicit"}})
                for i in range(start, start + 40)))

    s.run(make())
    assert pynats_lab.consumer_report("MANY")["consumer"].tolist() == [f"c{i:03d}" for i in range(280)]


def test_stream_subjects_counts_and_chart(lab_js, shell, capsys):
    magic(shell, "%stream add EV --subjects ev.>")
    _pub(lambda i: "ev.hot" if i % 2 else f"ev.cold.{i % 10}", 100)
    before = pynats_lab.stream_info("EV").state
    res = cell(shell, "df = %stream subjects EV")
    assert res.success and capsys.readouterr().err == ""
    df = shell.user_ns["df"]
    assert df.values.tolist() == [["ev.hot", 50], ["ev.cold.0", 10], ["ev.cold.2", 10], ["ev.cold.4", 10],
                                  ["ev.cold.6", 10], ["ev.cold.8", 10]]
    assert str(df["messages"].dtype) == "int64"
    assert magic(shell, "%stream subjects EV ev.cold.* --sort subject --no-chart")["subject"].tolist() == \
        ["ev.cold.0", "ev.cold.2", "ev.cold.4", "ev.cold.6", "ev.cold.8"]
    empty = magic(shell, "%stream subjects EV nothing.> --no-chart")
    assert empty.empty and "no subjects in EV match nothing.>" in capsys.readouterr().out
    fig = pynats_lab.charts.subjects_figure(df, top=3)
    bars = fig.axes[0].patches
    assert [b.get_width() for b in bars][::-1] == [50, 10, 10] and "top 3 of 6 subjects" in fig.axes[0].get_title()
    after = pynats_lab.stream_info("EV").state
    assert (after.messages, after.last_seq, after.consumer_count) == (before.messages, before.last_seq, 0)


def test_report_and_subjects_mistakes_are_one_line(lab_js, shell, capsys):
    magic(shell, "%stream add EV --subjects ev.>")
    assert_one_line_errors(shell, capsys, {
        "%stream report --sort colour": "%stream report: invalid --sort 'colour'",
        "%consumer report NOPE": "%consumer report: stream not found",
        "%consumer report EV --sort colour": "%consumer report: invalid --sort 'colour'",
        "%stream subjects NOPE": "%stream subjects: stream not found",
        "%stream subjects EV --top 0": "%stream subjects: --top must be at least 1",
    })


@pytest.mark.timeout(240)
def test_reports_on_a_three_node_cluster_show_replicas_and_leaders(shell, monkeypatch, tmp_path):
    """nats-server only (the embedded server does not cluster): an R3 stream's row names its leader and its
    two followers' lag; a killed follower shows as not current; the consumer report names its leader."""
    from pynats_lab.servers import LocalCluster

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with LocalCluster(3, name="rep") as cluster:
        pynats_lab.connect(cluster.url)
        try:
            magic(shell, "%stream add R3 --subjects r3.> --replicas 3")
            magic(shell, "%stream add R1 --subjects r1.>")
            _pub(lambda i: "r3.x", 50)
            # A bulk read of a replicated stream through its ordered consumer: all in order, none left after.
            assert pynats_lab.stream_frame("R3", consumer=True)["seq"].tolist() == list(range(1, 51))
            assert pynats_lab.stream_info("R3").state.consumer_count == 0
            magic(shell, "%consumer add R3 worker --pull")
            df = magic(shell, "%stream report").set_index("stream")
            r3, r1 = df.loc["R3"], df.loc["R1"]
            assert r3["replicas"] == 3 and r3["leader"] in {"n1", "n2", "n3"} and r3["messages"] == 50
            status = r3["replica_status"]
            followers = sorted({"n1", "n2", "n3"} - {r3["leader"]})
            assert [part.split(":")[0] for part in status.split("; ")] == followers, status
            assert r3["replica_lag"] >= 0 and r3["replicas_current"].endswith("/2")
            assert r1["replicas"] == 1 and pd.isna(r1["replica_status"]) and r1["leader"] in {"n1", "n2", "n3"}
            consumers = magic(shell, "%consumer report R3")
            assert consumers["leader"].iloc[0] in {"n1", "n2", "n3"}
            follower = cluster.node(followers[0])
            follower.kill()

            def shows_it_gone():
                try:  # the session may have been on the killed node: it reconnects to another
                    row = pynats_lab.stream_report().set_index("stream").loc["R3"]
                except pynats_lab.LabError:
                    return False
                return row["replicas_current"] == "1/2" and f"{followers[0]}: " in row["replica_status"] and \
                    "current" not in row["replica_status"].split(f"{followers[0]}: ")[1].split(";")[0]

            eventually(shows_it_gone, timeout=60)
        finally:
            pynats_lab.get_session().close()


def test_stream_report_shows_a_mirrors_lag(lab_js, shell):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    _pub(lambda i: "orders.x", 10)
    s = get_session()
    s.run(pynats_lab.reports.api_request(s, "$JS.API.STREAM.CREATE.COPY", {
        "name": "COPY", "mirror": {"name": "ORDERS"}, "storage": "file", "num_replicas": 1}))
    eventually(lambda: pynats_lab.stream_info("COPY").state.messages == 10)

    def caught_up():
        row = pynats_lab.stream_report().set_index("stream").loc["COPY"]
        return row["source_lag"] == 0

    eventually(caught_up)
    df = pynats_lab.stream_report().set_index("stream")
    assert df.loc["COPY", "messages"] == 10 and pd.isna(df.loc["ORDERS", "source_lag"])
