"""%nats latency / bench and the de-duplication series, on every server kind."""
from __future__ import annotations

from matplotlib.figure import Figure

import pynats_lab
from pynats_lab import charts
from tests.lab.conftest import assert_dedup_follows_the_window, magic


def test_latency_has_every_kind_and_a_chart(lab_js, shell):
    df = magic(shell, "%nats latency --count 20 --size 64 --no-chart")
    assert set(df["kind"]) == {"pub-sub", "request-reply", "js-publish"}
    assert (df.groupby("kind").size() == 20).all() and (df["latency_us"] > 0).all()
    pct = pynats_lab.latency_percentiles(df)
    assert list(pct.columns) == ["kind", "samples", "p50", "p90", "mean", "max"], "20 samples say nothing of p99"
    assert (pct["p50"] <= pct["p90"]).all() and (pct["p90"] <= pct["max"]).all()
    assert "p99" in pynats_lab.latency_percentiles(pynats_lab.latency(count=100, jetstream=False)).columns
    assert charts.supported_percentiles(999) == [50, 90, 99] and charts.supported_percentiles(1000)[-1] == 99.9
    assert isinstance(charts.latency_figure(df), Figure)


def test_latency_without_jetstream_skips_that_kind(lab_core, shell):
    df = pynats_lab.latency(count=5)
    assert set(df["kind"]) == {"pub-sub", "request-reply"}


def test_bench_counts_every_message(lab_js, shell):
    df = magic(shell, "%nats bench b.test --pub 2 --sub 2 --msgs 2000 --size 32 --no-chart")
    assert df["client"].tolist() == ["pub 1", "pub 2", "all publishers", "sub 1", "sub 2", "all subscribers"]
    assert df.set_index("client").loc["all subscribers", "msgs"] == 4000
    assert (df["msgs_per_s"] > 0).all()
    subs = df[df["role"] == "sub"]
    assert (subs["p50_us"] > 0).all() and (subs["p50_us"] <= subs["p99_us"]).all()
    assert df[df["role"] == "pub"]["p50_us"].isna().all()  # core publishes have no ack to time
    js = pynats_lab.bench(msgs=500, js=True, subs=0)
    assert js["msgs"].tolist() == [500] and js["p99_us"].iloc[0] >= js["p50_us"].iloc[0] > 0
    assert pynats_lab.stream_ls().empty  # the temporary stream is gone
    assert isinstance(charts.bench_figure(df), Figure)
    tiny = magic(shell, "%nats bench b.tiny --msgs 200 --size 0 --no-chart")  # no room for a send time
    assert tiny["msgs"].tolist() == [200, 200] and tiny["p50_us"].isna().all()


def test_dedup_window_outlives_the_ack_and_spans_subjects(lab_js, shell):
    df = pynats_lab.dedup_series(window="1.5s", ids=3, at=(0, 0, 1.9))
    assert_dedup_follows_the_window(df, 1.5)
    assert not df[df["round"] == 1]["duplicate"].any()
    first, second = df[df["round"] == 1], df[df["round"] == 2]
    assert (first["subject"].to_numpy() != second["subject"].to_numpy()).all()
    assert df.attrs["window_s"] == 1.5
    assert isinstance(charts.dedup_figure(df), Figure)
