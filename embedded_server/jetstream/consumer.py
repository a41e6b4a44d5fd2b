"""A consumer: a cursor over a stream that delivers messages, tracks acknowledgements and redelivers.

It follows nats-server's consumer.go: a delivery loop (run soon after anything changes, never blocking)
takes redeliveries first, then the next message matching the filters, and sends it to the push deliver
subject or to the oldest waiting pull request, with the reply subject
`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`. Acks arrive on `$JS.ACK.<stream>.
<consumer>.>`; an ack-wait timer (with backoff) moves unacknowledged messages back to the redelivery queue.
Pull requests get nats-server's status messages (404 No Messages, 408 Request Timeout, 409 ...).
"""
from __future__ import annotations

import json
import random
import time
from collections import deque

from embedded_server.client import encode_subject
from embedded_server.protocol import msg_line_templates

from . import advisories
from . import config as config_mod
from . import filters as subj
from . import headers
from . import requests
from .clock import now_ns, rfc3339
from .stream import parse_go_duration

_HB = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: %d\r\nNats-Last-Stream: %d\r\n\r\n"
_PENDING_HDR = b"NATS/1.0 %s\r\nNats-Pending-Messages: %d\r\nNats-Pending-Bytes: %d\r\n\r\n"
FC_MAX_PENDING = 32 * 1024 * 1024
ACK_WAIT_DELAY = 0.001


class WaitingRequest:
    __slots__ = ("reply", "reply_b", "n", "b", "d", "expires", "no_wait", "hb", "hbt", "received", "checked")

    def __init__(self, reply, n, b, expires, no_wait, hb):
        self.reply, self.n, self.b, self.d = reply, n, b, 0
        self.reply_b = encode_subject(reply)
        self.expires, self.no_wait, self.hb = expires, no_wait, hb
        now = time.monotonic()
        self.hbt = now + hb if hb else 0.0
        self.received = now
        self.checked = None


class Consumer:
    def __init__(self, stream, cfg: dict, name: str, created: int, store, state: dict | None = None):
        self.stream = stream
        self.js = stream.js
        self.account = stream.account
        self.cfg = cfg
        self.name = name
        self.created = created
        self.store = store
        self.closed = False
        self.sseq = 1
        self.dseq = 1
        self.adflr = 0
        self.asflr = 0
        self.pending: dict[int, list] = {}
        self.rdc: dict[int, int] = {}
        self.rdq: list[int] = []
        self._rdqi: set[int] = set()
        self.waiting: deque[WaitingRequest] = deque()
        self.npc = 0
        self._npc_stale = True
        self.lss: list[int] | None = None
        self.lss_resume = 0
        self.ldt = 0
        self.lat = 0
        self.active = True
        self.pbytes = 0
        self.maxpb = 0
        self.pblimit = 0
        self.fcid = ""
        self.fcsz = 0
        self.replay = cfg.get("replay_policy") == "original"
        self._replay_lts = 0
        self._replay_last = 0
        self._replay_ok = 0
        self._kick_handle = None
        self._delivering = False
        self._subs = []
        self._ptmr = None
        self._ptmr_at = 0.0
        self._ptmr_due = 0
        self._hb_timer = None
        self._wait_timer = None
        self._wait_timer_at = 0.0
        self._dtmr = None
        self._pause_timer = None
        self._interest_timer = None
        self._save_handle = None
        self.last_activity = time.monotonic()
        self._last_delivery = 0.0
        self._set_filters()
        self.ack_prefix = f"$JS.ACK.{stream.name}.{name}."
        self._ack_prefix_b = encode_subject(self.ack_prefix)
        if state:
            self._apply_state(state)
        else:
            self._select_start()
        if self.is_push and cfg.get("flow_control"):
            self.pblimit = FC_MAX_PENDING
            self.maxpb = FC_MAX_PENDING // 16

    # -- setup ------------------------------------------------------------------------------------
    def _set_filters(self) -> None:
        """Cache what the delivery loop reads for every message from the config."""
        cfg = self.cfg
        self.filters = tuple(config_mod.filter_list(cfg))
        self._unfiltered = not self.filters or ">" in self.filters
        self._store_filters = () if self._unfiltered else self.filters
        self.is_push = bool(cfg.get("deliver_subject"))
        self.ack_none = cfg["ack_policy"] == "none"
        self.maxp = cfg.get("max_ack_pending", 0) if not self.ack_none else 0
        self.maxdc = max(cfg.get("max_deliver", -1), 0)
        self._headers_only = bool(cfg.get("headers_only"))
        self._ack_wait_s = cfg.get("ack_wait", 0) / 1e9
        self._ack_wait_ns = cfg.get("ack_wait", 0)
        self._backoff = cfg.get("backoff") or None

    def filter_matches(self, subject: str) -> bool:
        return self._unfiltered or subj.matches_any(self.filters, subject)

    def _select_start(self) -> None:
        """nats-server's selectStartingSeqNo."""
        store = self.stream.store
        cfg = self.cfg
        policy = cfg.get("deliver_policy", "all")
        first, last = store.first_seq, store.last_seq
        opt_seq = cfg.get("opt_start_seq", 0)
        if opt_seq:
            sseq = opt_seq
        elif policy == "all":
            sseq = first
        elif policy == "last":
            if not self.filters:
                sseq = last
            else:
                sseq = 0
                for f in self.filters:
                    sseq = max(sseq, store.filtered_state(1, f).last)
        elif policy == "last_per_subject":
            if self.stream.cfg.get("max_msgs_per_subject") == 1:
                sseq = first
            else:
                seqs = store.last_seqs_per_subject(self.filters)
                self.lss_resume = last
                self.lss = seqs or None
                sseq = seqs[0] if seqs else last
        elif policy == "by_start_time":
            sseq = store.get_seq_from_time(cfg.get("opt_start_time", 0))
        else:
            sseq = last + 1
        if first == 0 and not opt_seq:
            sseq = 1
        elif sseq > last and not opt_seq:
            sseq = last + 1
        elif sseq < first:
            sseq = first
        self.sseq = max(sseq, 1)
        self.dseq = 1
        self.adflr = 0
        self.asflr = self.sseq - 1

    def _apply_state(self, state: dict) -> None:
        d, a = state.get("delivered", {}), state.get("ack_floor", {})
        self.dseq = d.get("consumer_seq", 0) + 1
        self.sseq = d.get("stream_seq", 0) + 1
        self.adflr = a.get("consumer_seq", 0)
        self.asflr = a.get("stream_seq", 0)
        self.pending = {int(k): list(v) for k, v in (state.get("pending") or {}).items()}
        self.rdc = {int(k): v for k, v in (state.get("redelivered") or {}).items()}
        last = self.stream.store.last_seq
        if self.sseq - 1 > last:
            self.js.logger.warn(f"JetStream consumer '{self.account.name} > {self.stream.name} > {self.name}' "
                                f"delivered sequence {self.sseq - 1} past last stream sequence of {last}")
            self.asflr = min(self.asflr, last)
            self.pending = {s: p for s, p in self.pending.items() if s <= last}
            self.rdc = {s: c for s, c in self.rdc.items() if s <= last}
            if self.pending:
                self.sseq = max(self.pending) + 1
                self.dseq = max(p[0] for p in self.pending.values()) + 1
            else:
                self.sseq = self.asflr + 1
                self.dseq = self.adflr + 1
        if self.pending:
            # Everything still pending after a restart is due for redelivery.
            self.js.loop.call_soon(self._check_pending)

    def state(self) -> dict:
        return {"delivered": {"consumer_seq": self.dseq - 1, "stream_seq": self.sseq - 1},
                "ack_floor": {"consumer_seq": self.adflr, "stream_seq": self.asflr},
                "pending": {str(k): v for k, v in self.pending.items()},
                "redelivered": {str(k): v for k, v in self.rdc.items()}}

    def _save(self) -> None:
        """Coalesce state writes: the file store writes shortly after a burst of changes."""
        if self._save_handle is None and not self.closed:
            self._save_handle = self.js.loop.call_later(0.05, self._flush_state)

    def _flush_state(self) -> None:
        self._save_handle = None
        if not self.closed:
            self.store.update(self.state())
            self.store.flush()

    def start(self) -> None:
        """Subscribe for acks, pull requests and flow control; start timers."""
        server, acc = self.js.server, self.account
        self._subs.append(server.subscribe_internal(acc, self.ack_prefix + ">", self._on_ack))
        if not self.is_push:
            self._subs.append(server.subscribe_internal(
                acc, f"$JS.API.CONSUMER.MSG.NEXT.{self.stream.name}.{self.name}", self._on_next_request))
        else:
            self._subs.append(server.subscribe_internal(
                acc, f"$JS.FC.{self.stream.name}.{self.name}.*", self._on_flow_control))
            self.active = server.has_interest(acc, self.cfg["deliver_subject"])
            if not self.active:
                self._watch_interest()
            self._reset_hb()
        self._reset_delete_timer()
        self._update_pause()
        self.kick()

    # -- signals ----------------------------------------------------------------------------------
    def kick(self) -> None:
        if self._kick_handle is None and not self.closed:
            self._kick_handle = self.js.loop.call_soon(self._deliver_loop)

    def signal_new(self, seq: int, subject: str) -> None:
        if not self.filter_matches(subject):
            return
        if not self._npc_stale:
            self.npc += 1
        if seq < self.sseq:
            return
        if (self.is_push and self.active) or (not self.is_push and self.waiting):
            self.kick()

    def msg_removed(self, seq: int) -> None:
        """The stream dropped `seq` (limits, age, delete): a pending copy of it is terminated."""
        if seq >= self.sseq:
            self._npc_stale = True
        if seq in self.pending:
            dseq = self.pending[seq][0]
            self._process_ack(seq, dseq, self._delivery_count(seq), remove_only=True)
        elif seq in self.rdc:
            del self.rdc[seq]
            self._save()

    def stream_purged(self, subject: str, first: int) -> None:
        """nats-server's consumer purge: skip what was purged, drop pending entries below the new floor."""
        if subject and self.filters and not any(subj.collide(f, subject) for f in self.filters):
            self._npc_stale = True
            return
        sseq = first
        if self.sseq < sseq:
            self.sseq = sseq
        if self.asflr < sseq:
            self.asflr = sseq - 1
            for seq in [s for s in self.pending if s <= self.asflr]:
                p = self.pending.pop(seq)
                self.rdc.pop(seq, None)
                if p[0] > self.adflr:
                    self.adflr = p[0]
                    self.dseq = max(self.dseq, self.adflr)
        store = self.stream.store
        for seq in [s for s in self.pending if store.load_msg(s) is None]:
            p = self.pending.pop(seq)
            self.rdc.pop(seq, None)
            if p[0] > self.adflr:
                self.adflr = p[0]
        if not self.pending:
            self.rdc = {}
            self.adflr, self.asflr = self.dseq - 1, self.sseq - 1
        self.rdq = [s for s in self.rdq if s >= self.sseq and s in self.pending]
        self._rdqi = set(self.rdq)
        self._npc_stale = True
        self._save()
        self.kick()

    def stream_updated(self) -> None:
        self.kick()

    # -- num pending ------------------------------------------------------------------------------
    def num_pending(self) -> int:
        if self._npc_stale:
            self._npc_stale = False
            store = self.stream.store
            if self.lss:
                self.npc = len(self.lss) + store.num_pending(self.lss_resume + 1, self.filters)
            else:
                lps = self.cfg.get("deliver_policy") == "last_per_subject" and self.lss is not None
                self.npc = store.num_pending(self.sseq, self.filters, lps)
        return max(self.npc, 0)

    # -- delivery ---------------------------------------------------------------------------------
    def _paused(self) -> bool:
        until = self.cfg.get("pause_until")
        return bool(until) and now_ns() < until

    def _deliver_loop(self) -> None:
        self._kick_handle = None
        if self.closed or self._delivering:
            return
        self._delivering = True
        try:
            with self.js.server.batched():
                self._deliver_available()
        finally:
            self._delivering = False

    def _deliver_available(self) -> None:
        is_push = self.is_push
        paused = "pause_until" in self.cfg
        pass_id = object()
        whole_runs = not (is_push or self.replay or self._headers_only or self._backoff or self.ack_none)
        while not self.closed:
            if paused and self._paused():
                break
            if is_push:
                if not self.active or (self.maxpb and self.pbytes > self.maxpb):
                    break
            elif not self.waiting:
                break
            if self._npc_stale:
                self.num_pending()
            if whole_runs and not self.rdq and not self.lss and not self.waiting[0].b \
                    and self._pull_run(self.waiting[0]):
                continue
            sm, dc = self._next_msg()
            if sm is None:
                break
            if dc == 1:
                self.npc -= 1
            if self.replay and self._replay_lts and sm.seq != self._replay_ok:
                delay = (sm.ts - self._replay_lts) / 1e9
                if delay > 0.001:
                    self._put_back(sm.seq, dc)
                    self._replay_ok = sm.seq
                    self.js.loop.call_later(delay, self.kick)
                    return
            npc = self.npc
            ack_reply = "%s%d.%d.%d.%d.%d" % (self.ack_prefix, dc, sm.seq, self.dseq, sm.ts, npc if npc > 0 else 0)
            hdr, data = sm.hdr, sm.data
            if self._headers_only:
                hdr = headers.append(hdr, [(b"Nats-Msg-Size", b"%d" % len(data))])
                data = b""
            sz = len(sm.subject) + len(ack_reply) + (len(hdr) if hdr else 0) + len(data)
            wr = None
            if is_push:
                dsubj = self.cfg["deliver_subject"]
            else:
                wr = self._next_waiting(sz, pass_id)
                if wr is None:
                    self._put_back(sm.seq, dc)
                    break
                dsubj = wr.reply
            if not self._deliver(dsubj, ack_reply, sm, hdr, data, dc, sz):
                self._put_back(sm.seq, dc)
                break
            if self.replay:
                self._replay_lts = sm.ts
            if wr is not None:
                if wr.n <= 0 and wr.b > 0:
                    self.js.server.send_internal(self.account, dsubj, None,
                                                 _PENDING_HDR % (b"409 Batch Completed", wr.n, wr.b), b"")
                if wr.hb and wr.n > 0:
                    wr.hbt = time.monotonic() + wr.hb
        if self.replay and self.sseq > self.stream.store.last_seq:
            self.replay = False
        if not is_push:
            self.last_activity = time.monotonic()
            self._process_waiting(eos=True)

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

    def _put_back(self, seq: int, dc: int) -> None:
        """A message picked for delivery could not go out now: it is the next one again."""
        if dc == 1 and seq == self.sseq - 1:
            self.sseq -= 1
            self.npc += 1
        elif seq not in self._rdqi:
            self._dec_delivery_count(seq)
            self.rdq.insert(0, seq)
            self._rdqi.add(seq)

    def _next_msg(self):
        store = self.stream.store
        while self.rdq:
            seq = self.rdq.pop(0)
            self._rdqi.discard(seq)
            dc = self._inc_delivery_count(seq)
            maxdc = self.maxdc
            if maxdc and dc > maxdc:
                if dc == maxdc + 1:
                    self._notify_max_deliveries(seq, dc - 1)
                p = self.pending.pop(seq, None)
                if p is not None:
                    self._move_ack_floor(p[0], seq)
                continue
            sm = store.load_msg(seq)
            if sm is None:
                self._dec_delivery_count(seq)
                if seq in self.pending:
                    self._process_ack(seq, self.pending[seq][0], dc - 1, remove_only=True)
                continue
            return sm, dc
        if self.maxp > 0 and len(self.pending) >= self.maxp:
            return None, 0
        if self.lss:
            seq = self.lss.pop(0)
            if not self.lss:
                self.lss = None
                self.sseq = self.lss_resume
            else:
                self.sseq = seq
            sm = store.load_msg(seq)
            self.sseq += 1
            if sm is None:
                return self._next_msg()
            return sm, 1
        sm = store.load_next_msg(self._store_filters, self.sseq)
        if sm is None:
            return None, 0
        self.sseq = sm.seq + 1
        return sm, 1

    def _deliver(self, dsubj, ack_reply, sm, hdr, data, dc, sz) -> bool:
        """Send one message; False (nothing recorded) if a push consumer's subscriber has gone."""
        if not self.js.deliver(self.account, dsubj, sm.subject, ack_reply, hdr, data) and self.is_push:
            self.active = False
            self.last_activity = time.monotonic()
            self._watch_interest()
            return False
        dseq = self.dseq
        self.dseq += 1
        now = self.ldt = now_ns()
        if self.ack_none:
            self.adflr, self.asflr = dseq, sm.seq
            if self.stream.cfg["retention"] != "limits":
                self.stream.ack_msg(self, sm.seq)
        else:
            seq = sm.seq
            p = self.pending.get(seq)
            if p is None:
                self.pending[seq] = [dseq, now]
            else:
                p[1] = now
            if self._backoff or self._ptmr is None or self._ptmr_due > now + self._ack_wait_ns:
                self._arm_pending_timer(self._ack_wait_for(seq) + ACK_WAIT_DELAY)
        if self.is_push:
            self._last_delivery = time.monotonic()
            if self.maxpb:
                self.pbytes += sz
                if self._need_flow_control(sz):
                    self._send_flow_control()
        if self._save_handle is None:
            self._save()
        return True

    def _ack_wait_for(self, sseq: int) -> float:
        backoff = self._backoff
        if backoff:
            i = min(max(self.rdc.get(sseq, 0), 0), len(backoff) - 1)
            return backoff[i] / 1e9
        return self._ack_wait_s

    def _arm_pending_timer(self, delay: float) -> None:
        at = time.monotonic() + delay
        if self._ptmr is not None:
            if self._ptmr_at <= at:
                return
            self._ptmr.cancel()
        self._ptmr_at = at
        self._ptmr_due = now_ns() + int(delay * 1e9)
        self._ptmr = self.js.loop.call_later(delay, self._check_pending)

    def _delivery_count(self, seq: int) -> int:
        return self.rdc.get(seq, 1)

    def _inc_delivery_count(self, seq: int) -> int:
        dc = self.rdc.get(seq, 1) + 1
        self.rdc[seq] = dc
        return dc

    def _dec_delivery_count(self, seq: int) -> None:
        dc = self.rdc.get(seq)
        if dc is not None:
            if dc <= 2:
                del self.rdc[seq]
            else:
                self.rdc[seq] = dc - 1

    def _check_pending(self) -> None:
        """nats-server's checkPending: whatever outlived its ack wait goes to the redelivery queue."""
        self._ptmr = None
        if self.closed or not self.pending:
            return
        ack_wait = self.cfg.get("ack_wait", 0)
        if not ack_wait:
            return
        store = self.stream.store
        fseq = store.first_seq
        now = now_ns()
        backoff = self.cfg.get("backoff") or []
        nxt = (backoff[-1] if backoff else ack_wait) + int(ACK_WAIT_DELAY * 1e9)
        expired = []
        changed = False
        for seq in list(self.pending):
            p = self.pending[seq]
            if seq < fseq or seq <= self.asflr:
                del self.pending[seq]
                self.rdc.pop(seq, None)
                self._rdq_remove(seq)
                self.asflr = max(self.asflr, seq)
                self.adflr = max(self.adflr, p[0])
                changed = True
                continue
            elapsed, deadline = now - p[1], ack_wait
            if backoff:
                dc = max(self.rdc.get(seq, 0), 0)
                nbi = dc + 1
                if dc + 1 >= len(backoff):
                    dc = nbi = len(backoff) - 1
                deadline = backoff[dc]
                nxt = min(nxt, backoff[nbi])
            if elapsed >= deadline:
                if seq not in self._rdqi and not self._has_max_deliveries(seq):
                    expired.append(seq)
            elif deadline - elapsed < nxt:
                nxt = deadline - elapsed
        if expired:
            expired.sort()
            self.rdq.extend(expired)
            self._rdqi.update(expired)
            off = now - self.pending[expired[0]][1]
            for seq in expired:
                if seq in self.pending:
                    self.pending[seq][1] += off
            self.kick()
        if self.pending:
            self._arm_pending_timer(nxt / 1e9)
        else:
            self.rdq, self._rdqi = [], set()
            self.adflr, self.asflr = self.dseq - 1, self.sseq - 1
        if changed or expired:
            self._save()

    def _has_max_deliveries(self, seq: int) -> bool:
        maxdc = self.maxdc
        if not maxdc:
            return False
        dc = self._delivery_count(seq)
        if dc >= maxdc:
            if dc == maxdc:
                self._notify_max_deliveries(seq, dc)
            if self.maxp > 0 and len(self.pending) >= self.maxp:
                self.kick()
            p = self.pending.pop(seq, None)
            if p is not None:
                self._move_ack_floor(p[0], seq)
            self.rdc[seq] = dc
            return True
        return False

    def _notify_max_deliveries(self, seq: int, deliveries: int) -> None:
        advisories.max_deliveries(self.js, self.account, self.stream.name, self.name, seq, deliveries)

    def _rdq_remove(self, seq: int) -> None:
        if seq in self._rdqi:
            self._rdqi.discard(seq)
            self.rdq.remove(seq)

    # -- acks -------------------------------------------------------------------------------------
    def _on_ack(self, sub, client, subject, reply, hdr, payload) -> None:
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (our subscription's form).
        parts = subject.rsplit(".", 5)
        if len(parts) != 6 or subject.count(".") != 8:
            return
        try:
            dc, sseq, dseq = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            return
        msg = payload
        skip_reply = sseq == 0
        if not msg or msg == b"+ACK" or msg == b"+OK":
            if not self._process_ack(sseq, dseq, dc):
                skip_reply = True
        elif msg.startswith(b"+NXT"):
            self._process_ack(sseq, dseq, dc)
            self.process_next_request(reply, msg[4:])
            skip_reply = True
        elif msg.startswith(b"-NAK"):
            self._process_nak(sseq, dseq, dc, msg)
        elif msg == b"+WPI":
            p = self.pending.get(sseq)
            if p is not None:
                p[1] = now_ns()
                self._save()
        elif msg.startswith(b"+TERM"):
            if not self._process_ack(sseq, dseq, dc):
                skip_reply = True
            advisories.terminated(self.js, self.account, self.stream.name, self.name, dseq, sseq, dc,
                                  msg[5:].strip().decode("utf-8", "replace"))
        if reply and not skip_reply:
            self.js.server.send_internal(self.account, reply, None, None, b"")

    def _process_ack(self, sseq: int, dseq: int, dc: int, remove_only: bool = False) -> bool:
        """nats-server's processAckMsg; True if the ack counted (its reply is then answered)."""
        if self.closed:
            return False
        if sseq >= self.sseq and not remove_only:
            return False
        policy = self.cfg["ack_policy"]
        need_signal = False
        acked = []
        if policy == "explicit" or remove_only:
            p = self.pending.get(sseq)
            if p is not None:
                if self.maxp > 0 and len(self.pending) >= self.maxp:
                    need_signal = True
                del self.pending[sseq]
                dseq = p[0]
                self._move_ack_floor(dseq, sseq)
            self.rdc.pop(sseq, None)
            self._rdq_remove(sseq)
            acked.append(sseq)
        elif policy == "all":
            if dseq <= self.adflr or sseq <= self.asflr:
                return True
            if self.maxp > 0 and len(self.pending) >= self.maxp:
                need_signal = True
            self.adflr, self.asflr = dseq, sseq
            for seq in [s for s in self.pending if s <= sseq]:
                del self.pending[seq]
                self.rdc.pop(seq, None)
                self._rdq_remove(seq)
                acked.append(seq)
            if sseq not in acked:
                acked.append(sseq)
        else:
            return False
        self.lat = now_ns()
        self._save()
        if self.stream.cfg["retention"] != "limits" and not remove_only:
            for seq in acked:
                self.stream.ack_msg(self, seq)
        if need_signal:
            self.kick()
        return True

    def _move_ack_floor(self, dseq: int, sseq: int) -> None:
        if not self.pending:
            self.adflr, self.asflr = self.dseq - 1, self.sseq - 1
        elif dseq == self.adflr + 1:
            self.adflr, self.asflr = dseq, sseq
            for s in range(sseq + 1, self.sseq):
                p = self.pending.get(s)
                if p is not None:
                    if p[0] > 0:
                        self.adflr, self.asflr = p[0] - 1, s - 1
                    break

    def _process_nak(self, sseq: int, dseq: int, dc: int, msg: bytes) -> None:
        if dseq <= self.adflr or dseq >= self.dseq or sseq not in self.pending:
            return
        advisories.nak(self.js, self.account, self.stream.name, self.name, dseq, sseq, dc)
        arg = msg[4:].strip()
        if arg:
            delay = None
            if arg.startswith(b"{"):
                try:
                    delay = json.loads(arg).get("delay")
                    if not isinstance(delay, int):
                        delay = None if delay is not None else 0
                except (ValueError, AttributeError):
                    delay = None
            else:
                delay = parse_go_duration(arg.decode("utf-8", "replace"))
            if delay is not None:
                self._rdq_remove(sseq)
                p = self.pending[sseq]
                p[1] = now_ns() - self.cfg.get("ack_wait", 0) + delay
                self._save()
                if self._ptmr is not None:
                    self._ptmr.cancel()
                    self._ptmr = None
                self._arm_pending_timer(max(delay / 1e9, 0) + ACK_WAIT_DELAY if delay > 0 else 0.01)
                return
            self.js.logger.warn(f"JetStream consumer '{self.account.name} > {self.stream.name} > {self.name}' "
                                f"bad NAK delay value: {arg.decode('utf-8', 'replace')!r}")
        if sseq not in self._rdqi:
            self.rdq.append(sseq)
            self._rdqi.add(sseq)
        self.kick()

    def needs_ack(self, sseq: int, subject: str) -> bool:
        """Does this consumer still need `sseq` (interest retention keeps it until every consumer is done)?"""
        if not self.filter_matches(subject):
            return False
        policy = self.cfg["ack_policy"]
        if policy in ("none", "all"):
            need = sseq > self.asflr
        else:
            need = sseq > self.asflr and (sseq >= self.sseq or sseq in self.pending)
        return need or sseq in self.rdc

    # -- pull requests ----------------------------------------------------------------------------
    def _on_next_request(self, sub, client, subject, reply, hdr, payload) -> None:
        if not reply:
            return
        self.process_next_request(reply, payload)

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
            return self._status(reply, 409, f"Exceeded MaxRequestExpires of {config_mod.go_duration(max_expires)}")
        max_req_bytes = self.cfg.get("max_bytes", 0)
        if max_bytes > 0 and max_req_bytes > 0 and max_bytes > max_req_bytes:
            return self._status(reply, 409, f"Exceeded MaxRequestMaxBytes of {max_req_bytes}")
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
        self.waiting.append(WaitingRequest(reply, batch, max_bytes, expires, no_wait, hb / 1e9))
        self._arm_wait_timer()
        self.kick()

    def _next_waiting(self, sz: int, pass_id=None):
        server = self.js.server
        while self.waiting:
            wr = self.waiting[0]
            if wr.expires and time.monotonic() >= wr.expires:
                self.js.server.send_internal(self.account, wr.reply, None,
                                             _PENDING_HDR % (b"408 Request Timeout", wr.n, wr.b), b"")
                self.waiting.popleft()
                continue
            if wr.b > 0:
                if sz <= wr.b:
                    wr.b -= sz
                    if wr.b == 0:
                        wr.n = 1
                else:
                    server.send_internal(self.account, wr.reply, None,
                                         _PENDING_HDR % (b"409 Message Size Exceeds MaxBytes", wr.n, wr.b), b"")
                    self.waiting.popleft()
                    continue
            if (pass_id is not None and wr.checked is pass_id) or server.has_interest(self.account, wr.reply):
                wr.checked = pass_id
                wr.n -= 1
                wr.d += 1
                if wr.n <= 0:
                    self.waiting.popleft()
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
                                         _PENDING_HDR % (b"408 Request Timeout", wr.n, wr.b), b"")
                    continue
                if not wr.expires or wr.d > 0:
                    self._status(wr.reply, 404, "No Messages")
                    continue
            if not server.has_interest(self.account, wr.reply):
                continue
            if wr.hbt and now >= wr.hbt:
                server.send_internal(self.account, wr.reply, None, _HB % (self.dseq - 1, self.sseq - 1), b"")
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

    # -- push: interest, heartbeats, flow control --------------------------------------------------
    def _watch_interest(self) -> None:
        if self._interest_timer is None and not self.closed:
            self._interest_timer = self.js.loop.call_later(0.05, self._check_interest)

    def _check_interest(self) -> None:
        self._interest_timer = None
        if self.closed or not self.is_push:
            return
        if self.js.server.has_interest(self.account, self.cfg["deliver_subject"]):
            self.active = True
            self.last_activity = time.monotonic()
            self._reset_hb()
            self.kick()
        else:
            self._watch_interest()

    def _reset_hb(self) -> None:
        """Idle heartbeats: a timer every `idle_heartbeat` sends one if nothing went out meanwhile."""
        hb = self.cfg.get("idle_heartbeat", 0)
        if not hb or not self.is_push or self._hb_timer is not None or self.closed:
            return
        self._hb_timer = self.js.loop.call_later(hb / 1e9, self._send_hb)

    def _send_hb(self) -> None:
        self._hb_timer = None
        if self.closed:
            return
        hb = self.cfg.get("idle_heartbeat", 0) / 1e9
        idle = time.monotonic() - self._last_delivery
        if idle >= hb * 0.999 and self.js.server.has_interest(self.account, self.cfg["deliver_subject"]):
            hdr = _HB % (self.dseq - 1, self.sseq - 1)
            if self.fcid:
                hdr = hdr[:-2] + b"Nats-Consumer-Stalled: " + self.fcid.encode() + b"\r\n\r\n"
            self.js.server.send_internal(self.account, self.cfg["deliver_subject"], None, hdr, b"")
            idle = 0.0
        if hb:
            self._hb_timer = self.js.loop.call_later(max(hb - idle, 0.001), self._send_hb)

    def _need_flow_control(self, sz: int) -> bool:
        if not self.fcid and self.pbytes > self.maxpb // 2:
            return True
        if self.fcid and self.pbytes - self.fcsz >= self.maxpb:
            self.fcsz += sz
        return False

    def _send_flow_control(self) -> None:
        rnd = "".join(random.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
                      for _ in range(4))
        self.fcid = f"$JS.FC.{self.stream.name}.{self.name}.{rnd}"
        self.fcsz = self.pbytes
        self.js.server.send_internal(self.account, self.cfg["deliver_subject"], self.fcid,
                                     b"NATS/1.0 100 FlowControl Request\r\n\r\n", b"")

    def _on_flow_control(self, sub, client, subject, reply, hdr, payload) -> None:
        if subject != self.fcid:
            return
        if self.maxpb < self.pblimit:
            self.maxpb = min(self.maxpb * 2, self.pblimit)
        self.pbytes = max(self.pbytes - self.fcsz, 0)
        self.fcid, self.fcsz = "", 0
        self.kick()

    # -- inactivity and pause ---------------------------------------------------------------------
    def _threshold(self) -> float:
        th = self.cfg.get("inactive_threshold", 0)
        return th / 1e9 if th > 0 else 0.0

    def _reset_delete_timer(self) -> None:
        th = self._threshold()
        if self._dtmr is not None:
            self._dtmr.cancel()
            self._dtmr = None
        if th and not self.closed:
            self._dtmr = self.js.loop.call_later(min(th, 0.25), self._check_inactive)

    def _check_inactive(self) -> None:
        self._dtmr = None
        if self.closed:
            return
        th = self._threshold()
        if not th:
            return
        now = time.monotonic()
        if self.is_push:
            busy = self.js.server.has_interest(self.account, self.cfg["deliver_subject"])
        else:
            self._process_waiting(eos=False)
            busy = bool(self.waiting)
        if busy:
            self.last_activity = now
        elif now - self.last_activity >= th:
            self.js.logger.debug(f"Deleting inactive consumer '{self.account.name} > {self.stream.name} > {self.name}'")
            self.stream.jsa.delete_consumer(self.stream, self)
            return
        self._dtmr = self.js.loop.call_later(min(th, 0.25), self._check_inactive)

    def _update_pause(self) -> None:
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        until = self.cfg.get("pause_until", 0)
        if until and until > now_ns():
            self._pause_timer = self.js.loop.call_later((until - now_ns()) / 1e9 + 0.001, self.kick)

    def set_pause(self, until: int) -> None:
        if until:
            self.cfg["pause_until"] = until
        else:
            self.cfg.pop("pause_until", None)
        config_mod.set_static_metadata(self.cfg)
        self.store.save_config(self.cfg, self.created)
        self._update_pause()
        advisories.consumer_pause(self.js, self.account, self.stream.name, self.name,
                                  bool(until) and now_ns() < until, until)
        self.kick()

    # -- config updates ---------------------------------------------------------------------------
    def update_config(self, new: dict) -> None:
        old = self.cfg
        if old.get("deliver_subject") != new.get("deliver_subject"):
            if self.pending:
                for seq in sorted(self.pending):
                    if seq not in self._rdqi:
                        self.rdq.append(seq)
                        self._rdqi.add(seq)
        self.cfg = new
        filters_changed = config_mod.filter_list(old) != config_mod.filter_list(new)
        self._set_filters()
        if filters_changed:
            self._npc_stale = True
            self.stream.cleanup_no_interest(self.asflr)
        if old.get("inactive_threshold") != new.get("inactive_threshold"):
            self._reset_delete_timer()
        if old.get("ack_wait") != new.get("ack_wait") and self.pending:
            if self._ptmr is not None:
                self._ptmr.cancel()
                self._ptmr = None
            self._arm_pending_timer(0.1)
        self._update_pause()
        self.store.save_config(self.cfg, self.created)
        if self.is_push:
            self.active = self.js.server.has_interest(self.account, self.cfg["deliver_subject"])
            if not self.active:
                self._watch_interest()
        self.kick()

    # -- info -------------------------------------------------------------------------------------
    def info(self, version: str | None = None) -> dict:
        np = self.num_pending()
        store = self.stream.store
        if self.sseq > store.last_seq:
            self.npc = np = 0
        else:
            np = min(np, store.msgs, store.last_seq - self.sseq + 1)
        delivered = {"consumer_seq": max(self.dseq, 1) - 1, "stream_seq": max(self.sseq, 1) - 1}
        if self.ldt:
            delivered["last_active"] = rfc3339(self.ldt)
        ack_floor = {"consumer_seq": self.adflr, "stream_seq": self.asflr}
        if self.lat:
            ack_floor["last_active"] = rfc3339(self.lat)
        out = {"stream_name": self.stream.name, "name": self.name, "created": rfc3339(self.created),
               "config": config_mod.consumer_config_json(self.cfg, version), "delivered": delivered,
               "ack_floor": ack_floor, "num_ack_pending": len(self.pending),
               "num_redelivered": 0 if self.cfg.get("max_deliver") == 1 else len(self.rdc)}
        if not self.is_push:
            self._process_waiting(eos=False)
        out["num_waiting"] = len(self.waiting)
        out["num_pending"] = np
        if self.is_push and self.js.server.has_interest(self.account, self.cfg["deliver_subject"]):
            out["push_bound"] = True
        until = self.cfg.get("pause_until", 0)
        if until and now_ns() < until:
            out["paused"] = True
            out["pause_remaining"] = until - now_ns()
        out["ts"] = rfc3339(now_ns())
        return out

    # -- life cycle -------------------------------------------------------------------------------
    def stop(self, delete: bool = False, from_stream: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for t in (self._kick_handle, self._ptmr, self._hb_timer, self._wait_timer, self._dtmr, self._pause_timer,
                  self._interest_timer, self._save_handle):
            if t is not None:
                t.cancel()
        for sub in self._subs:
            self.js.server.unsubscribe_internal(sub)
        self._subs = []
        if delete:
            for wr in self.waiting:
                self.js.server.send_internal(self.account, wr.reply, None,
                                             _PENDING_HDR % (b"409 Consumer Deleted", wr.n, wr.b), b"")
            self.waiting.clear()
            if not from_stream:
                self.store.delete()
        else:
            self.store.update(self.state())
            self.store.stop()


def new_consumer_name() -> str:
    """A random 8-character name, as nats-server's createConsumerName for ephemerals."""
    return "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(8))
