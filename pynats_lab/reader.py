"""Reading a stream without touching it: JetStream direct get (batched where the server supports it) or
STREAM.MSG.GET, never a consumer. Nothing is acknowledged, so work-queue and interest streams stay as they are.

`fetch` returns raw records `(seq, time, subject, headers, data)`; frames.py turns them into rows.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import heapq
import json
from dataclasses import dataclass, field

from .errors import LabError
from .headers import parse_header_block
from .units import rfc3339

API = "$JS.API"
_STATUS = "Status"


@dataclass
class Batch:
    """Messages in sequence order, and what the server said is left after them (if it said)."""
    seqs: list = field(default_factory=list)
    times: list = field(default_factory=list)
    subjects: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    payloads: list = field(default_factory=list)
    pending: int | None = None

    def __len__(self) -> int:
        return len(self.seqs)

    def extend(self, other: "Batch") -> None:
        self.seqs += other.seqs
        self.times += other.times
        self.subjects += other.subjects
        self.headers += other.headers
        self.payloads += other.payloads
        self.pending = other.pending

    def tail(self, n: int) -> "Batch":
        return Batch(self.seqs[-n:], self.times[-n:], self.subjects[-n:], self.headers[-n:], self.payloads[-n:],
                     self.pending)


class StreamReader:
    """Reads one stream by sequence or time. Picks direct get when the stream allows it."""

    def __init__(self, session, stream: str, direct: bool | None = None):
        self.session = session
        self.stream = stream
        self.direct = direct
        self.batch_supported: bool | None = None

    async def _ensure_mode(self) -> None:
        if self.direct is None:
            info = await self.session.js.stream_info(self.stream)
            self.direct = bool(info.config.allow_direct)
            self._state = info.state

    async def state(self):
        """The stream's state as last read (first/last sequence, messages): how dense the stream is."""
        if getattr(self, "_state", None) is None:
            self._state = (await self.session.js.stream_info(self.stream)).state
        return self._state

    # -- the public primitive -------------------------------------------------------------------
    async def fetch(self, start_seq: int | None = None, count: int = 100, subject: str | None = None,
                    start_time: _dt.datetime | None = None, up_to_seq: int | None = None) -> Batch:
        """Up to `count` messages from `start_seq` (or the first at/after `start_time`) matching `subject`."""
        await self._ensure_mode()
        if count <= 0:
            return Batch()
        if self.direct and self.batch_supported is not False:
            got = await self._direct_batch(start_seq, count, subject, start_time, up_to_seq)
            if got is not None:
                return got
        if not self.direct:
            return await self._pipelined(start_seq, count, subject, start_time, up_to_seq)
        return await self._one_by_one(start_seq, count, subject, start_time, up_to_seq)

    async def count_from(self, seq: int, subject: str | None = None) -> int | None:
        """How many messages matching `subject` are at or after `seq`, when the server can tell cheaply."""
        await self._ensure_mode()
        if not self.direct or self.batch_supported is False:
            return None
        got = await self._direct_batch(max(seq, 1), 1, subject, None, None)
        if got is None or got.pending is None:
            return None
        return got.pending + len(got)

    # -- direct get, batched ----------------------------------------------------------------------
    async def _direct_batch(self, start_seq, count, subject, start_time, up_to_seq) -> Batch | None:
        """Batched DIRECT.GET; None if this server answers without batch support."""
        out = Batch()
        seq = start_seq or (None if start_time else 1)
        while len(out) < count:
            req: dict = {"batch": count - len(out)}
            if subject:  # a batch from a sequence steps over deleted messages by itself
                req["next_by_subj"] = subject
            if seq is not None:
                req["seq"] = seq
            else:
                req["start_time"] = rfc3339(start_time)
            part = await self._direct_request(req)
            if part is None:
                return out if len(out) else None
            if up_to_seq and part.seqs and part.seqs[-1] > up_to_seq:
                keep = sum(1 for s in part.seqs if s <= up_to_seq)
                out.extend(Batch(part.seqs[:keep], part.times[:keep], part.subjects[:keep], part.headers[:keep],
                                 part.payloads[:keep], None))
                break
            out.extend(part)
            if not len(part) or part.pending == 0:
                break
            seq = part.seqs[-1] + 1
        return out

    async def _direct_request(self, req: dict) -> Batch | None:
        """One batched request, complete after its EOB; None if the server does not batch."""
        nc = self.session.nc
        inbox = nc.new_inbox()
        out = Batch()
        done = asyncio.get_running_loop().create_future()
        state = {"batch": None}

        async def on_msg(msg) -> None:
            hdrs = msg.headers or {}
            status = hdrs.get(_STATUS)
            if status:
                if status == "204":
                    out.pending = int(hdrs.get("Nats-Num-Pending", 0))
                    if not done.done():
                        done.set_result(True)
                elif status == "404":
                    out.pending = 0
                    if not done.done():
                        done.set_result(True)
                elif not done.done():
                    done.set_exception(LabError(f"direct get failed: {status} {hdrs.get('Description', '')}"))
                return
            if state["batch"] is None:
                state["batch"] = "Nats-Num-Pending" in hdrs
                if not state["batch"]:
                    if not done.done():
                        done.set_result(False)
            out.seqs.append(int(hdrs["Nats-Sequence"]))
            out.times.append(hdrs["Nats-Time-Stamp"])
            out.subjects.append(hdrs["Nats-Subject"])
            out.headers.append(hdrs)
            out.payloads.append(msg.data)

        sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        try:
            await nc.publish(f"{API}.DIRECT.GET.{self.stream}", json.dumps(req).encode(), reply=inbox)
            try:
                batched = await asyncio.wait_for(done, 10)
            except asyncio.TimeoutError:
                raise LabError(f"stream {self.stream}: no answer to a direct get (is allow_direct on?)") from None
        finally:
            await sub.unsubscribe()
        if batched is False:
            self.batch_supported = False
            return None
        self.batch_supported = True
        return out

    # -- STREAM.MSG.GET, pipelined ----------------------------------------------------------------
    async def _pipelined(self, start_seq, count, subject, start_time, up_to_seq) -> Batch:
        """Without direct get: many STREAM.MSG.GET requests in flight at once, never a consumer.

        The sequence range is cut into stripes; up to WINDOW chains walk one stripe each, asking for the next
        message on `subject` at or after a position, so a stripe costs one request per message it holds plus
        one that finds the stripe's end (that answer is kept: it is the first message of a later stripe).
        Stripes are as wide as the density seen so far makes one message likely, and no more are handed out
        than the messages still wanted need, so a 100-message page sends about 100 requests."""
        if start_seq is None and start_time is not None:
            first = await self._msg_get({"start_time": rfc3339(start_time), "next_by_subj": subject or ">"})
            if first is None:
                return Batch()
            start_seq = first[0]
        walk = _StripeWalk(self, max(start_seq or 1, 1), count, subject or ">", up_to_seq)
        return await walk.run()

    # -- one message per request ------------------------------------------------------------------
    async def _one_by_one(self, start_seq, count, subject, start_time, up_to_seq) -> Batch:
        out = Batch()
        seq = start_seq or 1
        first = True
        while len(out) < count:
            req: dict = {"next_by_subj": subject or ">"}
            if first and start_time is not None and not start_seq:
                req["start_time"] = rfc3339(start_time)
            else:
                req["seq"] = seq
            first = False
            got = await (self._direct_one(req) if self.direct else self._msg_get(req))
            if got is None:
                break
            s, t, subj, hdrs, data = got
            if up_to_seq and s > up_to_seq:
                break
            out.seqs.append(s)
            out.times.append(t)
            out.subjects.append(subj)
            out.headers.append(hdrs)
            out.payloads.append(data)
            seq = s + 1
        return out

    async def _direct_one(self, req: dict):
        msg = await self.session.nc.request(f"{API}.DIRECT.GET.{self.stream}", json.dumps(req).encode(),
                                            timeout=5)
        hdrs = msg.headers or {}
        status = hdrs.get(_STATUS)
        if status == "404":
            return None
        if status:
            raise LabError(f"direct get failed: {status} {hdrs.get('Description', '')}".strip())
        return (int(hdrs["Nats-Sequence"]), hdrs["Nats-Time-Stamp"], hdrs["Nats-Subject"], hdrs, msg.data)

    async def _msg_get(self, req: dict):
        import nats.js.errors as jse

        msg = await self.session.nc.request(f"{API}.STREAM.MSG.GET.{self.stream}", json.dumps(req).encode(),
                                            timeout=5)
        resp = json.loads(msg.data)
        if "error" in resp:
            if resp["error"].get("err_code") == 10037:  # no message found
                return None
            raise jse.APIError.from_error(resp["error"])
        return _stored_record(resp["message"])


WINDOW = 256          # STREAM.MSG.GET requests in flight at once
_MAX_STRIPE = 1 << 20  # the widest stripe a chain walks (a very sparse filter)
_STALL = 10.0          # seconds without any answer before a read gives up


class _StripeWalk:
    """One pipelined read: `count` messages on `subject` from `start` (below `up_to` + 1), by STREAM.MSG.GET.

    Driven from the answers' callback: each answer is recorded and sends the next request of its stripe, or
    ends the stripe and hands out new ones; no task or future per request."""

    def __init__(self, reader: StreamReader, start: int, count: int, subject: str, up_to: int | None):
        self.reader, self.count = reader, count
        self.subject_json = json.dumps(subject).encode()
        self.stop = up_to + 1 if up_to else None
        self.next_start = start        # stripes below this were handed out
        self.found: dict = {}          # seq -> record
        self.found_in = 0              # found below next_start
        self.beyond: list[int] = []    # heap of found seqs at or after next_start
        self.outstanding: dict[int, int] = {}  # stripe start -> end, being walked
        self.width_out = 0             # sequences covered by outstanding stripes
        self.scanned = 0               # sequences covered by walked stripes
        self.exhausted_at: int | None = None  # no matching message at or after this
        self.density = 1.0

    # -- handing out stripes ----------------------------------------------------------------------
    def _estimate(self) -> float:
        if self.scanned:
            return max((self.found_in + 1) / (self.scanned + 1), 1.0 / _MAX_STRIPE)
        return self.density

    def _take(self) -> tuple[int, int] | None:
        a = self.next_start
        if (self.exhausted_at is not None and a >= self.exhausted_at) or (self.stop and a >= self.stop):
            return None
        if self.outstanding:
            if len(self.outstanding) >= WINDOW:
                return None
            if self.found_in + self._estimate() * self.width_out >= self.count:
                return None
        elif self.found_in >= self.count:
            return None
        width = min(_MAX_STRIPE, max(1, int(1 / self._estimate())))
        b = a + width if not self.stop else min(a + width, self.stop)
        self.next_start = b
        while self.beyond and self.beyond[0] < b:
            heapq.heappop(self.beyond)
            self.found_in += 1
        self.outstanding[a] = b
        self.width_out += b - a
        return a, b

    def _record(self, rec: tuple) -> None:
        seq = rec[0]
        if seq in self.found:
            return
        self.found[seq] = rec
        if seq < self.next_start:
            self.found_in += 1
        else:
            heapq.heappush(self.beyond, seq)

    # -- requests and answers ---------------------------------------------------------------------
    async def _ask(self, stripe: int, seq: int) -> None:
        body = b'{"seq":%d,"next_by_subj":%s}' % (seq, self.subject_json)
        await self.nc.publish(self.api, body, reply=f"{self.inbox}.{stripe}")

    async def _fill(self) -> None:
        """Hand out stripes while more are wanted; finish when nothing is out and nothing is wanted."""
        while True:
            stripe = self._take()
            if stripe is None:
                break
            await self._ask(stripe[0], stripe[0])
        if not self.outstanding and not self.done.done():
            self.done.set_result(None)

    async def _on_answer(self, msg) -> None:
        if self.done.done():
            return
        self.last_answer = self.loop.time()
        try:
            a = int(msg.subject[len(self.inbox) + 1:])
            b = self.outstanding.get(a)
            if b is None:
                return
            resp = json.loads(msg.data)
            if "error" in resp:
                if resp["error"].get("err_code") != 10037:  # 10037: no message at or after the position
                    import nats.js.errors as jse
                    raise jse.APIError.from_error(resp["error"])
                pos = self.position.pop(a, a)
                self.exhausted_at = pos if self.exhausted_at is None else min(self.exhausted_at, pos)
            else:
                rec = _stored_record(resp["message"])
                self._record(rec)
                if rec[0] + 1 < b:
                    self.position[a] = rec[0] + 1
                    await self._ask(a, rec[0] + 1)
                    return
                self.position.pop(a, None)
            del self.outstanding[a]
            self.width_out -= b - a
            self.scanned += b - a
            await self._fill()
        except Exception as exc:
            if not self.done.done():
                self.done.set_exception(exc)

    async def run(self) -> Batch:
        self.nc = nc = self.reader.session.nc
        self.api = f"{API}.STREAM.MSG.GET.{self.reader.stream}"
        self.inbox = nc.new_inbox()
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.position: dict[int, int] = {}   # stripe start -> the position its chain asked for last
        state = await self.reader.state()
        span = state.last_seq - state.first_seq + 1 if state.last_seq >= state.first_seq else 0
        self.density = max(state.messages / span, 1.0 / _MAX_STRIPE) if span and state.messages else 1.0
        self.last_answer = self.loop.time()
        sub = await nc.subscribe(f"{self.inbox}.*", cb=self._on_answer, pending_msgs_limit=-1,
                                 pending_bytes_limit=-1)
        try:
            await self._fill()
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(self.done), 1)
                    break
                except asyncio.TimeoutError:
                    if self.loop.time() - self.last_answer > _STALL:
                        raise LabError(f"stream {self.reader.stream}: no answer to STREAM.MSG.GET for "
                                       f"{_STALL:g}s") from None
        finally:
            await sub.unsubscribe()
        out = Batch()
        limit = self.next_start if self.exhausted_at is None else min(self.next_start, self.exhausted_at)
        for seq in sorted(s for s in self.found if s < limit)[:self.count]:
            s, t, subj, hdrs, data = self.found[seq]
            out.seqs.append(s)
            out.times.append(t)
            out.subjects.append(subj)
            out.headers.append(hdrs)
            out.payloads.append(data)
        return out


def _stored_record(m: dict) -> tuple:
    hdrs = parse_header_block(base64.b64decode(m["hdrs"])) if m.get("hdrs") else {}
    data = base64.b64decode(m["data"]) if m.get("data") else b""
    return int(m["seq"]), m["time"], m["subject"], hdrs, data
