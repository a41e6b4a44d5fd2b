"""Reading a stream without touching it: JetStream direct get (batched where the server supports it) or
STREAM.MSG.GET, never a consumer. Nothing is acknowledged, so work-queue and interest streams stay as they are.

`fetch` returns raw records `(seq, time, subject, headers, data)`; frames.py turns them into rows.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import json
from dataclasses import dataclass, field

from .errors import LabError
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
        m = resp["message"]
        hdrs = parse_header_block(base64.b64decode(m["hdrs"])) if m.get("hdrs") else {}
        data = base64.b64decode(m["data"]) if m.get("data") else b""
        return (int(m["seq"]), m["time"], m["subject"], hdrs, data)


def parse_header_block(block: bytes) -> dict:
    """'NATS/1.0\\r\\nK: V\\r\\n\\r\\n' -> {'K': 'V'} (the last value wins, as nats-py's headers dict)."""
    headers: dict = {}
    for line in block.decode("utf-8", "replace").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    return headers
