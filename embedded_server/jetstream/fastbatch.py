"""Fast batch publish (`allow_batched`, nats-server 2.14): a publisher streams messages without waiting for each
PubAck; the batch travels in the reply subject, `<inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI`
(op 0 start, 1 append, 2 commit, 3 commit with an end marker that is not stored, 4 ping).

Each message is checked and stored at once (nothing is staged, unlike an atomic batch). The stream answers on
the reply subject with flow messages: `{"type":"ack","seq":N,"msgs":M}` once the messages up to N are stored
(every M messages; M ramps up or down with the number of batches in flight), `{"type":"gap",...}` when batch
sequences were missed, `{"type":"err",...}` when a message was refused, and a PubAck with `batch` and `count`
when the batch commits, or ends at a gap or a refusal in gap mode "fail". As nats-server's
processJetStreamFastBatchMsg and fastBatchRegisterSequences for a stream of one replica: messages are stored
before the next is read, so nothing is ever pending across messages here.
"""
from __future__ import annotations

import json

from . import batch as batch_mod
from . import headers, limits
from embedded_server.client import decode_subject, encode_subject, is_reserved_reply
from .config_json import compact_json
from .errors import ApiError, api_error
from .store import MAX_BYTES, MAX_MSGS, MAX_MSGS_PER_SUBJECT, StoreError

SUFFIX = ".$FI"
REQUEST_INFO = b"Nats-Request-Info"
OP_START, OP_APPEND, OP_COMMIT, OP_COMMIT_EOB, OP_PING = range(5)
MAX_INFLIGHT_PER_STREAM = 1000
MAX_INFLIGHT_TOTAL = 50_000
MAX_ID_LEN = 64
_U64 = 1 << 64
# Store refusals nats-server makes before a message is proposed (discard new): a refused message of the batch.
_PRECHECKED_STORE_ERRORS = (MAX_MSGS, MAX_BYTES, MAX_MSGS_PER_SUBJECT)

_OPS = {"0": OP_START, "1": OP_APPEND, "2": OP_COMMIT, "3": OP_COMMIT_EOB, "4": OP_PING}

_inflight_total = 0


class FastOp:
    """What the reply subject of one message says (`head`: the reply up to its batch sequence, without the dot)."""
    __slots__ = ("id", "seq", "flow", "ping", "gap_ok", "commit", "eob", "head")


def _int64(token: str) -> int:
    """Go's parseInt64 of the server: -1 unless all digits; wraps as int64 does."""
    if not token or not token.isdigit() or not token.isascii():
        return -1
    n = int(token) % _U64
    return n - _U64 if n >= 1 << 63 else n


def parse_reply(reply: str, hdr: bytes | None) -> tuple[FastOp | None, bool]:
    """nats-server's getFastBatch: (op, False) for a fast batch reply, (None, True) for a malformed one (ending
    in `.$FI`), (None, False) for any other reply."""
    if len(reply) <= 4 or not reply.endswith(SUFFIX):
        # Through a service import the reply is the import's own; the original is in Nats-Request-Info.
        if not reply.startswith("_R_.") or not hdr or REQUEST_INFO not in hdr:
            return None, False
        try:
            reply = json.loads(headers.get(hdr, REQUEST_INFO) or b"{}").get("reply") or ""
        except (ValueError, AttributeError):
            return None, False
        if len(reply) <= 4 or not reply.endswith(SUFFIX):
            return None, False
    # Only the last two tokens (batch sequence and op) change from one message of a batch to the next: the
    # rest is read once per batch (`_head`) and kept.
    end = len(reply) - 4
    cut = reply.rfind(".", 0, end)
    cut2 = reply.rfind(".", 0, cut) if cut > 0 else -1
    if cut2 < 0:
        return None, True
    head = reply[:cut2]
    parsed = _heads.get(head)
    if parsed is None:
        if len(_heads) >= _HEADS_KEPT:
            _heads.clear()
        parsed = _heads[head] = _head(head)
    if parsed is False:
        return None, True
    seq = reply[cut2 + 1:cut]
    op = reply[cut + 1:end]
    code = _OPS.get(op)
    if code is None:
        code = _int64(op)
    if not OP_START <= code <= OP_PING or not seq.isascii() or not seq.isdigit():
        return None, True
    n = int(seq)
    if n == 0 or n >= _U64 - 1:  # over uint64, or MaxUint64 (the next sequence would wrap)
        return None, True
    if (n == 1 and code == OP_COMMIT_EOB) or (code == OP_START and n != 1) or (code == OP_APPEND and n <= 1):
        return None, True
    f = FastOp()
    f.id, f.flow, f.gap_ok = parsed
    f.head = head
    f.seq = n
    f.ping, f.eob = code == OP_PING, code == OP_COMMIT_EOB
    f.commit = f.eob or code == OP_COMMIT
    return f, False


_heads: dict[str, tuple[str, int, bool] | bool] = {}
_HEADS_KEPT = 1024


def _head(head: str) -> tuple[str, int, bool] | bool:
    """`<inbox>.<batch id>.<flow>.<gap mode>` of a reply: (batch id, flow, gap ok), or False if malformed."""
    parts = head.rsplit(".", 3)
    if len(parts) < 4:
        return False
    _, batch_id, flow, gap = parts
    if gap not in ("fail", "ok"):
        return False
    a = int(flow) if 0 < len(flow) < 6 and flow.isascii() and flow.isdigit() else _int64(flow)
    return batch_id, 10 if a <= 0 else min(a, 65535), gap == "ok"


class FastBatch:
    __slots__ = ("timer", "lseq", "sseq", "pseq", "fseq", "pending", "ack_messages", "max_ack_messages", "gap_ok",
                 "commit")

    def __init__(self, gap_ok: bool, max_ack_messages: int):
        self.timer = None
        self.lseq = self.sseq = self.pseq = self.fseq = self.pending = 0
        self.ack_messages = 0
        self.max_ack_messages = max_ack_messages
        self.gap_ok = gap_ok
        self.commit = False


def inflight(st) -> int:
    return len(st.fast_batches)


def _cleanup(st, batch_id: str, b: FastBatch) -> None:
    global _inflight_total
    if b.timer is None:
        return
    _inflight_total -= 1
    b.timer.cancel()
    b.timer = None
    batches = st.fast_batches
    if batches.get(batch_id) is b:
        del batches[batch_id]


def drop_all(st) -> None:
    """The stream stops, goes away or turns `allow_batched` off: its batches with it (no advisory, as nats-server)."""
    for batch_id, b in list(st.fast_batches.items()):
        _cleanup(st, batch_id, b)


def _arm(st, batch_id: str, b: FastBatch) -> None:
    if b.timer is None:
        timeout = batch_mod.limit(st.js, "timeout")
        b.timer = batch_mod.IdleTimer(st.js.loop, timeout, lambda: _cleanup(st, batch_id, b))
    else:
        b.timer.touch()


def _new(st, batch_id: str, gap_ok: bool, flow: int) -> FastBatch:
    global _inflight_total
    b = FastBatch(gap_ok, flow)
    batches = st.fast_batches
    batches[batch_id] = b
    _inflight_total += 1
    # Alone, the publisher gets the window it asked for (at most 500); beside other batches it starts at 1.
    b.ack_messages = 1 if len(batches) > 1 else min(500, flow)
    _arm(st, batch_id, b)
    return b


def _send(st, reply: str, body: bytes) -> None:
    if reply:
        if st.store._fast_hold:
            st.store.write_held()  # what the answer acknowledges is on disk before it leaves
        st.js.send(st.account, reply, body)


def _flow(st, b: FastBatch, seq: int, reply: str) -> None:
    _send(st, reply, b'{"type":"ack","seq":%d,"msgs":%d}' % (seq, b.ack_messages))
    if reply:
        # Out at once, not at the end of the read: the publisher, a window ahead, may be waiting for it.
        st.js.server.write_out()


def _gap(st, reply: str, last_seq: int, seq: int) -> None:
    _send(st, reply, b'{"type":"gap","last_seq":%d,"seq":%d}' % (last_seq, seq))


def _pub_ack(st, reply: str, seq: int, batch_id: str, count: int, duplicate: bool = False) -> None:
    dup = b',"duplicate": true' if duplicate else b""
    _send(st, reply, b'%s%d%s,"batch":%s,"count":%d}' % (
        st.pub_ack, seq, dup, compact_json(batch_id), count))


def _check_flow(st, b: FastBatch, reply: str) -> bool:
    """nats-server's checkFlowControl: an ack every `ack_messages` stored messages, the window doubling up to
    (or halving down to) 500 shared by the batches in flight, never above what the publisher allows."""
    am = b.ack_messages
    if b.pseq < b.fseq + am:
        return False
    b.fseq += (b.pseq - b.fseq) // am * am
    target = min(max(1, 500 // len(st.fast_batches)), b.max_ack_messages)
    if b.ack_messages < target:
        b.ack_messages = min(b.ack_messages * 2, target)
    elif b.ack_messages > target:
        b.ack_messages = max(b.ack_messages // 2, target)
    _flow(st, b, b.fseq, reply)
    return True


def _commit(st, b: FastBatch, batch_id: str, reply: str) -> bool:
    """nats-server's fastBatchCommit: True once the batch is over (its PubAck sent when all is stored)."""
    if b.timer is None:
        return True
    if not b.commit:
        b.timer.cancel()
    b.commit = True
    if b.lseq == b.pseq:
        _cleanup(st, batch_id, b)
        _pub_ack(st, reply, b.sseq, batch_id, b.lseq)
        return True
    return False


def _stored(st, b: FastBatch, op: FastOp, seq: int, reply: str) -> None:
    """nats-server's fastBatchRegisterSequences after a message of the batch was stored (or skipped)."""
    if b.timer is None:
        return  # the batch ended before this message was stored: nothing more to answer
    if b.pending > 0:
        b.pending -= 1
    b.sseq = seq
    skipped = b.pending == 0
    b.pseq = b.lseq if skipped else op.seq
    if b.lseq == b.pseq and b.commit:
        _cleanup(st, op.id, b)
        _pub_ack(st, reply, b.sseq if skipped else seq, op.id, b.lseq if skipped else op.seq)
        return
    _check_flow(st, b, reply)


def process(st, op: FastOp | None, subject: str, reply: str, hdr: bytes | None, msg: bytes) -> int:
    """One message with a fast batch reply subject (nats-server's processJetStreamFastBatchMsg). Returns the
    stream sequence it was stored at, or 0."""
    cfg = st.cfg
    batches = st.fast_batches
    b = batches.get(op.id) if op is not None else None
    if b is not None and not hdr and not b.commit and op.seq == b.lseq + 1 and not op.ping and not op.commit \
            and not st._slow_path and _plain_ok(st, msg):
        return _append(st, b, op, subject, reply, msg)  # the usual message: in order, no headers, no limits hit
    can_respond = bool(reply) and not cfg.get("no_ack")

    def refuse(name: str, **kw) -> int:
        if can_respond:
            st._respond_error(reply, api_error(name, **kw))
        return 0

    if cfg.get("sealed"):
        return refuse("JSStreamSealedErr")
    storage = st.store.storage
    if st.js.limits_exceeded(storage):
        return refuse("JSInsufficientResourcesErr")
    if st.jsa.limited:
        stored_subject = (st._input_tr.match(subject) or subject) if st._input_tr is not None else subject
        if limits.publish_exceeds(st.jsa, storage, stored_subject, hdr, msg):
            return refuse("JSAccountResourcesExceededErr")
    max_size = cfg.get("max_msg_size", -1)
    hlen = len(hdr) if hdr else 0
    if max_size >= 0 and (hlen > max_size or len(msg) > max_size - hlen):
        return refuse("JSStreamMessageExceedsMaximumErr")
    if not cfg.get("allow_batched"):
        return refuse("JSBatchPublishDisabledErr")
    if op is None:
        return refuse("JSBatchPublishInvalidPatternErr")
    if len(op.id) > MAX_ID_LEN:
        return refuse("JSBatchPublishInvalidBatchIDErr")
    if b is None:
        if op.seq != 1:
            return refuse("JSBatchPublishUnknownBatchIDErr")
        js = st.js
        if len(batches) + 1 > batch_mod.limit(js, "max_inflight_per_stream", MAX_INFLIGHT_PER_STREAM) or \
                _inflight_total + 1 > batch_mod.limit(js, "max_inflight_total", MAX_INFLIGHT_TOTAL):
            return refuse("JSBatchPublishTooManyInflight")
        b = _new(st, op.id, op.gap_ok, op.flow)
    if hdr and headers.get(hdr, batch_mod.REQUIRED_API_LEVEL) is not None:
        if batch_mod.required_level_error(hdr):
            _cleanup(st, op.id, b)
            return refuse("JSRequiredApiLevelErr")
        hdr = headers.remove(hdr, batch_mod.REQUIRED_API_LEVEL)
    if not b.commit:
        _arm(st, op.id, b)

    if op.ping:
        send_flow = True
        if op.seq > b.lseq:
            _gap(st, reply, b.lseq + 1, op.seq + 1)
            if b.gap_ok:
                b.lseq = op.seq
                if b.pending == 0:
                    b.pseq = b.lseq
                send_flow = not _check_flow(st, b, reply)
            elif _commit(st, b, op.id, reply):
                send_flow = False
        if send_flow:
            _flow(st, b, b.fseq, reply)
        return 0

    if b.commit:
        return 0  # refused on its way to the commit: the publisher waits for the PubAck

    b.lseq += 1
    if b.lseq != op.seq:
        # nats-server 2.15.1 reports a backward sequence as a gap too (later sources only forward ones)
        _gap(st, reply, b.lseq, op.seq)
        if b.gap_ok and op.seq > b.lseq:
            b.lseq = op.seq
        else:
            b.lseq -= 1
            _commit(st, b, op.id, reply)
            return 0

    if op.commit:
        if op.eob:
            b.lseq -= 1
            if b.pending == 0:
                b.pseq = b.lseq
        _commit(st, b, op.id, reply)
        if op.eob:
            return 0

    if op.seq == 1 and can_respond and not op.commit:
        _flow(st, b, 0, reply)

    dup_seq = 0
    error = None
    try:
        subject, hdr, msg, msg_id, rollup, ttl, _counter, dup_seq = st.check_msg(subject, hdr, msg,
                                                                                check_last_msg_id=False)
    except ApiError as e:
        error = e
    if error is not None or dup_seq:
        return _refused(st, b, op, reply, error, dup_seq)

    b.pending += 1
    if msg_id is None:  # a wrong Nats-Expected-Last-Msg-Id is answered at store time, as a plain publish
        return refuse("JSStreamWrongLastMsgIDErrF", id=st.lmsgid)
    try:
        seq, stored = st.store_checked(subject, hdr, msg, msg_id, rollup, ttl)
    except ApiError as e:
        if can_respond:
            st._respond_error(reply, e)
        return 0
    except StoreError as e:
        if str(e) not in _PRECHECKED_STORE_ERRORS:
            return refuse("JSStreamStoreFailedF", err=str(e))
        # discard new: nats-server refuses these before storing, as any other failed check of a message
        b.pending -= 1
        return _refused(st, b, op, reply, api_error("JSStreamStoreFailedF", err=str(e)), 0)
    if not seq:
        return 0
    _stored(st, b, op, seq, reply)
    if stored:
        st.notify_stored(seq, subject, ttl or 0)
    return seq


def _plain_ok(st, msg: bytes) -> bool:
    """Nothing to refuse a header-less message of a batch in flight for (nats-server's checks; the config's part
    decided once, Stream._batched_plain). append_raw makes the same checks inline."""
    js = st.js
    storage = st.store.storage
    max_size = st._max_msg_size
    return st._batched_plain and js.usage[storage] <= js.limit_for[storage] and \
        (max_size < 0 or len(msg) <= max_size)


def _append(st, b: FastBatch, op: FastOp, subject: str, reply: str, msg: bytes) -> int:
    """A header-less message, next in its batch, on a stream with no input transform, retention limits and
    no account limits (`_slow_path` off): stored as a plain publish is, then the flow checked."""
    b.timer.touch()
    b.lseq += 1
    if op.seq == 1 and reply and not st._no_ack:
        _flow(st, b, 0, reply)
    seq = st.store_plain(subject, reply, msg)
    if not seq:
        return 0
    st.lseq, st.lmsgid = seq, ""
    st.js.add_usage(st)
    b.pending += 1
    _stored(st, b, op, seq, reply)
    st.notify_stored(seq, subject)
    if b.timer is not None and not b.commit:
        # The batch's next message can skip the parsing (append_raw): what its reply and subject will be.
        head = encode_subject(op.head + ".")
        if len(head) >= 8 and not is_reserved_reply(head):
            st.fast_next = (head, b, encode_subject(subject), subject)
    return seq


def append_raw(st, subject: bytes, reply: bytes, msg: bytes) -> bool:
    """A client's PUB (no headers) that is the next message of the fast batch `_append` stored last, on the same
    subject, `<head><lseq + 1>.1.$FI`: stored as `_append` stores it, without parsing the reply or decoding the
    subjects (the batch's head was parsed and checked when it was cached; a reply starting with it is no
    reserved one). False, having done nothing, for anything else: the caller routes it the general way."""
    cached = st.fast_next
    if cached is None:
        return False
    head, b, subject_b, subject_s = cached
    seq = b.lseq + 1
    if subject != subject_b or reply != head + b"%d.1.$FI" % seq or b.timer is None or b.commit \
            or st._slow_path or seq >= _U64 - 1 or not st._batched_plain:
        return False
    store = st.store
    js = st.js
    max_size = st._max_msg_size
    # _plain_ok's checks, inline (the config's part is Stream._batched_plain, set by _set_fast_path)
    if (max_size >= 0 and len(msg) > max_size) or js.usage[store.storage] > js.limit_for[store.storage]:
        return False
    b.timer.touch()
    b.lseq = seq
    try:
        if store.hold_writes():
            st.js.server.before_output.append(store.end_writes)
        sseq = store.store_held(subject_s, msg)
    except (StoreError, OSError) as e:
        st.store_failed(e, decode_subject(reply))
        return True
    st.lseq, st.lmsgid = sseq, ""
    size = store.bytes
    js.usage[store.storage] += size - st.accounted
    st.accounted = size
    # _stored: nothing pending before this message, so it is the batch's last stored one
    b.sseq = sseq
    b.pseq = seq
    if seq >= b.fseq + b.ack_messages:
        _check_flow(st, b, decode_subject(reply))
    if st.consumers or st.sourcers or st._expires:  # else notify_stored has nothing to do (no TTL here)
        st.notify_stored(sseq, subject_s)
    return True


def _refused(st, b: FastBatch, op: FastOp, reply: str, error, dup_seq: int) -> int:
    """A message of the batch failed its checks (or is a duplicate, which is skipped)."""
    if dup_seq:
        if b.pending == 0:
            b.pseq = op.seq
            _check_flow(st, b, reply)
        if not op.commit:
            return 0
    if not b.gap_ok and b.lseq == 1:
        # The batch's first message: answered as a plain publish would be.
        _cleanup(st, op.id, b)
        if dup_seq:
            _pub_ack(st, reply, dup_seq, op.id, op.seq, duplicate=True)
        else:
            st._respond_error(reply, error)
        return 0
    if error is not None:
        _send(st, reply, b'{"type":"err","seq":%d,"error":%s}' % (op.seq, compact_json(error.as_dict())))
    if b.gap_ok and not op.commit:
        return 0
    if error is not None:
        b.lseq -= 1
        if b.pending == 0:
            b.pseq = b.lseq
    _commit(st, b, op.id, reply)
    return 0
