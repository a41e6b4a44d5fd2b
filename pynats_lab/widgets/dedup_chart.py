"""DedupChart: publishes rounds of repeated Nats-Msg-Ids and draws accepted versus duplicate over time
with each duplicate window shaded: the window still applies after an ack, and the id is per stream,
not per subject."""
from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .. import charts
from ..errors import describe
from ..measure import dedup_series
from ..session import Session, get_session
from ..units import parse_duration
from .base import LabWidget, error_html, figure_png, table_html

LESSONS = ("<p><small>Each point is one publish of that id; its label (a, b) is the last token of the subject "
           "it went to, so the chart shows the same id on two subjects.</small></p>"
           "<ul><li>The second round re-sends each id within the window, after the first was acked, "
           "on a <i>different subject</i>: the stream still rejects it. The duplicate window outlives "
           "the ack, and ids are tracked per stream, not per subject.</li>"
           "<li>The last round comes after the window: the same ids are accepted again.</li></ul>")


class DedupChart(LabWidget):
    """`DedupChart(window="2s")` (a temporary stream) or `DedupChart("ORDERS")` (its own window)."""

    def __init__(self, stream: str | None = None, *, window: Any = "2s", ids: int = 4,
                 at: tuple[float, ...] | None = None, wait: bool = False, session: Session | None = None):
        self.session = (session or get_session()).ensure()
        self.stream, self.ids, self.at = stream, ids, at
        self.window_s = parse_duration(window, "window") or 2.0
        self.rows: list[dict] = []
        self._lock = threading.Lock()
        self.status = widgets.HTML("publishing…")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.counts = widgets.HTML()
        super().__init__([widgets.HTML("<b>De-duplication</b>"), self.status, self.image, self.counts,
                          widgets.HTML(LESSONS)])
        self.add_class("pynats-dedup-chart")
        self._render()
        self._job = self.session.submit(self._run())
        if wait:
            self.wait()

    async def _run(self) -> None:
        try:
            final = await dedup_series.__wrapped__(self.session, self.stream, window=self.window_s, ids=self.ids,
                                                   at=self.at, on_ack=self._on_ack)
            self.window_s = final.attrs.get("window_s", self.window_s)
            self.status.value = (f"done: {int(final['accepted'].sum())} accepted, "
                                 f"{int(final['duplicate'].sum())} duplicates, window {self.window_s:g}s")
            await self._drawn()
        except Exception as exc:
            self.status.value = error_html(describe(exc))
            raise

    def _on_ack(self, row: dict) -> None:
        with self._lock:
            self.rows.append(row)
        self._draw_soon()  # off the loop: a drawing there would delay the next publish past the window

    @property
    def df(self) -> pd.DataFrame:
        with self._lock:
            frame = pd.DataFrame(list(self.rows))
        if len(frame):
            frame["sent"] = pd.to_datetime(frame["sent"], unit="s", utc=True)
        frame.attrs["window_s"] = self.window_s
        return frame

    def summary(self) -> pd.DataFrame:
        df = self.df
        if not len(df):
            return df
        return df.groupby("round").agg(accepted=("accepted", "sum"), duplicates=("duplicate", "sum"),
                                       at_s=("offset_s", "min")).reset_index()

    def figure(self):
        return charts.dedup_figure(self.df, self.window_s)

    def _render(self) -> None:
        self.image.value = figure_png(self.figure())
        s = self.summary()
        self.counts.value = table_html(s.round(2)) if len(s) else ""

    def static_html(self) -> str:
        s = self.summary()
        return "<b>De-duplication</b>" + (table_html(s.round(2)) if len(s) else "") + LESSONS

    def static_png(self) -> bytes:
        return figure_png(self.figure())
