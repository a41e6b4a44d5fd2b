"""StreamViewer: a paged, read-only table of a stream: first/prev/next/last, page size, subject filter,
start by sequence or time, row detail with headers and pretty JSON, and a live-follow toggle."""
from __future__ import annotations

import html
import json
import threading
from typing import Any

import ipywidgets as widgets

from .. import frames
from ..errors import describe
from ..session import Session
from ..streams import StreamPager
from ..units import parse_interval
from .base import LabWidget, error_html, table_html


class StreamViewer(LabWidget):
    """`StreamViewer("ORDERS", subject="orders.>", page_size=25, follow=True, interval="500ms")`."""

    def __init__(self, stream: str, *, subject: str | None = None, start_seq: int | None = None,
                 since: Any = None, page_size: int = 25, follow: bool = False, last: bool = False,
                 interval: Any = "1s", session: Session | None = None):
        self.stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the follow thread and button clicks move the same pager
        self._follower: threading.Thread | None = None
        self.pager = StreamPager(stream, subject=subject, start_seq=start_seq, since=since, page_size=page_size,
                                 session=session)
        b = lambda label, icon, tip: widgets.Button(description=label, icon=icon, tooltip=tip,
                                                   layout=widgets.Layout(width="auto"))
        self.first_button = b("first", "step-backward", "first page")
        self.prev_button = b("prev", "chevron-left", "previous page")
        self.next_button = b("next", "chevron-right", "next page")
        self.last_button = b("last", "step-forward", "newest page")
        self.page_size_box = widgets.BoundedIntText(value=page_size, min=1, max=100_000, description="page",
                                                    layout=widgets.Layout(width="140px"))
        self.subject_box = widgets.Text(value=subject or "", placeholder="subject filter, e.g. orders.>",
                                        description="subject", layout=widgets.Layout(width="260px"))
        self.seq_box = widgets.Text(value="", placeholder="seq or 2h / ISO time", description="start",
                                    layout=widgets.Layout(width="230px"))
        self.go_button = b("go", "search", "apply filter and start")
        self.follow_toggle = widgets.ToggleButton(value=False, description="live", icon="play",
                                                  tooltip="follow new messages", layout=widgets.Layout(width="auto"))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.detail_pick = widgets.Dropdown(description="detail", options=[], layout=widgets.Layout(width="260px"))
        self.detail = widgets.HTML()
        for button, move in ((self.first_button, self.pager.first), (self.prev_button, self.pager.prev),
                             (self.next_button, self.pager.next), (self.last_button, self.pager.last)):
            button.on_click(lambda _b, move=move: self._move(move))
        self.go_button.on_click(lambda _b: self._apply())
        self.detail_pick.observe(lambda ch: self._show_detail(), names="value")
        self.follow_toggle.observe(lambda ch: self._set_follow(ch["new"]), names="value")
        self.page_size_box.observe(lambda ch: self._resize(), names="value")
        controls = widgets.HBox([self.first_button, self.prev_button, self.next_button, self.last_button,
                                 self.page_size_box, self.follow_toggle])
        filters = widgets.HBox([self.subject_box, self.seq_box, self.go_button])
        super().__init__([widgets.HTML(f"<b>Stream {html.escape(stream)}</b>"), controls, filters, self.status,
                          self.table, self.detail_pick, self.detail])
        self.add_class("pynats-stream-viewer")
        self._move(self.pager.last if last else self.pager.start)
        if follow:
            self.follow_toggle.value = True

    # -- actions ----------------------------------------------------------------------------------
    def _move(self, move) -> None:
        with self._lock:
            try:
                self.pager.page_size = max(int(self.page_size_box.value), 1)
                move()
                self._render()
            except Exception as exc:
                self.status.value = error_html(describe(exc))

    def _resize(self) -> None:
        """A new page size re-reads the page from its first message."""
        first = int(self.pager.page["seq"].iloc[0]) if len(self.pager.page) else 1
        self._move(lambda: self.pager.goto(seq=first))

    def _apply(self) -> None:
        self.pager.subject = self.subject_box.value.strip() or None
        self.pager.page_size = max(int(self.page_size_box.value), 1)
        start = self.seq_box.value.strip()
        if not start:
            self._move(self.pager.first)
        elif start.isdigit():
            self._move(lambda: self.pager.goto(seq=int(start)))
        else:
            self._move(lambda: self.pager.goto(since=start))

    def _render(self) -> None:
        page = self.pager.page
        self.status.value = html.escape(self.pager.position)
        self.table.value = table_html(page)
        options = [(f"{seq} · {subj}", seq) for seq, subj in zip(page["seq"], page["subject"])]
        current = self.detail_pick.value
        self.detail_pick.options = options
        if options:
            self.detail_pick.value = current if current in dict(options).values() else options[0][1]
        self._show_detail()

    def _show_detail(self) -> None:
        page, seq = self.pager.page, self.detail_pick.value
        if seq is None or not len(page) or seq not in set(page["seq"]):
            self.detail.value = ""
            return
        row = page[page["seq"] == seq].iloc[0]
        body = frames.pretty(row["data"]) or (row["data"] if isinstance(row["data"], str) else repr(row["data"]))
        headers = json.dumps(row["headers"], indent=2) if row["headers"] else "(none)"
        self.detail.value = (
            f"<div class='pnl-detail'><b>seq {row['seq']}</b> · {html.escape(row['subject'])} · "
            f"{row['time'].isoformat()} · {row['size']} bytes"
            f"<br><b>headers</b><pre>{html.escape(headers)}</pre><b>data</b><pre>{html.escape(body)}</pre></div>")

    # -- live follow -------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        """Seconds between looks for new messages while following; set it any time ('200ms', 2)."""
        return self._interval

    @interval.setter
    def interval(self, value: Any) -> None:
        self._interval = parse_interval(value)

    def _set_follow(self, on: bool) -> None:
        self.follow_toggle.icon = "pause" if on else "play"
        if on and (self._follower is None or not self._follower.is_alive()):
            self._stop.clear()
            self._follower = threading.Thread(target=self._follow_loop, daemon=True, name="stream-viewer-follow")
            self._follower.start()
        elif not on:
            self._stop.set()

    def _follow_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                try:
                    before = self.pager.page["seq"].iloc[-1] if len(self.pager.page) else 0
                    self.pager.follow()
                    after = self.pager.page["seq"].iloc[-1] if len(self.pager.page) else 0
                    if after != before:
                        self._render()
                except Exception as exc:
                    self.status.value = error_html(describe(exc))
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        super().close()

    # -- static copy --------------------------------------------------------------------------------
    def static_html(self) -> str:
        return f"<b>Stream {html.escape(self.stream)}</b><p>{html.escape(self.pager.position)}</p>" + \
            table_html(self.pager.page)

    @property
    def df(self):
        return self.pager.page
