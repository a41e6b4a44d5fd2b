"""Charts: pure functions DataFrame -> matplotlib Figure, shared by magics and widgets.

Figures are built with `matplotlib.figure.Figure` (no pyplot state), so calling one never draws twice
and works the same in a kernel, under papermill and in scripts (`fig.savefig(...)`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PERCENTILES = (50, 90, 99, 99.9)
_COLORS = {"pub-sub": "#1f77b4", "request-reply": "#ff7f0e", "js-publish": "#2ca02c"}


def _empty(fig: Figure, ax, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def latency_figure(df: pd.DataFrame, title: str = "Latency") -> Figure:
    """Histogram per kind (log-spaced bins, microseconds) with p50/p90/p99/p99.9 marked and listed."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, side = fig.subplots(1, 2, width_ratios=[3, 1])
    side.axis("off")
    if df is None or not len(df):
        return _empty(fig, ax, "no samples yet")
    lo, hi = max(df["latency_us"].min(), 1.0), max(df["latency_us"].max(), 2.0)
    bins = np.logspace(np.log10(lo), np.log10(hi * 1.05), 40)
    lines = []
    for kind, g in df.groupby("kind", sort=False):
        v = g["latency_us"].to_numpy()
        color = _COLORS.get(kind)
        ax.hist(v, bins=bins, alpha=0.45, label=kind, color=color)
        pct = np.percentile(v, PERCENTILES)
        for p, x in zip(PERCENTILES, pct):
            ax.axvline(x, color=color, linestyle=":" if p != 50 else "-", linewidth=1)
        lines.append(f"{kind}\n" + "\n".join(f"  p{p:<5g}{x:>10,.0f} µs" for p, x in zip(PERCENTILES, pct)))
    ax.set_xscale("log")
    ax.set_xlabel("latency (µs, log scale)")
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.legend(loc="upper right")
    side.text(0.0, 1.0, "\n\n".join(lines), transform=side.transAxes, va="top", ha="left", family="monospace",
              fontsize=9)
    return fig


def bench_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """Messages per second per client (publishers and subscribers), MB/s in the labels."""
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if df is None or not len(df):
        return _empty(fig, ax, "no results")
    colors = ["#1f77b4" if r == "pub" else "#2ca02c" for r in df["role"]]
    bars = ax.barh(df["client"], df["msgs_per_s"], color=colors)
    p50 = df["p50_us"] if "p50_us" in df else [float("nan")] * len(df)
    p99 = df["p99_us"] if "p99_us" in df else [float("nan")] * len(df)
    for bar, mbs, lo, hi in zip(bars, df["mb_per_s"], p50, p99):
        latency = f"  p50 {lo:,.0f} µs  p99 {hi:,.0f} µs" if lo == lo else ""
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {bar.get_width():,.0f}/s  {mbs:.1f} MB/s{latency}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("messages per second")
    size = df.attrs.get("size")
    kind = "JetStream publish" if df.attrs.get("js") else "core publish"
    ax.set_title(title or f"{kind} throughput ({size} B messages)")
    ax.margins(x=0.6)
    return fig


def timeline_figure(df: pd.DataFrame, title: str = "Replay: stored vs delivered") -> Figure:
    """Each message's original publish (store) time against its delivery time, both from the first one.
    Replay `original` keeps the gaps (points on the diagonal); `instant` squeezes them (a flat line)."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if df is None or not len(df):
        return _empty(fig, ax, "nothing delivered yet")
    stored = (df["time"] - df["time"].iloc[0]).dt.total_seconds()
    delivered = (df["received"] - df["received"].iloc[0]).dt.total_seconds()
    ax.plot(stored, delivered, "o", markersize=4, label="message")
    top = max(stored.max(), delivered.max(), 1e-3)
    ax.plot([0, top], [0, top], "--", color="grey", linewidth=1, label="same spacing as published")
    ax.set_xlabel("published at (s after the first message)")
    ax.set_ylabel("delivered at (s after the first delivery)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return fig


def dedup_figure(df: pd.DataFrame, window_s: float | None = None,
                 title: str = "De-duplication by Nats-Msg-Id") -> Figure:
    """Accepted (green) and duplicate (red x) publishes over time per msg id, each accepted id's duplicate
    window drawn as a band; subjects are annotated to show the id is per stream, not per subject."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if df is None or not len(df):
        return _empty(fig, ax, "nothing published yet")
    window_s = window_s if window_s is not None else df.attrs.get("window_s", 0)
    ids = list(dict.fromkeys(df["msg_id"]))
    y = {mid: i for i, mid in enumerate(ids)}
    for _, row in df[df["accepted"]].iterrows():
        ax.barh(y[row["msg_id"]], window_s, left=row["offset_s"], height=0.5, color="#2ca02c", alpha=0.15)
    acc, dup = df[df["accepted"]], df[df["duplicate"]]
    ax.scatter(acc["offset_s"], acc["msg_id"].map(y), color="#2ca02c", s=40, label="accepted (stored)", zorder=3)
    ax.scatter(dup["offset_s"], dup["msg_id"].map(y), color="#d62728", marker="x", s=50,
               label="duplicate (acked, not stored)", zorder=3)
    for _, row in df.iterrows():
        ax.annotate(row["subject"].rsplit(".", 1)[-1], (row["offset_s"], y[row["msg_id"]]),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    ax.set_yticks(range(len(ids)), ids)
    ax.set_ylim(-0.7, len(ids) - 0.3)
    ax.set_xlabel("seconds since the first publish")
    ax.set_title(f"{title} (window {window_s:g}s shaded)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    return fig


def rate_figure(df: pd.DataFrame, freq: str = "1s", title: str = "Messages over time") -> Figure:
    """Stored messages per time bucket, one line per subject (for a stream_view / stream_frame result)."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if df is None or not len(df):
        return _empty(fig, ax, "no messages")
    counts = df.groupby([pd.Grouper(key="time", freq=freq), "subject"]).size().unstack(fill_value=0)
    for subject in counts.columns[:10]:
        ax.plot(counts.index, counts[subject], marker=".", label=subject)
    ax.set_ylabel(f"messages per {freq}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def subjects_figure(df: pd.DataFrame, top: int = 20, title: str | None = None) -> Figure:
    """Horizontal bars: the `top` subjects with the most messages (a `stream_subjects` result)."""
    fig = Figure(figsize=(9, 0.5 + 0.28 * max(min(top, len(df) if df is not None else 0), 3)), layout="constrained")
    ax = fig.subplots()
    name = (df.attrs.get("stream") if df is not None else None) or "stream"
    if df is None or not len(df):
        return _empty(fig, ax, "no subjects")
    shown = df.sort_values(["messages", "subject"], ascending=[False, True]).head(top)
    ax.barh(shown["subject"][::-1], shown["messages"][::-1], color="#1f77b4")
    ax.set_xlabel("messages")
    rest = len(df) - len(shown)
    more = f" ({rest:,} more not shown)" if rest > 0 else ""
    ax.set_title(title or f"{name}: top {len(shown)} of {len(df):,} subjects{more}")
    ax.ticklabel_format(axis="x", style="plain")
    return fig
