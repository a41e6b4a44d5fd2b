"""A consumer's acknowledgement state: what is pending (delivered, not acked), delivery counts, the redelivery
queue and the ack-wait timer (with backoff), and how +ACK, -NAK, +WPI, +TERM and the ack floors move it, as
nats-server's consumer.go (pending, rdc, rdq). A part of `Consumer` (consumer.py), which owns the state.
"""
from __future__ import annotations

import json
import random
import time

from . import advisories
from .clock import now_ns
from .stream import parse_go_duration

ACK_WAIT_DELAY = 0.001


class AckTracking:
    """See the module's docstring; the attributes are set by Consumer.__init__."""

    def _put_back(self, seq: int, dc: int) -> None:
        """A message picked for delivery could not go out now: it is the next one again."""
        if dc == 1 and seq == self.sseq - 1:
            self.sseq -= 1
            self.npc += 1
        elif seq not in self._rdqi:
            self._dec_delivery_count(seq)
            self.rdq.insert(0, seq)
            self._rdqi.add(seq)

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

    def _on_ack(self, sub, client, subject, reply, hdr, payload) -> None:
        # v1 $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (exactly 9 tokens) or v2
        # $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<more>]
        # (11 tokens or more), as nats-server's ackReplyInfo.
        dots = subject.count(".")
        if dots == 8:
            parts = subject.rsplit(".", 5)
        elif dots >= 10:
            parts = subject.split(".", 10)[5:]
        else:
            return
        try:
            dc, sseq, dseq = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            return
        msg = payload
        skip_reply = sseq == 0
        if not msg or msg == b"+ACK" or msg == b"+OK":
            if not self._process_ack(sseq, dseq, dc, sample=True):
                skip_reply = True
        elif msg.startswith(b"+NXT"):
            self._process_ack(sseq, dseq, dc, sample=True)
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

    def _process_ack(self, sseq: int, dseq: int, dc: int, remove_only: bool = False, sample: bool = False) -> bool:
        """nats-server's processAckMsg; True if the ack counted (its reply is then answered). `sample`: a
        client's +ACK or +NXT, which may be sampled for the ack metric (+TERM and the server's own are not)."""
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
                if sample and self.sfreq > 0 and self._should_sample():
                    # the ack subject's delivery sequence, not the pending one: nats-server samples first
                    advisories.ack_metric(self.js, self.account, self.stream.name, self.name, dseq, sseq,
                                          now_ns() - p[1], dc)
                if self.maxp > 0 and len(self.pending) >= self.maxp:
                    need_signal = True
                del self.pending[sseq]
                dseq = p[0]
                self._move_ack_floor(dseq, sseq)
            self.rdc.pop(sseq, None)
            self._rdq_remove(sseq)
            acked.append(sseq)
        elif policy in ("all", "flow_control"):
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

    def _should_sample(self) -> bool:
        """nats-server's shouldSample: every ack from 100 up; below, a draw of 0..99 at most sfreq (so "30%"
        samples 31 in 100, as nats-server does)."""
        return self.sfreq >= 100 or random.randrange(100) <= self.sfreq

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
        if policy in ("none", "all", "flow_control"):
            need = sseq > self.asflr
        else:
            need = sseq > self.asflr and (sseq >= self.sseq or sseq in self.pending)
        return need or sseq in self.rdc
