"""The storage interface of a stream and of its consumers, shared by the memory and the file store.

Modelled on nats-server's StreamStore/ConsumerStore (store.go): a store hands out sequences and timestamps,
enforces the stream's limits (max_msgs, max_bytes, max_msgs_per_subject, discard) and answers questions
about its contents; the stream above it owns publishing rules, retention and consumers.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class StoreError(Exception):
    """A message could not be stored or removed; the text is nats-server's (it reaches clients)."""


# nats-server's texts for the refusals a store makes (they reach clients in a 10077 error).
MAX_MSGS = "maximum messages exceeded"
MAX_BYTES = "maximum bytes exceeded"
MAX_MSGS_PER_SUBJECT = "maximum messages per subject exceeded"
# Sequences are uint64 as in nats-server; past the last one nats-server wraps to 0, this store refuses.
MAX_SEQ = (1 << 64) - 1
SEQ_EXHAUSTED = "sequence space exhausted"


class StoreCorrupt(Exception):
    """A store on disk cannot be trusted (bad checksum in its metadata, a record out of order, ...)."""


class StoreMsg:
    """One stored message as loaded from a store."""

    __slots__ = ("subject", "hdr", "data", "seq", "ts")

    def __init__(self, subject: str, hdr: bytes | None, data: bytes, seq: int, ts: int):
        self.subject = subject
        self.hdr = hdr
        self.data = data
        self.seq = seq
        self.ts = ts

    def __repr__(self) -> str:
        return f"StoreMsg(seq={self.seq}, subject={self.subject!r}, {len(self.data)} bytes)"


@dataclass
class SimpleState:
    msgs: int = 0
    first: int = 0
    last: int = 0


@dataclass
class StreamState:
    msgs: int = 0
    bytes: int = 0
    first_seq: int = 0
    first_ts: int = 0
    last_seq: int = 0
    last_ts: int = 0
    num_subjects: int = 0
    num_deleted: int = 0
    deleted: list[int] | None = None
    lost_msgs: list[int] = field(default_factory=list)
    lost_bytes: int = 0


def mem_msg_size(subject: str, hdr: bytes | None, data: bytes) -> int:
    """Bytes a message counts for in a memory stream (nats-server's memStoreMsgSize)."""
    return len(subject) + (len(hdr) if hdr else 0) + len(data) + 16


def file_msg_size(subject: str, hdr: bytes | None, data: bytes) -> int:
    """Bytes a message counts for in a file stream (nats-server's fileStoreMsgSize)."""
    if hdr:
        return 22 + len(subject) + 4 + len(hdr) + len(data) + 8
    return 22 + len(subject) + len(data) + 8


class StreamStore:
    """What a stream needs from its storage. Sequences start at 1; 0 means "none".

    Methods run on the server's event loop thread; they never block for long (a file store writes with
    os.write, and fsyncs only when configured to).
    """

    storage = ""

    def store_msg(self, subject: str, hdr: bytes | None, data: bytes, ttl: int = 0, ts: int = 0) -> tuple[int, int]:
        """Store and return (seq, ts); `ts` keeps a given time (a mirror keeps its origin's), never going back.
        Raises StoreError (MAX_MSGS, ...) under discard new."""
        raise NotImplementedError

    def store_batch(self, msgs: list) -> int:
        """Store `msgs`, (subject, hdr, data) tuples without a TTL, as that many store_msg calls would, in one
        pass: the last sequence. 0 with nothing stored when this store does not take them so (here: never; a
        limit that would remove or refuse one of them on the way): the caller stores them one by one."""
        return 0

    def skip_msg(self, ts: int = 0) -> int:
        """Use up the next sequence without storing anything (interest retention with no interest); `ts`, when
        given, is the time it keeps (a restore), else now."""
        raise NotImplementedError

    def load_msg(self, seq: int) -> StoreMsg | None:
        raise NotImplementedError

    def has_msg(self, seq: int) -> bool:
        """Whether sequence `seq` is stored (not removed), answered without reading the message."""
        return self.load_msg(seq) is not None

    def load_next_msg(self, filters: tuple[str, ...], start: int) -> StoreMsg | None:
        """The first message at or after `start` whose subject matches one of `filters` (empty: all)."""
        raise NotImplementedError

    def load_last_msg(self, subject: str) -> StoreMsg | None:
        """The last message matching `subject` (wildcards allowed; "" or ">" is the whole stream)."""
        raise NotImplementedError

    def headers_from(self, seq: int):
        """(seq, ts, hdr) of each stored message with headers from `seq` on, oldest first (what a restart's
        de-duplication rebuild reads: only messages with headers can carry a Nats-Msg-Id)."""
        while (sm := self.load_next_msg((), seq)) is not None:
            if sm.hdr:
                yield sm.seq, sm.ts, sm.hdr
            seq = sm.seq + 1

    def load_prev_msg(self, filters: tuple[str, ...], start: int) -> StoreMsg | None:
        raise NotImplementedError

    def remove_msg(self, seq: int) -> bool:
        raise NotImplementedError

    def erase_msg(self, seq: int) -> bool:
        """Remove and overwrite the message's bytes where the store keeps them."""
        raise NotImplementedError

    def purge(self) -> int:
        raise NotImplementedError

    def purge_ex(self, subject: str, seq: int, keep: int) -> int:
        """Purge matching messages below `seq` (if given), keeping the newest `keep` (if given)."""
        raise NotImplementedError

    def compact(self, seq: int) -> int:
        """Remove every message below `seq`; the next stored message gets at least `seq`."""
        raise NotImplementedError

    def expire(self, now: int, max_age: int) -> list[int]:
        """Remove messages older than max_age (ns) and those whose per-message TTL ran out; their seqs."""
        raise NotImplementedError

    def next_expiry(self, max_age: int) -> int:
        """When (ns since epoch) the next message expires, 0 if none will."""
        raise NotImplementedError

    def get_seq_from_time(self, ts: int) -> int:
        raise NotImplementedError

    def filtered_state(self, seq: int, subject: str) -> SimpleState:
        raise NotImplementedError

    def subjects_state(self, filter_subject: str) -> dict[str, SimpleState]:
        raise NotImplementedError

    def num_pending(self, sseq: int, filters: tuple[str, ...], last_per_subject: bool = False) -> int:
        raise NotImplementedError

    def last_seqs_per_subject(self, filters: tuple[str, ...]) -> list[int]:
        raise NotImplementedError

    def state(self, with_deleted: bool = False) -> StreamState:
        raise NotImplementedError

    def update_config(self, cfg: dict) -> None:
        raise NotImplementedError

    def consumer_store(self, name: str) -> "ConsumerStore":
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything written so far durable on the medium (fsync for files)."""

    def stop(self) -> None:
        raise NotImplementedError

    def delete(self) -> None:
        raise NotImplementedError


class ConsumerStore:
    """Where a consumer keeps its config and delivery state so that it survives a restart."""

    def save_config(self, cfg: dict, created: int) -> None:
        raise NotImplementedError

    def update(self, state: dict) -> None:
        """Record the consumer's state (delivered, ack floor, pending, redelivered)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write out a state update that was coalesced (file stores write on a short timer)."""

    def stop(self) -> None:
        raise NotImplementedError

    def delete(self) -> None:
        raise NotImplementedError
