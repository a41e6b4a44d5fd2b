"""LagChart: a stream's consumers (or one) read again every interval, num_pending, num_ack_pending,
num_redelivered and num_waiting charted live, one line per consumer (`%consumer watch` in Jupyter).

Drawn as SVG like the ServerMonitor, so a refresh stays cheap; matplotlib draws the saved copy."""
from __future__ import annotations

import html
from typing import Any

import pandas as pd

from .. import charts
from ..lag import LagSampler
from ..session import Session, get_session
from .base import figure_png, table_html
from .server_monitor import watch_svg
from .watch import Watch


class LagChart(Watch):
    """`LagChart(stream, consumer=None, *, interval="1s", timeout=None)`: live lag charts until `timeout` or
    `.stop()`; `.df` holds every reading (time, consumer, num_pending, num_ack_pending, num_redelivered,
    num_waiting)."""

    def __init__(self, stream: str, consumer: str | None = None, *, interval: Any = "1s", timeout: Any = None,
                 wait: bool = False, session: Session | None = None):
        self.session = (session or get_session()).ensure()
        self.stream, self.consumer = stream, consumer
        self._watch_settings(interval, timeout)
        self.sampler = LagSampler(self.session, stream, consumer)
        self.session.run(self.sampler.sample())  # a wrong stream or consumer fails here, at once
        self.what = f"{stream} > {consumer}" if consumer else f"consumers of {stream}"
        super().__init__()
        self._start_watch(f"<b>Lag</b> of {html.escape(self.what)}", "pynats-lag-chart", "1 reading", wait)

    def figure(self):
        return charts.lag_figure(self.df, title=f"Lag of {self.what}")

    def latest(self) -> pd.DataFrame:
        df = self.df
        if not len(df):
            return df
        out = df[df["time"] == df["time"].max()].reset_index(drop=True)
        out["time"] = out["time"].dt.strftime("%H:%M:%S")
        return out

    def _render(self) -> None:
        self.chart.value = watch_svg(self.df, panels=charts.LAG_PANELS, key="consumer", label=str,
                                     waiting="no reading yet")
        self.table.value = table_html(self.latest())

    def static_html(self) -> str:
        return "<b>Lag</b>" + table_html(self.latest())

    def static_png(self) -> bytes:
        return figure_png(self.figure())
