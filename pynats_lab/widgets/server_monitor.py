"""ServerMonitor: every server's messages/s and bytes/s in and out, connections and slow consumers, read
again every interval and charted live, one line per server (`%server watch` in Jupyter).

The live charts are SVG drawn here (a few hundred bytes of polyline per server, made in about a
millisecond) so a refresh stays well under 100 ms; matplotlib draws the saved copy."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from .. import charts
from ..overview import ServerSampler
from ..session import Session, get_session
from .base import TABLE_CSS, figure_png, table_html
from .watch import Watch


class ServerMonitor(Watch):
    """`ServerMonitor(interval="1s", timeout=None)`: live charts until `timeout` or `.stop()`; `.df` holds
    the rates (time, server, in/out msgs/s and bytes/s, connections, slow consumers)."""

    def __init__(self, *, interval: Any = "1s", timeout: Any = None, monitor: Any = None, wait: bool = False,
                 session: Session | None = None):
        self.session = (session or get_session()).ensure()
        self._watch_settings(interval, timeout)
        self.sampler = ServerSampler(self.session, monitor)
        # The first reading happens here, so a wrong use (no way to reach the servers) fails at once.
        self.session.run(self.sampler.sample())
        super().__init__()
        self._start_watch(f"<b>Servers</b> of {self.session.url}", "pynats-server-monitor", "reading…", wait)

    def figure(self):
        return charts.server_watch_figure(self.df, title=f"Servers of {self.session.url}")

    def latest(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        df = self.df if df is None else df
        if not len(df):
            return df
        return df[df["time"] == df["time"].max()].reset_index(drop=True)

    def _render(self) -> None:
        self.chart.value, self.table.value = live_view(self.df)

    def static_html(self) -> str:
        latest = self.latest()
        return "<b>Servers</b>" + (table_html(_shown(latest)) if len(latest) else "<i>no rates yet</i>")

    def static_png(self) -> bytes:
        return figure_png(self.figure())


def live_view(df: pd.DataFrame) -> tuple[str, str]:
    """The live charts (SVG) and the latest reading's table (HTML) of a ServerMonitor: what one refresh
    draws. The table is written by hand: pandas' to_html alone can take longer than the whole refresh."""
    if not len(df):
        return watch_svg(df), ""
    latest = df[df["time"] == df["time"].max()].reset_index(drop=True)
    return watch_svg(df), _plain_table(_shown(latest))


# The table's headers as the charts name them: short enough that the table fits beside a narrow notebook.
_HEADERS = {"in_msgs_s": "in msgs/s", "out_msgs_s": "out msgs/s", "in_bytes_s": "in bytes/s",
            "out_bytes_s": "out bytes/s", "connections": "conns", "slow_consumers": "slow consumers"}
# The output area is a flex box whose HTML child grows to its content unless allowed to shrink: then the
# table's own box (max-width 100%, scrolling) is as wide as the widget, not wider and cut off.
_FIT_CSS = ("<style>.pynats-server-monitor .widget-html-content{min-width:0;max-width:100%}"
            ".pynats-server-monitor .pnl-table td,.pynats-server-monitor .pnl-table th{padding:2px 5px}</style>")


def _shown(df: pd.DataFrame) -> pd.DataFrame:
    """The latest reading as the table shows it: rates rounded, a server without a name called by the start
    of its id (as the chart's legend), readable headers."""
    out = _rounded(df)
    out["server"] = [charts.server_label(str(s)) for s in out["server"]]
    return out.rename(columns=_HEADERS)


def _plain_table(df: pd.DataFrame) -> str:
    if not len(df):
        return ""
    df = df.copy()
    # One reading: its time is said once above the table, not in a column of its own.
    at = f"<div style='font-size:12px;color:#666'>latest reading {html.escape(str(df['time'].iloc[0]))}</div>"
    df = df.drop(columns="time")
    for column in ("in msgs/s", "out msgs/s", "in bytes/s", "out bytes/s"):
        if column in df:  # 4.7M, 36.6k: the live table stays narrow; .df keeps every digit
            df[column] = [_number(float(v)) for v in df[column]]
    # Headers may wrap (two words each): the whole table then fits a narrow page instead of being cut.
    head = "".join(f"<th style='white-space:normal'>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return (TABLE_CSS + _FIT_CSS + at
            + f"<div class='pnl-table'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df.round({c: 1 for c in df.columns if c.endswith("_s")})
    out["time"] = out["time"].dt.strftime("%H:%M:%S")
    return out


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _number(v: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.1f}{unit}"
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def watch_svg(df: pd.DataFrame, width: int = 440, height: int = 150, *, panels=charts.WATCH_PANELS,
              key: str = "server", label=charts.server_label, waiting: str = "waiting for the second reading") -> str:
    """Panels over time as inline SVG, one polyline per `key` value (a server, a consumer) and column; a
    column named *out* is dashed. Defaults: the four panels of charts.server_watch_figure."""
    servers = list(dict.fromkeys(df[key])) if len(df) else []
    colors = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(servers)}
    legend = " ".join(f"<span style='color:{colors[s]}'>&#9644; {html.escape(label(str(s)))}</span>"
                      for s in servers)
    if servers and any(len(columns) > 1 for _, columns in panels):
        legend += " <span style='color:#666'>(solid in, dashed out)</span>"
    drawn = []
    left, top, bottom = 44, 18, 16
    # Plain arrays, computed once: a refresh must stay cheap with hours of readings charted.
    ns = df["time"].to_numpy(dtype="datetime64[ns]").astype("int64") if len(df) else np.zeros(0, "int64")
    span = max(int(ns.max() - ns.min()), 1) if len(ns) else 1
    xs_all = left + (ns - (ns.min() if len(ns) else 0)) / span * (width - left - 6)
    keys = df[key].to_numpy() if len(df) else np.zeros(0)
    masks = {s: keys == s for s in servers}
    for name, columns in panels:
        top_value = max(float(df[list(columns)].max().max()) if len(df) else 0.0, 1.0)
        parts = [f"<svg width='{width}' height='{height}' style='font:10px sans-serif;margin:2px'>",
                 f"<text x='{left}' y='12' font-weight='bold'>{name}</text>",
                 f"<line x1='{left}' y1='{height - bottom}' x2='{width - 4}' y2='{height - bottom}' stroke='#bbb'/>",
                 f"<text x='{left - 4}' y='{top + 4}' text-anchor='end' fill='#666'>{_number(top_value)}</text>",
                 f"<text x='{left - 4}' y='{height - bottom}' text-anchor='end' fill='#666'>0</text>"]
        if len(df) == 0:
            parts.append(f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' fill='#999'>"
                         f"{html.escape(waiting)}</text>")
        for server in servers:
            mask = masks[server]
            xs = xs_all[mask]
            for col in columns:
                values = df[col].to_numpy(dtype="float64", na_value=0.0)[mask]
                ys = height - bottom - values / top_value * (height - top - bottom)
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist()))
                dash = " stroke-dasharray='4 3'" if "out" in col else ""
                parts.append(f"<polyline fill='none' stroke='{colors[server]}' stroke-width='1.5'{dash} "
                             f"points='{points}'/>")
        parts.append("</svg>")
        drawn.append("".join(parts))
    return f"<div>{legend}</div><div style='display:flex;flex-wrap:wrap'>{''.join(drawn)}</div>"
