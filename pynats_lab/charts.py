"""Charts: pure functions DataFrame -> matplotlib Figure, shared by magics and widgets.

Figures are built with `matplotlib.figure.Figure` (no pyplot state), so calling one never draws twice
and works the same in a kernel, under papermill and in scripts (`fig.savefig(...)`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

PERCENTILES = (50, 90, 99, 99.9)
_STYLES = {50: "-", 90: "--", 99: ":", 99.9: "-."}


def supported_percentiles(n: int, percentiles=PERCENTILES) -> list[float]:
    """The percentiles `n` samples can speak for: p needs at least one sample above it, so p99 needs 100
    samples and p99.9 a thousand; fewer would print the maximum under another name."""
    return [p for p in percentiles if round(n * (100 - p), 6) >= 100]
_COLORS = {"pub-sub": "#1f77b4", "request-reply": "#ff7f0e", "js-publish": "#2ca02c"}


def _empty(fig: Figure, ax, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _short_number(x: float) -> str:
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if x >= size:
            return f"{x / size:g}{unit}"
    return f"{x:g}"


def latency_figure(df: pd.DataFrame, title: str = "Latency") -> Figure:
    """Histogram per kind (log-spaced bins, microseconds) with p50/p90/p99/p99.9 marked and listed."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, side = fig.subplots(1, 2, width_ratios=[3, 1])
    side.axis("off")
    if df is None or not len(df):
        return _empty(fig, ax, "no samples yet")
    lo, hi = max(df["latency_us"].min(), 1.0), max(df["latency_us"].max(), 2.0)
    bins = np.logspace(np.log10(lo), np.log10(hi * 1.05), 40)
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lines, drawn = [], []
    for kind, g in df.groupby("kind", sort=False):
        v = g["latency_us"].to_numpy()
        color = _COLORS.get(kind)
        ax.hist(v, bins=bins, alpha=0.45, label=f"{kind} ({len(v):,} samples)", color=color)
        shown = supported_percentiles(len(v))
        pct = np.percentile(v, shown) if shown else []
        for p, x in zip(shown, pct):
            ax.axvline(x, color=color, linestyle=_STYLES.get(p, ":"), linewidth=1)
        drawn += [p for p in shown if p not in drawn]
        rows = [f"  p{p:<5g}{x:>10,.0f} µs" for p, x in zip(shown, pct)] + [f"  max  {v.max():>10,.0f} µs"]
        lines.append(f"{kind} ({len(v):,})\n" + "\n".join(rows))
    ax.set_xscale("log")
    # Labels on 1-2-5 steps over up to two decades, on powers of ten beyond, short (20k, 1M), none on
    # minor ticks: they collided.
    decades = np.log10(hi / lo)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _short_number(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency (µs, log scale)")
    ax.set_ylabel("samples")
    ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", linestyle=_STYLES.get(p, ":"), label=f"p{p:g}") for p in drawn]
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    if len(drawn) < len(PERCENTILES):
        lines.append("percentiles need samples:\np99 100, p99.9 1,000")
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
    # Below the diagonal is where no delivery can be (nothing arrives before it was published): the legend
    # hides no point there.
    ax.legend(loc="lower right")
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
    tails = {}
    for _, row in df.iterrows():
        tail = row["subject"].rsplit(".", 1)[-1]
        tails.setdefault(tail, row["subject"])
        ax.annotate(tail, (row["offset_s"], y[row["msg_id"]]),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    ax.set_yticks(range(len(ids)), ids)
    ax.set_ylim(-0.7, len(ids) - 0.3)
    # Room left of the first publish (at 0) so its marker and label are not cut by the axis.
    right = float((df["offset_s"] + (window_s or 0)).max())
    ax.set_xlim(-max(right * 0.04, 0.05), right * 1.03 + 0.05)
    ax.set_xlabel("seconds since the first publish")
    ax.set_title(f"{title} (window {window_s:g}s shaded)")
    handles, _ = ax.get_legend_handles_labels()
    if len(tails) > 1:
        from matplotlib.patches import Patch

        said = " / ".join(f"….{t}" for t in tails)
        handles.append(Patch(color="none", label=f"{', '.join(tails)}: the subject it went to ({said})"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8)
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


def server_label(name: str) -> str:
    """A server's name for a chart: an unnamed server is called by its 56-character id, cut to 8."""
    return name[:8] + "…" if len(name) == 56 and name.isupper() else name


def trace_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """The route of a traced message (`%nats trace`): the publisher, each server it crossed (with the subject
    mappings, exports and imports it went through there), and every receiver: clients (with their
    subscription and queue group), streams, and the next server over a route, gateway or leafnode."""
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    if df is None or not len(df):
        return _empty(fig, ax, "no trace events")
    hops: dict[str, list[dict]] = {}
    for row in df.to_dict("records"):
        hops.setdefault(row["hop"], []).append(row)
    servers: dict[str, tuple[float, float]] = {}
    leaves: list[tuple[float, float, str, str, str]] = []   # x, y, label, parent hop, color
    links: list[tuple[str, str, str]] = []                 # from hop, to hop, label
    next_y = [0.0]

    def leaf(x: float, label: str, hop: str, color: str) -> float:
        y = next_y[0]
        next_y[0] += 1
        leaves.append((x, y, label, hop, color))
        return y

    def place(hop: str, x: float) -> float:
        ys = []
        for r in hops.get(hop, []):
            forward = r["kind"] == "egress" and str(r["detail"]).startswith("to hop ")
            target = str(r["detail"])[len("to hop "):] if forward else None
            if forward and target in hops:
                ys.append(place(target, x + 2))
                links.append((hop, target, f"{r['via']}"))
            elif r["kind"] == "egress":
                queue = f"\nqueue {r['queue']}" if r["queue"] else ""
                color = "#d62728" if r["error"] else "#1f77b4"
                ys.append(leaf(x + 1, f"{r['client'] or r['via']}\n{r['subject']}{queue}", hop, color))
            elif r["kind"] == "jetstream":
                color = "#d62728" if r["error"] or r["detail"] else "#2ca02c"
                ys.append(leaf(x + 1, f"stream {r['stream']}\n{r['subject']}", hop, color))
        if not ys:
            ys.append(leaf(x + 1, "nobody", hop, "grey"))
        servers[hop] = (x, sum(ys) / len(ys))
        return servers[hop][1]

    place("", 1.0)
    for hop in hops:
        if hop not in servers:
            place(hop, 3.0)
    first = hops[""][0] if "" in hops else next(iter(hops.values()))[0]
    height = max(next_y[0], 1)
    box = dict(boxstyle="round,pad=0.4", fc="white", ec="#444444")
    # Each label is drawn by the annotation whose arrow ends at it, so the arrow stops at its box.
    arrow = dict(arrowstyle="<|-", color="#666666")
    drawn = {}
    incoming = {dst: (src, via) for src, dst, via in links}
    for hop, (x, y) in servers.items():
        rows = hops.get(hop, [])
        ingress = next((r for r in rows if r["kind"] == "ingress"), None)
        steps = []
        for r in rows:
            if r["kind"] == "subject mapping":
                steps.append(f"mapped to {r['subject']}")
            elif r["kind"] == "stream export":
                steps.append(f"export to {r['account']}: {r['subject']}")
            elif r["kind"] == "service import":
                steps.append(f"import into {r['account']}: {r['subject']}")
            if r["error"]:
                steps.append(f"error: {r['error']}")
        label = f"{server_label(rows[0]['server'] if rows else hop)}\naccount {ingress['account'] if ingress else ''}"
        style = dict(ha="center", va="center", bbox=dict(box, fc="#f0f0f0"), fontsize=8, fontweight="bold")
        if hop in incoming:
            src, via = incoming[hop]
            drawn[hop] = ax.annotate(label, servers[src], (x, y), arrowprops=dict(arrow, color="#9467bd"), **style)
            (x0, y0) = servers[src]
            ax.annotate(via, ((x0 + x) / 2, (y0 + y) / 2), ha="center", va="bottom", fontsize=7, color="#9467bd")
        else:
            drawn[hop] = ax.annotate(label, (x, y), **style)
        if steps:
            ax.annotate("\n".join(steps), (x, y + 0.35), ha="center", va="top", fontsize=7, color="#555555")
    for x, y, label, hop, color in leaves:
        ax.annotate(label, servers[hop], (x, y), ha="center", va="center", bbox=dict(box, ec=color), fontsize=8,
                    color=color, arrowprops=dict(arrow, color=color, patchB=drawn[hop].get_bbox_patch()))
    ox, oy = servers.get("", (1.0, 0.0))
    origin = drawn.get("") or next(iter(drawn.values()))
    ax.annotate(f"{first['client'] or 'publisher'}\n{first['subject']}", (ox, oy), (0, oy), ha="center",
                va="center", bbox=dict(box, ec="#888888"), fontsize=8,
                arrowprops=dict(arrow, arrowstyle="-|>", patchB=origin.get_bbox_patch()))
    right = max([x for x, *_ in leaves] + [x for x, _ in servers.values()])
    ax.set_xlim(-0.6, right + 0.6)
    ax.set_ylim(height + 0.3, -0.9)
    fig.set_size_inches(max(6, 2.2 * (right + 1.2)), max(2.2, 0.9 * height + 1))
    ax.set_title(title or f"Trace of {first['subject']}", fontsize=10)
    return fig


WATCH_PANELS = (("msgs/s", ("in_msgs_s", "out_msgs_s")), ("bytes/s", ("in_bytes_s", "out_bytes_s")),
                ("connections", ("connections",)), ("slow consumers", ("slow_consumers",)))


LAG_PANELS = (("num_pending", ("num_pending",)), ("num_ack_pending", ("num_ack_pending",)),
              ("num_redelivered", ("num_redelivered",)), ("num_waiting", ("num_waiting",)))


def panels_figure(df: pd.DataFrame, panels, key: str, label=str, title: str = "",
                  empty: str = "no reading yet") -> Figure:
    """Four panels over time, one line per `key` value (a server, a consumer) and column; a column named
    *out* is dashed and labelled out, the others in when a panel has two."""
    fig = Figure(figsize=(10, 5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    fig.suptitle(title, fontsize=10)
    if df is None or not len(df):
        for ax, (name, _) in zip(axes, panels):
            ax.set_title(name, fontsize=9)
            _empty(fig, ax, empty)
        return fig
    keys = list(dict.fromkeys(df[key]))
    colors = {k: f"C{i % 10}" for i, k in enumerate(keys)}
    for ax, (name, columns) in zip(axes, panels):
        ax.set_title(name, fontsize=9)
        for k, g in df.groupby(key, sort=False):
            for col in columns:
                ax.plot(g["time"], g[col], color=colors[k], linestyle="--" if "out" in col else "-",
                        marker="." if len(g) < 3 else None,
                        label=f"{label(k)} {'out' if 'out' in col else 'in'}" if len(columns) > 1 else label(k))
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    for ax in axes[2:]:
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    return fig


def server_watch_figure(df: pd.DataFrame, title: str = "Servers") -> Figure:
    """Four panels over time, one line per server: messages/s and bytes/s in (solid) and out (dashed),
    connections, slow consumers (`%server watch`, ServerMonitor)."""
    return panels_figure(df, WATCH_PANELS, "server", server_label, title, "waiting for the second reading")


def lag_figure(df: pd.DataFrame, title: str = "Consumer lag") -> Figure:
    """Four panels over time, one line per consumer: num_pending, num_ack_pending, num_redelivered,
    num_waiting (`%consumer watch`, LagChart)."""
    return panels_figure(df, LAG_PANELS, "consumer", str, title)
