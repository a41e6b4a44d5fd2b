"""A consumer: a cursor over a stream that delivers messages, tracks acknowledgements and redelivers.

It follows nats-server's consumer.go: a delivery loop (run soon after anything changes, never blocking)
takes redeliveries first, then the next message matching the filters, and sends it to the push deliver
subject or to the oldest waiting pull request, with the reply subject
`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`. Acks arrive on `$JS.ACK.<stream>.
<consumer>.>`; an ack-wait timer (with backoff) moves unacknowledged messages back to the redelivery queue.
Pull requests get nats-server's status messages (404 No Messages, 408 Request Timeout, 409 ...).

This module is the coordinator: the consumer's state, its start position and filters, the delivery loop,
pause, inactivity, config updates, info and life cycle. The rest is split by concern, each part a base class
working on the state set up here: consumer_acks.py (pending, delivery counts, redelivery, ack handling),
consumer_pull.py (waiting pull requests and their statuses, whole pull batches), consumer_push.py (interest,
heartbeats, flow control), consumer_state.py (what is saved and restored).
"""
from __future__ import annotations

import random
import time
from collections import deque

from embedded_server.client import encode_subject

from . import advisories, priority
from . import config as config_mod
from . import config_check
from . import config_json
from . import filters as subj
from . import headers
from .clock import now_ns, rfc3339
from .consumer_acks import ACK_WAIT_DELAY, AckTracking
from .consumer_pull import PENDING_STATUS_HDR, PullRequests, WaitingRequest
from .consumer_push import PushDelivery
from .sourcing import get_hash
from .consumer_state import ConsumerPersistence

FC_MAX_PENDING = 32 * 1024 * 1024


class Consumer(ConsumerPersistence, AckTracking, PullRequests, PushDelivery):
    """One consumer of a stream (see the module's docstring for its parts)."""

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
        self.pin_id = ""  # the pinned client's Nats-Pin-Id (priority policy pinned_client, priority.py)
        self.pinned_ts = 0
        self.pin_timer = None
        self.last_activity = time.monotonic()
        self._last_delivery = 0.0
        self._set_filters()
        # The ack sampling percentage as nats-server keeps it: Atoi of sample_freq without its "%", cut to 32 bits.
        freq = _go_int((cfg.get("sample_freq") or "0").removesuffix("%"))
        self.sfreq = ((freq + (1 << 31)) % (1 << 32)) - (1 << 31) if freq is not None else 0
        # v1 and v2 (nats-server 2.14+) forms of the ack and flow control subjects; replies use v2 only with the
        # feature flag js_ack_fc_v2.
        v2 = f"{self.js.domain or '_'}.{get_hash(self.account.name)}."
        self._ack_subject_v2 = f"$JS.ACK.{v2}{stream.name}.{name}.*.*.*.*.>"
        self._fc_subjects = (f"$JS.FC.{stream.name}.{name}.*", f"$JS.FC.{v2}{stream.name}.{name}.*")
        self.fc_prefix = f"$JS.FC.{v2}" if self.js.ack_v2 else "$JS.FC."
        self.ack_prefix = f"$JS.ACK.{v2 if self.js.ack_v2 else ''}{stream.name}.{name}."
        self._ack_subject_v1 = f"$JS.ACK.{stream.name}.{name}.>"
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
        self.ack_fc = cfg["ack_policy"] == "flow_control"  # acked by the replies to flow control (2.14+)
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

    def start(self) -> None:
        """Subscribe for acks, pull requests and flow control; start timers."""
        server, acc = self.js.server, self.account
        if not self.ack_fc:  # as nats-server, a flow control ack policy takes no acks on $JS.ACK
            self._subs.append(server.subscribe_internal(acc, self._ack_subject_v1, self._on_ack))
            self._subs.append(server.subscribe_internal(acc, self._ack_subject_v2, self._on_ack))
        if not self.is_push:
            self._subs.append(server.subscribe_internal(
                acc, f"$JS.API.CONSUMER.MSG.NEXT.{self.stream.name}.{self.name}", self._on_next_request))
        else:
            for fc_subject in self._fc_subjects:
                self._subs.append(server.subscribe_internal(acc, fc_subject, self._on_flow_control))
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
        for seq in [s for s in self.pending if not store.has_msg(s)]:
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
        whole_runs = not (is_push or self.replay or self._headers_only or self._backoff or self.ack_none
                          or self.cfg.get("priority_policy", "none") != "none")
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
                if self.pin_id and self.cfg.get("priority_policy") == "pinned_client":
                    hdr = headers.append(hdr, [(b"Nats-Pin-Id", self.pin_id.encode())])
                    sz += 15 + len(self.pin_id)
            if not self._deliver(dsubj, ack_reply, sm, hdr, data, dc, sz):
                self._put_back(sm.seq, dc)
                break
            if self.replay:
                self._replay_lts = sm.ts
            if wr is not None:
                if wr.n <= 0 and wr.b > 0:
                    self.js.server.send_internal(self.account, dsubj, None,
                                                 PENDING_STATUS_HDR % (b"409 Batch Completed", wr.n, wr.b), b"")
                if wr.hb and wr.n > 0:
                    wr.hbt = time.monotonic() + wr.hb
        if self.replay and self.sseq > self.stream.store.last_seq:
            self.replay = False
        if not is_push:
            self.last_activity = time.monotonic()
            self._process_waiting(eos=True)

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
            if self.ack_fc:
                pass  # no ack wait: nothing is redelivered until a reset
            elif self._backoff or self._ptmr is None or self._ptmr_due > now + self._ack_wait_ns:
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
        config_check.set_static_metadata(self.cfg)
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
        if old.get("sample_freq") != new.get("sample_freq"):
            # As nats-server's updateConfig: only a value that parses as a 32-bit number replaces the old one,
            # so an edit that removes sample_freq leaves the sampling as it was until the consumer is loaded again.
            freq = _go_int((new.get("sample_freq") or "").removesuffix("%"))
            if freq is not None and -(1 << 31) <= freq < (1 << 31):
                self.sfreq = freq
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
               "config": config_json.consumer_config_json(self.cfg, version), "delivered": delivered,
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
        if self.cfg.get("priority_groups"):
            out["priority_groups"] = priority.info(self)
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
        priority.unassign_pin(self)
        for sub in self._subs:
            self.js.server.unsubscribe_internal(sub)
        self._subs = []
        if delete:
            for wr in self.waiting:  # nats-server says only this: no pending counts
                self.js.server.send_internal(self.account, wr.reply, None,
                                             b"NATS/1.0 409 Consumer Deleted\r\n\r\n", b"")
            self.waiting.clear()
            if not from_stream:
                self.store.delete()
        else:
            self.store.update(self.state())
            self.store.stop()


def _go_int(text: str) -> int | None:
    """Go's strconv.Atoi of `text` (an optional sign, ASCII digits); None where it fails."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else None


def new_consumer_name() -> str:
    """A random 8-character name, as nats-server's createConsumerName for ephemerals."""
    return "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(8))

