"""The one place where NATS messages, stream/consumer infos and acks become pandas DataFrames.

Stored messages (from a stream) become rows `seq, time, subject, data, headers, size, msg_id`; messages
delivered by a subscription or a consumer get the same columns plus delivery details. `time` is always
a timezone-aware (UTC) datetime64; `data` is text unless raw bytes were asked for.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
from typing import Any, Iterable, Sequence

import pandas as pd

STORED_COLUMNS = ["seq", "time", "subject", "data", "headers", "size", "msg_id"]
CONSUMED_COLUMNS = STORED_COLUMNS + ["consumer_seq", "delivered", "pending", "received"]
CORE_COLUMNS = ["received", "subject", "data", "headers", "size", "reply"]

# Headers the server adds to a direct-get answer: they describe the stored message, they are not part of it.
_DIRECT_GET_HEADERS = frozenset({"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp",
                                 "Nats-Num-Pending", "Nats-Last-Sequence", "Nats-UpTo-Sequence"})
_HDR_LINE = len("NATS/1.0\r\n")


def decode(data: bytes | None, raw: bool = False) -> str | bytes:
    """Payload for a table cell: UTF-8 text (undecodable bytes escaped), or the bytes themselves."""
    data = data or b""
    if raw:
        return bytes(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace")


def header_size(headers: dict | None) -> int:
    """Bytes of the NATS header block that carried these headers (as stored, one value per key)."""
    if not headers:
        return 0
    return _HDR_LINE + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2


def user_headers(headers: dict | None) -> dict:
    """Headers without the stream metadata a direct get adds."""
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if k not in _DIRECT_GET_HEADERS}


def pretty(data: Any) -> str | None:
    """Indented JSON if `data` (text or bytes) is a JSON object or array, else None."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(data, str):
        return None
    text = data.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def is_json(series: pd.Series) -> pd.Series:
    """Which rows of a `data` column hold a JSON object or array."""
    return series.map(lambda v: pretty(v) is not None).astype(bool)


def to_time(values: Sequence) -> pd.DatetimeIndex:
    """RFC 3339 strings, datetimes or epoch nanoseconds -> tz-aware UTC datetimes."""
    if len(values) and isinstance(values[0], (int,)) and not isinstance(values[0], bool):
        return pd.to_datetime(list(values), unit="ns", utc=True)
    if len(values) and isinstance(values[0], str):
        return pd.to_datetime(list(values), utc=True, format="ISO8601")
    return pd.to_datetime(list(values), utc=True)


def _time_column(values: Sequence) -> pd.Series:
    if not len(values):
        return pd.Series([], dtype="datetime64[ns, UTC]")
    return pd.Series(to_time(values))


def stored_frame(seqs: Sequence[int], times: Sequence, subjects: Sequence[str], payloads: Sequence[bytes],
                 headers: Sequence[dict | None], raw: bool = False) -> pd.DataFrame:
    """Rows for messages as a stream stores them (direct get, message get, a consumer, backup files)."""
    # Per-row work only where a row has headers: a bulk read of plain messages is mostly here.
    hdrs = [user_headers(h) if h else {} for h in headers]
    data = _decode_all(payloads, raw)
    frame = pd.DataFrame({
        "seq": pd.Series(seqs, dtype="int64"),
        "time": _time_column(times),
        "subject": pd.Series(subjects, dtype=object),
        "data": pd.Series(data, dtype=object),
        "headers": pd.Series(hdrs, dtype=object),
        "size": pd.Series([len(p or b"") + header_size(h) if h else len(p or b"") for p, h in zip(payloads, hdrs)],
                          dtype="int64"),
        "msg_id": pd.Series([h.get("Nats-Msg-Id") if h else None for h in hdrs], dtype=object),
    })
    return frame


def _decode_all(payloads: Sequence[bytes | None], raw: bool) -> list:
    """`decode` of each payload; one pass without a call per row while all are UTF-8."""
    if raw:
        return [decode(p, True) for p in payloads]
    try:
        return [p.decode("utf-8") if p else "" for p in payloads]
    except (UnicodeDecodeError, AttributeError):
        return [decode(p) for p in payloads]


def empty_stored_frame() -> pd.DataFrame:
    return stored_frame([], [], [], [], [])


def consumed_frame(msgs: Sequence, received: Sequence[float], raw: bool = False) -> pd.DataFrame:
    """Rows for messages a JetStream consumer delivered: stored columns plus the delivery details."""
    metas = [m.metadata for m in msgs]
    frame = stored_frame(
        [md.sequence.stream for md in metas], [md.timestamp for md in metas], [m.subject for m in msgs],
        [m.data for m in msgs], [m.headers for m in msgs], raw)
    frame["consumer_seq"] = pd.Series([md.sequence.consumer for md in metas], dtype="int64")
    frame["delivered"] = pd.Series([md.num_delivered for md in metas], dtype="int64")
    frame["pending"] = pd.Series([md.num_pending for md in metas], dtype="int64")
    frame["received"] = _time_column([int(t * 1e9) for t in received])
    return frame


def core_frame(msgs: Sequence, received: Sequence[float], raw: bool = False) -> pd.DataFrame:
    """Rows for messages a core subscription received."""
    hdrs = [m.headers or {} for m in msgs]
    return pd.DataFrame({
        "received": _time_column([int(t * 1e9) for t in received]),
        "subject": pd.Series([m.subject for m in msgs], dtype=object),
        "data": pd.Series([decode(m.data, raw) for m in msgs], dtype=object),
        "headers": pd.Series(hdrs, dtype=object),
        "size": pd.Series([len(m.data or b"") + header_size(h) for m, h in zip(msgs, hdrs)], dtype="int64"),
        "reply": pd.Series([m.reply or None for m in msgs], dtype=object),
    }, columns=CORE_COLUMNS)


def acks_frame(subjects: Sequence[str], acks: Sequence, sent: Sequence[float], acked: Sequence[float],
               msg_ids: Sequence[str | None]) -> pd.DataFrame:
    """One row per JetStream publish: where it went, its PubAck and how long the ack took."""
    return pd.DataFrame({
        "subject": pd.Series(subjects, dtype=object),
        "stream": pd.Series([a.stream for a in acks], dtype=object),
        "seq": pd.Series([a.seq for a in acks], dtype="int64"),
        "duplicate": pd.Series([bool(a.duplicate) for a in acks], dtype=bool),
        "msg_id": pd.Series(msg_ids, dtype=object),
        "sent": _time_column([int(t * 1e9) for t in sent]),
        "ack_ms": pd.Series([(b - a) * 1000 for a, b in zip(sent, acked)], dtype="float64"),
        **({"val": pd.Series([getattr(a, "val", None) for a in acks], dtype=object)}
           if any(getattr(a, "val", None) is not None for a in acks) else {}),
    })


# Server fields nats-py's dataclasses drop, kept on them by the lab (consumers.with_priority) and shown.
KEPT_FIELDS = ("priority_policy", "priority_groups", "priority_timeout")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
               if getattr(value, f.name) not in (None, [], {})}
        for name in KEPT_FIELDS:  # set by the lab where nats-py has no field for them
            if vars(value).get(name) not in (None, [], {}):
                out[name] = _plain(vars(value)[name])
        return out
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def streams_frame(infos: Iterable) -> pd.DataFrame:
    """`%stream ls`: one row per stream, natscli's columns."""
    rows = []
    for si in infos:
        c, st = si.config, si.state
        rows.append({
            "name": c.name, "subjects": list(c.subjects or []), "storage": _plain(c.storage),
            "retention": _plain(c.retention), "messages": st.messages, "bytes": st.bytes,
            "first_seq": st.first_seq, "last_seq": st.last_seq, "consumers": st.consumer_count,
            "created": si.created,
        })
    cols = ["name", "subjects", "storage", "retention", "messages", "bytes", "first_seq", "last_seq",
            "consumers", "created"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame.sort_values("name", ignore_index=True)


def priority_cells(config: dict, groups: list | None) -> dict:
    """A consumer's `priority` ("pinned_client (A, B)") and `pinned` ("A: <pin id>, ...") cells, from the
    server's JSON (nats-py drops these fields): its config and its info's per-group state."""
    policy = config.get("priority_policy")
    return {"priority": f"{policy} ({', '.join(config.get('priority_groups') or [])})" if policy else None,
            "pinned": ", ".join(f"{g.get('group')}: {g['pinned_client_id']}" for g in groups or []
                                if g.get("pinned_client_id")) or None}


def consumers_frame(infos: Iterable) -> pd.DataFrame:
    """`%consumer ls`: one row per consumer with its backlog and priority groups, from nats-py's ConsumerInfo
    with the priority fields `consumers.with_priority` keeps."""
    rows = []
    for ci in infos:
        c = ci.config
        rows.append({
            "name": ci.name, "stream": ci.stream_name, "kind": "push" if c.deliver_subject else "pull",
            "durable": bool(c.durable_name), "deliver": _plain(c.deliver_policy), "ack": _plain(c.ack_policy),
            "filter": c.filter_subject or ", ".join(c.filter_subjects or []) or None,
            **priority_cells({"priority_policy": getattr(c, "priority_policy", None),
                              "priority_groups": getattr(c, "priority_groups", None)},
                             getattr(ci, "priority_groups", None)),
            "pending": ci.num_pending, "ack_pending": ci.num_ack_pending, "redelivered": ci.num_redelivered,
            "waiting": ci.num_waiting, "delivered_seq": ci.delivered.stream_seq if ci.delivered else None,
            "ack_floor_seq": ci.ack_floor.stream_seq if ci.ack_floor else None, "created": ci.created,
        })
    cols = ["name", "stream", "kind", "durable", "deliver", "ack", "filter", "priority", "pinned", "pending",
            "ack_pending", "redelivered", "waiting", "delivered_seq", "ack_floor_seq", "created"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame.sort_values("name", ignore_index=True)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nats-py info dataclass as (dotted field, value) pairs, leaving out unset fields."""
    plain = _plain(obj) if not isinstance(obj, dict) else obj
    pairs: list[tuple[str, Any]] = []
    for key, value in plain.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs.extend(flatten(value, name + "."))
        elif key == "priority_groups" and value and isinstance(value[0], dict):  # a group's state per group
            for group in value:
                pairs.extend(flatten({k: v for k, v in group.items() if k != "group"},
                                     f"{name}.{group.get('group')}."))
        elif value not in (None, [], {}, ""):
            pairs.append((name, value))
    return pairs


def info_frame(obj: Any) -> pd.DataFrame:
    """A StreamInfo / ConsumerInfo / server INFO as a two-column table (field, value)."""
    pairs = flatten(obj)
    return pd.DataFrame({"field": [k for k, _ in pairs], "value": [_cell(v) for _, v in pairs]})


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value and value == int(value) and value > 1e6:
        return int(value)
    if isinstance(value, (_dt.datetime,)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return value
