"""LatencyChart: a live histogram with p50/p90/p99/p99.9 of pub->sub, request/reply and JetStream
publish-ack latency against the connected server, filled in rounds while you watch."""
from __future__ import annotations

import threading

import ipywidgets as widgets
import pandas as pd

from .. import charts
from ..errors import describe
from ..measure import KINDS, _has_jetstream, latency_frame, latency_percentiles, sample_latency
from ..session import Session, get_session
from ..units import at_least_one, parse_size
from .base import LabWidget, error_html, figure_png, table_html


class LatencyChart(LabWidget):
    """`LatencyChart(count=500, size=128)`; `.df` holds the samples, `.percentiles` the summary."""

    def __init__(self, *, count: int = 300, size=128, kinds: tuple[str, ...] = KINDS, rounds: int = 6,
                 wait: bool = False, session: Session | None = None):
        at_least_one(count, "count")
        self.session = (session or get_session()).ensure()
        self.count, self.size, self.rounds = count, parse_size(size, "size") or 0, max(rounds, 1)
        self.kinds = list(kinds)
        self.samples: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML("measuring…")
        self.again = widgets.Button(description="measure again", icon="refresh", layout=widgets.Layout(width="auto"))
        self.again.on_click(lambda _b: self.start())
        super().__init__([widgets.HTML("<b>Latency</b> against " + str(self.session.url)), self.status,
                          self.image, self.summary, self.again])
        self.add_class("pynats-latency-chart")
        self._render()
        self.start()
        if wait:
            self.wait()

    def start(self) -> "LatencyChart":
        if self._job is not None and not self._job.done():
            return self
        self.samples = {}
        self._job = self.session.submit(self._measure())
        return self

    async def _measure(self) -> None:
        try:
            kinds = [k for k in self.kinds if k != "js-publish" or await _has_jetstream(self.session)]
            rounds = min(self.rounds, self.count)
            done = 0
            for r in range(rounds):
                # Every sample asked for is taken: the rounds share `count` exactly (150 in 4: 37, 38, 37, 38).
                now = self.count * (r + 1) // rounds - self.count * r // rounds
                for kind in kinds:
                    got = await sample_latency(self.session, kind, now, self.size)
                    with self._lock:
                        self.samples.setdefault(kind, []).extend(got)
                done += now
                self.status.value = f"round {r + 1}/{rounds}: {done} of {self.count} samples per kind"
                # Off the loop: other widgets' work shares it (a drawing there delayed a DedupChart's rounds).
                self._draw_soon()
            await self._drawn()
            self.status.value = f"done: {self.count} samples per kind, {self.size} B payload"
        except Exception as exc:
            self.status.value = error_html(describe(exc))
            raise

    @property
    def df(self) -> pd.DataFrame:
        with self._lock:
            return latency_frame({k: list(v) for k, v in self.samples.items()})

    @property
    def percentiles(self) -> pd.DataFrame:
        df = self.df
        return latency_percentiles(df) if len(df) else pd.DataFrame()

    def figure(self):
        return charts.latency_figure(self.df, title=f"Latency against {self.session.url}")

    def _render(self) -> None:
        self.image.value = figure_png(self.figure())
        pct = self.percentiles
        self.summary.value = table_html(pct.round(1)) if len(pct) else ""

    def static_html(self) -> str:
        pct = self.percentiles
        return "<b>Latency (µs)</b>" + (table_html(pct.round(1)) if len(pct) else "<i>no samples yet</i>")

    def static_png(self) -> bytes:
        return figure_png(self.figure())
