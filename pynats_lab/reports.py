"""Streams and consumers at a glance: `stream_report`, `consumer_report`, `stream_subjects`.

Read-only: each is a few `$JS.API` requests (the paged STREAM.LIST / CONSUMER.LIST, all pages in flight at
once; stream info with `subjects_filter`), never a consumer and never a message read. The raw JSON is
used, not nats-py's dataclasses, so every field the server sends (paused, num_subjects, replica lag) is there.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pandas as pd

from .errors import LabError
from .frames import priority_cells
from .session import Session, in_session

API = "$JS.API"


async def api_request(s: Session, subject: str, body: dict | None = None, timeout: float = 10) -> dict:
    """One JetStream API request; the server's error becomes nats-py's APIError (code and text kept)."""
    import nats.js.errors as jse

    msg = await s.nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=timeout)
    resp = json.loads(msg.data)
    if "error" in resp:
        raise jse.APIError.from_error(resp["error"])
    return resp


async def paged_list(s: Session, subject: str, key: str, body: dict | None = None) -> tuple[list, list]:
    """Every item of a paged list endpoint (STREAM.LIST, CONSUMER.LIST): the first page says the total and
    page size, the other pages are asked for all at once. Returns (items, names the server could not reach)."""
    body = dict(body or {})
    first = await api_request(s, subject, {**body, "offset": 0})
    items = list(first.get(key) or [])
    total, limit = int(first.get("total") or 0), int(first.get("limit") or 0) or max(len(items), 1)
    rest = await asyncio.gather(*(api_request(s, subject, {**body, "offset": o})
                                  for o in range(len(items), total, limit)))
    missing = list(first.get("missing") or [])
    for page in rest:
        items += page.get(key) or []
        missing += page.get("missing") or []
    seen, unique = set(), []
    for item in items:  # a stream made or removed between pages can shift the pages by one
        name = item.get("config", {}).get("name") or item.get("name")
        if name not in seen:
            seen.add(name)
            unique.append(item)
    return unique, sorted(set(missing))


def _time(value: Any) -> pd.Timestamp | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")


def _ns_seconds(value: Any) -> float | None:
    return None if value in (None, "") else int(value) / 1e9


# -- stream report -------------------------------------------------------------------------------------
STREAM_REPORT_COLUMNS = ["stream", "storage", "retention", "replicas", "consumers", "messages", "bytes",
                         "first_seq", "last_seq", "deleted", "subjects", "lost", "created", "leader",
                         "replicas_current", "replica_lag", "replica_status", "source_lag"]


def _replica_cells(cluster: dict | None, replicas: int) -> dict:
    cluster = cluster or {}
    peers = cluster.get("replicas") or []
    if replicas <= 1 and not peers:
        return {"leader": cluster.get("leader"), "replicas_current": None, "replica_lag": None,
                "replica_status": None}
    parts, current = [], 0
    for p in sorted(peers, key=lambda p: p.get("name", "")):
        ok = bool(p.get("current")) and not p.get("offline")
        current += ok
        state = "offline" if p.get("offline") else ("current" if p.get("current") else "behind")
        parts.append(f"{p.get('name')}: {state}, lag {int(p.get('lag') or 0)}, "
                     f"seen {_ns_seconds(p.get('active')) or 0:.1f}s ago")
    return {"leader": cluster.get("leader") or "no leader",
            "replicas_current": f"{current}/{len(peers)}",
            "replica_lag": max((int(p.get("lag") or 0) for p in peers), default=0),
            "replica_status": "; ".join(parts) or "no replica reported"}


def stream_report_frame(infos: list[dict]) -> pd.DataFrame:
    rows = []
    for si in infos:
        cfg, st = si.get("config") or {}, si.get("state") or {}
        replicas = int(cfg.get("num_replicas") or 1)
        lost = st.get("lost") or {}
        sources = ([si["mirror"]] if si.get("mirror") else []) + list(si.get("sources") or [])
        rows.append({
            "stream": cfg.get("name"), "storage": cfg.get("storage"), "retention": cfg.get("retention"),
            "replicas": replicas, "consumers": int(st.get("consumer_count") or 0),
            "messages": int(st.get("messages") or 0), "bytes": int(st.get("bytes") or 0),
            "first_seq": int(st.get("first_seq") or 0), "last_seq": int(st.get("last_seq") or 0),
            "deleted": int(st.get("num_deleted") or len(st.get("deleted") or [])),
            "subjects": int(st.get("num_subjects") or 0), "lost": len(lost.get("msgs") or []),
            "created": _time(si.get("created")),
            **_replica_cells(si.get("cluster"), replicas),
            "source_lag": sum(int(x.get("lag") or 0) for x in sources) if sources else None,
        })
    frame = pd.DataFrame(rows, columns=STREAM_REPORT_COLUMNS)
    for col in ("replicas", "consumers", "messages", "bytes", "first_seq", "last_seq", "deleted", "subjects",
                "lost"):
        frame[col] = frame[col].astype("int64")
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame


_SORTS = {"name": ("stream", True), "stream": ("stream", True), "messages": ("messages", False),
          "bytes": ("bytes", False), "consumers": ("consumers", False), "storage": ("storage", True),
          "subjects": ("subjects", False), "deleted": ("deleted", False), "lag": ("replica_lag", False)}


def _sorted(frame: pd.DataFrame, sort: str, sorts: dict) -> pd.DataFrame:
    if sort not in sorts:
        raise LabError(f"invalid --sort {sort!r}: use {', '.join(sorted(set(sorts)))}")
    col, ascending = sorts[sort]
    return frame.sort_values([col, frame.columns[0]], ascending=[ascending, True], ignore_index=True,
                             na_position="last", kind="stable")


@in_session
async def stream_report(s: Session, *, subject: str | None = None, sort: str = "name") -> pd.DataFrame:
    """One row per stream (natscli's `nats stream report`): storage, retention, replicas, consumers, messages,
    bytes, first/last sequence, deleted, subjects, lost; on a cluster the leader, how many replicas are
    current, the largest replica lag and each replica's state. `subject` keeps streams that listen on it;
    `sort`: name (default), messages, bytes, consumers, storage, subjects, deleted, lag (largest first).
    Streams the server could not reach (offline) are in `frame.attrs["missing"]`."""
    body = {"subject": subject} if subject else {}
    infos, missing = await paged_list(s, f"{API}.STREAM.LIST", "streams", body)
    frame = _sorted(stream_report_frame(infos), sort, _SORTS)
    frame.attrs["missing"] = missing
    return frame


# -- consumer report -----------------------------------------------------------------------------------
CONSUMER_REPORT_COLUMNS = ["consumer", "mode", "ack_policy", "ack_wait", "num_pending", "pending_pct",
                           "num_ack_pending", "max_ack_pending", "num_redelivered", "num_waiting",
                           "ack_floor", "delivered", "last_delivery", "last_ack", "paused", "pause_until",
                           "push_bound", "filter", "priority", "pinned", "durable", "leader"]


def consumer_row(ci: dict, stream_msgs: int | None = None) -> dict:
    cfg = ci.get("config") or {}
    delivered, floor = ci.get("delivered") or {}, ci.get("ack_floor") or {}
    pending = int(ci.get("num_pending") or 0)
    filters = [cfg["filter_subject"]] if cfg.get("filter_subject") else list(cfg.get("filter_subjects") or [])
    pct = None
    if stream_msgs:
        pct = min(round(pending / stream_msgs * 100, 1), 100.0)
    return {
        "consumer": ci.get("name"), "mode": "push" if cfg.get("deliver_subject") else "pull",
        "ack_policy": cfg.get("ack_policy"), "ack_wait": _ns_seconds(cfg.get("ack_wait")),
        "num_pending": pending, "pending_pct": pct,
        "num_ack_pending": int(ci.get("num_ack_pending") or 0),
        "max_ack_pending": int(cfg.get("max_ack_pending") or 0) or None,
        "num_redelivered": int(ci.get("num_redelivered") or 0), "num_waiting": int(ci.get("num_waiting") or 0),
        "ack_floor": int(floor.get("stream_seq") or 0), "delivered": int(delivered.get("stream_seq") or 0),
        "last_delivery": _time(delivered.get("last_active")), "last_ack": _time(floor.get("last_active")),
        "paused": bool(ci.get("paused")), "pause_until": _time(cfg.get("pause_until")) if ci.get("paused") else None,
        "push_bound": bool(ci.get("push_bound")) if cfg.get("deliver_subject") else None,
        "filter": ", ".join(filters) or None,
        **priority_cells(cfg, ci.get("priority_groups")),
        "durable": bool(cfg.get("durable_name")),
        "leader": (ci.get("cluster") or {}).get("leader"),
    }


def consumer_report_frame(infos: list[dict], stream_msgs: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame([consumer_row(ci, stream_msgs) for ci in infos], columns=CONSUMER_REPORT_COLUMNS)
    for col in ("num_pending", "num_ack_pending", "num_redelivered", "num_waiting", "ack_floor", "delivered"):
        frame[col] = frame[col].astype("int64")
    for col in ("last_delivery", "last_ack", "pause_until"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


_CONSUMER_SORTS = {"name": ("consumer", True), "consumer": ("consumer", True), "pending": ("num_pending", False),
                   "ack-pending": ("num_ack_pending", False), "redelivered": ("num_redelivered", False),
                   "waiting": ("num_waiting", False), "last-delivery": ("last_delivery", True)}


@in_session
async def consumer_report(s: Session, stream: str, *, sort: str = "name") -> pd.DataFrame:
    """One row per consumer of `stream` (natscli's `nats consumer report`, and more): mode (pull/push), ack
    policy and wait (seconds), num_pending (unprocessed, and as % of the stream), num_ack_pending against
    max_ack_pending, redelivered, waiting pull requests, ack floor and delivered stream sequences, the
    last delivery and last ack times, paused (until), push_bound, filter, durable, leader.
    `sort`: name (default), pending, ack-pending, redelivered, waiting, last-delivery."""
    info, (infos, missing) = await asyncio.gather(api_request(s, f"{API}.STREAM.INFO.{stream}"),
                                                  paged_list(s, f"{API}.CONSUMER.LIST.{stream}", "consumers"))
    frame = _sorted(consumer_report_frame(infos, int(info["state"].get("messages") or 0)), sort, _CONSUMER_SORTS)
    frame.attrs["missing"] = missing
    frame.attrs["stream"] = stream
    return frame


# -- subjects --------------------------------------------------------------------------------------------
@in_session
async def stream_subjects(s: Session, stream: str, filter: str | None = None, *,
                          sort: str = "messages") -> pd.DataFrame:
    """Subjects stored in `stream` (those matching `filter`, default all) with their message counts, most
    messages first (`sort="subject"`: by name). From the stream info's `subjects_filter`, in pages of what
    the server returns at once; no message is read."""
    if sort not in ("messages", "subject"):
        raise LabError(f"invalid --sort {sort!r}: use messages, subject")
    subject = f"{API}.STREAM.INFO.{stream}"
    want = filter or ">"
    first = await api_request(s, subject, {"subjects_filter": want})
    counts = dict((first.get("state") or {}).get("subjects") or {})
    total, limit = int(first.get("total") or 0), int(first.get("limit") or 0)
    if limit and total > len(counts):
        pages = await asyncio.gather(*(api_request(s, subject, {"subjects_filter": want, "offset": o})
                                       for o in range(limit, total, limit)))
        for page in pages:
            counts.update((page.get("state") or {}).get("subjects") or {})
    frame = pd.DataFrame({"subject": pd.Series(list(counts), dtype=object),
                          "messages": pd.Series(list(counts.values()), dtype="int64")})
    if sort == "messages":
        frame = frame.sort_values(["messages", "subject"], ascending=[False, True], ignore_index=True)
    else:
        frame = frame.sort_values("subject", ignore_index=True)
    frame.attrs["stream"] = stream
    frame.attrs["filter"] = want
    return frame
