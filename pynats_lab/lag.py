"""Consumer lag over time: `LagSampler` reads a stream's consumers (or one) every interval and keeps
num_pending, num_ack_pending, num_redelivered and num_waiting per consumer; `consumer_watch` prints them in
a terminal, the LagChart widget draws them live. Read-only: CONSUMER.LIST / CONSUMER.INFO only."""
from __future__ import annotations

import time
from typing import Any

import pandas as pd

from .errors import LabError
from .reports import API, api_request, paged_list
from .session import Session, get_session
from .units import parse_duration, parse_interval

LAG_COLUMNS = ["time", "consumer", "num_pending", "num_ack_pending", "num_redelivered", "num_waiting"]


class LagSampler:
    """Readings of one stream's consumers (all of them, or `consumer`), one row per consumer per reading."""

    def __init__(self, session: Session, stream: str, consumer: str | None = None):
        self.session, self.stream, self.consumer = session, stream, consumer
        self.rows: list[dict] = []

    async def sample(self) -> list[dict]:
        s = self.session
        if self.consumer:
            infos = [await api_request(s, f"{API}.CONSUMER.INFO.{self.stream}.{self.consumer}")]
        else:
            await api_request(s, f"{API}.STREAM.INFO.{self.stream}")  # a missing stream is said as such
            infos, _missing = await paged_list(s, f"{API}.CONSUMER.LIST.{self.stream}", "consumers")
        now = pd.Timestamp.now(tz="UTC")
        got = [{"time": now, "consumer": ci.get("name"), "num_pending": int(ci.get("num_pending") or 0),
                "num_ack_pending": int(ci.get("num_ack_pending") or 0),
                "num_redelivered": int(ci.get("num_redelivered") or 0),
                "num_waiting": int(ci.get("num_waiting") or 0)} for ci in sorted(infos, key=lambda c: c.get("name"))]
        self.rows.extend(got)
        return got

    @property
    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=LAG_COLUMNS)
        frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[ns, UTC]")
        for col in LAG_COLUMNS[2:]:
            frame[col] = frame[col].astype("int64")
        return frame


def consumer_watch(stream: str, consumer: str | None = None, *, interval: Any = "1s", timeout: Any = None,
                   session: Session | None = None) -> pd.DataFrame:
    """Read the lag of `stream`'s consumers (or one) every `interval` until `timeout` or Ctrl-C, printing
    a line per consumer per reading; returns every reading (time, consumer, num_pending, num_ack_pending,
    num_redelivered, num_waiting). In Jupyter, `%consumer watch` draws a LagChart instead."""
    s = (session or get_session()).ensure()
    pause = parse_interval(interval)
    limit = parse_duration(timeout, "--timeout")
    if limit is not None and limit <= 0:
        raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
    sampler = LagSampler(s, stream, consumer)
    end = time.monotonic() + limit if limit else None
    first = True
    try:
        while True:
            got = pd.DataFrame(s.run(sampler.sample()), columns=LAG_COLUMNS)
            if len(got):
                got["time"] = pd.to_datetime(got["time"], utc=True).dt.strftime("%H:%M:%S")
                print(got.to_string(index=False, header=first))
                first = False
            if end is not None and time.monotonic() + pause > end:
                break
            time.sleep(pause)
    except KeyboardInterrupt:
        pass
    return sampler.frame
