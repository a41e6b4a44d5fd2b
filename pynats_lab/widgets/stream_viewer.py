"""StreamViewer: a paged, read-only table of a stream: first/prev/next/last, page size, subject filter,
start by sequence or time, a search over payloads and headers, rows to click for the detail (headers, pretty
JSON, or the payload's bytes as hex or base64), and a live-follow toggle."""
from __future__ import annotations

import base64
import html
import json
import threading
from typing import Any

import ipywidgets as widgets

from .. import frames
from ..tables import clip, compact_times
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
        self.search_box = widgets.Text(value="", placeholder="text in payload or headers",
                                       description="search", layout=widgets.Layout(width="260px"))
        self.search_button = b("find", "search", "the first messages whose payload or headers hold the text")
        self.status = widgets.HTML()
        # The page as rows to click: the one clicked is shown in full below.
        self.table = widgets.HTML()
        self.rows = widgets.Select(options=[], rows=min(page_size, 15), layout=widgets.Layout(width="100%"))
        self.rows.add_class("pnl-rows")
        self.detail_pick = self.rows
        self.view = widgets.ToggleButtons(options=["text", "hex", "base64"], value="text",
                                          style={"button_width": "70px"}, tooltips=["payload as text (JSON indented)",
                                                                                     "payload bytes in hex",
                                                                                     "payload bytes in base64"])
        self.detail = widgets.HTML()
        for button, move in ((self.first_button, self.pager.first), (self.prev_button, self.pager.prev),
                             (self.next_button, self.pager.next), (self.last_button, self.pager.last)):
            button.on_click(lambda _b, move=move: self._move(move))
        self.go_button.on_click(lambda _b: self._apply())
        self.detail_pick.observe(lambda ch: self._show_detail(), names="value")
        self.view.observe(lambda ch: self._show_detail(), names="value")
        self.search_button.on_click(lambda _b: self._search())
        self.search_box.continuous_update = False  # Enter (or leaving the box) searches
        self.search_box.observe(lambda ch: self._search(), names="value")
        self.follow_toggle.observe(lambda ch: self._set_follow(ch["new"]), names="value")
        self.page_size_box.observe(lambda ch: self._resize(), names="value")
        controls = widgets.HBox([self.first_button, self.prev_button, self.next_button, self.last_button,
                                 self.page_size_box, self.follow_toggle])
        filters = widgets.HBox([self.subject_box, self.seq_box, self.go_button, self.search_box,
                                self.search_button])
        style = widgets.HTML("<style>.pnl-rows select{font-family:monospace;font-size:12px}"
                             ".pnl-detail pre{white-space:pre-wrap;word-break:break-all;max-height:320px;"
                             "overflow:auto}</style>")
        super().__init__([widgets.HTML(f"<b>Stream {html.escape(stream)}</b>"), style, controls, filters,
                          self.status, self.table, self.rows, self.view, self.detail])
        self._searched: str | None = None
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
        self._searched = None
        subject = self.subject_box.value.strip() or None
        if subject:
            from ..subjects import check_subject

            try:
                check_subject(subject, "subject filter", wildcards=True)
            except Exception as exc:
                self.status.value = error_html(describe(exc))
                return
        self.pager.subject = subject
        self.pager.page_size = max(int(self.page_size_box.value), 1)
        start = self.seq_box.value.strip()
        if not start:
            self._move(self.pager.first)
        elif start.isdigit():
            self._move(lambda: self.pager.goto(seq=int(start)))
        else:
            self._move(lambda: self.pager.goto(since=start))

    def _search(self) -> None:
        """The first page of messages (under the subject filter) whose payload or headers hold the text."""
        text = self.search_box.value.strip()
        if not text:
            self._searched = None
            self._move(self.pager.start)
            return
        self._searched = text
        self.pager.subject = self.subject_box.value.strip() or None  # within the subject filter shown
        start = 1

        def find() -> None:
            found, scanned = [], start - 1
            for part in self.pager.pages(start_seq=start):
                scanned = int(part["seq"].iloc[-1])
                hit = part["data"].map(lambda d: text in (d if isinstance(d, str) else repr(d))) | \
                    part["headers"].map(lambda h: any(text in f"{k}: {v}" for k, v in (h or {}).items()))
                found.append(part[hit])
                if sum(len(f) for f in found) >= self.pager.page_size:
                    break
            import pandas as pd

            hits = pd.concat(found, ignore_index=True).head(self.pager.page_size) if found else \
                frames.empty_stored_frame()
            self.pager.page = hits
            self._scanned = (start, scanned)

        self._move(find)

    def _status_line(self) -> str:
        """Where the page is, and which filter and search made it."""
        parts = [html.escape(self.pager.position)]
        if self.pager.subject:
            parts.append(f"filter: subject <code>{html.escape(self.pager.subject)}</code>")
        if self._searched:
            start, scanned = getattr(self, "_scanned", (1, 0))
            parts.append(f"search <code>{html.escape(self._searched)}</code> in payloads and headers: "
                         f"{len(self.pager.page)} found in seq {start}..{scanned}")
        return " · ".join(parts)

    def _render(self) -> None:
        page = self.pager.page
        self.status.value = self._status_line()
        self.table.value = "<small>click a row: its headers and whole payload show below</small>" if len(page) \
            else "<i>no messages</i>"
        options = _row_labels(page)
        current = self.detail_pick.value
        self.rows.rows = max(min(len(options), 15), 2)  # one row would make a drop-down
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
        raw = self._payload(int(seq), row)
        try:
            text = raw.decode("utf-8")
            binary = False
        except UnicodeDecodeError:
            text, binary = None, True
        view = self.view.value
        if view == "text" and binary:
            view = "hex"  # bytes that are not UTF-8 read best as bytes
        if view == "hex":
            body, what = _hex_dump(raw), "data (hex" + (", not UTF-8 text" if binary else "") + ")"
        elif view == "base64":
            body, what = base64.b64encode(raw).decode(), "data (base64)"
        else:
            body, what = frames.pretty(text) or text, "data"
        headers = json.dumps(row["headers"], indent=2) if row["headers"] else "(none)"
        self.detail.value = (
            f"<div class='pnl-detail'><b>seq {row['seq']}</b> · {html.escape(row['subject'])} · "
            f"{row['time'].isoformat()} · {row['size']} bytes"
            f"<br><b>headers</b><pre>{html.escape(headers)}</pre><b>{what}</b><pre>{html.escape(body)}</pre></div>")

    def _payload(self, seq: int, row) -> bytes:
        """The stored bytes of a message (the table holds text): read again, once, for the detail."""
        cache = getattr(self, "_raw", None)
        if cache and cache[0] == seq:
            return cache[1]
        try:
            from ..streams import stream_get

            data = stream_get(self.stream, seq, raw=True, session=self.pager.session)["data"].iloc[0]
        except Exception:
            data = row["data"].encode("utf-8", "backslashreplace") if isinstance(row["data"], str) else row["data"]
        self._raw = (seq, bytes(data))
        return self._raw[1]

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


def _row_labels(page) -> list[tuple[str, int]]:
    """One line per message, in columns: seq, time, subject, payload (clipped between values), headers."""
    if not len(page):
        return []
    times = compact_times(page["time"])
    width = max(len(str(s)) for s in page["seq"])
    subject_width = min(max(len(s) for s in page["subject"]), 32)
    out = []
    for seq, t, subject, data, headers in zip(page["seq"], times, page["subject"], page["data"], page["headers"]):
        text = data if isinstance(data, str) else ""
        if not isinstance(data, str) or not " ".join(data.split()).isprintable():
            text = "<binary payload: click the row for hex>"
        hdrs = "  [" + clip("; ".join(f"{k}: {v}" for k, v in headers.items()), 60) + "]" if headers else ""
        out.append((f"{seq:>{width}}  {t}  {subject:<{subject_width}}  {clip(text, 90)}{hdrs}", int(seq)))
    return out


def _hex_dump(data: bytes, width: int = 16) -> str:
    """Offset, hex bytes and printable characters, 16 bytes a line (as hexdump -C)."""
    lines = []
    for at in range(0, len(data), width):
        chunk = data[at:at + width]
        hexed = " ".join(f"{b:02x}" for b in chunk)
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:08x}  {hexed:<{width * 3}} {shown}")
    return "\n".join(lines) or "(empty)"
