"""What the watching widgets share (ServerMonitor, LagChart): read a sampler every interval on the session
loop until a timeout or `.stop()`, redraw after each reading, and keep every reading in `.df`."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import LabError, describe
from ..units import parse_duration, parse_interval
from .base import LabWidget, error_html, headless

HEADLESS_READINGS = 5  # a saved notebook shows this many intervals when no --timeout was given


class Watch(LabWidget):
    """Subclasses set `self.sampler` (an object with `async sample()`, `.rows` and `.frame`), take a first
    reading, and call `_start_watch`; their `_render()` draws into `self.chart` and `self.table`."""

    def _watch_settings(self, interval: Any, timeout: Any) -> None:
        self.interval = parse_interval(interval)
        limit = parse_duration(timeout, "--timeout")
        if limit is not None and limit <= 0:
            raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
        if limit is None and headless():
            limit = self.interval * HEADLESS_READINGS
        self.timeout = limit
        self.static_wait = (limit or 0) + 30
        self.refreshes: list[float] = []
        self._stopping = False

    def _start_watch(self, title: str, css_class: str, status: str, wait: bool) -> None:
        """Lay out the title (HTML), status line, chart, table of the latest reading and stop button, draw the
        first reading (taken by the constructor) and read on in the background."""
        self.chart = widgets.HTML()
        self.table = widgets.HTML()
        self.status = widgets.HTML(status)
        self.stop_button = widgets.Button(description="stop", icon="stop", layout=widgets.Layout(width="auto"))
        self.stop_button.on_click(lambda _b: self.stop())
        self.children = [widgets.HTML(title), self.status, self.chart, self.table, self.stop_button]
        self.add_class(css_class)
        self._render()
        self._job = self.session.submit(self._watch())
        if wait:
            self.wait(None)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while not self._stopping:
                await asyncio.sleep(self.interval)
                if self._stopping:
                    break
                t0 = time.perf_counter()
                await self.sampler.sample()
                self._render()
                self.refreshes.append(time.perf_counter() - t0)
                readings = len(self.sampler.rows) and len({r["time"] for r in self.sampler.rows})
                self.status.value = f"{readings} readings every {self.interval:g}s"
                if self.timeout is not None and loop.time() - start >= self.timeout:
                    break
            self.status.value += " — stopped"
        except Exception as exc:
            self.status.value = error_html(describe(exc))
            raise

    def _render(self) -> None:
        raise NotImplementedError

    def stop(self) -> pd.DataFrame:
        """Stop reading (after the current reading); the DataFrame of all readings."""
        self._stopping = True
        try:
            self.wait(self.interval + 10)
        except LabError:
            pass
        return self.df

    @property
    def df(self) -> pd.DataFrame:
        return self.sampler.frame
