"""The memory store: a stream's messages in a list indexed by sequence, with per-subject bookkeeping.

The index is a list of subjects whose slot is `seq - base` (the subject string is shared by every message of
that subject through the per-subject state, so a slot costs one pointer); removed messages leave `None` until
the front is trimmed. What a message holds besides its subject lives beside the index: here a parallel list
of (hdr, data, ts) tuples; the file store (file.py) reuses the index and keeps the rest on disk, reading it
through a block cache. The hooks `_keep`, `_drop`, `_size_at`, `_ts_at` and `_load` are where they differ.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from itertools import islice, repeat
from operator import lt
from time import time_ns

from .. import filters as subj
from . import (MAX_BYTES, MAX_MSGS, MAX_MSGS_PER_SUBJECT, MAX_SEQ, SEQ_EXHAUSTED, ConsumerStore, SimpleState,
               StoreError, StoreMsg, StreamState, StreamStore, mem_msg_size)
from ..clock import now_ns

_HDR, _DATA, _TS = 0, 1, 2  # a memory store's values: (hdr, data, ts)
# per-subject state: [msgs, first, last, first_stale, last_stale, subject, sequences, head]: `sequences[head:]`
# are the subject's stored sequences in order (an array of unsigned 8-byte ints: a stream may start anywhere
# up to 2^64-1, as nats-server's uint64 `first_seq` allows), so counting or finding the messages of
# one subject in a range is a bisection, not a pass over the stream.
_N, _FIRST, _LAST, _FSTALE, _LSTALE, _NAME, _SEQS, _HEAD = range(8)
_TRIM_AT = 4096


def _new_subject(subject: str, seq: int) -> list:
    """The per-subject state of a subject whose first message is `seq`."""
    return [1, seq, seq, False, False, subject, array("Q", (seq,)), 0]


def _all(filters) -> bool:
    return not filters or any(f in ("", ">") for f in filters)


class MemoryStore(StreamStore):
    storage = "memory"
    msg_size = staticmethod(mem_msg_size)

    def __init__(self, cfg: dict):
        self._recs: list = []
        self._vals: list = []
        self._base = 1
        self.first_seq = 0
        self.last_seq = 0
        self.first_ts = 0
        self.last_ts = 0
        self.msgs = 0
        self.bytes = 0
        self._fss: dict[str, list] = {}
        self._ttls: dict[int, int] = {}
        self._never: set[int] = set()
        self.update_config(cfg)
        first = cfg.get("first_seq") or 0
        if first > 1:
            self._reset_to(first)

    # -- configuration --------------------------------------------------------------------------
    def update_config(self, cfg: dict) -> None:
        self.max_msgs = cfg.get("max_msgs", -1)
        self.max_bytes = cfg.get("max_bytes", -1)
        self.max_per = cfg.get("max_msgs_per_subject", -1)
        self.discard_new = cfg.get("discard") == "new"
        self.discard_new_per = bool(cfg.get("discard_new_per_subject"))
        # No limit for a new message to meet (store_held's shortcut).
        self._unlimited = self.max_msgs <= 0 and self.max_bytes <= 0 and self.max_per <= 0 and not self.discard_new
        if self.max_per > 0:
            for name in list(self._fss):
                ss = self._fss.get(name)
                while ss is not None and ss[_N] > self.max_per:
                    self._fix(ss)
                    self._remove(ss[_FIRST])
                    ss = self._fss.get(name)
        self._enforce_limits()

    # -- writing --------------------------------------------------------------------------------
    def begin_writes(self) -> None:
        """A run of stores follows (the file store writes them in one go at end_writes)."""

    def end_writes(self) -> None:
        pass

    _fast_hold = False

    def hold_writes(self) -> bool:
        """Hold what store_held writes until end_writes (see FileStore.hold_writes): True if this started a hold.
        Nothing to hold here."""
        return False

    def store_held(self, subject: str, data: bytes) -> int:
        """store_msg of a message without headers or TTL (a fast batch's), its record held if writes are. Here,
        with no limit to apply, straight to _insert (the file store has its own)."""
        seq = self.last_seq + 1
        if not self._unlimited or seq > MAX_SEQ:
            return self.store_msg(subject, None, data)[0]
        ts = now_ns()
        if ts <= self.last_ts:
            ts = self.last_ts + 1
        self._insert(seq, subject, None, data, ts, 0, self._fss.get(subject), len(subject) + len(data) + 16)
        return seq

    def write_held(self) -> None:
        pass

    def store_msg(self, subject, hdr, data, ttl=0, ts=0):
        ss = self._fss.get(subject)
        at_subject_limit = ss is not None and self.max_per > 0 and ss[_N] >= self.max_per
        size = self.msg_size(subject, hdr, data)
        if self.discard_new:
            self._check_discard_new(subject, hdr, size, ss, at_subject_limit)
        seq = self.last_seq + 1
        if seq > MAX_SEQ:
            raise StoreError(SEQ_EXHAUSTED)
        if not ts:
            ts = now_ns()
            if ts <= self.last_ts:
                ts = self.last_ts + 1
        self._persist_msg(seq, subject, hdr, data, ts, ttl)
        self._insert(seq, subject, hdr, data, ts, ttl, ss, size)
        if self.max_per > 0 and ss is not None and ss[_N] > self.max_per:
            while ss[_N] > self.max_per:
                self._fix(ss)
                self._remove(ss[_FIRST])
        if (self.max_msgs > 0 and self.msgs > self.max_msgs) or (self.max_bytes > 0 and self.bytes > self.max_bytes):
            self._enforce_limits()
        return seq, ts

    def store_batch(self, msgs):
        """Store (subject, hdr, data) tuples as consecutive store_msg calls without a TTL would, in one pass
        (a committed atomic batch): one sequence more per message, each stamped with its own clock read as
        nats-server stamps each (never earlier than the message before it). Taken only when no limit
        acts on the way: under discard new a limit, and max_msgs or max_bytes, must have room for all of them;
        max_msgs_per_subject alone is applied once at the end (the same messages go as one by one). Otherwise
        0, nothing stored."""
        n = len(msgs)
        if not n or self.last_seq + n > MAX_SEQ or (self.discard_new and (self.max_per > 0 or self.max_msgs > 0
                                                                        or self.max_bytes > 0)):
            return 0
        if self.max_msgs > 0 and self.msgs + n > self.max_msgs:
            return 0
        if self.max_bytes > 0 and self.bytes + sum(
                len(s) + (len(h) if h else 0) + len(d) for s, h, d in msgs) + 16 * n > self.max_bytes:
            return 0
        subjects, hdrs, datas = zip(*msgs)
        if not all(hdrs):
            hdrs = [h or None for h in hdrs]
        fss, recs = self._fss, self._recs
        max_per = self.max_per
        over = []
        seq = self.last_seq
        stamps = [time_ns() for _ in repeat(None, n)]  # clock.now_ns's read, without its call
        if stamps[0] <= self.last_ts or not all(map(lt, stamps, islice(stamps, 1, None))):
            ts = self.last_ts
            for i, now in enumerate(stamps):
                ts = now if now > ts else ts + 1
                stamps[i] = ts
        if self.msgs == 0:
            self.first_seq, self.first_ts = seq + 1, stamps[0]
        subject = subjects[0]
        if subjects.count(subject) == n:
            # One subject (a batch's usual case): its state and the index in bulk.
            ss = fss.get(subject)
            if ss is None:
                ss = fss[subject] = _new_subject(subject, seq + 1)
                ss[_SEQS].extend(range(seq + 2, seq + n + 1))
                ss[_N] = n
            else:
                subject = ss[_NAME]
                ss[_N] += n
                ss[_SEQS].extend(range(seq + 1, seq + n + 1))
            ss[_LAST] = seq + n
            ss[_LSTALE] = False
            if max_per > 0 and ss[_N] > max_per:
                over.append(ss)
            recs.extend(repeat(subject, n))
        else:
            for subject in subjects:  # _insert's bookkeeping, inline: a call per message is what this saves
                seq += 1
                ss = fss.get(subject)
                if ss is None:
                    fss[subject] = _new_subject(subject, seq)
                else:
                    subject = ss[_NAME]
                    ss[_N] += 1
                    ss[_LAST] = seq
                    ss[_LSTALE] = False
                    ss[_SEQS].append(seq)
                    if max_per > 0 and ss[_N] > max_per:
                        over.append(ss)
                recs.append(subject)
            seq -= n
        self._vals.extend(zip(hdrs, datas, stamps))
        # mem_msg_size of each: subject, headers, data and 16
        added = sum(map(len, subjects)) + sum(map(len, filter(None, hdrs))) + sum(map(len, datas)) + 16 * n
        seq += n
        self.last_seq, self.last_ts = seq, stamps[-1]
        self.msgs += n
        self.bytes += added
        for ss in over:
            while ss[_N] > max_per:
                self._fix(ss)
                self._remove(ss[_FIRST])
        return seq

    def _check_discard_new(self, subject, hdr, size, ss, at_subject_limit):
        if at_subject_limit and self.discard_new_per and not (hdr and b"Nats-Rollup:" in hdr):
            raise StoreError(MAX_MSGS_PER_SUBJECT)
        if self.max_msgs > 0 and self.msgs >= self.max_msgs and not at_subject_limit:
            raise StoreError(MAX_MSGS)
        if self.max_bytes > 0 and self.bytes + size > self.max_bytes:
            if not at_subject_limit:
                raise StoreError(MAX_BYTES)
            self._fix(ss)
            first = ss[_FIRST]
            if self._rec(first) is None or self._size_at(first - self._base) < size:
                raise StoreError(MAX_BYTES)

    def _insert(self, seq, subject, hdr, data, ts, ttl, ss, size):
        if ss is None:
            ss = self._fss[subject] = _new_subject(subject, seq)
        else:
            subject = ss[_NAME]
            ss[_N] += 1
            ss[_LAST] = seq
            ss[_LSTALE] = False
            ss[_SEQS].append(seq)
        self._recs.append(subject)
        self._keep(hdr, data, ts, size)
        if self.msgs == 0:
            self.first_seq, self.first_ts = seq, ts
        self.last_seq, self.last_ts = seq, ts
        self.msgs += 1
        self.bytes += size
        if ttl > 0:
            self._ttls[seq] = ts + ttl * 1_000_000_000
        elif ttl < 0:
            self._never.add(seq)

    def skip_msg(self, ts: int = 0) -> int:
        """`ts`: the time the sequence keeps, as given (a restore's deleted last sequences, as store_msg takes a
        given time); else now."""
        seq = self.last_seq + 1
        if seq > MAX_SEQ:
            raise StoreError(SEQ_EXHAUSTED)
        ts = ts or max(now_ns(), self.last_ts + 1)
        self._persist_skip(seq, ts)
        self._apply_skip(seq, ts)
        return seq

    def _apply_skip(self, seq, ts):
        self._recs.append(None)
        self._keep_holes(1)
        self.last_seq, self.last_ts = seq, ts
        if self.msgs == 0:
            self.first_seq, self.first_ts = seq + 1, 0
            self._trim()

    def _enforce_limits(self):
        if self.discard_new:
            return
        if self.max_msgs > 0:
            while self.msgs > self.max_msgs:
                self._remove(self.first_seq)
        if self.max_bytes > 0:
            while self.bytes > self.max_bytes and self.msgs:
                self._remove(self.first_seq)

    # -- removing -------------------------------------------------------------------------------
    def remove_msg(self, seq: int) -> bool:
        if self._rec(seq) is None:
            return False
        self._persist_removes([seq])
        return self._remove(seq, persist=False)

    def erase_msg(self, seq: int) -> bool:
        return self.remove_msg(seq)

    def _remove(self, seq: int, persist: bool = True) -> bool:
        i = seq - self._base
        if i < 0 or i >= len(self._recs):
            return False
        subject = self._recs[i]
        if subject is None:
            return False
        if persist:
            self._persist_removes([seq])
        self.bytes -= self._drop(i)
        self._recs[i] = None
        self.msgs -= 1
        if self._ttls:
            self._ttls.pop(seq, None)
        if self._never:
            self._never.discard(seq)
        ss = self._fss[subject]
        if ss[_N] == 1:
            del self._fss[subject]
        else:
            ss[_N] -= 1
            seqs, head = ss[_SEQS], ss[_HEAD]
            if seqs[head] == seq:
                head += 1
                if head >= 1024 and head * 2 >= len(seqs):
                    del seqs[:head]
                    head = 0
                ss[_HEAD] = head
            else:
                del seqs[bisect_left(seqs, seq, head)]
            if seq == ss[_FIRST]:
                ss[_FSTALE] = True
            if seq == ss[_LAST]:
                ss[_LSTALE] = True
        if seq == self.first_seq:
            self._advance_first()
        return True

    def _advance_first(self):
        recs, base = self._recs, self._base
        i = self.first_seq - base + 1
        n = len(recs)
        while i < n and recs[i] is None:
            i += 1
        if i < n and self.msgs:
            self.first_seq = base + i
            self.first_ts = self._first_ts_at(i)
        else:
            self.first_seq, self.first_ts = self.last_seq + 1, 0
        self._trim()

    def _trim(self):
        k = self.first_seq - self._base
        if k >= _TRIM_AT and k * 2 >= len(self._recs):
            del self._recs[:k]
            self._trim_vals(k)
            self._base += k

    def _reset_to(self, first: int):
        """Forget every message; the next one stored gets sequence `first`."""
        self._recs = []
        self._clear_vals()
        self._base = first
        self.first_seq, self.first_ts = first, 0
        self.last_seq = first - 1
        self.msgs = self.bytes = 0
        self._fss = {}
        self._ttls = {}
        self._never = set()

    def purge(self) -> int:
        purged = self.msgs
        self._persist_purge(self.last_seq + 1)
        self._reset_to(self.last_seq + 1)
        return purged

    def compact(self, seq: int) -> int:
        """nats-server's Compact: remove everything below `seq`; past the end the store restarts at `seq`."""
        if seq == 0:
            return self.purge()
        if self.first_seq > seq:
            return 0
        if seq <= self.last_seq:
            self._persist_purge(seq)
            purged = 0
            for s in range(max(self.first_seq, self._base), seq):
                if self._remove(s, persist=False):
                    purged += 1
            if self.msgs == 0:
                self.first_seq, self.first_ts = self.last_seq + 1, 0
            return purged
        purged = self.msgs
        self._persist_purge(seq)
        self._reset_to(seq)
        return purged

    def purge_ex(self, subject: str, seq: int, keep: int) -> int:
        if seq == 1:
            return 0
        if subject in ("", ">"):
            if keep == 0 and seq == 0:
                return self.purge()
            if seq > 1:
                return self.compact(seq)
            subject = ">"
        ss = self.filtered_state(1, subject)
        if ss.msgs == 0:
            return 0
        maxp = 0
        if keep > 0:
            if keep >= ss.msgs:
                return 0
            maxp = ss.msgs - keep
        last = ss.last if seq == 0 else min(seq - 1, ss.last)
        literal = subj.is_literal(subject)
        doomed = []
        for s in range(ss.first, last + 1):
            name = self._rec(s)
            if name is not None and (name == subject if literal else subj.matches(subject, name)):
                doomed.append(s)
                if maxp and len(doomed) >= maxp:
                    break
        if doomed:
            self._persist_removes(doomed)
            for s in doomed:
                self._remove(s, persist=False)
        return len(doomed)

    def expire_candidates(self, now: int, max_age: int) -> list[int]:
        """Sequences due to go, oldest first: older than max_age (unless their TTL says never) or past their TTL."""
        due = set()
        if max_age > 0 and self.msgs:
            cutoff = now - max_age
            recs, base, ts_at = self._recs, self._base, self._ts_at
            for i in range(self.first_seq - base, len(recs)):
                if recs[i] is None:
                    continue
                if ts_at(i) > cutoff:
                    break
                if base + i not in self._never:
                    due.add(base + i)
        if self._ttls:
            due.update(s for s, at in self._ttls.items() if at <= now)
        return sorted(due)

    def expire(self, now: int, max_age: int) -> list[int]:
        gone = [seq for seq in self.expire_candidates(now, max_age) if self._rec(seq) is not None]
        if gone:
            self._persist_removes(gone)
            for seq in gone:
                self._remove(seq, persist=False)
        return gone

    def next_expiry(self, max_age: int) -> int:
        times = []
        if max_age > 0 and self.msgs:
            first_ts = self.first_ts
            if self._never:
                recs, base = self._recs, self._base
                first_ts = next((self._ts_at(i) for i, r in enumerate(recs)
                                 if r is not None and base + i not in self._never), 0)
            if first_ts:
                times.append(first_ts + max_age)
        if self._ttls:
            times.append(min(self._ttls.values()))
        return min(times) if times else 0

    # -- reading --------------------------------------------------------------------------------
    def _rec(self, seq: int):
        i = seq - self._base
        if 0 <= i < len(self._recs):
            return self._recs[i]
        return None

    # -- what a slot holds besides its subject (the file store overrides these) -------------------
    def _keep(self, hdr, data, ts, size) -> None:
        """The values of the message just appended to the index."""
        self._vals.append((hdr or None, data, ts))

    def _keep_holes(self, n: int) -> None:
        """`n` slots without a message (skips, gaps) were appended to the index."""
        self._vals.extend([None] * n)

    def _drop(self, i: int) -> int:
        """Let go of the values of slot `i`; the bytes its message counted for."""
        v = self._vals[i]
        self._vals[i] = None
        return self.msg_size(self._recs[i], v[_HDR], v[_DATA])

    def _trim_vals(self, k: int) -> None:
        del self._vals[:k]

    def _clear_vals(self) -> None:
        self._vals = []

    def _size_at(self, i: int) -> int:
        """The bytes the message in slot `i` counts for."""
        v = self._vals[i]
        return self.msg_size(self._recs[i], v[_HDR], v[_DATA])

    def _ts_at(self, i: int) -> int:
        return self._vals[i][_TS]

    def _first_ts_at(self, i: int):
        """The time of the new first message (slot `i`); the file store answers None: read when asked."""
        return self._vals[i][_TS]

    def _load(self, seq: int, subject: str, sequential: bool = False) -> StoreMsg:
        """The message in slot `seq` (known to hold `subject`); `sequential` when a scan reads on from it."""
        v = self._vals[seq - self._base]
        return StoreMsg(subject, v[_HDR], v[_DATA], seq, v[_TS])

    def load_msg(self, seq: int) -> StoreMsg | None:
        subject = self._rec(seq)
        return None if subject is None else self._load(seq, subject)

    def subject_for_seq(self, seq: int) -> str | None:
        return self._rec(seq)

    def has_msg(self, seq: int) -> bool:
        # From the index (the file store inherits it: no disk read); a file record that no longer reads back
        # intact still counts as stored here, load_msg reports it when the message is actually needed.
        return self._rec(seq) is not None

    def _fix(self, ss):
        """Bring a subject's lazily kept first/last sequence up to date (from its sequence array)."""
        if ss[_FSTALE] or ss[_LSTALE]:
            seqs = ss[_SEQS]
            ss[_FIRST], ss[_LAST], ss[_FSTALE], ss[_LSTALE] = seqs[ss[_HEAD]], seqs[-1], False, False
        return ss

    def load_next_msg(self, filters, start: int) -> StoreMsg | None:
        if start < self.first_seq:
            start = self.first_seq
        recs, base = self._recs, self._base
        if start < base:
            start = base
        if start > self.last_seq or not self.msgs:
            return None
        if not filters or _all(filters):
            rec = recs[start - base]
            if rec is not None:
                return self._load(start, rec, True)
            for i in range(start - base + 1, len(recs)):
                rec = recs[i]
                if rec is not None:
                    return self._load(base + i, rec, True)
            return None
        if len(filters) == 1 and subj.is_literal(filters[0]):
            ss = self._fss.get(filters[0])
            if ss is None:
                return None
            seqs = ss[_SEQS]
            i = bisect_left(seqs, start, ss[_HEAD])
            return self._load(seqs[i], ss[_NAME], True) if i < len(seqs) else None
        # A wildcard filter: jump to the earliest matching subject when few subjects are tracked.
        if len(self._fss) < 256:
            best = 0
            for name, ss in self._fss.items():
                if subj.matches_any(filters, name):
                    self._fix(ss)
                    if ss[_LAST] < start:
                        continue
                    cand = ss[_FIRST] if ss[_FIRST] >= start else self._count_subject(name, start, ss[_LAST])[1]
                    if cand and (not best or cand < best):
                        best = cand
            return self._load(best, self._recs[best - self._base], True) if best else None
        match = subj.matches_any
        for i in range(start - base, len(recs)):
            rec = recs[i]
            if rec is not None and match(filters, rec):
                return self._load(base + i, rec, True)
        return None

    def headers_from(self, seq: int):
        recs, base = self._recs, self._base
        for i in range(max(seq, self.first_seq, base) - base, len(recs)):
            if recs[i] is not None:
                v = self._vals[i]
                if v[_HDR]:
                    yield base + i, v[_TS], v[_HDR]

    def load_prev_msg(self, filters, start: int) -> StoreMsg | None:
        start = min(start, self.last_seq)
        everything = _all(filters)
        for s in range(start, self.first_seq - 1, -1):
            rec = self._rec(s)
            if rec is not None and (everything or subj.matches_any(filters, rec)):
                return self._load(s, rec, True)
        return None

    def load_last_msg(self, subject: str) -> StoreMsg | None:
        if not self.msgs:
            return None
        if subject in ("", ">"):
            return self.load_prev_msg((), self.last_seq)
        if subj.is_literal(subject):
            ss = self._fss.get(subject)
            if ss is None:
                return None
            self._fix(ss)
            return self.load_msg(ss[_LAST])
        best = 0
        for name, ss in self._fss.items():
            if subj.matches(subject, name):
                self._fix(ss)
                best = max(best, ss[_LAST])
        return self.load_msg(best) if best else None

    def get_seq_from_time(self, ts: int) -> int:
        if not self.msgs:
            return self.last_seq + 1
        if ts <= self.first_ts:
            return self.first_seq
        if ts > self.last_ts:
            return self.last_seq + 1
        lo, hi = self.first_seq - self._base, len(self._recs) - 1
        recs = self._recs
        while lo < hi:
            mid = (lo + hi) // 2
            j = mid
            while j <= hi and recs[j] is None:
                j += 1
            if j > hi:
                hi = mid
                continue
            if self._ts_at(j) >= ts:
                hi = mid
            else:
                lo = j + 1
        while lo < len(recs) and recs[lo] is None:
            lo += 1
        return self._base + lo if lo < len(recs) else self.last_seq + 1

    def filtered_state(self, seq: int, subject: str) -> SimpleState:
        seq = max(seq, self.first_seq)
        if seq > self.last_seq or not self.msgs:
            return SimpleState()
        if subject in ("", ">") and seq <= self.first_seq:
            last = self.load_last_msg(">")
            return SimpleState(self.msgs, self.first_seq, last.seq if last else 0)
        out = SimpleState()
        if subj.is_literal(subject) or len(self._fss) < self.msgs:
            for name, ss in self._fss.items():
                if subject in ("", ">") or name == subject or subj.matches(subject, name):
                    self._fix(ss)
                    if ss[_LAST] < seq:
                        continue
                    if ss[_FIRST] >= seq:
                        n, first = ss[_N], ss[_FIRST]
                    else:
                        n, first = self._count_subject(name, seq, ss[_LAST])
                    if not n:
                        continue
                    out.msgs += n
                    out.first = first if not out.first else min(out.first, first)
                    out.last = max(out.last, ss[_LAST])
            return out
        for s in range(seq, self.last_seq + 1):
            rec = self._rec(s)
            if rec is not None and subj.matches(subject, rec):
                out.msgs += 1
                out.first = out.first or s
                out.last = s
        return out

    def _count_subject(self, name: str, start: int, end: int) -> tuple[int, int]:
        """How many messages of subject `name` lie in [start, end], and the first one's sequence."""
        ss = self._fss.get(name)
        if ss is None:
            return 0, 0
        seqs, head = ss[_SEQS], ss[_HEAD]
        i = bisect_left(seqs, start, head)
        n = bisect_right(seqs, end, i) - i
        return (n, seqs[i]) if n else (0, 0)

    def subjects_state(self, filter_subject: str) -> dict[str, SimpleState]:
        out = {}
        for name, ss in self._fss.items():
            if filter_subject in ("", ">") or subj.matches(filter_subject, name):
                self._fix(ss)
                out[name] = SimpleState(ss[_N], ss[_FIRST], ss[_LAST])
        return out

    def num_pending(self, sseq: int, filters, last_per_subject: bool = False) -> int:
        sseq = max(sseq, self.first_seq)
        if sseq > self.last_seq or not self.msgs:
            return 0
        everything = _all(filters)
        if last_per_subject:
            n = 0
            for name, ss in self._fss.items():
                if everything or subj.matches_any(filters, name):
                    self._fix(ss)
                    if ss[_LAST] >= sseq:
                        n += 1
            return n
        if everything:
            if sseq <= self.first_seq:
                return self.msgs
            after = self.last_seq - sseq + 1
            if self.msgs == self.last_seq - self.first_seq + 1:
                return after  # no holes
            # Count the holes on the shorter side of sseq (C-level list.count, still a pass over it).
            base = self._base
            if after <= sseq - self.first_seq:
                return after - self._recs[sseq - base:self.last_seq - base + 1].count(None)
            gone = self._recs[self.first_seq - base:sseq - base].count(None)
            return self.msgs - (sseq - self.first_seq - gone)
        span = self.last_seq - sseq + 1
        if len(self._fss) <= span:
            n = 0
            for name, ss in self._fss.items():
                if subj.matches_any(filters, name):
                    self._fix(ss)
                    if ss[_LAST] < sseq:
                        continue
                    n += ss[_N] if ss[_FIRST] >= sseq else self._count_subject(name, sseq, ss[_LAST])[0]
            return n
        n = 0
        match = subj.matches_any
        for s in range(sseq, self.last_seq + 1):
            rec = self._rec(s)
            if rec is not None and match(filters, rec):
                n += 1
        return n

    def last_seqs_per_subject(self, filters) -> list[int]:
        everything = _all(filters)
        out = []
        for name, ss in self._fss.items():
            if everything or subj.matches_any(filters, name):
                self._fix(ss)
                out.append(ss[_LAST])
        out.sort()
        return out

    def state(self, with_deleted: bool = False) -> StreamState:
        st = StreamState(self.msgs, self.bytes, self.first_seq, self.first_ts, self.last_seq, self.last_ts,
                         num_subjects=len(self._fss))
        if self.msgs and self.last_seq > self.first_seq:
            st.num_deleted = (self.last_seq - self.first_seq + 1) - self.msgs
        if with_deleted and st.num_deleted:
            st.deleted = [s for s in range(self.first_seq, self.last_seq + 1) if self._rec(s) is None]
        return st

    # -- persistence hooks (no-ops in memory) ---------------------------------------------------
    def _persist_msg(self, seq, subject, hdr, data, ts, ttl):
        pass

    def _persist_skip(self, seq, ts):
        pass

    def _persist_removes(self, seqs):
        pass

    def _persist_purge(self, first_seq):
        pass

    # -- life cycle ------------------------------------------------------------------------------
    def consumer_store(self, name: str) -> ConsumerStore:
        return MemoryConsumerStore()

    def stop(self) -> None:
        pass

    def delete(self) -> None:
        self._reset_to(1)


class MemoryConsumerStore(ConsumerStore):
    def save_config(self, cfg: dict, created: int) -> None:
        pass

    def update(self, state: dict) -> None:
        pass

    def stop(self) -> None:
        pass

    def delete(self) -> None:
        pass
