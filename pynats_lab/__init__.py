"""pynats-lab: NATS in a notebook. Magics, DataFrames, widgets and charts over nats-py.

The lab talks to servers only through the NATS protocol, so everything here works the same against the
bundled embedded server and a real nats-server or cluster. `%load_ext pynats_lab` registers the magics;
every magic is a thin shell over a function exported here.
"""
from __future__ import annotations

from typing import Any

from . import charts, frames
from .acks import AckCollector, ack_summary, consumer_acks, consumer_acks_background
from .backup import stream_backup, stream_restore
from .consumers import (consumer_add, consumer_config, consumer_edit, consumer_info, consumer_ls, consumer_next,
                        consumer_pause, consumer_replay, consumer_resume, consumer_rm, consumer_sub,
                        consumer_unpin, consumer_reset)
from .diagnose import consumer_why
from .lag import consumer_watch
from .done import Done
from .errors import LabError, NatsError
from .events import EventCollector, events, events_background, events_from
from .kv import kv_add, kv_create, kv_del, kv_get, kv_history, kv_ls, kv_put, kv_rm, kv_update, kv_watch
from .measure import bench, dedup_series, latency, latency_percentiles
from .messaging import Collector, publish, request, server_info, subscribe, subscribe_background
from .overview import (interest, server_health, server_ls, server_report_accounts, server_report_connections,
                       server_report_jetstream, server_watch)
from .reports import consumer_report, stream_report, stream_subjects
from .session import Session, get_session
from .tracing import trace
from .tutorials import TutorialConflict, tutorial_end, tutorial_start
from .streams import (StreamPager, stream_add, stream_edit, stream_frame, stream_get, stream_info, stream_ls,
                      stream_names, stream_purge, stream_rm, stream_rmm, stream_tail, stream_view)

_WIDGETS = ("StreamViewer", "ConsumerReplay", "LatencyChart", "DedupChart", "ServerMonitor", "LagChart",
            "PriorityGroups")


def connect(url: str | None = None, *, context: str | None = None, creds: str | None = None,
            nkey: str | None = None, user: str | None = None, password: str | None = None,
            token: str | None = None, tls_ca: str | None = None, tls_cert: str | None = None,
            tls_key: str | None = None, monitor: Any = None, fresh: bool = False) -> Session:
    """Connect the session. No URL and no NATS_URL: start the embedded server (JetStream on, 127.0.0.1,
    store under $XDG_DATA_HOME/pynats-lab, its monitoring port on) and connect to it. `context` reads a
    natscli context. `monitor` is the servers' monitoring URL(s) for `%server` when the user is not in the
    system account (the embedded default's own is known). `fresh=True` starts an embedded server of this
    notebook's own on an empty private store, deleted at disconnect or when the kernel ends, whatever the
    default store holds."""
    return get_session().connect(url, context=context, creds=creds, nkey=nkey, user=user, password=password,
                                 token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                                 monitor=monitor, fresh=fresh)


def disconnect() -> Done:
    """Close the connection; stop the embedded server if this session started it."""
    s = get_session()
    url = s.url
    s.close()
    return Done(f"disconnected from {url}" if url else "not connected")


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'pynats_lab' has no attribute {name!r}")


def _register_formatters(ip) -> None:
    from html import escape

    from matplotlib.figure import Figure
    from nats.js.api import ConsumerInfo, StreamInfo

    def html(obj) -> str:
        if getattr(obj, "summary", None):  # what an add answered: one line, the rest one call away
            return f"<p>{escape(obj.summary)}</p>"
        if isinstance(obj, StreamInfo):
            title = f"Stream {obj.config.name}"
        else:
            title = f"Consumer {obj.name} on {obj.stream_name}"
        return f"<b>{title}</b>" + frames.info_frame(obj).to_html(index=False)

    def text(obj, p, cycle) -> None:
        p.text(getattr(obj, "summary", None) or frames.info_frame(obj).to_string(index=False))

    formatters = ip.display_formatter.formatters
    for kind in (StreamInfo, ConsumerInfo):
        formatters["text/html"].for_type(kind, html)
        formatters["text/plain"].for_type(kind, text)
    if Figure not in formatters["image/png"].type_printers:
        from IPython.core.pylabtools import print_figure

        formatters["image/png"].for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def load_ipython_extension(ip) -> None:
    """`%load_ext pynats_lab`: the magics %nats, %stream, %consumer, %kv, %server and table displays of
    infos."""
    from .magics import NatsMagics

    ip.register_magics(NatsMagics)
    _register_formatters(ip)


def unload_ipython_extension(ip) -> None:
    get_session().close()


__all__ = [
    "connect", "disconnect", "get_session", "Session", "LabError", "NatsError", "Done", "charts", "frames",
    "publish", "subscribe", "subscribe_background", "Collector", "request", "server_info",
    "stream_add", "stream_ls", "stream_names", "stream_info", "stream_edit", "stream_rm", "stream_purge",
    "stream_get", "stream_view", "stream_frame", "stream_tail", "StreamPager", "stream_backup", "stream_restore",
    "stream_report", "stream_subjects", "stream_rmm", "consumer_report", "consumer_why", "consumer_edit",
    "consumer_pause", "consumer_resume", "consumer_watch", "consumer_unpin", "consumer_reset",
    "consumer_add", "consumer_config", "consumer_ls", "consumer_info", "consumer_next", "consumer_sub",
    "consumer_rm", "consumer_replay", "consumer_acks", "consumer_acks_background", "AckCollector", "ack_summary",
    "kv_add", "kv_ls", "kv_put", "kv_create", "kv_update", "kv_get", "kv_del", "kv_history", "kv_watch", "kv_rm",
    "latency", "latency_percentiles", "bench", "dedup_series", *_WIDGETS,
    "server_ls", "server_report_connections", "server_report_jetstream", "server_report_accounts",
    "server_health", "server_watch", "interest", "events", "events_background", "events_from", "EventCollector", "trace",
    "tutorial_start", "tutorial_end", "TutorialConflict",
]
