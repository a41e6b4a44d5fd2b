"""Message tracing (`%nats trace`, nats-server 2.11+): publish with `Nats-Trace-Dest` (and `Nats-Trace-Only`
unless the message should really be delivered), collect every server's trace event, and lay them out hop by
hop: ingress, subject mapping, stream export, service import, JetStream, egress, across routes in a cluster.
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pandas as pd

from .errors import LabError
from .messaging import encode_payload, parse_headers
from .monitoring import wait_until
from .overview import check_publish_subject
from .session import Session, flush, in_session
from .units import parse_duration

# nats-server's connection kinds (client.go) and trace event types (msgtrace.go).
CONN_KINDS = {0: "client", 1: "route", 2: "gateway", 3: "system", 4: "leafnode", 5: "jetstream", 6: "account"}
EVENT_KINDS = {"in": "ingress", "sm": "subject mapping", "se": "stream export", "si": "service import",
               "js": "jetstream", "eg": "egress"}
_FORWARDS = {1, 2, 4}  # an egress to a route, gateway or leafnode is another server's ingress
COLUMNS = ["hop", "server", "kind", "subject", "account", "client", "via", "stream", "queue", "error", "detail",
           "time"]


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


def _client(e: dict) -> str:
    if e.get("name"):
        return e["name"]
    return f"cid {e['cid']}" if e.get("cid") else ""


def trace_rows(events: list[dict]) -> list[dict]:
    """Every server's trace event, flattened to rows in route order: the origin server first, each egress to
    another server followed by that server's own rows."""
    by_hop = {_hop(ev): ev for ev in events}
    rows: list[dict] = []

    def walk(hop: str, depth: int) -> None:
        ev = by_hop.get(hop)
        if ev is None:
            return
        server = (ev.get("server") or {}).get("name", "")
        account = ""
        items = ev.get("events") or []
        # JetStream is stored after the egresses are decided; nats-server lists it after them.
        items = sorted(items, key=lambda e: ["in", "sm", "se", "si", "js", "eg"].index(e.get("type"))
                       if e.get("type") in EVENT_KINDS else 9)
        for e in items:
            kind = EVENT_KINDS.get(e.get("type"), e.get("type", ""))
            row = dict.fromkeys(COLUMNS, "")
            row.update(hop=hop, server=server, kind=kind, time=pd.Timestamp(e["ts"]) if e.get("ts") else None,
                       error=e.get("error", ""))
            if kind == "ingress":
                account = e.get("acc", "")
                row.update(subject=e.get("subj", ""), account=account, client=_client(e),
                           via=CONN_KINDS.get(e.get("kind"), ""))
            elif kind == "subject mapping":
                row.update(subject=e.get("to", ""), account=account)
            elif kind == "stream export":
                row.update(subject=e.get("to", ""), account=e.get("acc", ""))
            elif kind == "service import":
                row.update(subject=e.get("to", ""), account=e.get("acc", ""),
                           detail=f"from {e.get('from', '')}" if e.get("from") else "")
            elif kind == "jetstream":
                row.update(subject=e.get("subject", ""), account=account, stream=e.get("stream", ""),
                           via="jetstream")
                if e.get("nointerest"):
                    row["detail"] = "not stored: no interest (interest retention)"
            elif kind == "egress":
                row.update(subject=e.get("sub", ""), account=e.get("acc") or account, client=_client(e),
                           via=CONN_KINDS.get(e.get("kind"), ""), queue=e.get("queue", ""))
                if e.get("kind") in _FORWARDS and e.get("hop"):
                    row["detail"] = f"to hop {e['hop']}"
            rows.append(row)
            if kind == "egress" and e.get("kind") in _FORWARDS and e.get("hop"):
                walk(e["hop"], depth + 1)
        last = items[-1]["type"] if items else None
        if last in ("se", "si"):
            rows[-1]["detail"] = ("the trace stops at this account boundary: nats-server follows it only when "
                                  "the stream import / service export allows it (allow_trace: true)")
        elif not any(e.get("type") in ("eg", "js") for e in items) and items and not any(
                e.get("error") for e in items):
            rows[-1]["detail"] = (rows[-1]["detail"] + "; " if rows[-1]["detail"] else "") + "no subscriber: " \
                "nobody receives it here"

    walk("", 0)
    # Events whose hop never showed up as an egress (should not happen) are still shown.
    seen = {r["hop"] for r in rows}
    for hop in sorted(set(by_hop) - seen):
        walk(hop, 1)
    return rows


def trace_frame(events: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(trace_rows(events), columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def _hop(ev: dict) -> str:
    hop = ((ev.get("request") or {}).get("header") or {}).get("Nats-Trace-Hop", [""])
    return hop[0] if isinstance(hop, list) else str(hop)


def _complete(events: list[dict]) -> bool:
    """Every server's event is in: the origin's, each one an egress forwarded to, and the parents of each
    that came (events from different servers arrive in any order)."""
    got = {_hop(ev) for ev in events}
    needed = {""} | {e["hop"] for ev in events for e in ev.get("events") or []
                     if e.get("type") == "eg" and e.get("kind") in _FORWARDS and e.get("hop")}
    for hop in got:
        parts = hop.split(".")
        needed |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return needed <= got


@in_session
async def trace(s: Session, subject: str, payload: Any = "", *, headers: Any = None, deliver: bool = False,
                timeout: Any = "2s") -> pd.DataFrame:
    """Trace a message through the servers: published on `subject` with `Nats-Trace-Dest` (and, unless
    `deliver`, `Nats-Trace-Only`, so nobody receives it), one row per step per server: hop, server, kind
    (ingress, subject mapping, stream export, service import, jetstream, egress), subject, account, client,
    via (client, route, gateway, leafnode, jetstream), stream, queue, error, detail, time. The raw events
    are in `.attrs["events"]`. Needs nats-server 2.11 or later."""
    check_publish_subject(subject)
    limit = parse_duration(timeout, "--timeout")
    if limit is None or limit <= 0:
        raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
    info = s.nc._server_info or {}
    if _version(info.get("version")) < (2, 11):
        raise LabError(f"message tracing needs nats-server 2.11 or later; this server says version "
                       f"{info.get('version', '?')} (it would deliver the message without a trace)")
    hdrs = parse_headers(headers)
    for reserved in ("Nats-Trace-Dest", "Nats-Trace-Only"):
        if any(k.lower() == reserved.lower() for k in hdrs):
            raise LabError(f"{reserved} is set by %nats trace itself (--deliver for a real delivery)")
    inbox = s.nc.new_inbox()
    events: list[dict] = []
    changed = asyncio.Event()

    async def on_msg(msg) -> None:
        try:
            events.append(json.loads(msg.data))
        except ValueError:
            return
        changed.set()

    sub = await s.nc.subscribe(inbox, cb=on_msg)
    loop = asyncio.get_running_loop()
    try:
        await flush(s.nc)
        hdrs["Nats-Trace-Dest"] = inbox
        if not deliver:
            hdrs["Nats-Trace-Only"] = "true"
        await s.nc.publish(subject, encode_payload(payload), headers=hdrs)
        await s.nc.flush()
        end = loop.time() + limit
        await wait_until(changed, lambda: _complete(events), lambda: end)
    finally:
        await sub.unsubscribe()
    if not events:
        raise LabError(f"no trace event for {subject} within {limit:g}s (does the server support message "
                       "tracing, nats-server 2.11+?)")
    frame = trace_frame(events)
    frame.attrs["events"] = events
    frame.attrs["delivered"] = deliver
    return frame
