"""A consumer's durable state: what is saved (delivered and ack floors, pending, redelivery counts) and
restored after a restart, written soon after a change rather than on every one. A part of `Consumer`.
"""
from __future__ import annotations


class ConsumerPersistence:
    """See the module's docstring; the attributes are set by Consumer.__init__."""

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

    def reset_position(self, seq: int) -> None:
        """Deliver from stream sequence `seq` on, as if everything before it was acknowledged and nothing was
        pending (nats-server's resetLocalStartingSeq; `$JS.API.CONSUMER.RESET`)."""
        previous = self.asflr
        self.pending, self.rdc = {}, {}
        self.rdq, self._rdqi = [], set()
        self.sseq, self.dseq = seq, 1
        self.adflr, self.asflr = 0, seq - 1
        self.ldt = self.lat = 0
        self._npc_stale = True
        self._save()
        if seq - 1 > previous:
            self.stream.cleanup_no_interest(previous + 1)
        self.kick()

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
