"""A push consumer's side channels: interest in the deliver subject, idle heartbeats and flow control, as
nats-server's consumer.go. A part of `Consumer` (consumer.py).
"""
from __future__ import annotations

import random
import time

from . import headers


IDLE_HEARTBEAT_HDR = b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: %d\r\nNats-Last-Stream: %d\r\n\r\n"


class PushDelivery:
    """See the module's docstring; the attributes are set by Consumer.__init__."""

    def _watch_interest(self) -> None:
        if self._interest_timer is None and not self.closed:
            self._interest_timer = self.js.loop.call_later(0.05, self._check_interest)
            # A subscription made meanwhile is noticed at once (nats-server updates interest as it subscribes).
            self.account.interest_watchers.append(self._interest_changed)

    def _interest_changed(self) -> None:
        if self._interest_timer is not None:
            self._interest_timer.cancel()
            self._interest_timer = self.js.loop.call_soon(self._check_interest)

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
            hdr = IDLE_HEARTBEAT_HDR % (self.dseq - 1, self.sseq - 1)
            if self.fcid:
                hdr = hdr[:-2] + b"Nats-Consumer-Stalled: " + self.fcid.encode() + b"\r\n\r\n"
            self.js.server.send_internal(self.account, self.cfg["deliver_subject"], None, hdr, b"")
            idle = 0.0
            if self.ack_fc and self.pending and not self.fcid:
                self._send_flow_control()
        if hb:
            self._hb_timer = self.js.loop.call_later(max(hb - idle, 0.001), self._send_hb)

    def _need_flow_control(self, sz: int) -> bool:
        if not self.fcid and self.pbytes > self.maxpb // 2:
            return True
        # Acking by flow control: ask once max_ack_pending is reached, or nothing more could go out.
        if not self.fcid and self.ack_fc and self.maxp > 0 and len(self.pending) >= self.maxp:
            return True
        if self.fcid and self.pbytes - self.fcsz >= self.maxpb:
            self.fcsz += sz
        return False

    def _send_flow_control(self) -> None:
        rnd = "".join(random.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
                      for _ in range(4))
        self.fcid = f"{self.fc_prefix}{self.stream.name}.{self.name}.{rnd}"
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
        if self.ack_fc and hdr:
            # The reply says how far the receiver got: an ack of everything up to there (AckAll-like).
            sseq = _header_int(hdr, b"Nats-Last-Stream")
            if sseq > 0:
                self._process_ack(sseq, max(_header_int(hdr, b"Nats-Last-Consumer"), 0), 1)


def _header_int(hdr: bytes, name: bytes) -> int:
    value = headers.get(hdr, name)
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
