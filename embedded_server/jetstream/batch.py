"""Atomic batch publish (`allow_atomic`): messages carrying `Nats-Batch-Id` and `Nats-Batch-Sequence` are held
until the one with `Nats-Batch-Commit: 1` (or `eob`, an end marker that is not stored) arrives; then every
message of the batch is checked as nats-server's checkMsgHeadersPreClusteredProposal checks it, and either all
are stored, in order and with nothing in between, or none is.

A staged message is answered with an empty message; the commit with a PubAck carrying `batch` and `count`.
Staged batches live in memory: a restart forgets batches that were not committed (none of them was
acknowledged as stored). A batch that hears nothing for 10 seconds is dropped, as in nats-server. A batch
given up (timeout, a gap, too large, an API level this server lacks) raises the BATCH_ABANDONED advisory.
The limits are nats-server's, changed as there by `jetstream { limits { batch { ... } } }` (`batch_limits`).
"""
from __future__ import annotations

import re

from . import advisories, counters, headers
from .clock import now_ns
from .config import API_LEVEL
from .errors import ApiError, api_error
from .store import MAX_BYTES, MAX_MSGS, MAX_MSGS_PER_SUBJECT

BATCH_ID = b"Nats-Batch-Id"
BATCH_SEQ = b"Nats-Batch-Sequence"
BATCH_COMMIT = b"Nats-Batch-Commit"
MAX_ID_LEN = 64
MAX_BATCH_SIZE = 1000
MAX_INFLIGHT_PER_STREAM = 50
MAX_INFLIGHT_TOTAL = 1000
TIMEOUT = 10.0
REQUIRED_API_LEVEL = b"Nats-Required-Api-Level"
_DEFAULTS = {"max_inflight_per_stream": MAX_INFLIGHT_PER_STREAM, "max_inflight_total": MAX_INFLIGHT_TOTAL,
             "max_msgs": MAX_BATCH_SIZE, "timeout": TIMEOUT}

_inflight_total = 0

# A message whose header block holds nothing but its batch's id and sequence (and the commit), in the order
# nats-py writes them or Go's sorted one: the values headers.get would find, read in one match. Anything
# else (another header, a repeated key, a long block) is read by the general path.
_PLAIN = re.compile(rb"NATS/1\.0\r\n(?:Nats-Batch-Commit: *([^\r\n]*)\r\n)?Nats-Batch-Id: *([^\r\n]+)\r\n"
                    rb"Nats-Batch-Sequence: *([0-9]{1,10})\r\n(?:Nats-Batch-Commit: *([^\r\n]*)\r\n)?\r\n")
PLAIN_MAX = 256
plain_match = _PLAIN.fullmatch
# One HPUB of a run (protocol.HPUBS, Parser.hpub_runs) after its "HPUB <subject> " head: the sizes, then a
# header block _PLAIN takes (group 3; groups 4-7 as _PLAIN's 1-4). The parser takes it when it is the message's
# whole header block (it ends where the header size says): the match at a place is unique (each optional line
# starts with "N", each next line not).
RUN_RECORD = re.compile(rb"([0-9]{1,9}) ([0-9]{1,9})\r\n(" + _PLAIN.pattern + rb")").match


def limit(js, name: str, default=None):
    """A batch limit: the server's `jetstream { limits { batch { name: ... } } }` when set above 0, else the
    default (atomic batches' unless another is given)."""
    value = js.batch_limits.get(name, 0)
    if value > 0:
        return value
    return _DEFAULTS[name] if default is None else default


def required_level_error(hdr: bytes) -> bool:
    """nats-server's errorOnRequiredApiLevel: Nats-Required-Api-Level is not an integer or above this server's."""
    value = headers.get(hdr, REQUIRED_API_LEVEL)
    if not value:
        return False
    try:
        return int(value) > API_LEVEL
    except ValueError:
        return True


class IdleTimer:
    """Calls `expire()` once nothing touched it for `timeout` seconds. A touch costs a clock read, not a new
    event-loop timer: batches touch theirs on every message."""
    __slots__ = ("loop", "timeout", "deadline", "handle", "expire")

    def __init__(self, loop, timeout: float, expire):
        self.loop, self.timeout, self.expire = loop, timeout, expire
        self.handle = None
        self.touch()

    def touch(self) -> None:
        self.deadline = self.loop.time() + self.timeout
        if self.handle is None:
            self.handle = self.loop.call_at(self.deadline, self._fire)

    def _fire(self) -> None:
        self.handle = None
        if self.loop.time() < self.deadline:
            self.handle = self.loop.call_at(self.deadline, self._fire)
        else:
            self.expire()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class AtomicBatch:
    """A batch being staged: its messages as (subject, hdr, data), the last sequence heard, its idle timer, and
    whether every message so far carried only the batch's own headers as `_PLAIN` reads them."""
    __slots__ = ("msgs", "lseq", "timer", "plain")

    def __init__(self):
        self.msgs: list[tuple[str, bytes, bytes]] = []
        self.lseq = 0
        self.timer = None
        self.plain = True


def _drop(st, batch_id: str, reason: str = "") -> None:
    global _inflight_total
    b = st.atomic_batches.pop(batch_id, None)
    if b is not None:
        _inflight_total -= 1
        if b.timer is not None:
            b.timer.cancel()
        if reason:
            advisories.batch_abandoned(st.js, st.account, st.name, batch_id, reason)


def drop_all(st) -> None:
    """The stream stops or goes away: its staged batches with it."""
    for batch_id in list(st.atomic_batches):
        _drop(st, batch_id)


def _arm(st, batch_id: str, b: AtomicBatch) -> None:
    if b.timer is None:
        b.timer = IdleTimer(st.js.loop, limit(st.js, "timeout"), lambda: _drop(st, batch_id, "timeout"))
    else:
        b.timer.touch()


def process(st, subject: str, reply: str, hdr: bytes, msg: bytes, batch_id: bytes) -> int:
    """One message of an atomic batch (nats-server's processJetStreamAtomicBatchMsg). Returns the last stored
    sequence on a successful commit, else 0."""
    try:
        return _process(st, subject, reply, hdr, msg, batch_id.decode("utf-8", "replace"))
    except ApiError as e:
        st._respond_error(reply, e)
        return 0


def process_plain(st, subject: str, reply: str, hdr: bytes, msg: bytes, m) -> int:
    """One message of an atomic batch whose headers `_PLAIN` matched (`m`), on a stream that allows atomic
    batches and is not sealed (Stream._atomic_plain): process() without a header lookup."""
    raw_id = m[2]
    if len(raw_id) > MAX_ID_LEN:
        return process(st, subject, reply, hdr, msg, raw_id)
    try:
        js = st.js
        storage = st.store.storage
        if js.usage[storage] > js.limit_for[storage]:
            raise api_error("JSInsufficientResourcesErr")
        max_size = st._max_msg_size
        if max_size >= 0 and (len(hdr) > max_size or len(msg) > max_size - len(hdr)):
            raise api_error("JSStreamMessageExceedsMaximumErr")
        batch_id = raw_id.decode("utf-8", "replace")
        seq = int(m[3])
        commit = m[1] if m[1] is not None else m[4]
        if commit is None:
            # The usual message: the next of a batch being staged, within the size limit. _stage's checks
            # all pass for it; anything else goes there for its answer.
            b = st.atomic_batches.get(batch_id)
            max_msgs = js.batch_limits.get("max_msgs", 0)
            if b is not None and b.lseq + 1 == seq and seq <= (max_msgs if max_msgs > 0 else MAX_BATCH_SIZE):
                b.lseq = seq
                b.msgs.append((subject, hdr, msg))
                timer = b.timer
                if timer is not None and timer.handle is not None:
                    timer.deadline = timer.loop.time() + timer.timeout  # IdleTimer.touch
                else:
                    _arm(st, batch_id, b)
                if reply and not st._no_ack:
                    js.send(st.account, reply, b"")
                return 0
        return _stage(st, subject, reply, hdr, msg, batch_id, seq, commit, True)
    except ApiError as e:
        st._respond_error(reply, e)
        return 0


def stage_run(st, subject: str, records: list) -> int:
    """A run of HPUBs without a reply to `subject` (protocol.HPUBS: `records`, each message's RUN_RECORD match)
    on a stream that allows atomic batches (Stream._atomic_plain): each goes as process_plain would take it, in
    order; the next message of the batch staged last is appended here at once, after the checks process_plain
    makes for it. Returns how many it took (all unless one had a header block over PLAIN_MAX or the stream
    stopped taking them), for the caller to route the rest one by one."""
    js = st.js
    storage = st.store.storage
    max_size = st._max_msg_size
    limit_max = js.batch_limits.get("max_msgs", 0)
    max_msgs = limit_max if limit_max > 0 else MAX_BATCH_SIZE
    seg = records[0].string
    cur = b = None   # the raw id and the batch of the message before, while appending here is allowed
    touched = None   # the batch appended to since its idle timer was last touched
    full = js.usage[storage] > js.limit_for[storage]
    taken = 0
    try:
        for m in records:
            _hdr_len, size, hdr, commit, raw_id, seq, commit_last = m.groups()
            hl = len(hdr)
            if hl > PLAIN_MAX:
                return taken
            h1 = m.end()
            stop = h1 - hl + int(size)
            seq = int(seq)
            if b is not None and raw_id == cur and b.lseq + 1 == seq and seq <= max_msgs and commit is None \
                    and commit_last is None and not full \
                    and (max_size < 0 or (hl <= max_size and stop - h1 <= max_size - hl)):
                b.lseq = seq
                b.msgs.append((subject, hdr, seg[h1:stop]))
                touched = b
            else:
                if touched is not None:
                    _touch(st, cur, touched)
                    touched = None
                try:
                    process_plain(st, subject, None, hdr, seg[h1:stop], (None, commit, raw_id, m[6], commit_last))
                except Exception as e:  # as Stream._inbound_raw_h (nobody to answer: no reply)
                    js.logger.error(f"JetStream failed to process a msg on stream '{st.account.name} > {st.name}': "
                                    f"{type(e).__name__}: {e}")
                if not st._atomic_plain:
                    return taken + 1
                cur = raw_id
                b = st.atomic_batches.get(cur.decode("utf-8", "replace")) if len(cur) <= MAX_ID_LEN else None
                full = js.usage[storage] > js.limit_for[storage]
            taken += 1
        return taken
    finally:
        if touched is not None:
            _touch(st, cur, touched)


def _touch(st, raw_id: bytes, b: AtomicBatch) -> None:
    """process_plain's touch of a staged batch's idle timer."""
    timer = b.timer
    if timer is not None and timer.handle is not None:
        timer.deadline = timer.loop.time() + timer.timeout  # IdleTimer.touch
    else:
        _arm(st, raw_id.decode("utf-8", "replace"), b)


def _process(st, subject: str, reply: str, hdr: bytes, msg: bytes, batch_id: str) -> int:
    cfg = st.cfg
    if cfg.get("sealed"):
        raise api_error("JSStreamSealedErr")
    if st.js.limits_exceeded(st.store.storage):
        raise api_error("JSInsufficientResourcesErr")
    max_size = cfg.get("max_msg_size", -1)
    if max_size >= 0 and (len(hdr) > max_size or len(msg) > max_size - len(hdr)):
        raise api_error("JSStreamMessageExceedsMaximumErr")
    if not cfg.get("allow_atomic"):
        raise api_error("JSAtomicPublishDisabledErr")
    if len(batch_id) > MAX_ID_LEN:
        raise api_error("JSAtomicPublishInvalidBatchIDErr")
    value = headers.get(hdr, BATCH_SEQ)
    if not value or not value.isdigit():
        raise api_error("JSAtomicPublishMissingSeqErr")
    commit = headers.get(hdr, BATCH_COMMIT) if BATCH_COMMIT in hdr else None
    return _stage(st, subject, reply, hdr, msg, batch_id, int(value), commit, False)


def _stage(st, subject: str, reply: str, hdr: bytes, msg: bytes, batch_id: str, seq: int, commit: bytes | None,
           plain: bool) -> int:
    """The checks that follow the batch sequence's, staging, and the commit. `plain`: `hdr` has no header but
    the batch's id, sequence and commit (no Nats-Required-Api-Level to look for)."""
    global _inflight_total
    eob = commit == b"eob"
    size = seq - 1 if eob else seq
    js = st.js
    max_msgs = limit(js, "max_msgs")
    batches = st.atomic_batches
    b = batches.get(batch_id)
    if b is None:
        if seq != 1:
            if size > max_msgs:
                raise api_error("JSAtomicPublishTooLargeBatchErrF", size=max_msgs)
            raise api_error("JSAtomicPublishIncompleteBatchErr")
        if len(batches) + 1 > limit(js, "max_inflight_per_stream") or \
                _inflight_total + 1 > limit(js, "max_inflight_total"):
            raise api_error("JSAtomicPublishTooManyInflight")
        b = batches[batch_id] = AtomicBatch()
        _inflight_total += 1
    if commit is not None and not eob and commit != b"1":
        _drop(st, batch_id)
        raise api_error("JSAtomicPublishInvalidBatchCommitErr")
    if not plain and REQUIRED_API_LEVEL in hdr and headers.get(hdr, REQUIRED_API_LEVEL) is not None:
        if required_level_error(hdr):
            _drop(st, batch_id, "unsupported")
            raise api_error("JSRequiredApiLevelErr")
        hdr = headers.remove(hdr, REQUIRED_API_LEVEL)
    b.lseq += 1
    if b.lseq != seq or (seq == 1 and eob):
        _drop(st, batch_id, "incomplete")
        raise api_error("JSAtomicPublishIncompleteBatchErr")
    if size > max_msgs:
        _drop(st, batch_id, "large")
        raise api_error("JSAtomicPublishTooLargeBatchErrF", size=max_msgs)
    if not eob:
        b.msgs.append((subject, hdr, msg))
        if not plain:
            b.plain = False
    if commit is None:
        _arm(st, batch_id, b)
        if reply and not st._no_ack:
            st.js.send(st.account, reply, b"")
        return 0
    msgs = b.msgs
    _drop(st, batch_id)
    lean = not st._slow_path
    if lean and b.plain and st.cfg.get("discard") != "new":
        if st._dd:
            st._expire_dedupe(now_ns())  # as _check does; nothing in a plain batch can be a duplicate
    else:
        _check(st, msgs)
    if eob:
        subj, last_hdr, data = msgs[-1]
        msgs[-1] = (subj, headers.append(last_hdr, [(BATCH_COMMIT, b"1")]), data)
    n = len(msgs)
    if lean and b.plain and n > 1 and _store_plain(st, msgs):
        subj, h, data = msgs[-1]
        return st._process_checked(subj, reply, h, data, batch=(batch_id, n))
    stored = 0
    for i, (subj, h, data) in enumerate(msgs):
        if i < n - 1:
            if lean and only_batch_headers(h):
                stored = st.store_batched(subj, h, data)
            else:
                stored = st._process_checked(subj, "", h, data, batch=(batch_id, 0))
        else:
            stored = st._process_checked(subj, reply, h, data, batch=(batch_id, n))
    return stored


def _store_plain(st, msgs: list) -> bool:
    """All but the last message of a committed batch of plain messages (`_PLAIN`) on a stream without
    per-message work (lean), in one store call: what Stream.store_batched does for each of them when none is
    refused (too large, over the server's storage limit) and no limit of the store acts on the way. False with
    nothing stored otherwise (they are then stored one by one)."""
    if st.sourcers or st.scheduler is not None:
        return False
    first = msgs[:-1]
    max_size = st._max_msg_size
    if max_size >= 0:
        for _subject, hdr, data in first:
            if len(hdr) > max_size or len(data) > max_size - len(hdr):
                return False
    js = st.js
    store = st.store
    storage = store.storage
    if js.usage[storage] > js.limit_for[storage]:
        return False
    opts = js.server.options
    # Room for the largest messages the server takes (a subject within a control line, a payload with its
    # headers within max_payload) needs no pass over the sizes.
    if js.limit_for[storage] - js.usage[storage] < len(first) * (opts.max_payload + opts.max_control_line + 64):
        size = sum(store.msg_size(s, h, d) for s, h, d in first)
        if js.usage[storage] + size > js.limit_for[storage]:
            return False
    last = store.store_batch(first)
    if not last:
        return False
    st.lseq, st.lmsgid = last, ""
    js.add_usage(st)
    if st.consumers:
        consumers = list(st.consumers.values())
        for seq, (subject, _hdr, _data) in enumerate(first, last - len(first) + 1):
            for o in consumers:
                o.signal_new(seq, subject)
    if st._expires and not st._expiry_timer:
        st.schedule_expiry()
    return True


def only_batch_headers(hdr: bytes | None) -> bool:
    """No header but the batch's own (`Nats-Batch-*`): every key the publish checks look up starts with `Nats-`,
    so none of them can be found (two C-level counts instead of a dozen lookups)."""
    return not hdr or hdr.count(b"Nats-") == hdr.count(b"Nats-Batch-")


def _check(st, msgs: list) -> None:
    """Every message of the batch against the stream as it is plus the batch's own earlier messages."""
    cfg = st.cfg
    counter = bool(cfg.get("allow_msg_counter"))
    transform = st._input_tr
    ids: set[str] = set()
    inflight: set[str] = set()
    totals = _Totals()
    if st._dd:
        st._expire_dedupe(now_ns())
    for i, (subject, hdr, msg) in enumerate(msgs):
        if transform is not None:
            subject = transform.match(subject) or subject
        if only_batch_headers(hdr):  # the usual message: every lookup below would find nothing
            if counter:
                raise api_error("JSMessageIncrMissingErr")
            inflight.add(subject)
            _check_discard_new(st, subject, hdr, msg, totals)
            continue
        get = headers.get
        expect = bool(hdr) and b"Nats-Expected" in hdr  # one search instead of five for the usual message
        if expect and get(hdr, headers.EXPECTED_LAST_MSG_ID):
            raise api_error("JSAtomicPublishUnsupportedHeaderBatchErr", header="Nats-Expected-Last-Msg-Id")
        incr = counters.check_incr(counter, hdr, msg, False)
        value = get(hdr, headers.EXPECTED_STREAM) if expect else None
        if value and value.decode("utf-8", "replace") != st.name:
            raise api_error("JSStreamNotMatchErr")
        ttl = get(hdr, headers.TTL) if headers.TTL in hdr else None
        if ttl:
            parsed = st.parse_msg_ttl(ttl)  # raises 10165 when invalid
            if parsed and not cfg.get("allow_msg_ttl"):
                raise api_error("JSMessageTTLDisabledErr")
        msg_id = get(hdr, headers.MSG_ID) if headers.MSG_ID in hdr else None
        if msg_id:
            key = msg_id.decode("utf-8", "replace")
            if key in ids or key in st._dd:
                raise api_error("JSAtomicPublishContainsDuplicateMessageErr")
            ids.add(key)
        if b"Nats-Stream-Source" in hdr and get(hdr, b"Nats-Stream-Source"):
            raise api_error("JSMessageSourceHdrNotAllowedErr")
        if counter and incr is None:
            raise api_error("JSMessageIncrMissingErr")
        value = get(hdr, headers.EXPECTED_LAST_SEQ) if expect else None
        if value is not None and value != b"":
            expected = int(value) if value.isdigit() else -1
            if expected != st.lseq + i:
                raise api_error("JSStreamWrongLastSequenceErrF", seq=st.lseq + i)
            if i > 0:
                raise api_error("JSStreamWrongLastSequenceConstantErr")
        value = get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ) if expect else None
        if value is not None and value != b"":
            check = get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ_SUBJ)
            check_subject = check.decode("utf-8", "replace") if check else subject
            if check_subject in inflight:
                raise api_error("JSStreamWrongLastSequenceConstantErr")
            last = st.store.load_last_msg(check_subject)
            fseq = last.seq if last else 0
            if not value.isdigit() or int(value) != fseq:
                raise api_error("JSStreamWrongLastSequenceErrF", seq=fseq)
        elif expect and get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ_SUBJ):
            raise api_error("JSStreamExpectedLastSeqPerSubjectInvalid")
        rollup = get(hdr, headers.ROLLUP) if headers.ROLLUP in hdr else None
        if rollup:
            kind = rollup.decode("utf-8", "replace").lower()
            if not cfg.get("allow_rollup_hdrs") or cfg.get("deny_purge"):
                raise api_error("JSStreamRollupFailedF", err="rollup not permitted")
            if kind == "sub" and subject in inflight:
                raise api_error("JSStreamRollupFailedF", err="batch rollup sub invalid")
            if kind == "all" and inflight:
                raise api_error("JSStreamRollupFailedF", err="batch rollup all invalid")
            if kind not in ("sub", "all"):
                raise api_error("JSStreamRollupFailedF",
                                err=f'rollup value invalid: "{rollup.decode("utf-8", "replace")}"')
        inflight.add(subject)
        _check_discard_new(st, subject, hdr, msg, totals)



class _Totals:
    """A batch's messages and bytes so far, and per subject (nats-server's inflight running totals)."""
    __slots__ = ("msgs", "bytes", "per_subject", "state")

    def __init__(self):
        self.msgs = self.bytes = 0
        self.per_subject: dict[str, int] = {}
        self.state = None


def _check_discard_new(st, subject: str, hdr: bytes, msg: bytes, totals: _Totals) -> None:
    """Under discard new the whole batch must fit before any of it is stored: the stream's messages and bytes
    plus the batch's so far, and per subject with discard_new_per_subject (a rollup passes)."""
    cfg = st.cfg
    totals.msgs += 1
    totals.bytes += st.store.msg_size(subject, hdr, msg)
    totals.per_subject[subject] = totals.per_subject.get(subject, 0) + 1
    if cfg.get("discard") != "new":
        return
    max_msgs, max_bytes = cfg.get("max_msgs", -1), cfg.get("max_bytes", -1)
    if max_msgs > 0 or max_bytes > 0:
        if totals.state is None:
            totals.state = st.store.state()
        if max_msgs > 0 and totals.state.msgs + totals.msgs > max_msgs:
            raise api_error("JSStreamStoreFailedF", err=MAX_MSGS)
        if max_bytes > 0 and totals.state.bytes + totals.bytes > max_bytes:
            raise api_error("JSStreamStoreFailedF", err=MAX_BYTES)
    max_per = cfg.get("max_msgs_per_subject", -1)
    if cfg.get("discard_new_per_subject") and max_per > 0 and not headers.get(hdr, headers.ROLLUP):
        held = st.store.subjects_state(subject).get(subject)
        if (held.msgs if held else 0) + totals.per_subject[subject] > max_per:
            raise api_error("JSStreamStoreFailedF", err=MAX_MSGS_PER_SUBJECT)
