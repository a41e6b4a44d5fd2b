"""Reading a stream without changing it. Pages and reads of work-queue and interest streams use JetStream direct
get (batched where the server supports it) or pipelined STREAM.MSG.GET, never a consumer: nothing is acknowledged,
so those streams stay as they are. A large whole-stream read of a limits-retention stream goes through an ordered
consumer (`OrderedRead`: ephemeral, AckNone, in memory, deleted when the read ends), the fastest way to stream
stored messages out of either server; it takes nothing from anyone on such a stream.

`fetch` returns raw records `(seq, time, subject, headers, data)`; frames.py turns them into rows.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import gc
import heapq
import json
import re
import secrets
import threading
import weakref
from binascii import a2b_base64
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
        self.received = 0  # answers received by this reader's reads so far (what a progress bar follows)

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
        got = await _DirectGet(self, req).run()
        self.batch_supported = got is not None
        return got

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
            self.received += 1
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
_STALL = 10.0          # seconds without any answer (the connection up) before a read gives up
_ASK_AGAIN = 2.0       # seconds without any answer before every stripe is asked again (requests lost)
_RECONNECT_WAIT = 60.0  # seconds a read waits for a lost connection to come back
_TICK = 0.25           # how often a read looks at its connection while it waits


class _Link:
    """A read's view of its connection, looked at between answers: gone (waited for, up to _RECONNECT_WAIT), back
    after a loss (the read asks again for what it still wants: what was asked on the old connection is never
    answered), just back (a 503 then is the server's API not there yet), closed (one line)."""

    def __init__(self, nc, stream: str):
        self.nc, self.stream = nc, stream
        self.reconnects = nc.stats.get("reconnects", 0)
        self.lost_at: float | None = None  # when the connection was seen gone
        self.back_at: float | None = None  # when it came back

    def check(self, now: float, have: int) -> bool | None:
        """True: back after a loss (ask again); None: gone (wait); False: as it was. Closed, or gone longer than
        _RECONNECT_WAIT: a LabError saying so (`have`: messages the read had)."""
        nc = self.nc
        if nc.is_closed:
            raise LabError(f"stream {self.stream}: the connection closed during the read (after {have:,} messages); "
                           "connect again and read again")
        if not nc.is_connected:
            self.lost(now)
            if now - self.lost_at > _RECONNECT_WAIT:
                raise LabError(f"stream {self.stream}: the connection was lost and is not back after "
                               f"{_RECONNECT_WAIT:g}s (the read had {have:,} messages); read again once the server "
                               "is reachable")
            return None
        reconnects = nc.stats.get("reconnects", 0)
        if self.lost_at is not None or reconnects != self.reconnects:
            self.lost_at, self.reconnects, self.back_at = None, reconnects, now
            return True
        return False

    def lost(self, now: float) -> None:
        self.lost_at = self.lost_at or now

    def steady(self) -> bool:
        """Connected, and not lost since `check` last looked."""
        nc = self.nc
        return nc.is_connected and self.lost_at is None and nc.stats.get("reconnects", 0) == self.reconnects

    def just_back(self, now: float) -> bool:
        return self.back_at is not None and now - self.back_at < _STALL


class _AskingAgain:
    """What the STREAM.MSG.GET walk and the direct get share between answers (`_watch`, once a tick): after a
    reconnect, everything still wanted is asked again on a new inbox (`_ask_again`, from the first sequence not
    yet received; late answers to the old inbox are dropped); _ASK_AGAIN without an answer while `_waiting`
    (doubled after each time while none comes) calls `_on_silence`, which asks again the same way; a 503
    just after a reconnect is asked again soon; _STALL without an answer on a live connection ends the read with
    the line `_silent` gives. A read using it sets `nc`, `loop` and `reader`, calls `_watching` before it asks,
    moves `last_answer` on each answer, and has `_ask_again`, `_have` (messages received so far), `_waiting`
    (answers still owed) and `_silent`."""

    def _watching(self, nc) -> None:
        self.link = _Link(nc, self.reader.stream)
        self.unavailable = False  # a 503 just after a reconnect: the API not there yet, ask again soon
        self.last_answer = self.last_asked_again = self.loop.time()
        self.silent_asks = 0      # asked again for silence since the last answer: each doubles the next wait

    async def _try_again(self) -> None:
        """`_ask_again`; a connection lost again meanwhile is waited for (and asked again once back)."""
        try:
            await self._ask_again()
        except Exception:
            if self.nc.is_connected:
                raise
            self.link.lost(self.loop.time())

    async def _watch(self) -> None:
        now = self.loop.time()
        back = self.link.check(now, self._have())
        if back is None:
            return
        if back or (self.unavailable and now - self.last_answer > _ASK_AGAIN / 4):
            await self._try_again()
        elif now - self.last_answer > _STALL:
            raise await self._silent()
        elif self._waiting() and \
                now - max(self.last_answer, self.last_asked_again) > _ASK_AGAIN * 2 ** self._silent_asks():
            # Doubled each time nothing came since: a server slow to answer (a sparse subject scanned for, a
            # loaded server) still gets its answer out before the next ask, instead of each ask starting its
            # work again and none ever answered in time.
            self.silent_asks += 1
            self.last_asked_again = now
            await self._on_silence()

    async def _on_silence(self) -> None:
        """A while without an answer on a live connection: requests lost without a reconnect, asked again."""
        stalled = self.last_answer
        await self._try_again()
        self.last_answer = stalled  # asking again does not move the stall's clock

    def _silent_asks(self) -> int:
        """Asks for silence since the last answer (none once an answer came after the last one)."""
        if self.last_answer > self.last_asked_again:
            self.silent_asks = 0
        return self.silent_asks


class _DirectGet(_AskingAgain):
    """One batched DIRECT.GET (`req`: batch, and seq or start_time, maybe next_by_subj), complete after its
    end-of-batch status. The messages come in sequence order, so after a reconnect or a silence the rest is asked
    again from the sequence after the last one received, on a new inbox (`_AskingAgain`): nothing twice, nothing
    missed. A failure says what is wrong: a 503 or a silence is checked against the stream's own allow_direct."""

    def __init__(self, reader: StreamReader, req: dict):
        self.reader, self.req = reader, req
        self.out = Batch()
        self.batched: bool | None = None  # whether this server answers in batches (seen from the first message)
        self.epoch = 0                    # inboxes asked on; answers to an older one are dropped
        self.sub = None
        self.failed: str | None = None    # a status that ends the read: said by `_failure`

    async def run(self) -> Batch | None:
        self.nc = self.reader.session.nc
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self._watching(self.nc)
        try:
            await self._ask_again()
            while True:
                try:
                    batched = await asyncio.wait_for(asyncio.shield(self.done), _TICK)
                    break
                except asyncio.TimeoutError:
                    await self._watch()
        finally:
            self.done.cancel()
            self.epoch += 1
            if self.sub is not None:
                with contextlib.suppress(Exception):
                    await self.sub.unsubscribe()
        if self.failed is not None:
            raise await self._failure()
        return self.out if batched else None

    async def _ask_again(self) -> None:
        """Ask for what is still wanted, from the sequence after the last received, answered to a new inbox."""
        nc, old = self.nc, self.sub
        self.epoch += 1
        epoch = self.epoch
        self.sub = None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        req = dict(self.req)
        if self.out.seqs:
            req.pop("start_time", None)
            req["seq"] = self.out.seqs[-1] + 1
            req["batch"] -= len(self.out)
            if req["batch"] <= 0:  # all here, only the end of the batch was lost
                if not self.done.done():
                    self.done.set_result(True)
                return
        inbox = nc.new_inbox()

        async def on_msg(msg) -> None:
            if self.epoch == epoch:
                self._on_msg(msg)

        self.sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        self.last_answer = self.loop.time()
        self.unavailable = False
        await nc.publish(f"{API}.DIRECT.GET.{self.reader.stream}", json.dumps(req).encode(), reply=inbox)

    def _on_msg(self, msg) -> None:
        done, out = self.done, self.out
        if done.done():
            return
        self.last_answer = self.loop.time()
        hdrs = msg.headers or {}
        status = hdrs.get(_STATUS)
        if status:
            if status == "204":
                out.pending = int(hdrs.get("Nats-Num-Pending", 0))
                done.set_result(True)
            elif status == "404":
                out.pending = 0
                done.set_result(True)
            elif status == "503" and self.link.just_back(self.last_answer):
                self.unavailable = True  # a server just back may not serve direct get yet: asked again soon
            else:
                self.failed = f"{status} {hdrs.get('Description', '')}".strip()
                done.set_result(None)
            return
        if self.batched is None:
            self.batched = "Nats-Num-Pending" in hdrs
            if not self.batched:
                done.set_result(False)
                return
        seq = int(hdrs["Nats-Sequence"])
        if out.seqs and seq <= out.seqs[-1]:
            return  # already here: never expected (asked again from after the last one), but never kept twice
        out.seqs.append(seq)
        out.times.append(hdrs["Nats-Time-Stamp"])
        out.subjects.append(hdrs["Nats-Subject"])
        out.headers.append(hdrs)
        out.payloads.append(msg.data)
        self.reader.received += 1

    def _have(self) -> int:
        return len(self.out)

    def _waiting(self) -> bool:
        return not self.done.done()

    async def _on_silence(self) -> None:
        """Not asked again for silence alone: a batch's answers are not lost on a live connection (a server that
        drops a slow consumer's messages closes it: a reconnect, asked again then), and a batch slow to start (a
        sparse subject in a big stream) would begin its scan again at each ask. The silence is either such a slow
        batch (waited for) or direct get turned off or the stream deleted under it: the stream's state says."""
        why = await self._direct_is_off()
        if why:
            raise LabError(f"stream {self.reader.stream}: no answer to a direct get: {why}")

    async def _direct_is_off(self) -> str | None:
        """Why direct get cannot answer, from the stream's own state: turned off, or the stream gone; None if on."""
        import nats.js.errors as jse

        try:
            info = await self.reader.session.js.stream_info(self.reader.stream)
        except jse.NotFoundError:
            return "the stream was deleted during the read"
        except Exception:
            return None
        if not info.config.allow_direct:
            return "allow_direct was turned off during the read; read again (it reads by STREAM.MSG.GET then)"
        return None

    async def _silent(self) -> LabError:
        stream = self.reader.stream
        why = await self._direct_is_off()
        if why:
            return LabError(f"stream {stream}: no answer to a direct get: {why}")
        return LabError(f"stream {stream}: no answer to a direct get for {_STALL:g}s, though the stream has "
                        f"allow_direct on (after {len(self.out):,} messages); is the server overloaded?")

    async def _failure(self) -> LabError:
        stream = self.reader.stream
        if self.failed.startswith("503"):
            why = await self._direct_is_off()
            if why:
                return LabError(f"stream {stream}: direct get got no responders: {why}")
            return LabError(f"stream {stream}: direct get got no responders (this account cannot reach the "
                            "stream's DIRECT.GET: JetStream off, or a service import that leaves it out)")
        return LabError(f"direct get failed: {self.failed}")


class _StripeWalk(_AskingAgain):
    """One pipelined read: `count` messages on `subject` from `start` (below `up_to` + 1), by STREAM.MSG.GET.

    Driven by the answers as nats-py's parser hands them over (`_subscribe`): each answer is recorded and queues
    the next request of its stripe, or ends the stripe and hands out new ones; the queued requests go out as one
    block (`_send`); no task or future per request. A stripe being walked has one
    request out at a time, answered to `<inbox>.<slot>`: the slots (at most WINDOW) are reused from stripe to
    stripe, so the servers route every answer through a reply subject they have seen before (a new subject
    per answer costs each server a subscription match)."""

    def __init__(self, reader: StreamReader, start: int, count: int, subject: str, up_to: int | None):
        self.reader, self.count = reader, count
        self.subject_json = json.dumps(subject).encode()
        # A request's body with its CRLF ({"seq":N,"next_by_subj":<subject>}), and its size line by its length.
        self.body = b'{"seq":%d,"next_by_subj":' + self.subject_json.replace(b"%", b"%%") + b'}\r\n'
        self.size_line = [b"%d\r\n" % (n - 2) for n in range(len(self.body) + 20)]
        self.stop = up_to + 1 if up_to else None
        self.next_start = start        # stripes below this were handed out
        self.found: dict = {}          # seq -> record
        self.found_in = 0              # found below next_start
        self.beyond: list[int] = []    # heap of found seqs at or after next_start
        self.outstanding: dict[int, int] = {}  # stripe start -> end, being walked
        self.slot_of: dict[int, int] = {}      # stripe start -> the slot its answers come to
        self.stripe_at: list[int | None] = []  # slot -> the stripe start it serves (None: free)
        self.free: list[int] = []              # free slots
        self.replies: list[bytes] = []         # slot -> its reply subject
        self.pubs: list[bytes] = []            # slot -> the start of its requests' PUB line
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
        if len(self.outstanding) >= WINDOW:  # first: what stops most calls (each answer frees one stripe)
            return None
        a = self.next_start
        if (self.exhausted_at is not None and a >= self.exhausted_at) or (self.stop and a >= self.stop):
            return None
        estimate = self._estimate()
        if self.outstanding:
            if self.found_in + estimate * self.width_out >= self.count:
                return None
        elif self.found_in >= self.count:
            return None
        # A message likely per stripe, and no narrower than a window of stripes covering what is wanted: a large
        # read walks long chains (one request per message, no hand-out per answer), a small page stays parallel.
        width = min(_MAX_STRIPE, max(1, int(1 / estimate), int(self.count / WINDOW / estimate)))
        b = a + width if not self.stop else min(a + width, self.stop)
        self.next_start = b
        while self.beyond and self.beyond[0] < b:
            heapq.heappop(self.beyond)
            self.found_in += 1
        self.outstanding[a] = b
        self.width_out += b - a
        if self.free:
            slot = self.free.pop()
            self.stripe_at[slot] = a
        else:
            slot = len(self.stripe_at)
            self.stripe_at.append(a)
            self.replies.append(f"{self.inbox}.{slot}".encode())
            self.pubs.append(b"PUB %s %s " % (self.api, self.replies[slot]))
        self.slot_of[a] = slot
        return a, b

    # -- requests and answers ---------------------------------------------------------------------
    def _ask(self, stripe: int, seq: int) -> None:
        """Queue the request for the next message of `stripe` at or after `seq`; `_send` writes what is queued."""
        self.asks.append((seq, self.slot_of[stripe]))
        if self.fast and not self.sending:
            self.sending = True
            self.loop.create_task(self._send())

    def _block(self, asks: list) -> bytes:
        """The PUB commands of queued requests, as one block (each: its slot's PUB line start, the body's size,
        the body from one template)."""
        pubs, body_of, size_line = self.pubs, self.body, self.size_line
        parts: list = []
        put = parts.append
        for seq, slot in asks:
            body = body_of % seq
            put(pubs[slot])
            put(size_line[len(body)])
            put(body)
        return b"".join(parts)

    def _write_now(self) -> bool:
        """Write the queued requests to the socket at once, from the parser's turn, when nothing of nats-py's
        own is waiting to go before them (its outbound buffer empty) on a plain TCP (or TLS) connection: no task,
        future and flusher hop a chunk. False (nothing written) otherwise; `_send` then writes them."""
        nc = self.nc
        if not _DIRECT_WRITE or getattr(nc, "_pending", True) or not nc.is_connected or \
                type(getattr(nc, "_transport", None)).__name__ != "TcpTransport" or \
                getattr(nc._transport, "_io_writer", None) is None or nc._transport._io_writer.is_closing():
            return False
        asks, self.asks = self.asks, []
        try:
            nc._transport.write(self._block(asks))
        except Exception:
            self.asks = asks + self.asks
            return False
        self.sent += len(asks)
        return True

    async def _send(self) -> None:
        """Write the queued requests. Fast: all as one block of PUB commands handed to nats-py's outbound buffer
        (one write for all the answers the parser just handed over); otherwise one `publish` each."""
        try:
            while self.asks:
                if not self.nc.is_connected:  # kept: asked again from each stripe's position once reconnected
                    break
                asks, self.asks = self.asks, []
                self.sent += len(asks)
                nc, sj = self.nc, self.subject_json
                if self.fast and nc.is_connected:
                    await nc._send_command(self._block(asks))
                    await nc._flush_pending()
                else:
                    for seq, slot in asks:
                        await nc.publish(self.api_str, b'{"seq":%d,"next_by_subj":%s}' % (seq, sj),
                                         reply=self.replies[slot].decode())
        except Exception as exc:
            if not self.done.done():
                self.done.set_exception(exc)
        finally:
            self.sending = False

    def _fill(self) -> None:
        """Hand out stripes while more are wanted; finish when nothing is out and nothing is wanted."""
        while True:
            stripe = self._take()
            if stripe is None:
                break
            self._ask(stripe[0], stripe[0])
        if not self.outstanding and not self.done.done():
            self.done.set_result(None)

    async def _on_answer(self, msg) -> None:
        """The public path: nats-py hands each answer to this callback; the requests it makes go out at once."""
        self._answer(msg)
        await self._send()

    def _answer(self, msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status:  # not an answer of the API: e.g. 503, nobody serves STREAM.MSG.GET for this account
            if status == "503" and self.link.just_back(self.loop.time()):
                self.unavailable = True  # a server just back may not serve its API yet: asked again soon
                return
            if not self.done.done():
                why = "no responders (this account cannot reach the stream's STREAM.MSG.GET: JetStream off, " \
                      "or a service import that leaves it out)" if status == "503" else f"status {status}"
                self.done.set_exception(LabError(f"stream {self.reader.stream}: STREAM.MSG.GET got {why}"))
            return
        self._answer_parts(msg.subject, msg.data)

    def _answer_parts(self, subject, data: bytes) -> None:
        """One answer: its subject (str or bytes: the slot is its last token) and body."""
        self._answers(((subject, data),))

    def _answers(self, answers, chunk: bool = False) -> None:
        """Answers as they came: an `_AnswerRun` (a whole chunk of answers `_RawAnswers._parse` took from the
        socket's bytes, decoded a column at a time) or (subject, body) pairs; one call for all that one chunk
        from the socket held (`chunk`: their requests are written at once), so what is the same for all is
        looked up once: this loop is most of the read."""
        done = self.done
        if done.done():
            return
        self.last_answer = self.loop.time()
        self.reader.received += len(answers)
        stripe_at, outstanding, position, found = self.stripe_at, self.outstanding, self.position, self.found
        asks = self.asks
        try:
            if answers.__class__ is _AnswerRun:
                got = zip(*answers.decode())
            else:  # one by one: the slot (the reply subject's last token) first, then the body if still wanted
                got, slot_at = [], self.slot_at
                for subject, data in answers:
                    slot = int(subject[slot_at:])
                    a = stripe_at[slot] if slot < len(stripe_at) else None
                    if a is not None and a in outstanding:
                        got.append((slot, _answer_record(data)))
            slots = len(stripe_at)
            for slot, rec in got:
                a = stripe_at[slot] if slot < slots else None
                b = outstanding.get(a) if a is not None else None
                if b is None:
                    continue
                if rec is None:  # 10037: no message at or after the position
                    pos = position.pop(a, a)
                    self.exhausted_at = pos if self.exhausted_at is None else min(self.exhausted_at, pos)
                    self._stripe_done(a, b, slot)
                    if done.done():
                        return
                    slots = len(stripe_at)
                    continue
                seq = rec[0]
                if seq not in found:  # _record, inline
                    found[seq] = rec
                    if seq < self.next_start:
                        self.found_in += 1
                    else:
                        heapq.heappush(self.beyond, seq)
                if seq + 1 < b:  # the stripe's next request (_ask, inline)
                    position[a] = seq + 1
                    asks.append((seq + 1, slot))
                    continue
                position.pop(a, None)
                self._stripe_done(a, b, slot)
                if done.done():
                    return
                slots = len(stripe_at)
            if asks and self.fast and not self.sending and not (chunk and self._write_now()):
                self.sending = True
                self.loop.create_task(self._send())
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)

    def _stripe_done(self, a: int, b: int, slot: int) -> None:
        """Stripe [a, b) walked: its slot is free, new stripes are handed out (or the read ends)."""
        del self.outstanding[a]
        del self.slot_of[a]
        self.stripe_at[slot] = None
        self.free.append(slot)
        self.width_out -= b - a
        self.scanned += b - a
        self._fill()

    async def _subscribe(self, nc):
        """The answers' subscription. Fast path (FAST_ANSWERS and this nats-py has the internals it relies on):
        the subscription's queue is replaced by a feed that handles each answer as nats-py's parser hands it
        over, with no queue hop and no task switch per answer; otherwise a plain callback."""
        self.fast = FAST_ANSWERS and all(hasattr(nc, a) for a in ("_send_command", "_flush_pending"))
        epoch = self.epoch  # answers to an inbox the read has left (before a reconnect) are dropped

        def answer(msg) -> None:
            if self.epoch == epoch:
                self._answer(msg)

        if self.fast:
            sub = await nc.subscribe(f"{self.inbox}.*", pending_msgs_limit=-1, pending_bytes_limit=-1)
            if isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue):
                sub._pending_queue = _Feed(answer)
                self.raw = _RawAnswers.take(nc, sub, self._answers)
                return sub
            await sub.unsubscribe()
            self.fast = False

        async def on_answer(msg) -> None:
            if self.epoch == epoch:
                await self._on_answer(msg)

        return await nc.subscribe(f"{self.inbox}.*", cb=on_answer, pending_msgs_limit=-1, pending_bytes_limit=-1)

    async def _drop(self, sub) -> None:
        """The read is done with this subscription (its raw hook released; gone already if the connection is)."""
        if self.raw is not None:
            self.raw.release(sub)
            self.raw = None
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _ask_again(self) -> None:
        """Every stripe being walked asked again from its position, answered to a new inbox: after a reconnect
        the requests written to the old connection are never answered, and after a stall they may never be. A
        late answer to the old inbox is dropped with its subscription; one to a position asked again changes
        nothing (`found` is by sequence)."""
        old = self.sub
        self.epoch += 1
        self.asks_again += 1
        await self._drop(old)
        self.inbox = self.nc.new_inbox()
        self.slot_at = len(self.inbox) + 1
        self.replies = [f"{self.inbox}.{slot}".encode() for slot in range(len(self.stripe_at))]
        self.pubs = [b"PUB %s %s " % (self.api, reply) for reply in self.replies]
        self.sub = await self._subscribe(self.nc)
        self.asks = [(self.position.get(a, a), slot) for a, slot in self.slot_of.items()]
        self.last_answer = self.loop.time()
        self.unavailable = False
        await self._send()

    def _have(self) -> int:
        return len(self.found)

    def _waiting(self) -> bool:
        return bool(self.outstanding)

    async def _silent(self) -> LabError:
        return LabError(f"stream {self.reader.stream}: no answer to STREAM.MSG.GET for {_STALL:g}s")

    async def run(self) -> Batch:
        self.nc = nc = self.reader.session.nc
        self.api_str = f"{API}.STREAM.MSG.GET.{self.reader.stream}"
        self.api = self.api_str.encode()
        self.inbox = nc.new_inbox()
        self.slot_at = len(self.inbox) + 1
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.position: dict[int, int] = {}   # stripe start -> the position its chain asked for last
        self.asks: list = []                 # (seq, slot) of requests not yet written
        self.sent = 0                        # requests written
        self.raw = None                      # the connection's _RawAnswers while this read uses it
        self.sending = False
        state = await self.reader.state()
        span = state.last_seq - state.first_seq + 1 if state.last_seq >= state.first_seq else 0
        self.density = max(state.messages / span, 1.0 / _MAX_STRIPE) if span and state.messages else 1.0
        self.epoch = self.asks_again = 0     # inboxes left behind; times every stripe was asked again
        self._watching(nc)
        self.sub = await self._subscribe(nc)
        try:
            self._fill()
            await self._send()
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(self.done), _TICK)
                    break
                except asyncio.TimeoutError:
                    await self._watch()
        finally:
            self.done.cancel()  # answers still on their way are dropped
            await self._drop(self.sub)
        limit = self.next_start if self.exhausted_at is None else min(self.next_start, self.exhausted_at)
        # The records leave the walk here: it is in reference cycles (its subscription's callback, futures), so
        # what it still held would wait for the cyclic collector, which would then walk every record.
        found, self.found = self.found, {}
        records = [found[seq] for seq in sorted(s for s in found if s < limit)[:self.count]]
        del found
        if not records:
            return Batch()
        return Batch(*map(list, zip(*records)))


_GC = {"holds": 0, "paused": False}
_GC_LOCK = threading.Lock()


@contextlib.contextmanager
def gc_paused():
    """The cyclic garbage collector off while a bulk read builds its records and rows (three tracked objects a
    message, none in a cycle: each collection would walk every row of the frames the user already holds, about
    a third of a read's CPU); on again, if it was on, when the last such read ends. Reference counting still
    frees everything as usual."""
    with _GC_LOCK:
        if not _GC["holds"] and gc.isenabled():
            gc.disable()
            _GC["paused"] = True
        _GC["holds"] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC["holds"] -= 1
            if not _GC["holds"] and _GC["paused"]:
                _GC["paused"] = False
                gc.enable()


FAST_ANSWERS = True  # False: answers through a public nats-py callback, requests through `publish` (tests A/B)
_DIRECT_WRITE = True  # False: requests made by answers go through nats-py's outbound buffer and flusher (A/B)
_FAST_PARSE = True   # False: the read's answers taken only at nats-py's `_process_msg` (tests A/B)


class _RawAnswers:
    """Installed on a nats-py connection while pipelined reads run on it: a `MSG` (no headers) for a read's
    subscription is handed to the read as the subject and payload bytes, before nats-py makes a `Msg` of it;
    everything else (other subscriptions, any message with headers, e.g. a no-responders status) goes on to
    nats-py's own handling (and from there to the read's `_Feed`). Removed when no read uses it.

    Two hooks, both instance attributes (nothing of nats-py's classes changes): `parse` on the connection's
    parser takes the read's answers from each chunk the socket gave, one after another, without nats-py's
    regular expression, argument dict and awaited `_process_msg` per message (about half of nats-py's cost a
    message), and hands the rest of the chunk to nats-py's parser from the first thing that is not such an
    answer on; `_process_msg` on the connection catches the answers nats-py's parser still hands over (after
    a PING in the same chunk, say)."""

    def __init__(self, nc, process):
        self.nc, self.process, self.handlers = nc, process, {}
        self.by_sid: dict[bytes, object] = {}  # the handlers by their sid as the server writes it back
        self.parser = getattr(nc, "_ps", None)
        self.parse = None
        from nats.protocol import parser as _parser

        self.between = getattr(_parser, "AWAITING_CONTROL_LINE", None)  # the parser's state between messages
        if _FAST_PARSE and self.between is not None and self.parser is not None and \
                "parse" not in vars(self.parser) and isinstance(getattr(self.parser, "buf", None), bytearray):
            self.parse = self.parser.parse
            self.parser.parse = self._parse

    @classmethod
    def take(cls, nc, sub, handle) -> "_RawAnswers | None":
        process = nc.__dict__.get("_process_msg")
        if isinstance(process, cls):
            hook = process
        elif process is None and asyncio.iscoroutinefunction(getattr(nc, "_process_msg", None)) and \
                isinstance(getattr(nc, "stats", None), dict) and isinstance(getattr(sub, "_id", None), int):
            hook = nc._process_msg = cls(nc, nc._process_msg)
        else:
            return None
        hook.handlers[sub._id] = handle
        hook.by_sid[b"%d" % sub._id] = handle
        return hook

    def release(self, sub) -> None:
        self.handlers.pop(sub._id, None)
        self.by_sid.pop(b"%d" % sub._id, None)
        if not self.handlers and self.nc.__dict__.get("_process_msg") is self:
            del self.nc._process_msg
            if self.parse is not None and vars(self.parser).get("parse") == self._parse:
                del self.parser.parse

    async def __call__(self, sid, subject, reply, data, headers):
        handle = self.handlers.get(sid)
        if handle is None or headers:
            return await self.process(sid, subject, reply, data, headers)
        stats = self.nc.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        handle(((subject, data),))

    async def _parse(self, data: bytes = b"") -> None:
        """nats-py's `Parser.parse` for one chunk, the read's answers at its front taken here and handed over
        together (one call a chunk and read)."""
        ps = self.parser
        if ps.state != self.between:  # in the middle of a message nats-py's parser began
            return await self.parse(data)
        buf = bytes(ps.buf) + data if ps.buf else data
        pos, n = 0, len(buf)
        by_sid = self.by_sid
        got, into = [], None
        rest = True
        count = size = 0
        run = _AnswerRun.take(buf, by_sid)  # the usual chunk of a bulk read: all answers, in one go
        if run is not None:
            pos, count, size = run.end, run.count, run.size()
            run.handle(run, True)
        while buf.startswith(b"MSG ", pos):
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break  # the line is not all here: nats-py's parser keeps it
            args = buf[pos + 4:eol].split()  # subject, sid, size: no reply, or it is not an answer
            if len(args) != 3:
                break
            handle = by_sid.get(args[1])
            if handle is None or not args[2].isdigit():
                break
            end = eol + 2 + int(args[2])
            if end + 2 > n:  # the payload is not all here: kept for the next chunk, line and all
                rest = False
                break
            if handle is not into:
                if got:
                    into(got, True)
                    got = []
                into = handle
            got.append((args[0], buf[eol + 2:end]))
            count += 1
            size += end - eol - 2
            pos = end + 2
        if count:
            stats = self.nc.stats
            stats["in_msgs"] += count
            stats["in_bytes"] += size
        if got:
            into(got, True)
        if not rest:
            ps.buf = bytearray(buf[pos:])
            return
        ps.buf = bytearray()
        if pos < n:
            await self.parse(buf[pos:] if pos else buf)


class _Feed:
    """Stands in for a nats-py subscription's queue: each answer is handled as it is put."""

    def __init__(self, handle):
        self.put_nowait = handle

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        pass

    async def join(self) -> None:
        pass


CONSUMER_FROM = 10_000             # a whole-stream read of a limits stream this large goes through a consumer
_WINDOW_BYTES = 8 << 20           # message bytes pulled and not yet received, at most (about)
_PULLS = 4                        # pull requests outstanding at once
_MAX_BATCH = 2000                 # messages a pull request asks for, at most
_PULL_EXPIRES = 30_000_000_000    # ns a pull request waits at most
_CONSUMER_IDLE = 30_000_000_000   # inactive_threshold: the server removes a consumer the lab left behind
_RESETS = 3                       # new consumers one read may make before it gives up
_QUIET = 3.0                      # seconds without a message before the read asks after its consumer
_CREATE_WAIT = 2.0                # seconds a consumer create may take before the read goes on without
_RECONNECTED = "the connection came back"  # `broken` after a reconnect: a new consumer, not counted
_REFUSED: weakref.WeakSet = weakref.WeakSet()  # connections that could not make a reading consumer


class OrderedRead:
    """A stream's messages in sequence order through an ordered consumer, for bulk reads of limits streams.

    The consumer is ephemeral, AckNone, memory storage, one replica, delivering from a start sequence on a
    filter; it is pulled a few requests ahead (about `_WINDOW_BYTES` in flight, so neither the server's buffer
    for this client nor the lab's grows with the stream). Each message's stream sequence, time and the count
    left arrive in its reply subject, so no metadata header is parsed. The read ends at `stop` (the stream's
    last sequence when it began) or when nothing is left. A gap in the consumer's own sequence, a vanished
    consumer or a reconnect (the pulls die with the old connection, and a restarted server may have lost the
    consumer) makes a new one from the sequence after the last received, on a new inbox, as nats.go's ordered
    consumer does on reset: nothing twice, nothing missed. `close()` deletes it; `inactive_threshold` removes it
    if the lab never gets to."""

    def __init__(self, reader: StreamReader, start: int, subject: str | None, stop: int | None,
                 avg_size: float = 256):
        self.reader, self.stream = reader, reader.stream
        self.subject = subject if subject and subject != ">" else None
        self.stop = stop
        self.batch = max(1, min(_MAX_BATCH, int(_WINDOW_BYTES / _PULLS / max(avg_size, 1))))
        self.records: list = []   # received, not yet taken
        self.taken = 0
        self.want = 0             # records take() has been asked for in all
        self.last_seq = max(start, 1) - 1
        self.finished = False
        self.broken: str | None = None
        self.name: str | None = None
        self.names: list[str] = []  # every consumer this read made
        self.resets = 0

    # -- the consumer -----------------------------------------------------------------------------
    async def open(self) -> None:
        self.nc = self.reader.session.nc
        if self.nc in _REFUSED:
            raise LabError("a consumer create went unanswered on this connection before")
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.link = _Link(self.nc, self.stream)
        self.sub = None
        try:
            await self._listen()
            await self._create()
        except BaseException:
            await self.close()
            raise

    async def _listen(self) -> None:
        """A new inbox for a new consumer: what is still on its way for the old one (messages, and statuses of its
        pull requests, which name no consumer) is not heard."""
        old = self.sub
        self.inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(self.inbox, cb=self._on_msg, pending_msgs_limit=-1,
                                           pending_bytes_limit=-1)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()

    async def _api(self, subject: str, body: dict | None = None, timeout: float = 5) -> dict:
        import nats.js.errors as jse

        msg = await self.nc.request(f"{API}.{subject}", json.dumps(body).encode() if body is not None else b"",
                                    timeout=timeout)
        resp = json.loads(msg.data)
        if "error" in resp:
            raise jse.APIError.from_error(resp["error"])
        return resp

    async def _create(self, resumed: bool = False) -> None:
        name = f"lab_read_{secrets.token_hex(6)}"
        cfg = {"name": name, "deliver_policy": "by_start_sequence", "opt_start_seq": self.last_seq + 1,
               "ack_policy": "none", "replay_policy": "instant", "mem_storage": True, "num_replicas": 1,
               "inactive_threshold": _CONSUMER_IDLE}
        if self.subject:
            cfg["filter_subject"] = self.subject
        self.cseq, self.asked, self.got = 0, 0, 0
        # Not answered in 2 s (no permission to make consumers: the server drops the request and says so on the
        # connection, which is not an error of the user's here), the read goes on without one, and this session
        # does not try again; a consumer made late is removed by its inactive_threshold.
        subject = f"CONSUMER.CREATE.{self.stream}.{name}"
        session = self.reader.session
        session.quiet_denials.add(f"{API}.{subject}")
        try:
            info = await self._api(subject, {"stream_name": self.stream, "config": cfg}, timeout=_CREATE_WAIT)
        except asyncio.TimeoutError:
            if resumed:  # it made one on this connection before: the server is not answering yet
                raise LabError("no answer to a consumer create") from None
            _REFUSED.add(self.nc)
            raise LabError("no answer to a consumer create (allowed to make consumers?)") from None
        finally:
            session.quiet_denials.discard(f"{API}.{subject}")
        self.name = name
        self.names.append(name)
        if not info.get("num_pending"):
            self._finish()

    async def _delete(self, name: str, timeout: float = 5) -> bool:
        """Delete a consumer this read made: True once it is gone (deleted, or not found)."""
        import nats.errors as ne
        import nats.js.errors as jse

        try:
            await self._api(f"CONSUMER.DELETE.{self.stream}.{name}", timeout=timeout)
        except jse.NotFoundError:
            pass  # gone already (a restarted server may have lost it)
        except ne.Error:
            return False  # no answer: tried again by `close`, else left to inactive_threshold
        return True

    async def close(self) -> None:
        """Stop receiving and delete the consumer(s) this read made."""
        self.name = None
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
        if not self.nc.is_connected:
            self.names = []  # not waited for (each delete would wait out its timeout): inactive_threshold removes them
            return
        for name in self.names:
            await self._delete(name)
        self.names = []

    async def _reset(self) -> None:
        """A new consumer from the sequence after the last received. After a reconnect this is not counted among
        the _RESETS, and a server just back that cannot make it yet is asked again a tick later."""
        import nats.errors as ne

        resumed = self.broken == _RECONNECTED
        if not resumed:
            self.resets += 1
            if self.resets > _RESETS:
                raise LabError(f"stream {self.stream}: the reading consumer was lost {_RESETS} times ({self.broken})")
        old, self.name, self.broken = self.name, None, None
        if old:
            if await self._delete(old, _CREATE_WAIT if resumed else 5):
                self.names.remove(old)
        try:
            await self._listen()
            await self._create(resumed)
        except (LabError, ne.Error) as exc:
            if not self.nc.is_connected or (resumed and self.link.just_back(self.loop.time())):
                self.broken = _RECONNECTED  # the watch waits for the connection, then this is tried again
                return
            why = getattr(exc, "description", None) or str(exc)
            raise LabError(f"stream {self.stream}: no consumer to go on reading with after "
                           f"{self.taken + len(self.records):,} messages ({why}); read again") from None

    # -- answers ----------------------------------------------------------------------------------
    def _finish(self) -> None:
        self.finished = True
        self.wake.set()

    async def _on_msg(self, msg) -> None:
        reply = msg.reply
        if not reply:  # a status: an expired or refused pull request, or the consumer gone
            self._status(msg.headers or {})
            return
        t = reply.split(".")
        at = 6 if len(t) >= 11 else 4  # $JS.ACK[.<domain>.<account hash>].<stream>.<consumer>.<delivered>...
        if self.finished or t[at - 1] != self.name:
            return  # after the end, or from a consumer this read replaced
        cseq = int(t[at + 2])
        if cseq != self.cseq + 1:
            self.broken, self.name = f"consumer sequence {cseq} after {self.cseq}", None
            self.wake.set()
            return
        self.cseq = cseq
        self.got += 1
        seq = int(t[at + 1])
        if self.stop is not None and seq > self.stop:
            self._finish()
            return
        self.records.append((seq, int(t[at + 3]), msg.subject, msg.headers, msg.data))
        self.last_seq = seq
        if t[at + 4] == "0" or seq == self.stop:
            self._finish()
        elif len(self.records) >= self.want - self.taken:
            self.wake.set()
        if self.asked - self.got <= self.batch * (_PULLS - 1):  # a request's worth arrived: the next one
            await self._pull()

    def _status(self, hdrs: dict) -> None:
        code = hdrs.get(_STATUS, "")
        left = hdrs.get("Nats-Pending-Messages")
        if code == "409" and "deleted" in hdrs.get("Description", "").lower():
            self.broken, self.name = "consumer deleted", None
        elif code == "503":  # no responders: a pull to a consumer that is no more
            self.broken, self.name = "consumer gone", None
        elif code in ("408", "409") and left and left.isdigit():
            self.asked -= int(left)  # what an ended request will not deliver
        elif code in ("408", "409"):
            self.asked = self.got  # ended, delivering who knows what: ask again
        self.wake.set()

    async def _pull(self) -> None:
        """Pull while less than the window is outstanding and more than is wanted soon is not on its way."""
        if self.name is None or self.finished or not self.nc.is_connected:
            return  # pulls buffered for a reconnect would go to a consumer the read replaces then
        body = b'{"batch":%d,"expires":%d}' % (self.batch, _PULL_EXPIRES)
        subject = f"{API}.CONSUMER.MSG.NEXT.{self.stream}.{self.name}"
        window = self.batch * _PULLS
        while (self.asked - self.got < window and
               len(self.records) + self.asked - self.got < self.want - self.taken + window):
            self.asked += self.batch
            await self.nc.publish(subject, body, reply=self.inbox)

    # -- the caller's side ------------------------------------------------------------------------
    async def take(self, count: int) -> Batch:
        """The next `count` messages (fewer at the end; none once the read is over)."""
        self.want = self.taken + count
        quiet_since = self.loop.time()
        while len(self.records) < count and not self.finished:
            up = self.link.check(self.loop.time(), self.taken + len(self.records))
            if up:  # back after a loss: its pulls died with the old connection
                self.broken, self.name = _RECONNECTED, None
            if self.broken and up is not None:
                await self._reset()
                quiet_since = self.loop.time()
                if not self.broken:
                    continue
            elif up is not None:
                await self._pull()
            self.wake.clear()
            before = len(self.records)
            try:
                await asyncio.wait_for(self.wake.wait(), _TICK)
            except asyncio.TimeoutError:
                pass
            if len(self.records) != before or self.finished or up is None:
                quiet_since = self.loop.time()
            elif self.loop.time() - quiet_since > _QUIET:
                await self._check_stalled()
                quiet_since = self.loop.time()
        part, self.records = self.records[:count], self.records[count:]
        self.taken += len(part)
        return Batch([r[0] for r in part], [r[1] for r in part], [r[2] for r in part], [r[3] for r in part],
                     [r[4] for r in part])

    async def _check_stalled(self) -> None:
        """Nothing arrived for a while: the rest was deleted meanwhile, or the consumer is gone."""
        import nats.errors as ne
        import nats.js.errors as jse

        if self.name is None:
            return
        try:
            info = await self._api(f"CONSUMER.INFO.{self.stream}.{self.name}")
        except jse.NotFoundError:
            self.broken = "consumer gone"
            return
        except ne.Error as exc:
            if not self.link.steady():
                return  # lost meanwhile: the watch waits for it and makes a new consumer once it is back
            raise LabError(f"stream {self.stream}: the reading consumer stopped delivering and its server does not "
                           f"say why ({exc}); read again") from None
        if not info.get("num_pending"):
            self._finish()
        else:
            self.asked = self.got  # requests lost somewhere: ask again


# A STREAM.MSG.GET answer exactly as both servers write it for a subject without characters JSON escapes (the
# fields in this order, base64 in hdrs/data); anything else goes through json.loads. Checked against json.loads
# on both servers' answers (tests/lab/test_stream_read_pipelined.py).
_ANSWER_BODY = (rb'\{"type":"io\.nats\.jetstream\.api\.v1\.stream_msg_get_response","message":\{'
                rb'"subject":"([^"\\]*)","seq":(\d+)(?:,"hdrs":"([A-Za-z0-9+/=]*)")?'
                rb'(?:,"data":"([A-Za-z0-9+/=]*)")?,"time":"([^"\\]*)"\}\}')
_ANSWER = re.compile(_ANSWER_BODY + rb'\Z')
# The same answer with the MSG line before it (no reply subject), as a pipelined read's answers come from the
# socket: the reply subject's last token (1: the slot), sid (2), size (3), the body (4: its length must be the
# size), then the body's fields (5 subject, 6 seq, 7 hdrs, 8 data, 9 time). Only for bytes without a backslash:
# then no JSON string has an escape, and each field is its string's bytes up to the next quote (a class of one
# character, which the regular expression engine scans fastest).
_MSG_ANSWER = re.compile(rb'MSG [^ ]*\.(\d+) (\d+) (\d+)\r\n('
                         rb'\{"type":"io\.nats\.jetstream\.api\.v1\.stream_msg_get_response","message":\{'
                         rb'"subject":"([^"]*)","seq":(\d+)(?:,"hdrs":"([^"]*)")?(?:,"data":"([^"]*)")?,'
                         rb'"time":"([^"]*)"\}\})\r\n')
_GROUPS = 9


class _AnswerRun:
    """A chunk from the socket that is a run of one read's answers, each in the shape both servers write (the
    last may be cut off: it is left to nats-py's parser), as `_MSG_ANSWER.split` gives it: one regular
    expression call for the whole chunk, and every field decoded a column at a time (no Python code per
    answer). `take` gives None when the chunk is anything else (other traffic, an error answer, another read's
    answers): those chunks go answer by answer."""

    __slots__ = ("pieces", "count", "handle", "end")

    @classmethod
    def take(cls, buf: bytes, by_sid: dict) -> "_AnswerRun | None":
        if b"\\" in buf or _MSG_ANSWER.match(buf) is None:
            return None
        pieces = _MSG_ANSWER.split(buf)  # [between, 9 groups, between, 9 groups, ..., the rest]
        stride = _GROUPS + 1
        if pieces[0] or any(pieces[stride:-1:stride]):
            return None  # something else between two answers
        count = len(pieces) // stride
        sids = pieces[2::stride]
        handle = by_sid.get(sids[0])
        if handle is None or sids.count(sids[0]) != count or \
                list(map(len, pieces[4::stride])) != list(map(int, pieces[3::stride])):
            return None
        run = cls()
        run.pieces, run.count, run.handle, run.end = pieces, count, handle, len(buf) - len(pieces[-1])
        return run

    def __len__(self) -> int:
        return self.count

    def size(self) -> int:
        """Bytes of the answers' bodies (nats-py's in_bytes)."""
        return sum(map(len, self.pieces[4::_GROUPS + 1]))

    def decode(self) -> tuple[list, list]:
        """The answers' slots, and their records as `_answer_record` gives them (headers None where none)."""
        pieces, stride = self.pieces, _GROUPS + 1
        hdrs, data = pieces[7::stride], pieces[8::stride]
        headers = [parse_header_block(a2b_base64(h)) if h else None for h in hdrs] if any(hdrs) else \
            [None] * self.count
        payloads = list(map(a2b_base64, data)) if None not in data else [a2b_base64(d) if d else b"" for d in data]
        return (list(map(int, pieces[1::stride])),
                list(zip(map(int, pieces[6::stride]), map(bytes.decode, pieces[9::stride]),
                         map(bytes.decode, pieces[5::stride]), headers, payloads)))


def _answer_record(data: bytes) -> tuple | None:
    """A STREAM.MSG.GET answer -> its record; None for "no message found" (10037); other errors raise."""
    m = _ANSWER.match(data)
    if m is not None:
        subject, seq, hdrs, payload, time = m.groups()
        return (int(seq), time.decode(), subject.decode(), parse_header_block(a2b_base64(hdrs)) if hdrs else {},
                a2b_base64(payload) if payload else b"")
    resp = json.loads(data.decode())  # str: no encoding detection
    if "error" in resp:
        if resp["error"].get("err_code") == 10037:
            return None
        import nats.js.errors as jse
        raise jse.APIError.from_error(resp["error"])
    return _stored_record(resp["message"])


def _stored_record(m: dict) -> tuple:
    # binascii's decoder is what base64.b64decode calls, without its per-call argument handling (one call per
    # message of a pipelined read).
    hdrs = m.get("hdrs")
    data = m.get("data")
    return (int(m["seq"]), m["time"], m["subject"], parse_header_block(a2b_base64(hdrs)) if hdrs else {},
            a2b_base64(data) if data else b"")
