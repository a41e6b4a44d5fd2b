"""Every entry point of the Python API and every widget constructor, given wrong input, raises a LabError
with one clear line, before anything is sent (a subject no server would route is never "published")."""
from __future__ import annotations

import pytest

import pynats_lab as lab
from pynats_lab import objects

WRONG = {
    "StreamViewer('NOPE')": (lambda: lab.StreamViewer("NOPE"), "stream not found (10059)"),
    "StreamViewer page_size=0": (lambda: lab.StreamViewer("ORDERS", page_size=0), "page size must be at least 1"),
    "ConsumerReplay('NOPE')": (lambda: lab.ConsumerReplay("NOPE"), "stream not found (10059)"),
    "ConsumerReplay replay=fast": (lambda: lab.ConsumerReplay("ORDERS", replay="fast"), "invalid --replay 'fast'"),
    "DedupChart window=soon": (lambda: lab.DedupChart(window="soon"), "invalid window 'soon'"),
    "LatencyChart count=0": (lambda: lab.LatencyChart(count=0), "count must be at least 1"),
    "publish orders..x": (lambda: lab.publish("orders..x", "x"),
                          "invalid subject 'orders..x': an empty token (a leading, trailing or double dot)"),
    "publish orders.* js": (lambda: lab.publish("orders.*", "x", js=True),
                            "invalid subject 'orders.*': wildcards (* and >) are for subscribing"),
    "publish templated": (lambda: lab.publish("orders.{{Count}}.", "x", count=3), "invalid subject 'orders.1.'"),
    "publish subject 123": (lambda: lab.publish(123, "x"), "subject must be a non-empty string"),
    "publish object()": (lambda: lab.publish("a", object()), "a payload is text, bytes, a number"),
    "subscribe a..b": (lambda: lab.subscribe("a..b", timeout="10ms"), "invalid subject 'a..b'"),
    "request a.>": (lambda: lab.request("a.>", "x"), "invalid subject 'a.>': wildcards"),
    "stream_view id='abc'": (lambda: lab.stream_view("ORDERS", id="abc"), "--id must be a whole number, not 'abc'"),
    "stream_view subject a..b": (lambda: lab.stream_view("ORDERS", subject="a..b"), "invalid --subject 'a..b'"),
    "stream_get NOPE": (lambda: lab.stream_get("NOPE", 1), "stream not found (10059)"),
    "stream_get past the end": (lambda: lab.stream_get("ORDERS", 999), "no message 999 in stream ORDERS"),
    "stream_add a.b": (lambda: lab.stream_add("a.b", "ab"), "invalid stream name: 'a.b'"),
    "stream_add colour": (lambda: lab.stream_add("X", "x", colour="red"), "unknown stream setting 'colour'"),
    "consumer_add filter a..b": (lambda: lab.consumer_add("ORDERS", "v", filter="a..b"), "invalid --filter 'a..b'"),
    "consumer_next count='5'": (lambda: lab.consumer_next("ORDERS", "w", count="5"),
                                "--count must be a whole number, not '5'"),
    "kv_get NOPE": (lambda: lab.kv_get("NOPE", "k"), "bucket not found: NOPE"),
    "obj_get NOPE": (lambda: objects.obj_get("NOPE", "x"), "object store bucket not found: NOPE"),
    "stream_restore nowhere": (lambda: lab.stream_restore("/nonexistent-backup"), "no stream backup in"),
    "latency count=0": (lambda: lab.latency(count=0), "--count must be at least 1"),
}


@pytest.fixture
def orders(lab_js):
    lab.stream_add("ORDERS", "orders.>")
    lab.publish("orders.new", "x", count=3, js=True)
    lab.consumer_add("ORDERS", "w", pull=True)
    collector = lab.subscribe_background(">")
    yield collector
    collector.stop()


def test_every_wrong_use_is_one_lab_error_line(orders):
    wrong = []
    for name, (call, start) in WRONG.items():
        try:
            call()
        except lab.LabError as exc:
            line = str(exc)
            if start not in line or "\n" in line:
                wrong.append(f"{name}: {line!r} (expected {start!r})")
        except Exception as exc:  # noqa: BLE001 - the point is to find the ones that are not LabErrors
            wrong.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            wrong.append(f"{name}: no error")
    assert not wrong, "\n".join(wrong)
    published = [s for s in orders.stop()["subject"] if not s.startswith(("$JS", "_INBOX", "$KV", "$O"))]
    assert "orders..x" not in published and not any(s.startswith("orders.1") for s in published), published


def test_a_jetstream_publish_no_stream_answers_is_one_line_after_two_more_tries(lab_js):
    """No responders means nothing was stored: the publish is tried twice more, as nats.go does (a new
    stream's interest may still be on its way over a cluster's routes), then one line."""
    stats = lab.get_session().nc.stats
    before = stats["out_msgs"]
    with pytest.raises(lab.LabError, match="^no stream answered: is a stream listening on this subject"):
        lab.publish("nowhere.x", "x", js=True)
    assert stats["out_msgs"] - before == 3
