"""Core NATS from the notebook: publish (with natscli templates, headers, JetStream acks), subscribe into a
DataFrame (blocking or in the background), request/reply, and the server's INFO.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import json
import threading
import time
import uuid
from typing import Any

import nats.js.errors as jse
import pandas as pd

from . import frames, progress, tables, templates
from .done import Done
from .errors import LabError
from .session import Session, flush, get_session, in_session
from .subjects import check_subject
from .units import at_least_one, parse_duration

_JS_WINDOW = 256  # JetStream publishes in flight at once: fast, yet bounded


def encode_payload(payload: Any) -> bytes:
    """Text as UTF-8, bytes as is, dicts and lists as JSON."""
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, (dict, list)):
        try:
            return json.dumps(payload).encode()
        except (TypeError, ValueError) as exc:
            raise LabError(f"payload is not JSON: {exc}") from None
    if not isinstance(payload, (str, int, float)):
        raise LabError(f"a payload is text, bytes, a number, a dict or a list, not {type(payload).__name__}")
    return str(payload).encode()


def parse_headers(headers: Any) -> dict[str, str]:
    """A dict, or natscli's 'K:V' strings (a list of them, or one)."""
    if not headers:
        return {}
    if isinstance(headers, dict):
        return {str(k): str(v) for k, v in headers.items()}
    if isinstance(headers, str):
        headers = [headers]
    out = {}
    for item in headers:
        if ":" not in item:
            raise LabError(f"invalid header {item!r}: use KEY:VALUE")
        k, v = item.split(":", 1)
        if not k.strip():
            raise LabError(f"invalid header {item!r}: empty key")
        out[k.strip()] = v.strip()
    return out


def message_ttl(ttl: Any) -> str:
    """A Nats-TTL header value: whole seconds as nats-server reads them ("never": kept forever)."""
    if isinstance(ttl, str) and ttl.strip().lower() == "never":
        return "never"
    seconds = parse_duration(ttl, "--ttl")
    if seconds is None or seconds < 1 or seconds != int(seconds):
        raise LabError(f"invalid --ttl {ttl!r}: use whole seconds of at least 1s (e.g. 30s, 5m, 1h) or never")
    return f"{int(seconds)}s"


def schedule_pattern(schedule: str) -> str:
    """A Nats-Schedule value: "@every 10s", "@at <RFC 3339>", cron and @hourly... as given; a duration
    ("30s", "5m") means once, that long from now."""
    text = str(schedule).strip()
    if text.startswith("@") or len(text.split()) == 6:
        return text
    try:
        seconds = parse_duration(text, "--schedule")
    except LabError:
        seconds = None
    if not seconds or seconds < 0:
        raise LabError(f"invalid --schedule {schedule!r}: use '@every 10s', '@at 2030-01-01T00:00:00Z', a "
                       "six-field cron ('0 0 9 * * mon-fri'), @hourly/@daily..., or a delay such as 30s")
    when = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=seconds)
    return "@at " + when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _publish_batch(s: Session, messages: list) -> pd.DataFrame:
    """An atomic batch: every message but the last staged without waiting, the last one commits."""
    batch_id = uuid.uuid4().hex
    last = len(messages)
    for i, (subj, data, h, _mid) in enumerate(messages, 1):
        h = {**h, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i)}
        if i < last:
            await s.nc.publish(subj, data, headers=h)
            continue
        h["Nats-Batch-Commit"] = "1"
        t0 = time.time()
        reply = await s.nc.request(subj, data, headers=h, timeout=10)
        ack = json.loads(reply.data) if reply.data else {}
        if "error" in ack:
            jse.APIError.from_error(ack["error"])
        took = (time.time() - t0) * 1000
        frame = pd.DataFrame({"subject": [subj], "stream": [ack.get("stream")], "seq": [ack.get("seq")],
                              "batch": [ack.get("batch")], "count": [ack.get("count")], "ack_ms": [took]})
        n, seq = ack.get("count") or last, ack.get("seq") or 0
        return tables.lab_frame(frame, f"a batch of {n} stored in {ack.get('stream')} seq {seq - n + 1}..{seq} "
                                       f"(all or none); commit ack {took:.2f} ms")


async def _publish_fast_batch(s: Session, messages: list, flow: int) -> pd.DataFrame:
    """A fast batch (nats-server 2.14's `allow_batched`): the batch rides in each message's reply subject
    (`<inbox>.<id>.<flow>.fail.<seq>.<op>.$FI`); the stream stores each message at once and acknowledges every
    `msgs` of them on that inbox; we keep at most two windows unacknowledged and wait for the commit's PubAck."""
    batch_id = uuid.uuid4().hex
    inbox = s.nc.new_inbox()
    answers: asyncio.Queue = asyncio.Queue()

    async def on_answer(msg) -> None:
        answers.put_nowait(json.loads(msg.data) if msg.data else {})

    sub = await s.nc.subscribe(inbox + ".>", cb=on_answer)
    last = len(messages)
    acked, window, flow_acks, gaps, refused, ack = 0, flow, 0, 0, [], None
    t0 = time.time()

    async def take() -> None:
        nonlocal acked, window, flow_acks, gaps, ack
        try:
            answer = await asyncio.wait_for(answers.get(), 10)
        except asyncio.TimeoutError:
            raise LabError(f"no answer from the stream for 10 s after message {acked + 1} of the fast batch "
                           "(is a stream with allow_batched listening on the subject?)") from None
        kind = answer.get("type")
        if kind == "ack":
            flow_acks += 1
            acked, window = max(acked, answer.get("seq", 0)), answer.get("msgs") or window
        elif kind == "gap":
            gaps += 1
        elif kind == "err":
            refused.append(f"#{answer.get('seq')}: {(answer.get('error') or {}).get('description')}")
        elif "error" in answer:
            jse.APIError.from_error(answer["error"])
        else:
            ack = answer

    try:
        for i, (subj, data, h, _mid) in enumerate(messages, 1):
            op = 2 if i == last else (0 if i == 1 else 1)
            await s.nc.publish(subj, data, reply=f"{inbox}.{batch_id}.{flow}.fail.{i}.{op}.$FI", headers=h or None)
            while not answers.empty() or i - acked >= 2 * window:
                await take()
                if ack is not None:
                    break
            if ack is not None:
                break
        while ack is None:
            await take()
    finally:
        await sub.unsubscribe()
    took = (time.time() - t0) * 1000
    n, seq = ack.get("count") or 0, ack.get("seq") or 0
    frame = pd.DataFrame({"subject": [messages[-1][0]], "stream": [ack.get("stream")], "seq": [seq],
                          "batch": [ack.get("batch")], "count": [n], "flow_acks": [flow_acks], "gaps": [gaps],
                          "refused": ["; ".join(refused)], "ms": [took]})
    line = f"a fast batch of {n} stored in {ack.get('stream')}, the last at seq {seq}; {flow_acks} flow ack" \
           f"{'s' if flow_acks != 1 else ''} in {took:.1f} ms"
    if n < last:
        line += f"; it ended at message {n} of {last}" + (f" ({refused[-1]})" if refused else "")
    return tables.lab_frame(frame, line)


@in_session
async def publish(s: Session, subject: str, payload: Any = "", *, count: int = 1, headers: Any = None,
                  msg_id: str | None = None, js: bool = False, reply: str | None = None,
                  use_templates: bool = True, sleep: Any = None, ttl: Any = None, incr: Any = None,
                  batch: bool = False, fast: bool = False, flow: int = 100, schedule: str | None = None,
                  target: str | None = None) -> Any:
    """Publish `count` messages. natscli templates ({{Count}}, {{ID}}, {{TimeStamp}}, {{Random 5 10}} ...)
    render per message in the payload, the subject and the msg id. `ttl` ("30s", "1h", "never") sets the
    Nats-TTL header: a stream with allow_msg_ttl removes the message after that long. `incr` (an integer,
    may be negative) adds to a counter (Nats-Incr; the stream needs allow_msg_counter): the message has no
    payload, it goes through JetStream and the result has the counter's new total in `val`.
    `batch=True` publishes the `count` messages as one atomic batch (the stream needs allow_atomic): all are
    stored or none; the result is the commit's ack (stream, seq of the last, batch id, count). With `fast=True`
    they go as a fast batch instead (the stream needs allow_batched; nats-server 2.14): each is stored as it
    arrives (not all or none), the stream acknowledges every `flow` of them and the commit's ack says how many
    made it (`count`; a refused message ends the batch there).
    `schedule` ("@every 10s", "@at <time>", a six-field cron, or a duration meaning "once, that long from
    now") with `target` publishes a message schedule (the stream needs allow_msg_schedules): the server stores
    the payload on `target` when it is due.

    Core publishes return a `Done`; with `js=True` each message waits for its PubAck and the result is a
    DataFrame (subject, stream, seq, duplicate, msg_id, sent, ack_ms)."""
    if not isinstance(subject, str) or not subject:
        check_subject(subject)
    at_least_one(count, "--count")
    hdrs = parse_headers(headers)
    if ttl is not None:
        hdrs["Nats-TTL"] = message_ttl(ttl)
    if incr is not None:
        text = str(incr).strip()
        if isinstance(incr, bool) or not text.lstrip("+-").isdigit():
            raise LabError(f"--incr wants a whole number (it may be negative), e.g. --incr 5, not {incr!r}")
        if payload not in ("", b"", None):
            raise LabError("a counter increment carries no payload: drop the payload or --incr")
        hdrs["Nats-Incr"] = text
        js = True
    if schedule is not None or target is not None:
        if not schedule or not target:
            raise LabError("--schedule and --target go together, e.g. --schedule '@every 10s' --target jobs.run")
        hdrs["Nats-Schedule"] = schedule_pattern(schedule)
        hdrs["Nats-Schedule-Target"] = target
        js = True
    pause = parse_duration(sleep, "--sleep") or 0
    is_bytes = isinstance(payload, (bytes, bytearray, memoryview))
    text = None if is_bytes else (payload if isinstance(payload, str) else None)
    body = encode_payload(payload)
    templated = use_templates and any(templates.has_templates(t or "") for t in (text, subject, msg_id))

    # A subject no server routes is refused before anything is sent (templated: as the first renders).
    check_subject(templates.render(subject, 1) if templated else subject)
    if reply:
        check_subject(reply, "reply subject")

    def message(i: int) -> tuple[str, bytes, dict, str | None]:
        if not templated:
            h = dict(hdrs)
            if msg_id:
                h["Nats-Msg-Id"] = msg_id
            return subject, body, h, msg_id
        subj = check_subject(templates.render(subject, i)) if i > 1 else templates.render(subject, i)
        data = templates.render(text, i).encode() if text is not None else body
        mid = templates.render(msg_id, i) if msg_id else None
        h = dict(hdrs)
        if mid:
            h["Nats-Msg-Id"] = mid
        return subj, data, h, mid

    started = time.monotonic()
    done = 0
    # A bar only for many messages, and only once they take a second; the loop below only counts.
    shown = progress.bar(count, f"publishing to {subject}", enabled=None if count > 1 else False)
    if fast:
        if isinstance(flow, bool) or not isinstance(flow, int) or not 1 <= flow <= 65535:
            raise LabError(f"--flow wants a number of messages from 1 to 65535, not {flow!r}")
        return await _publish_fast_batch(s, [message(i) for i in range(1, count + 1)], flow)
    if batch:
        return await _publish_batch(s, [message(i) for i in range(1, count + 1)])
    if not js:
        async with progress.Following(shown, lambda: done):
            for i in range(1, count + 1):
                subj, data, h, _ = message(i)
                await s.nc.publish(subj, data, reply=reply or "", headers=h or None)
                done = i
                if pause:
                    await flush(s.nc)
                    await asyncio.sleep(pause)
            await flush(s.nc)
        n = f"{count:,} message{'s' if count != 1 else ''}" if count >= 10_000 else \
            f"{count} message{'s' if count != 1 else ''}"
        took = time.monotonic() - started
        rate = f" in {took:.1f} s ({count / took:,.0f}/s)" if took >= progress.DELAY and count > 1 else ""
        return Done(f"published {n} to {subject}{rate}", count=count, subject=subject)

    subjects, acks, sent, acked, ids = [], [], [], [], []

    async def one(i: int) -> None:
        subj, data, h, mid = message(i)
        t0 = time.time()
        ack = await js_publish(s, subj, data, h or None)
        t1 = time.time()
        subjects.append(subj); acks.append(ack); sent.append(t0); acked.append(t1); ids.append(mid)

    async with progress.Following(shown, lambda: len(acks)):
        if pause:
            for i in range(1, count + 1):
                await one(i)
                await asyncio.sleep(pause)
        else:
            for start in range(1, count + 1, _JS_WINDOW):
                await asyncio.gather(*(one(i) for i in range(start, min(start + _JS_WINDOW, count + 1))))
    frame = frames.acks_frame(subjects, acks, sent, acked, ids)
    return tables.lab_frame(frame.sort_values("sent", kind="stable", ignore_index=True), acks_summary(frame))


# As nats.go's JetStream publish: "no responders" means nothing was stored, so it is tried again a little
# later; in a cluster a new stream's interest reaches the other nodes over routes just after its create answer.
_NO_STREAM_RETRIES = 2
_NO_STREAM_WAIT = 0.25


async def js_publish(s: Session, subject: str, data: bytes, headers: dict | None) -> Any:
    """One JetStream publish waiting for its PubAck, tried again on no responders as nats.go does."""
    for attempt in range(_NO_STREAM_RETRIES + 1):
        try:
            return await s.js.publish(subject, data, headers=headers, timeout=5)
        except jse.NoStreamResponseError:
            if attempt == _NO_STREAM_RETRIES:
                raise
            await asyncio.sleep(_NO_STREAM_WAIT)


def acks_summary(frame: pd.DataFrame) -> str:
    """One line over a table of PubAcks: how many stored where, duplicates, how long the acks took."""
    n = len(frame)
    where = "; ".join(f"{stream} seq {g['seq'].min()}..{g['seq'].max()}" if len(g) > 1 else f"{stream} seq {g['seq'].iloc[0]}"
                      for stream, g in frame.groupby("stream", sort=False))
    dups = int(frame["duplicate"].sum())
    ms = frame["ack_ms"]
    took = f"ack {ms.median():.2f} ms median, {ms.max():.2f} ms max" if n > 1 else f"ack {ms.iloc[0]:.2f} ms"
    return (f"{n:,} message{'s' if n != 1 else ''} stored in {where}"
            + (f", {dups:,} of them duplicates (not stored again)" if dups else "") + f"; {took}")


@in_session
async def subscribe(s: Session, subject: str, *, count: int | None = None, timeout: Any = 2.0,
                    queue: str | None = None, raw: bool = False) -> pd.DataFrame:
    """Collect messages on `subject` until `count` arrived or `timeout` passed; a DataFrame of them
    (received, subject, data, headers, size, reply)."""
    check_subject(subject, wildcards=True)
    at_least_one(count, "--count")
    limit = parse_duration(timeout, "--timeout") or 0
    msgs, received = [], []
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg) -> None:
        msgs.append(msg)
        received.append(time.time())
        if count and len(msgs) >= count and not done.done():
            done.set_result(None)

    sub = await s.nc.subscribe(subject, queue=queue or "", cb=on_msg)
    try:
        await flush(s.nc)
        try:
            await asyncio.wait_for(asyncio.shield(done), limit if limit > 0 else None)
        except asyncio.TimeoutError:
            pass
    finally:
        await sub.unsubscribe()
    if count:
        msgs, received = msgs[:count], received[:count]
    got = frames.core_frame(msgs, received, raw)
    if len(got):
        return tables.lab_frame(got, f"{len(got):,} message{'s' if len(got) != 1 else ''} on {subject}")
    return tables.lab_frame(got, f"no message on {subject} within {limit:g}s"
                            + (f" (count {count} not reached)" if count else ""))


class Collector:
    """A background subscription that keeps what arrives; `.df` is a DataFrame of it so far."""

    def __init__(self, subject: str, queue: str | None = None, raw: bool = False,
                 session: Session | None = None):
        check_subject(subject, wildcards=True)
        self.session = (session or get_session()).ensure()
        self.subject, self.raw = subject, raw
        self._msgs: list = []
        self._received: list = []
        self._lock = threading.Lock()

        async def on_msg(msg) -> None:
            with self._lock:
                self._msgs.append(msg)
                self._received.append(time.time())

        async def start():
            sub = await self.session.nc.subscribe(subject, queue=queue or "", cb=on_msg)
            await flush(self.session.nc)
            return sub

        self._sub = self.session.run(start())

    async def _settle(self) -> None:
        """Take in what is already on its way: a flush round trip makes the server deliver everything
        published on this connection before it, then the subscription's queue is drained."""
        try:
            await flush(self.session.nc, 5)
        except Exception:
            return
        for _ in range(200):
            if self._sub is None or self._sub.pending_msgs == 0:
                return
            await asyncio.sleep(0.005)

    @property
    def df(self) -> pd.DataFrame:
        """What arrived so far (including what this session published just before asking)."""
        if self._sub is not None and self.session.connected:
            self.session.run(self._settle())
        with self._lock:
            return frames.core_frame(list(self._msgs), list(self._received), self.raw)

    def __len__(self) -> int:
        return len(self._msgs)

    def stop(self) -> pd.DataFrame:
        """Stop listening (after taking in what is already on its way); the DataFrame of all received."""
        if self._sub is not None:
            async def stop() -> None:
                await self._settle()
                await self._sub.unsubscribe()

            self.session.run(stop())
            self._sub = None
        return self.df

    def _repr_html_(self) -> str:
        state = "listening" if self._sub is not None else "stopped"
        return f"<p>subscription on <code>{self.subject}</code> ({state}): {len(self)} messages</p>" + \
            self.df.tail(20).to_html()

    def __repr__(self) -> str:
        state = "listening" if self._sub is not None else "stopped"
        return f"<subscription on {self.subject} ({state}): {len(self)} messages>"


def subscribe_background(subject: str, *, queue: str | None = None, raw: bool = False,
                         session: Session | None = None) -> Collector:
    """Start collecting messages on `subject` and return at once; read `.df` any time, `.stop()` to end."""
    return Collector(subject, queue, raw, session)


@in_session
async def request(s: Session, subject: str, payload: Any = "", *, timeout: Any = 2.0, replies: int = 1,
                  headers: Any = None, raw: bool = False) -> pd.DataFrame:
    """Send a request and collect up to `replies` answers within `timeout`; a DataFrame with `rtt_ms`."""
    import nats.errors

    check_subject(subject)
    at_least_one(replies, "--replies")
    limit = parse_duration(timeout, "--timeout") or 2.0
    hdrs = parse_headers(headers) or None
    data = encode_payload(payload)
    if replies <= 1:
        t0 = time.time()
        try:
            msg = await s.nc.request(subject, data, timeout=limit, headers=hdrs)
        except nats.errors.NoRespondersError:
            raise LabError(f"no responders on {subject}") from None
        except nats.errors.TimeoutError:
            raise LabError(f"no reply on {subject} within {limit:g}s") from None
        t1 = time.time()
        frame = frames.core_frame([msg], [t1], raw)
        frame["rtt_ms"] = [(t1 - t0) * 1000]
        return frame
    inbox = s.nc.new_inbox()
    msgs, received = [], []
    done = asyncio.get_running_loop().create_future()

    async def on_msg(msg) -> None:
        if msg.headers and msg.headers.get("Status") == "503":
            if not done.done():
                done.set_exception(LabError(f"no responders on {subject}"))
            return
        msgs.append(msg)
        received.append(time.time())
        if len(msgs) >= replies and not done.done():
            done.set_result(None)

    sub = await s.nc.subscribe(inbox, cb=on_msg)
    t0 = time.time()
    try:
        await s.nc.publish(subject, data, reply=inbox, headers=hdrs)
        try:
            await asyncio.wait_for(asyncio.shield(done), limit)
        except asyncio.TimeoutError:
            if not msgs:
                raise LabError(f"no reply on {subject} within {limit:g}s") from None
    finally:
        await sub.unsubscribe()
    frame = frames.core_frame(msgs, received, raw)
    frame["rtt_ms"] = [(t - t0) * 1000 for t in received]
    return frame


@in_session
async def server_info(s: Session) -> pd.Series:
    """The server's INFO plus this connection's details, as a Series (field -> value)."""
    info = dict(s.nc._server_info or {})
    t0 = time.perf_counter()
    await s.nc.flush()
    rtt = (time.perf_counter() - t0) * 1000
    conn = {"connected_url": s.nc.connected_url.geturl() if s.nc.connected_url else s.url,
            "embedded": s.server is not None, "rtt_ms": round(rtt, 3), "client_id": s.nc.client_id,
            "max_payload": s.nc.max_payload, "reconnects": s.nc.stats.get("reconnects", 0)}
    if s.store_dir is not None:
        conn["store_dir"] = str(s.store_dir)
    row = {**conn, **{k: v for k, v in info.items() if k not in ("nonce",)}}
    return pd.Series(row, dtype=object, name="info")
