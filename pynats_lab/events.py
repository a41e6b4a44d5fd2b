"""Advisories and connection events as a DataFrame (`%nats events`): JetStream's `$JS.EVENT.ADVISORY.>`
(max deliveries, terminated and naked messages, consumers and streams created or deleted, pauses …) and,
for a system-account user, `$SYS.ACCOUNT.*.CONNECT` / `.DISCONNECT`. Listened to for a while, in the
background, or kept in a stream (`capture=`) and read back later (`events_from`).
"""
from __future__ import annotations

import asyncio
import fnmatch
import json
import threading
from typing import Any

import pandas as pd

from .errors import LabError
from .monitoring import system_connection
from .session import Session, flush, get_session, in_session
from .units import at_least_one, parse_duration

ADVISORIES = "$JS.EVENT.ADVISORY.>"
# What a capture stream keeps: every advisory but the API audit ($JS.EVENT.ADVISORY.API, one token), which
# the reading of the capture stream itself would cause, round and round.
CAPTURED = "$JS.EVENT.ADVISORY.*.>"
CONNECTIONS = ("$SYS.ACCOUNT.*.CONNECT", "$SYS.ACCOUNT.*.DISCONNECT")
COLUMNS = ["time", "type", "stream", "consumer", "sequence", "deliveries", "account", "client", "detail",
           "subject", "raw"]


def short_type(kind: str | None) -> str:
    """'io.nats.jetstream.advisory.v1.max_deliver' -> 'max_deliver'."""
    return (kind or "").rsplit(".", 1)[-1]


def event_row(subject: str, data: bytes | str) -> dict | None:
    """One advisory or event as a row; None for what is not a JSON event (e.g. a metric)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "type" not in doc:
        return None
    client = doc.get("client") if isinstance(doc.get("client"), dict) else {}
    when = doc.get("timestamp") or (doc.get("server") or {}).get("time")
    detail = doc.get("reason") or doc.get("action") or doc.get("description") or ""
    if doc.get("paused") is not None:
        detail = "paused" if doc["paused"] else "resumed"
    return {"time": pd.Timestamp(when) if when else None, "type": short_type(doc["type"]),
            "stream": doc.get("stream", ""), "consumer": doc.get("consumer", ""),
            "sequence": doc.get("stream_seq"), "deliveries": doc.get("deliveries"),
            "account": client.get("acc") or doc.get("account", ""),
            "client": client.get("name") or (str(client["id"]) if client.get("id") is not None else ""),
            "detail": detail, "subject": subject, "raw": doc}


def events_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for col in ("sequence", "deliveries"):
        frame[col] = frame[col].astype("Int64")
    return frame


# The advisory and event types nats-server publishes (the last part of their `type`).
TYPES = ("api_audit", "api_limit_reached", "consumer_action", "consumer_group_pinned", "consumer_group_unpinned",
         "consumer_leader_elected", "consumer_pause", "consumer_quorum_lost", "domain_leader_elected",
         "max_deliver", "meta_rescue", "nak", "restore_complete", "restore_create", "server_out_of_space",
         "server_removed", "snapshot_complete", "snapshot_create", "stream_action", "stream_batch_abandoned",
         "stream_leader_elected", "stream_quorum_lost", "terminated", "account_connections", "client_connect",
         "client_disconnect", "ocsp_peer_link_invalid", "ocsp_peer_reject")


def _wanted(kind: str | None):
    if not kind:
        return lambda row: True
    patterns = [k.strip() for k in kind.split(",") if k.strip()]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(t, p) for t in TYPES)]
    if unknown or not patterns:
        raise LabError(f"invalid --type {kind!r}: no event type matches {', '.join(unknown) or 'it'}; types are "
                       f"{', '.join(sorted(TYPES))} (wildcards allowed: consumer_*)")
    return lambda row: any(fnmatch.fnmatchcase(row["type"], p) for p in patterns)


async def _subscribe(s: Session, on_msg) -> tuple[list[str], list]:
    """Advisories on the session's connection; connection events where a system-account user listens (the
    session's own connection, or the embedded default's system user)."""
    subs = [await s.nc.subscribe(ADVISORIES, cb=on_msg)]
    subjects = [ADVISORIES]
    system = await system_connection(s)
    if system is not None:
        subs += [await system.subscribe(subject, cb=on_msg) for subject in CONNECTIONS]
        subjects += CONNECTIONS
        if system is not s.nc:
            await flush(system)
    await flush(s.nc)
    return subjects, subs


async def _capture(s: Session, stream: str) -> bool:
    """Make sure `stream` keeps the advisories from now on; True if it was created for them."""
    import nats.js.errors as jse
    from nats.js.api import StreamConfig

    try:
        info = await s.js.stream_info(stream)
    except jse.NotFoundError:
        from .tutorials import mark_config

        await s.js.add_stream(mark_config(s, StreamConfig(
            name=stream, subjects=[CAPTURED], description="JetStream advisories kept by %nats events --capture")))
        return True
    if CAPTURED not in (info.config.subjects or []):
        raise LabError(f"stream {stream} exists and does not keep {CAPTURED}: capture into a new stream "
                       "(it is created with that subject)")
    return False


class EventCollector:
    """Advisories (and connection events) collected in the background; `.df` so far, `.stop()`."""

    def __init__(self, *, type: str | None = None, session: Session | None = None):
        self.session = (session or get_session()).ensure()
        self._wanted = _wanted(type)
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self.subjects: list[str] = []
        self._subs: list = []
        self.capture: str | None = None

        async def on_msg(msg) -> None:
            row = event_row(msg.subject, msg.data)
            if row is not None and self._wanted(row):
                with self._lock:
                    self._rows.append(row)

        async def start():
            self.subjects, subs = await _subscribe(self.session, on_msg)
            return subs

        self._subs = self.session.run(start())

    async def _settle(self) -> None:
        try:
            await flush(self.session.nc, 5)
        except Exception:
            return
        for _ in range(200):
            if all(sub.pending_msgs == 0 for sub in self._subs):
                return
            await asyncio.sleep(0.005)

    @property
    def df(self) -> pd.DataFrame:
        """The events so far, oldest first."""
        if self._subs and self.session.connected:
            self.session.run(self._settle())
        with self._lock:
            return events_frame(list(self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def stop(self) -> pd.DataFrame:
        """Stop listening; the DataFrame of everything received."""
        if self._subs:
            async def stop() -> None:
                await self._settle()
                for sub in self._subs:
                    await sub.unsubscribe()

            self.session.run(stop())
            self._subs = []
        return self.df

    def _state(self) -> str:
        state = "listening" if self._subs else "stopped"
        kept = f"; stream {self.capture} keeps them" if self.capture else ""
        return f"{state}{kept}"

    def __repr__(self) -> str:
        return f"<events on {', '.join(self.subjects)} ({self._state()}): {len(self)} so far>"

    def _repr_html_(self) -> str:
        shown = self.df.drop(columns=["raw"]).tail(20)
        return (f"<p>events on <code>{', '.join(self.subjects)}</code> ({self._state()}): {len(self)} so far</p>"
                + shown.to_html(index=False))


@in_session
async def events(s: Session, *, count: int | None = None, timeout: Any = "5s", type: str | None = None,
                 capture: str | None = None) -> pd.DataFrame:
    """Listen to advisories (and, for a system-account user, connection events) until `count` arrived or
    `timeout` passed. `type` keeps only some (short names, comma-separated, wildcards: 'max_deliver',
    'consumer_*'). `capture` also keeps every advisory in that stream from now on (created if missing).
    Columns: time, type, stream, consumer, sequence, deliveries, account, client, detail, subject, raw."""
    at_least_one(count, "--count")
    limit = parse_duration(timeout, "--timeout")
    if limit is not None and limit <= 0:
        raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
    wanted = _wanted(type)
    if capture:
        await _capture(s, capture)

    def row_of(msg) -> dict | None:
        row = event_row(msg.subject, msg.data)
        return row if row is not None and wanted(row) else None

    async def subscribe(on_msg) -> list:
        return (await _subscribe(s, on_msg))[1]

    return events_frame(await collect_rows(subscribe, row_of, count, limit))


async def collect_rows(subscribe, row_of, count: int | None, limit: float | None) -> list[dict]:
    """The rows `row_of(msg)` makes of what the subscriptions `await subscribe(on_msg)` opens receive (None:
    not kept), until `count` rows or `limit` seconds; the subscriptions are closed after."""
    rows: list[dict] = []
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg) -> None:
        row = row_of(msg)
        if row is None:
            return
        rows.append(row)
        if count and len(rows) >= count and not done.done():
            done.set_result(None)

    subs = await subscribe(on_msg)
    try:
        try:
            await asyncio.wait_for(asyncio.shield(done), limit)
        except asyncio.TimeoutError:
            pass
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return rows[:count] if count else rows


def events_background(*, type: str | None = None, capture: str | None = None,
                      session: Session | None = None) -> EventCollector:
    """Start collecting advisories (and connection events for a system-account user) and return at once."""
    s = (session or get_session()).ensure()
    _wanted(type)  # a wrong --type is said before anything is made
    if capture:
        s.run(_capture(s, capture))
    collector = EventCollector(type=type, session=s)
    collector.capture = capture
    return collector


def events_from(stream: str, *, type: str | None = None, session: Session | None = None) -> pd.DataFrame:
    """The advisories a stream kept (`events(capture=...)`, or any stream of advisory subjects), read
    without consuming anything, as the same DataFrame."""
    from .streams import stream_frame

    # Never through a consumer: its created/deleted advisories would land in the very stream being read.
    stored = stream_frame(stream, raw=True, consumer=False, session=session)
    wanted = _wanted(type)
    rows = [r for r in (event_row(subj, data) for subj, data in zip(stored["subject"], stored["data"]))
            if r is not None and wanted(r)]
    return events_frame(rows)
