"""Ack samples as a DataFrame (`%consumer acks`): the metric the server publishes on
`$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>` for a consumer with `sample_freq` — how long a sampled
message took from its delivery to its ack, and at which delivery it was acked. Listened to for a while or
in the background; `ack_summary` gives p50/p90/p99 per first delivery and redelivery.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from . import tables
from .errors import LabError
from .events import collect_rows
from .messaging import Collector
from .session import Session, flush, get_session, in_session
from .units import at_least_one, format_duration, parse_duration

METRIC = "$JS.EVENT.METRIC.CONSUMER.ACK"
COLUMNS = ["time", "consumer_seq", "stream_seq", "deliveries", "ack_time", "ack_ms", "received"]
PERCENTILES = (50, 90, 99)


def ack_row(data: bytes | str, received: pd.Timestamp) -> dict | None:
    """One ack metric as a row; None for anything else."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("type") != "io.nats.jetstream.metric.v1.consumer_ack":
        return None
    ns = int(doc.get("ack_time") or 0)
    return {"time": pd.Timestamp(doc["timestamp"]) if doc.get("timestamp") else None,
            "consumer_seq": doc.get("consumer_seq"), "stream_seq": doc.get("stream_seq"),
            "deliveries": doc.get("deliveries"), "ack_time": pd.Timedelta(ns, unit="ns"), "ack_ms": ns / 1e6,
            "received": received}


def ack_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per first delivery and redelivery: samples, p50 / p90 / p99 and max of the ack time in milliseconds
    (only the percentiles the number of samples supports: p99 needs 100)."""
    from .charts import supported_percentiles

    rows = []
    for kind, g in df.groupby(_kinds(df), sort=False):
        v = g["ack_ms"].to_numpy()
        shown = supported_percentiles(len(v), PERCENTILES)
        row = {"acked at": kind, "samples": len(v)}
        row.update({f"p{p} ms": float(np.percentile(v, p)) if p in shown else float("nan") for p in PERCENTILES})
        row["max ms"] = float(v.max())
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def _kinds(df: pd.DataFrame) -> pd.Series:
    return df["deliveries"].map(lambda d: "first delivery" if d == 1 else "a redelivery")


def chart_samples(df: pd.DataFrame) -> pd.DataFrame:
    """The samples in the shape `charts.latency_figure` draws: kind (first delivery / a redelivery), latency_us."""
    return pd.DataFrame({"kind": _kinds(df), "latency_us": df["ack_ms"] * 1000.0})


def acks_frame(rows: list[dict], stream: str, consumer: str, freq: str, took: str | None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("time", "received"):
        frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    for col in ("consumer_seq", "stream_seq", "deliveries"):
        frame[col] = frame[col].astype("Int64")
    frame["ack_time"] = pd.to_timedelta(frame["ack_time"])
    frame["ack_ms"] = frame["ack_ms"].astype("float64")
    over = f" in {took}" if took else ""
    if not len(frame):
        line = (f"no ack samples of {stream} > {consumer}{over} (sample_freq {freq}): nothing was acknowledged"
                + (" or no ack was drawn" if freq != "100%" else ""))
        return tables.lab_frame(frame, line)
    again = int((frame["deliveries"] > 1).sum())
    line = (f"{len(frame):,} ack sample{'s' if len(frame) != 1 else ''} of {stream} > {consumer}{over} "
            f"(sample_freq {freq}), {again:,} acked at a redelivery; ack time (delivery to ack) in ms below, the "
            "samples are this DataFrame's rows")
    return tables.lab_frame(frame, line, body=ack_summary)


async def sampling(s: Session, stream: str, consumer: str) -> str:
    """The consumer's sample_freq as the server shows it ('100%'); one clear line if it samples nothing."""
    from .reports import api_request

    cfg = (await api_request(s, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}"))["config"]
    freq = (cfg.get("sample_freq") or "").strip()
    if cfg.get("ack_policy") != "explicit":
        raise LabError(f"{stream} > {consumer} acks with policy {cfg.get('ack_policy')}: the server samples only "
                       "explicit acks (a consumer with --ack explicit)")
    if freq.removesuffix("%") in ("", "0"):
        raise LabError(f"{stream} > {consumer} has no sample_freq, so the server publishes no ack samples for it: "
                       f"turn sampling on with %consumer edit {stream} {consumer} --sample 100")
    return freq if freq.endswith("%") else freq + "%"


def _subject(stream: str, consumer: str) -> str:
    return f"{METRIC}.{stream}.{consumer}"


@in_session
async def consumer_acks(s: Session, stream: str, consumer: str, *, timeout: Any = "10s",
                        count: int | None = None) -> pd.DataFrame:
    """Collect the consumer's ack samples until `count` arrived or `timeout` passed (its acks come from
    whatever processes its messages meanwhile). Columns: time (of the ack, the server's clock), consumer_seq,
    stream_seq, deliveries, ack_time (Timedelta from delivery, or the last +WPI, to ack), ack_ms, received.
    The consumer needs sample_freq and explicit acks; `ack_summary(df)` gives the percentiles."""
    at_least_one(count, "--count")
    limit = parse_duration(timeout, "--timeout")
    if limit is None or limit <= 0:
        raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
    freq = await sampling(s, stream, consumer)

    async def subscribe(on_msg) -> list:
        sub = await s.nc.subscribe(_subject(stream, consumer), cb=on_msg)
        await flush(s.nc)
        return [sub]

    rows = await collect_rows(subscribe, lambda msg: ack_row(msg.data, pd.Timestamp.now(tz="UTC")), count, limit)
    return acks_frame(rows, stream, consumer, freq, format_duration(limit))


class AckCollector(Collector):
    """A consumer's ack samples collected in the background (a `Collector` of the metric's subject); `.df` so
    far, `.stop()`."""

    def __init__(self, stream: str, consumer: str, *, session: Session | None = None):
        s = (session or get_session()).ensure()
        self.stream, self.consumer = stream, consumer
        self.freq = s.run(sampling(s, stream, consumer))
        super().__init__(_subject(stream, consumer), session=s)

    @property
    def df(self) -> pd.DataFrame:
        """The samples so far, oldest first."""
        if self._sub is not None and self.session.connected:
            self.session.run(self._settle())
        with self._lock:
            got = list(zip(self._msgs, self._received))
        rows = [ack_row(m.data, pd.Timestamp(t, unit="s", tz="UTC")) for m, t in got]
        return acks_frame([r for r in rows if r is not None], self.stream, self.consumer, self.freq, None)

    def __repr__(self) -> str:
        state = "listening" if self._sub is not None else "stopped"
        return (f"<ack samples of {self.stream} > {self.consumer} (sample_freq {self.freq}, {state}): "
                f"{len(self)} so far>")

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p>{escape(repr(self)[1:-1])}</p>" + (self.df._repr_html_() if len(self) else "")


def consumer_acks_background(stream: str, consumer: str, *, session: Session | None = None) -> AckCollector:
    """Start collecting the consumer's ack samples and return at once (`.df`, `.stop()`)."""
    return AckCollector(stream, consumer, session=session)
