"""%consumer watch and LagChart on every JetStream server kind: readings per consumer over time that follow
what the consumers do, the chart's panels, and mistakes in one line."""
from __future__ import annotations

import pynats_lab
from pynats_lab.lag import LAG_COLUMNS
from tests.lab.conftest import assert_one_line_errors, eventually, magic


def _setup(shell):
    magic(shell, "%stream add JOBS --subjects jobs.>")
    magic(shell, "%nats pub jobs.run j{{Count}} --count 20 --js")
    magic(shell, "%consumer add JOBS fast --pull")
    magic(shell, "%consumer add JOBS slow --pull --max-pending 5")


def test_watch_in_a_terminal_prints_and_returns_readings(lab_js, shell, capsys):
    _setup(shell)
    magic(shell, "%consumer next JOBS fast --count 20")
    magic(shell, "%consumer next JOBS slow --count 5 --no-ack")
    capsys.readouterr()
    df = magic(shell, "%consumer watch JOBS --interval 200ms --timeout 700ms")
    out = capsys.readouterr()
    assert list(df.columns) == LAG_COLUMNS and out.err == ""
    assert df["time"].nunique() >= 2 and str(df["time"].dtype) == "datetime64[ns, UTC]"
    last = df[df["time"] == df["time"].max()].set_index("consumer")
    assert last.loc["fast", ["num_pending", "num_ack_pending"]].tolist() == [0, 0]
    assert last.loc["slow", ["num_pending", "num_ack_pending"]].tolist() == [15, 5]
    assert "num_pending" in out.out.splitlines()[0] and out.out.count("slow") == df["time"].nunique()
    one = magic(shell, "%consumer watch JOBS slow --interval 100ms --timeout 300ms")
    assert set(one["consumer"]) == {"slow"}


def test_lag_chart_follows_a_worker(lab_js, shell):
    _setup(shell)
    chart = pynats_lab.LagChart("JOBS", interval="100ms", timeout="30s")
    try:
        magic(shell, "%consumer next JOBS fast --count 12")
        eventually(lambda: chart.df.query("consumer == 'fast'")["num_pending"].iloc[-1] == 8)
        df = chart.df
        fast = df[df["consumer"] == "fast"]["num_pending"].tolist()
        assert fast[0] == 20 and fast[-1] == 8  # it saw the worker's progress
        assert chart.chart.value.count("<svg") == 4 and "num_ack_pending" in chart.chart.value
        assert "fast" in chart.table.value and "slow" in chart.table.value
    finally:
        got = chart.stop()
    assert len(got) == len(chart.df) and "stopped" in chart.status.value
    fig = pynats_lab.charts.lag_figure(got)
    assert [ax.get_title() for ax in fig.axes] == ["num_pending", "num_ack_pending", "num_redelivered", "num_waiting"]
    assert len(fig.axes[0].lines) == 2
    assert pynats_lab.stream_info("JOBS").state.consumer_count == 2  # watching made no consumer


def test_watch_mistakes_are_one_line(lab_js, shell, capsys):
    _setup(shell)
    assert_one_line_errors(shell, capsys, {
        "%consumer watch NOPE --timeout 1s": "%consumer watch: stream not found",
        "%consumer watch JOBS nope --timeout 1s": "%consumer watch: consumer not found",
        "%consumer watch JOBS --interval soon": "%consumer watch: invalid --interval",
        "%consumer watch JOBS --timeout 0s": "%consumer watch: invalid --timeout",
    })
    try:
        pynats_lab.LagChart("NOPE")
    except pynats_lab.LabError as exc:
        assert "stream not found" in str(exc)
    else:
        raise AssertionError("LagChart on a missing stream was made")
