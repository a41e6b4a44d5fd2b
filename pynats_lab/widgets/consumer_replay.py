"""ConsumerReplay: replays a stream through a temporary consumer into a growing table, with a timeline of
original publish times against delivery times (replay "original" keeps the gaps, "instant" does not)."""
from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .. import charts, frames
from ..consumers import replay_config, replay_source, run_replay
from ..errors import describe
from ..session import Session, get_session
from ..units import at_least_one
from .base import LabWidget, error_html, figure_png, table_html

_SHOWN = ["seq", "time", "received", "subject", "data", "delivered"]


class ConsumerReplay(LabWidget):
    """`ConsumerReplay("ORDERS", deliver="all", replay="original")`; `.df` is what arrived so far."""

    def __init__(self, stream: str, *, deliver: Any = "all", replay: str = "original", filter: str | None = None,
                 count: int | None = None, timeout: float = 30.0, wait: bool = False,
                 session: Session | None = None):
        self.session = (session or get_session()).ensure()
        # A wrong flag or stream fails here, as one line from the magic, not later inside the widget.
        replay_config("_lab.replay.check", deliver=deliver, replay=replay, filter=filter)
        at_least_one(count, "--count")
        self.session.run(replay_source(self.session, stream))
        self.stream, self.deliver, self.replay, self.filter = stream, deliver, replay, filter
        self.count, self.timeout = count, timeout
        self.static_wait = timeout + 10
        self._frame = frames.consumed_frame([], [])
        self._lock = threading.Lock()
        self.mode = widgets.ToggleButtons(options=["original", "instant"], value=replay,
                                          description="replay", style={"button_width": "80px"})
        self.play = widgets.Button(description="replay", icon="play", layout=widgets.Layout(width="auto"))
        self.play.on_click(lambda _b: self.start(self.mode.value))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="820px"))
        super().__init__([widgets.HTML(f"<b>Replay of {html.escape(stream)}</b>"),
                          widgets.HBox([self.mode, self.play]), self.status, self.image, self.table])
        self.add_class("pynats-consumer-replay")
        self.start(replay)
        if wait:
            self.wait(timeout + 10)

    def start(self, replay: str | None = None) -> "ConsumerReplay":
        if self._job is not None and not self._job.done():
            return self
        self.replay = replay or self.replay
        with self._lock:
            self._frame = frames.consumed_frame([], [])
        self.status.value = f"replaying ({self.replay})…"
        self._render()
        self._job = self.session.submit(self._run())
        return self

    async def _run(self) -> None:
        try:
            final = await run_replay(self.session, self.stream, deliver=self.deliver, replay=self.replay,
                                     filter=self.filter, count=self.count, timeout=self.timeout,
                                     on_message=self._update)
            with self._lock:
                self._frame = final
            await self._drawn()
            self.status.value = f"done: {len(final)} messages replayed ({self.replay})"
        except Exception as exc:
            self.status.value = error_html(describe(exc))
            raise

    def _update(self, frame: pd.DataFrame) -> None:
        """A frame so far, from the loop thread while messages arrive: kept at once, drawn off the loop,
        so an instant replay stays instant."""
        with self._lock:
            self._frame = frame
        self._draw_soon()

    @property
    def df(self) -> pd.DataFrame:
        with self._lock:
            return self._frame

    def _render(self) -> None:
        df = self.df
        self.table.value = table_html(df[_SHOWN].tail(200) if len(df) else df)
        self.image.value = figure_png(self.figure())

    def figure(self):
        return charts.timeline_figure(self.df, title=f"Replay of {self.stream} ({self.replay})")

    def static_html(self) -> str:
        df = self.df
        return f"<b>Replay of {html.escape(self.stream)} ({self.replay})</b>" + \
            table_html(df[_SHOWN] if len(df) else df)

    def static_png(self) -> bytes:
        return figure_png(self.figure())
