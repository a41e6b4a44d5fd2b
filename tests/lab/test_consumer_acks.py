"""%consumer acks: the ack samples of a consumer with sample_freq as a DataFrame (in the background or for a
while), its percentiles, and one line where the consumer samples nothing."""
from __future__ import annotations

import pandas as pd

import pynats_lab
from tests.lab.conftest import assert_one_line_errors, eventually, magic


def test_ack_samples_of_a_consumer(lab_js, shell, capsys):
    magic(shell, "%stream add WORK --subjects work.> --storage memory")
    magic(shell, "%consumer add WORK worker --pull --ack-wait 30s")
    magic(shell, "%consumer add WORK lazy --pull --ack all")
    assert_one_line_errors(shell, capsys, {
        "%consumer acks WORK worker": "%consumer acks: WORK > worker has no sample_freq, so the server publishes "
                                      "no ack samples for it: turn sampling on with %consumer edit WORK worker "
                                      "--sample 100",
        "%consumer acks WORK lazy": "%consumer acks: WORK > lazy acks with policy all: the server samples only "
                                    "explicit acks",
        "%consumer acks WORK nobody": "%consumer acks: consumer not found (10014)",
        "%consumer acks WORK worker --background --count 2": "%consumer acks: --background collects until",
    })
    assert "sample this % of acks" in capsys.readouterr().out + _help(shell, capsys)
    magic(shell, "%consumer edit WORK worker --sample 100")
    bg = magic(shell, "%consumer acks WORK worker --background")
    assert "sample_freq 100%" in repr(bg)
    magic(shell, "%nats pub work.x 'm{{Count}}' --count 5 --js")
    magic(shell, "%consumer next WORK worker --nak")          # seq 1 comes again, acked at its 2nd delivery
    magic(shell, "%consumer next WORK worker --count 5")
    eventually(lambda: len(bg) == 5)
    df = bg.stop()
    assert list(df.columns) == ["time", "consumer_seq", "stream_seq", "deliveries", "ack_time", "ack_ms",
                                "received"]
    got = sorted(zip(df["stream_seq"], df["consumer_seq"], df["deliveries"]))
    assert got == [(1, 2, 2), (2, 3, 1), (3, 4, 1), (4, 5, 1), (5, 6, 1)], got
    assert (df["ack_time"] > pd.Timedelta(0)).all() and df["ack_ms"].gt(0).all()
    assert str(df["ack_time"].dtype) == "timedelta64[ns]" and str(df["received"].dtype) == "datetime64[ns, UTC]"
    assert df.summary.startswith("5 ack samples of WORK > worker (sample_freq 100%), 1 acked at a redelivery")
    summary = pynats_lab.ack_summary(df)
    assert dict(zip(summary["acked at"], summary["samples"])) == {"first delivery": 4, "a redelivery": 1}
    assert "p50 ms" in summary and "p99 ms" not in summary, "p99 needs 100 samples"
    # Listening for a while: the count ends it; nothing acked, nothing sampled, and the line says so.
    quiet = magic(shell, "%consumer acks WORK worker --for 300ms")
    assert len(quiet) == 0 and quiet.summary == ("no ack samples of WORK > worker in 300ms (sample_freq 100%): "
                                                 "nothing was acknowledged")


def _help(shell, capsys) -> str:
    magic(shell, "%consumer edit --help")
    return capsys.readouterr().out
