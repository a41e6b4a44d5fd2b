"""A pull consumer's waiting requests: `$JS.API.CONSUMER.MSG.NEXT` parsed into a WaitingRequest, the
waiting list served oldest first, nats-server's status messages (404, 408, 409, 100 heartbeats), and whole
batches written at once to a receiver that needs nothing per message. A part of `Consumer` (consumer.py).
"""
from __future__ import annotations

import time
from collections import deque

from embedded_server.client import encode_subject
from embedded_server.gotime import duration_string
from embedded_server.protocol import msg_line_templates

from . import priority, requests
from .clock import now_ns
from .consumer_acks import ACK_WAIT_DELAY
from .consumer_push import IDLE_HEARTBEAT_HDR

PENDING_STATUS_HDR = b"NATS/1.0 %s\r\nNats-Pending-Messages: %d\r\nNats-Pending-Bytes: %d\r\n\r\n"


class WaitingRequest:
    __slots__ = ("reply", "reply_b", "n", "b", "d", "expires", "no_wait", "hb", "hbt", "received", "checked",
                 "min_pending", "min_ack_pending", "priority", "group", "pin_id")

    def __init__(self, reply, n, b, expires, no_wait, hb):
        self.reply, self.n, self.b, self.d = reply, n, b, 0
        self.reply_b = encode_subject(reply)
        self.expires, self.no_wait, self.hb = expires, no_wait, hb
        now = time.monotonic()
        self.hbt = now + hb if hb else 0.0
        self.received = now
        self.checked = None
        self.min_pending = self.min_ack_pending = self.priority = 0  # priority groups (priority.py)
        self.group = self.pin_id = ""


class PullRequests:
    """See the module's docstring; the attributes are set by Consumer.__init__."""

    def _on_next_request(self, sub, client, subject, reply, hdr, payload) -> None:
        if not reply:
            return
        try:
            self.process_next_request(reply, payload)
        except Exception as e:  # a bug must answer the puller, not leave it waiting
            self.js.logger.error(f"JetStream pull request on '{self.account.name} > {self.stream.name} > "
                                 f"{self.name}' failed: {type(e).__name__}: {e}")
            self._status(reply, 500, "Internal Server Error")

    def _status(self, reply: str, code: int, text: str) -> None:
        self.js.server.send_internal(self.account, reply, None, b"NATS/1.0 %d %s\r\n\r\n" % (code, text.encode()), b"")

    def process_next_request(self, reply: str, msg: bytes) -> None:
        if not reply or self.closed:
            return
        if self.is_push:
            return self._status(reply, 409, "Consumer is push based")
        req = msg.strip()
        expires_ns = 0
        batch, max_bytes, no_wait, hb = 1, 0, False, 0
        cr = {}
        if req.startswith(b"{"):
            try:
                cr = requests.decode(req, requests.CONSUMER_NEXT_REQUEST, strict=False, struct_name="")
            except requests.GoJsonError as e:
                return self._status(reply, 400, f"Bad Request - {e}")
            expires_ns, batch, max_bytes = cr.get("expires", 0), cr.get("batch", 0), cr.get("max_bytes", 0)
            no_wait, hb = cr.get("no_wait", False), cr.get("idle_heartbeat", 0)
            if hb > 0 and hb * 2 > expires_ns:
                return self._status(reply, 400, "Bad Request - heartbeat value too large")
        elif req:
            try:
                batch = int(req)
            except ValueError:
                batch = 1
        max_batch = self.cfg.get("max_batch", 0)
        if max_batch > 0 and batch > max_batch:
            return self._status(reply, 409, f"Exceeded MaxRequestBatch of {max_batch}")
        max_expires = self.cfg.get("max_expires", 0)
        if expires_ns and max_expires > 0 and expires_ns > max_expires:
            return self._status(reply, 409, f"Exceeded MaxRequestExpires of {duration_string(max_expires)}")
        max_req_bytes = self.cfg.get("max_bytes", 0)
        if max_bytes > 0 and max_req_bytes > 0 and max_bytes > max_req_bytes:
            return self._status(reply, 409, f"Exceeded MaxRequestMaxBytes of {max_req_bytes}")
        bad = priority.check_request(self.cfg, cr)
        if bad:
            return self._status(reply, 400, bad)
        if self.pin_id and cr.get("group") and self.cfg.get("priority_policy", "none") != "none":
            if cr.get("id") == self.pin_id:
                priority.set_pin_timer(self, cr["group"])
            elif cr.get("id"):
                return self._status(reply, 423, "Nats-Pin-Id mismatch")
        if len(self.waiting) >= self.cfg.get("max_waiting", 0):
            self._process_waiting(eos=False)
        self.last_activity = time.monotonic()
        if no_wait:
            pending = self.num_pending() + len(self.rdq)
            if pending == 0 and not expires_ns:
                return self._status(reply, 404, "No Messages")
            if pending > 0:
                self._process_waiting(eos=False)
                if pending < sum(w.n for w in self.waiting):
                    return self._status(reply, 408, "Requests Pending")
        expires = time.monotonic() + expires_ns / 1e9 if expires_ns else 0.0
        if len(self.waiting) >= self.cfg.get("max_waiting", 0):
            if not hb:
                self._status(reply, 409, "Exceeded MaxWaiting")
            return
        wr = WaitingRequest(reply, batch, max_bytes, expires, no_wait, hb / 1e9)
        wr.min_pending, wr.min_ack_pending = cr.get("min_pending", 0), cr.get("min_ack_pending", 0)
        wr.priority = cr.get("priority", 0)
        wr.group, wr.pin_id = cr.get("group", ""), cr.get("id", "")
        if self.cfg.get("priority_policy") == "prioritized":
            priority.insert_prioritized(self.waiting, wr)
        else:
            self.waiting.append(wr)
        self._arm_wait_timer()
        self.kick()

    def _next_waiting(self, sz: int, pass_id=None):
        server = self.js.server
        policy = self.cfg.get("priority_policy")
        overflow, pinned = policy == "overflow", policy == "pinned_client"
        cycled = 0
        while self.waiting:
            wr = self.waiting[0]
            if wr.expires and time.monotonic() >= wr.expires:
                self.js.server.send_internal(self.account, wr.reply, None,
                                             PENDING_STATUS_HDR % (b"408 Request Timeout", wr.n, wr.b), b"")
                self.waiting.popleft()
                continue
            assigned = False
            # (A pin outlives an update of the policy until it times out or is unpinned, as in nats-server.)
            if (pinned and not self.pin_id) or self.pin_id:
                if not self.pin_id and not wr.pin_id:
                    # No pin: this request's client gets it (and keeps it while it asks with that id).
                    wr.pin_id = priority.assign_pin(self, wr.group)
                    assigned = True
                elif wr.pin_id == self.pin_id:
                    pass
                elif not wr.pin_id:
                    # Someone else is pinned: this request waits (for the pin to go).
                    self.waiting.rotate(-1)
                    cycled += 1
                    if cycled >= len(self.waiting):
                        return None
                    continue
                else:
                    # An old pin id (or one issued by no one): nats-server ends the request with 423.
                    server.send_internal(self.account, wr.reply, None,
                                         PENDING_STATUS_HDR % (b"423 Nats-Wrong-Pin-Id", wr.n, wr.b), b"")
                    self.waiting.popleft()
                    continue
            if overflow and not priority.overflow_ready(wr, self.npc, len(self.pending)):
                # Not far enough behind for this request: the next one may be (nats-server cycles them).
                self.waiting.rotate(-1)
                cycled += 1
                if cycled >= len(self.waiting):
                    return None
                continue
            if wr.b > 0:
                if sz <= wr.b:
                    wr.b -= sz
                    if wr.b == 0:
                        wr.n = 1
                else:
                    server.send_internal(self.account, wr.reply, None,
                                         PENDING_STATUS_HDR % (b"409 Message Size Exceeds MaxBytes", wr.n, wr.b), b"")
                    if assigned:
                        priority.unassign_pin(self)
                    self.waiting.popleft()
                    continue
            if (pass_id is not None and wr.checked is pass_id) or server.has_interest(self.account, wr.reply):
                wr.checked = pass_id
                wr.n -= 1
                wr.d += 1
                if wr.n <= 0:
                    self.waiting.popleft()
                elif policy and policy != "none" and len(self.waiting) > 1:
                    # With a priority policy the next message goes to the next request (of the same priority),
                    # as nats-server's pop / popAndRequeue hand them out one at a time.
                    self.waiting.popleft()
                    if policy == "prioritized":
                        priority.insert_prioritized(self.waiting, wr)
                    else:
                        self.waiting.append(wr)
                return wr
            self.waiting.popleft()
        return None

    def _process_waiting(self, eos: bool) -> None:
        """Expire pull requests, drop those nobody listens to any more, send their heartbeats."""
        if not self.waiting:
            return
        now = time.monotonic()
        server = self.js.server
        keep = deque()
        for wr in self.waiting:
            expired = wr.expires and now >= wr.expires
            if (eos and wr.no_wait) or expired:
                if expired:
                    server.send_internal(self.account, wr.reply, None,
                                         PENDING_STATUS_HDR % (b"408 Request Timeout", wr.n, wr.b), b"")
                    continue
                if not wr.expires or wr.d > 0:
                    self._status(wr.reply, 404, "No Messages")
                    continue
            if not server.has_interest(self.account, wr.reply):
                continue
            if wr.hbt and now >= wr.hbt:
                server.send_internal(self.account, wr.reply, None, IDLE_HEARTBEAT_HDR % (self.dseq - 1, self.sseq - 1), b"")
                wr.hbt = now + wr.hb
            keep.append(wr)
        self.waiting = keep
        self._arm_wait_timer()

    def _arm_wait_timer(self) -> None:
        times = [t for wr in self.waiting for t in (wr.expires, wr.hbt) if t]
        if not times:
            return
        at = min(times)
        if self._wait_timer is not None:
            if self._wait_timer_at <= at:
                return
            self._wait_timer.cancel()
        self._wait_timer_at = at
        self._wait_timer = self.js.loop.call_later(max(at - time.monotonic(), 0) + 0.0005, self._on_wait_timer)

    def _on_wait_timer(self) -> None:
        self._wait_timer = None
        if not self.closed:
            self._process_waiting(eos=False)
            self.kick()

    def _pull_run(self, wr: WaitingRequest) -> int:
        """Deliver as much of pull request `wr` as is there, at once: new messages (no redeliveries), to a
        receiver that needs nothing per message (`server.single_receiver`). The frames, the ack subjects and the
        consumer's state are those of delivering one by one, without routing each message. The number
        delivered; 0 leaves the request to the message-by-message path."""
        srv = self.js.server
        target = srv.single_receiver(self.account, wr.reply_b)
        if target is None or (wr.expires and time.monotonic() >= wr.expires):
            return 0
        n = wr.n if self.maxp <= 0 else min(wr.n, self.maxp - len(self.pending))
        sub, client, _ = target
        store, filters, pending = self.stream.store, self._store_filters, self.pending
        msg_line, hmsg_line = msg_line_templates(sub.sid, self._ack_prefix_b.replace(b"%", b"%%") + b"1.%d.%d.%d.%d")
        with_headers = client.headers
        now = now_ns()
        dseq, npc = self.dseq, self.npc
        chunks: list[bytes] = []
        subjects: dict[str, bytes] = {}
        count = size = 0
        while count < n:
            sm = store.load_next_msg(filters, self.sseq)
            if sm is None:
                break
            seq = sm.seq
            self.sseq = seq + 1
            npc -= 1
            subject = subjects.get(sm.subject)
            if subject is None:
                subject = subjects[sm.subject] = encode_subject(sm.subject)
            hdr, data = sm.hdr, sm.data
            if hdr and with_headers:
                chunks.append(hmsg_line % (subject, seq, dseq, sm.ts, npc if npc > 0 else 0, len(hdr),
                                           len(hdr) + len(data)))
                chunks.append(hdr)
            else:
                # (A client without header support gets the payload only, as routing gives it.)
                chunks.append(msg_line % (subject, seq, dseq, sm.ts, npc if npc > 0 else 0, len(data)))
            chunks.append(data)
            chunks.append(b"\r\n")
            size += len(hdr) + len(data) if hdr else len(data)
            p = pending.get(seq)
            if p is None:
                pending[seq] = [dseq, now]
            else:
                p[1] = now
            dseq += 1
            count += 1
        if not count:
            return 0
        self.dseq, self.npc, self.ldt = dseq, npc, now
        srv.deliver(((sub, client, b"".join(chunks)),), b"", count, size)
        wr.n -= count
        wr.d += count
        if wr.n <= 0:
            self.waiting.popleft()
        elif wr.hb:
            wr.hbt = time.monotonic() + wr.hb
        if self._ptmr is None or self._ptmr_due > now + self._ack_wait_ns:
            self._arm_pending_timer(self._ack_wait_s + ACK_WAIT_DELAY)
        if self._save_handle is None:
            self._save()
        return count
