"""What the lab's widgets share: background work on the session loop, figures as PNG images, and a
static (HTML / PNG) copy of the current state in the output for non-interactive runs, complete there
because a headless run's display waits for the work."""
from __future__ import annotations

import asyncio
import concurrent.futures
import html
import io
import threading

import ipywidgets as widgets
import pandas as pd

from ..errors import LabError, describe, reraise

TABLE_CSS = ("<style>.pnl-table{max-width:100%;overflow-x:auto}"
             ".pnl-table table{border-collapse:collapse;font-size:12px}"
             ".pnl-table td,.pnl-table th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;"
             "max-width:420px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}</style>")


def figure_png(fig, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def table_html(df: pd.DataFrame, max_chars: int = 80, css_class: str = "pnl-rows") -> str:
    """A DataFrame as a compact HTML table, long cells shortened (the detail view shows them whole)."""
    if df is None or not len(df):
        return "<div class='pnl-table'><i>no messages</i></div>"
    from ..tables import readable

    # Compact times (to the millisecond, the date only when rows span days), headers as Key: value.
    shown = readable(df)
    for col in shown.columns:
        shown[col] = shown[col].map(lambda v: _short(v, max_chars))
    return TABLE_CSS + f"<div class='pnl-table'>{shown.to_html(index=False, classes=css_class, escape=True)}</div>"


def _short(value, n: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def headless() -> bool:
    """True in a kernel that papermill, nbconvert or nbclient drives: such a run asks for no stdin (nobody
    could answer `input()`), and nobody will see a live widget either, only the static copy it saves."""
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return False
    request = kernel.get_parent("shell") or {}
    header, content = request.get("header", {}), request.get("content", {})
    return header.get("msg_type") == "execute_request" and not content.get("allow_stdin", True)


def error_html(text: str) -> str:
    return f"<div style='color:#b00'>{html.escape(text)}</div>"


class LabWidget(widgets.VBox):
    """A VBox with a background job and a static copy of itself for outputs without a widget manager."""

    _job: concurrent.futures.Future | None = None
    static_wait: float = 60.0  # how long a headless display waits for the work to finish
    _drawing = False
    _draw_again = False
    _draw_lock = threading.Lock()  # shared by all widgets: it guards two flags for a moment

    def _render(self) -> None:
        """Draw the current state into the widget's views."""

    def _draw_soon(self) -> None:
        """Redraw in another thread, one drawing at a time, ending on the latest state. Called from the
        session's loop as work progresses: the loop that publishes or delivers never waits for matplotlib
        (a chart takes a tenth of a second; an instant replay of ten messages took two)."""
        with self._draw_lock:
            if self._drawing:
                self._draw_again = True
                return
            self._drawing = True
        threading.Thread(target=self._draw_until_current, daemon=True, name="lab-widget-draw").start()

    def _draw_until_current(self) -> None:
        while True:
            try:
                self._render()
            except Exception:  # a drawing that fails leaves the last one; the status line says why work failed
                pass
            with self._draw_lock:
                if not self._draw_again:
                    self._drawing = False
                    return
                self._draw_again = False

    async def _drawn(self) -> None:
        """From the loop, at the end of the work: the final state drawn before the work counts as done."""
        self._draw_soon()
        while self._drawing:
            await asyncio.sleep(0.01)

    def wait(self, timeout: float | None = 60.0):
        """Block until the background work is done (use before displaying under papermill)."""
        if self._job is not None:
            try:
                self._job.result(timeout)
            except Exception as exc:
                if isinstance(exc, concurrent.futures.TimeoutError) and not self._job.done():
                    raise LabError(f"still working after {timeout:g}s") from None
                reraise(exc)
        return self

    def static_html(self) -> str:
        return ""

    @property
    def failure(self) -> str | None:
        """Why the background work failed, in one line; None while it runs or when it succeeded."""
        job = self._job
        if job is None or not job.done() or job.cancelled():
            return None
        exc = job.exception()
        return describe(exc) if exc is not None else None

    def static_png(self) -> bytes | None:
        return None

    def _repr_mimebundle_(self, **kwargs):
        if headless() and self._job is not None:
            # The saved output is all a headless run keeps: let it show the finished work. A failure is
            # already in the widget's status line.
            try:
                self._job.result(self.static_wait)
            except Exception:
                pass
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is None:
            data = {}
        static = self.static_html()
        if self.failure:
            # The live view shows it in the status line; a saved output has only this copy.
            static = error_html(self.failure) + static
        if static:
            data["text/html"] = static
        png = self.static_png()
        if png:
            import base64

            data["image/png"] = base64.b64encode(png).decode()
        return bundle if isinstance(bundle, tuple) else data
