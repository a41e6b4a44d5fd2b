"""Widgets driven in-process (buttons clicked, toggles set) on every JetStream server kind; their static
copies carry a table or a figure for non-interactive runs."""
from __future__ import annotations

import time

import pytest

import pynats_lab
from tests.lab.conftest import assert_dedup_follows_the_window, assert_one_line_errors, magic


def _wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stream_viewer_pages_filters_and_follows(lab_js, shell):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, '%nats pub orders.new \'{"n": {{Count}}}\' --count 12 --js -H k:v')
    magic(shell, "%nats pub orders.paid p{{Count}} --count 3 --js")
    v = pynats_lab.StreamViewer("ORDERS", page_size=5, interval="100ms")
    assert v.interval == 0.1
    assert v.df["seq"].tolist() == [1, 2, 3, 4, 5]
    assert "seq 1..5" in v.status.value and [seq for _, seq in v.rows.options] == [1, 2, 3, 4, 5]
    assert v.rows.options[0][0].startswith("1  ") and '{"n": 1}  [k: v]' in v.rows.options[0][0]
    v.next_button.click()
    assert v.df["seq"].tolist() == [6, 7, 8, 9, 10]
    v.last_button.click()
    assert v.df["seq"].tolist() == [11, 12, 13, 14, 15]
    v.prev_button.click()
    assert v.df["seq"].tolist() == [6, 7, 8, 9, 10]
    v.detail_pick.value = 7
    assert "&quot;n&quot;: 7" in v.detail.value and "&quot;k&quot;: &quot;v&quot;" in v.detail.value
    v.subject_box.value = "orders.paid"
    v.go_button.click()
    assert v.df["data"].tolist() == ["p1", "p2", "p3"]
    assert "filter: subject <code>orders.paid</code>" in v.status.value, "the status line says what filters"
    v.search_box.value = "p2"
    v.search_button.click()
    assert v.df["data"].tolist() == ["p2"] and "search <code>p2</code>" in v.status.value
    v.subject_box.value = ""
    v.search_box.value = "k: v"
    v.search_button.click()
    assert len(v.df) == 5 and v.df["data"].iloc[0] == '{"n": 1}', "a search looks in headers too"
    v.search_box.value = ""
    v.subject_box.value = ""
    v.seq_box.value = "9"
    v.go_button.click()
    assert v.df["seq"].tolist() == [9, 10, 11, 12, 13]
    v.page_size_box.value = 2
    assert v.df["seq"].tolist() == [9, 10]
    v.next_button.click()
    assert v.df["seq"].tolist() == [11, 12]
    v.follow_toggle.value = True
    magic(shell, "%nats pub orders.new late --js")
    assert _wait_for(lambda: v.df["data"].tolist()[-1:] == ["late"])
    v.follow_toggle.value = False
    bundle = v._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "late" in bundle["text/html"]
    v.close()


def test_stream_viewer_reports_a_missing_stream_as_one_line(lab_js, shell, capsys):
    assert magic(shell, "%stream view NOPE --follow") is None
    assert capsys.readouterr().err == "%stream view: stream not found (10059)\n"


def test_latency_chart_fills_and_renders(lab_js, shell):
    chart = pynats_lab.LatencyChart(count=31, rounds=3, size=16, wait=True)
    assert set(chart.df["kind"]) == {"pub-sub", "request-reply", "js-publish"}
    assert (chart.df.groupby("kind").size() == 31).all(), "every sample asked for, though 31 is not 3 rounds"
    assert chart.image.value[:4] == b"\x89PNG" and "p90" in chart.summary.value
    assert "p99" not in chart.summary.value, "31 samples cannot speak for p99"
    bundle = chart._repr_mimebundle_()
    assert "image/png" in bundle and "p50" in bundle["text/html"]
    assert "done: 31 samples per kind" in chart.status.value


def test_dedup_chart_shows_both_lessons(lab_js, shell):
    chart = pynats_lab.DedupChart(window="1.5s", ids=2, at=(0, 0, 1.9), wait=True)
    assert chart.summary()["round"].tolist() == [1, 2, 3]
    assert_dedup_follows_the_window(chart.df, 1.5)
    assert chart.image.value[:4] == b"\x89PNG"
    assert "different subject" in chart._repr_mimebundle_()["text/html"]
    assert pynats_lab.stream_ls().empty


def test_consumer_replay_grows_a_table_and_a_timeline(lab_js, shell):
    magic(shell, "%stream add TICKS --subjects ticks")
    magic(shell, "%nats pub ticks t{{Count}} --count 4 --js")
    replay = magic(shell, "%consumer replay TICKS --replay instant").wait(15)
    assert replay.df["data"].tolist() == ["t1", "t2", "t3", "t4"]
    assert replay.image.value[:4] == b"\x89PNG" and "t4" in replay.table.value
    assert "done: 4 messages replayed (instant)" in replay.status.value
    assert "t4" in replay._repr_mimebundle_()["text/html"]


def test_consumer_replay_reports_wrong_uses_as_one_line(lab_js, shell, capsys):
    magic(shell, "%stream add JOBS --subjects jobs --retention workqueue")
    magic(shell, "%stream add TICKS --subjects ticks")
    assert_one_line_errors(shell, capsys, {
        "%consumer replay NOPE": "%consumer replay: stream not found (10059)",
        "%consumer replay JOBS": "%consumer replay: JOBS is a work-queue stream",
        "%consumer replay TICKS --deliver someday": "%consumer replay: invalid --deliver 'someday'",
        "%consumer replay TICKS --count 0": "%consumer replay: --count must be at least 1",
    })


def test_a_widget_whose_work_failed_says_why_in_its_saved_copy(lab_js, shell):
    pynats_lab.stream_add("TICKS", "ticks", max_consumers=1)
    magic(shell, "%nats pub ticks t1 --js")
    magic(shell, "%consumer add TICKS only")
    replay = pynats_lab.ConsumerReplay("TICKS")  # the server refuses its consumer: one is the most
    with pytest.raises(pynats_lab.LabError) as failed:
        replay.wait(15)
    assert str(failed.value) and str(failed.value) in replay._repr_mimebundle_()["text/html"]


def test_stream_viewer_shows_binary_payloads_as_hex_or_base64(lab_js, shell):
    pynats_lab.stream_add("BIN", "bin")
    pynats_lab.publish("bin", b"\x00\xffok", js=True)
    pynats_lab.publish("bin", "plain text", js=True)
    v = pynats_lab.StreamViewer("BIN")
    v.rows.value = 1
    assert "data (hex, not UTF-8 text)" in v.detail.value and "00 ff 6f 6b" in v.detail.value
    v.view.value = "base64"
    assert "AP9vaw==" in v.detail.value
    v.rows.value = 2
    assert "cGxhaW4gdGV4dA==" in v.detail.value
    v.view.value = "text"
    assert "<pre>plain text</pre>" in v.detail.value
    v.close()
