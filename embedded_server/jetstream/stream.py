"""A stream: a managed internal subscription that stores what it hears and answers each publish with a PubAck.

The publish path follows nats-server's processJetStreamMsg check for check (sealed, expected stream,
message TTL, expected last subject sequence, expected last sequence, de-duplication by Nats-Msg-Id,
expected last msg id, rollup, sizes, resources), stores first and answers second. A plain publish (no
headers) costs one store call and one PubAck built from a per-stream byte template: no JSON on that path.
"""
from __future__ import annotations

from collections import deque
from itertools import islice

from embedded_server import gotime
from embedded_server.client import decode_subject
from embedded_server.gotime import duration_string

from . import config_json
from . import batch as batch_mod
from . import fastbatch
from . import counters, filters, headers, limits, requests, schedules
from .clock import now_ns, rfc3339
from .errors import ApiError, api_error
from .store import StoreError
from .transform import SubjectTransform

# The file store keeps a message's TTL in 32 bits: a longer one (over 68 years) is kept as the longest it can hold.
MAX_STORED_TTL = (1 << 31) - 1


def parse_go_duration(text: str) -> int | None:
    """Go's time.ParseDuration in nanoseconds (gotime.parse_duration), or None if it is not one."""
    try:
        return gotime.parse_duration(text)
    except ValueError:
        return None


def _go_parse_int64(text: str) -> int:
    """nats-server's parseInt64: -1 unless all ASCII digits; wraps around past int64 as Go's arithmetic does."""
    if not text or not text.isascii() or not text.isdigit():
        return -1
    return ((int(text) + (1 << 63)) % (1 << 64)) - (1 << 63)


def parse_msg_ttl(value: bytes) -> int:
    """Seconds of a Nats-TTL header; -1 for "never"; raises ApiError 10165 if invalid."""
    text = value.decode("utf-8", "replace")
    if text.lower() == "never":
        return -1
    dur = parse_go_duration(text)
    if dur is not None:
        if dur < 1_000_000_000:
            raise api_error("JSMessageTTLInvalidErr")
        return min(dur // 1_000_000_000, MAX_STORED_TTL)
    seconds = _go_parse_int64(text)
    if seconds < 0:
        raise api_error("JSMessageTTLInvalidErr")
    return min(seconds, MAX_STORED_TTL)


def _parse_uint(value: bytes) -> int:
    """nats-server's parseInt64 then uint64 cast: anything unparsable becomes 2^64-1."""
    return _go_parse_int64(value.decode("ascii", "replace")) % (1 << 64)


class Stream:
    parse_msg_ttl = staticmethod(parse_msg_ttl)
    parse_duration = staticmethod(parse_go_duration)

    def __init__(self, jsa, cfg: dict, store, created: int):
        self.jsa = jsa
        self.js = jsa.js
        self.account = jsa.account
        self.cfg = cfg
        self.name = cfg["name"]
        self.store = store
        self.created = created
        self.consumers: dict = {}
        self.lseq = store.last_seq
        self.lmsgid = ""
        self._dd: dict[str, tuple[int, int]] = {}
        self._ddq: deque = deque()
        self._subs: list = []
        self._direct_subs: list = []
        self._expiry_timer = None
        self._expiry_at = 0
        self.closed = False
        self.accounted = 0
        self.sourcers: list = []  # mirrors and sources reading from this stream (sourcing.py)
        self.sourcing = None  # this stream's own mirror or sources, when it has them
        self.scheduler = None  # due times of message schedules (allow_msg_schedules)
        self.atomic_batches: dict = {}  # batch id -> AtomicBatch being staged (batch.py)
        self.fast_batches: dict = {}  # batch id -> fast batch in flight (fastbatch.py)
        self.fast_next = None  # what the next message of the fast batch stored last looks like (fastbatch.append_raw)
        self._set_transforms()
        self._set_fast_path()
        self._set_pub_ack()
        self._rebuild_dedupe()

    # -- configuration ---------------------------------------------------------------------------
    def _set_pub_ack(self) -> None:
        name = self.name.replace("\\", "\\\\").replace('"', '\\"')
        domain = self.js.domain
        if domain:
            self.pub_ack = f'{{"stream":"{name}","domain":"{domain}","seq":'.encode()
        else:
            self.pub_ack = f'{{"stream":"{name}","seq":'.encode()
        self._nack_base = {"stream": self.name}
        if domain:
            self._nack_base["domain"] = domain

    def _set_fast_path(self) -> None:
        """What a plain publish (no headers) must check, decided once per config instead of per message."""
        cfg = self.cfg
        self._slow_path = bool(self.closed or self._input_tr is not None or self._republish_tr is not None
                               or cfg.get("sealed") or cfg["retention"] == "interest" or cfg.get("allow_msg_counter")
                               or cfg.get("allow_msg_schedules") or self.jsa.limited)
        if cfg.get("allow_msg_schedules") and self.scheduler is None:
            self.scheduler = schedules.Scheduler(self)
            self.scheduler.rebuild()
        # A message with only its atomic batch's headers goes straight to batch.process_plain.
        self._atomic_plain = bool(cfg.get("allow_atomic") and not cfg.get("sealed") and not self.closed)
        self._max_msg_size = cfg.get("max_msg_size", -1)
        # What fastbatch._plain_ok asks of the config, for the fast batch's raw path (fastbatch.append_raw).
        self._batched_plain = bool(cfg.get("allow_batched")) and cfg.get("discard") != "new"
        self._no_ack = bool(cfg.get("no_ack"))
        self._expires = bool(cfg.get("max_age"))

    def _set_transforms(self) -> None:
        tr = self.cfg.get("subject_transform")
        self._input_tr = SubjectTransform(tr.get("src", ""), tr.get("dest", "")) if tr else None
        rp = self.cfg.get("republish")
        self._republish_tr = SubjectTransform(rp["src"], rp["dest"]) if rp else None

    def subscribe(self) -> None:
        """Listen on the stream's subjects (and the direct get subjects when allowed)."""
        server = self.js.server
        for subject in self.cfg.get("subjects") or ():
            sub = server.subscribe_internal(self.account, subject, self._inbound)
            sub.raw = self._inbound_raw
            sub.raw_h = self._inbound_raw_h
            sub.raw_hs = (self._inbound_run_h, batch_mod.RUN_RECORD)
            sub.raw_fs = self._inbound_run
            self._subs.append(sub)
        if self.cfg.get("allow_direct"):
            self._direct_subs.append(server.subscribe_internal(
                self.account, f"$JS.API.DIRECT.GET.{self.name}", self._direct_get, queue="_sys_"))
            self._direct_subs.append(server.subscribe_internal(
                self.account, f"$JS.API.DIRECT.GET.{self.name}.>", self._direct_get_last, queue="_sys_"))

    def unsubscribe(self) -> None:
        server = self.js.server
        for sub in self._subs + self._direct_subs:
            server.unsubscribe_internal(sub)
        self._subs, self._direct_subs = [], []

    def update(self, cfg: dict) -> None:
        """Apply a checked new config: subjects, limits (enforced at once), direct access, dedup window."""
        old = self.cfg
        self.cfg = cfg
        if not cfg.get("allow_atomic"):
            batch_mod.drop_all(self)
        if not cfg.get("allow_batched"):
            fastbatch.drop_all(self)
        self._set_transforms()
        self._set_fast_path()
        self.store.update_config(cfg)
        if old.get("subjects") != cfg.get("subjects") or old.get("allow_direct") != cfg.get("allow_direct"):
            self.unsubscribe()
            self.subscribe()
        if old.get("duplicate_window") != cfg.get("duplicate_window"):
            self._expire_dedupe(now_ns())
        self.schedule_expiry()
        for o in list(self.consumers.values()):
            o.stream_updated()

    # -- de-duplication --------------------------------------------------------------------------
    def _rebuild_dedupe(self) -> None:
        window = self.cfg.get("duplicate_window", 0)
        if window <= 0 or not self.store.msgs:
            return
        cutoff = now_ns() - window
        for seq, ts, hdr in self.store.headers_from(self.store.get_seq_from_time(cutoff)):
            msg_id = headers.get(hdr, headers.MSG_ID)
            if msg_id:
                self._store_msg_id(msg_id.decode("utf-8", "replace"), seq, ts)

    def _expire_dedupe(self, now: int) -> None:
        window = self.cfg.get("duplicate_window", 0)
        q, dd = self._ddq, self._dd
        while q and (window <= 0 or now - q[0][2] >= window):
            msg_id, seq, _ts = q.popleft()
            if dd.get(msg_id, (0,))[0] == seq:
                del dd[msg_id]

    def _store_msg_id(self, msg_id: str, seq: int, ts: int) -> None:
        if self.cfg.get("duplicate_window", 0) <= 0:
            return
        self._dd[msg_id] = (seq, ts)
        self._ddq.append((msg_id, seq, ts))

    # -- the publish path ------------------------------------------------------------------------
    def _inbound(self, sub, client, subject, reply, hdr, payload) -> None:
        trace = self.js.server.msg_trace
        if trace is not None:
            stored = (self._input_tr.match(subject) or subject) if self._input_tr is not None else subject
            trace.jetstream(self.name, stored,
                            no_interest=self.cfg["retention"] == "interest" and not self._has_interest(stored))
            if trace.only:
                return
        try:
            self.process_msg(subject, reply, hdr, payload)
        except Exception as e:  # a bug must not leave the publisher without an answer
            self.js.logger.error(f"JetStream failed to process a msg on stream '{self.account.name} > {self.name}': "
                                 f"{type(e).__name__}: {e}")
            self._respond_error(reply, api_error("JSStreamGeneralErrorF", err=str(e) or type(e).__name__))

    def _inbound_raw(self, subject: bytes, reply: bytes, payload: bytes) -> bool:
        """A client's PUB with a reply, when this stream is all that listens on its subject (Plan.raw): the next
        message of a fast batch is stored here at once (fastbatch.append_raw). False for any other message,
        which the caller then routes to `_inbound` as usual."""
        try:
            return fastbatch.append_raw(self, subject, reply, payload)
        except Exception as e:  # as _inbound: a bug must not leave the publisher without an answer
            self._raw_failed(reply, e)
            return True

    def _inbound_run(self, subject: bytes, buf: bytes, items: list, start: int) -> int:
        """A run of a client's PUBs with a fast batch's reply (protocol.PUBF), when this stream is all that listens
        on their subject (Plan.raw_fs): each from item `start` on taken as _inbound_raw takes it, in order, until
        one is not the batch's next message. Where that one is (len(items) if none); the caller routes it."""
        append = fastbatch.append_raw
        done = start
        for reply, _, payload_at, end in islice(items, start, None):
            try:
                if not append(self, subject, reply, buf[payload_at:end - 2]):
                    break
            except Exception as e:  # as _inbound_raw
                self._raw_failed(reply, e)
            done += 1
        return done

    def _raw_failed(self, reply: bytes, e: Exception) -> None:
        self.js.logger.error(f"JetStream failed to process a msg on stream '{self.account.name} > {self.name}': "
                             f"{type(e).__name__}: {e}")
        self._respond_error(decode_subject(reply), api_error("JSStreamGeneralErrorF", err=str(e) or type(e).__name__))

    def _inbound_raw_h(self, subject: bytes, hdr: bytes, payload: bytes) -> bool:
        """A client's HPUB without a reply, when this stream is all that listens on its subject (Plan.raw_h): a
        message with only its atomic batch's headers goes to batch.process_plain at once. False for any other
        message, which the caller then routes to `_inbound` as usual."""
        if not self._atomic_plain or len(hdr) > batch_mod.PLAIN_MAX:
            return False
        m = batch_mod.plain_match(hdr)
        if m is None:
            return False
        try:
            batch_mod.process_plain(self, decode_subject(subject), None, hdr, payload, m)
        except Exception as e:  # as _inbound (nobody to answer: no reply)
            self.js.logger.error(f"JetStream failed to process a msg on stream '{self.account.name} > {self.name}': "
                                 f"{type(e).__name__}: {e}")
        return True

    def _inbound_run_h(self, subject: bytes, records: list) -> int:
        """A run of a client's HPUBs without a reply (protocol.HPUBS, each message's match of batch.RUN_RECORD),
        when this stream is all that listens on their subject (Plan.raw_hs): the messages with only their atomic
        batch's headers are staged by batch.stage_run. How many it took; the caller routes the rest one by one."""
        if not self._atomic_plain:
            return 0
        try:
            return batch_mod.stage_run(self, decode_subject(subject), records)
        except Exception as e:  # as _inbound (nobody to answer: no reply)
            self.js.logger.error(f"JetStream failed to process a msg on stream '{self.account.name} > {self.name}': "
                                 f"{type(e).__name__}: {e}")
            return len(records)

    def _respond_error(self, reply: str, err: ApiError) -> None:
        if reply and not self.cfg.get("no_ack"):
            body = {"error": err.as_dict(), **self._nack_base, "seq": 0}
            self.js.send(self.account, reply, config_json.compact_json(body))

    def process_msg(self, subject: str, reply: str, hdr: bytes | None, msg: bytes) -> int:
        """Store one published message; answer `reply` with a PubAck or an error. Returns the seq or 0."""
        if hdr and self._atomic_plain and len(hdr) <= batch_mod.PLAIN_MAX and not (reply and reply[-4:] == ".$FI"):
            m = batch_mod.plain_match(hdr)
            if m is not None:
                return batch_mod.process_plain(self, subject, reply, hdr, msg, m)
        if self._slow_path or hdr or (reply and reply[-4:] == ".$FI"):
            return self._process_checked(subject, reply, hdr, msg)
        # The common case: no headers, no limits to check before storing, limits retention.
        max_size = self._max_msg_size
        if max_size >= 0 and len(msg) > max_size:
            self._respond_error(reply, api_error("JSStreamMessageExceedsMaximumErr"))
            return 0
        js = self.js
        storage = self.store.storage
        if js.usage[storage] > js.limit_for[storage]:
            self._respond_error(reply, api_error("JSInsufficientResourcesErr"))
            return 0
        seq = self.store_plain(subject, reply, msg)
        if not seq:
            return 0
        self.lseq = seq
        self.lmsgid = ""
        size = self.store.bytes
        js.usage[storage] += size - self.accounted
        self.accounted = size
        if reply and not self._no_ack:
            js.server.send_internal(self.account, reply, None, None, b"%s%d}" % (self.pub_ack, seq))
        if self.consumers:
            for o in self.consumers.values():
                o.signal_new(seq, subject)
        if self.sourcers:
            for feed in self.sourcers:
                feed.origin_stored(seq)
        if self._expires and not self._expiry_timer:
            self.schedule_expiry()
        return seq

    def store_plain(self, subject: str, reply: str, msg: bytes) -> int:
        """Store a message without headers: its sequence, or 0 after answering a store refusal (a disk error is
        logged, not answered, as nats-server does)."""
        try:
            return self.store.store_msg(subject, None, msg, 0)[0]
        except (StoreError, OSError) as e:
            self.store_failed(e, reply)
        return 0

    def store_failed(self, e: Exception, reply: str) -> None:
        """A plain store failed: a store refusal is answered, a disk error logged (as nats-server does)."""
        if isinstance(e, StoreError):
            self._respond_error(reply, api_error("JSStreamStoreFailedF", err=str(e)))
        else:
            self.js.logger.error(f"JetStream failed to store a msg on stream '{self.account.name} > {self.name}': {e}")

    def _process_checked(self, subject: str, reply: str, hdr: bytes | None, msg: bytes, sourced: bool = False,
                         batch: tuple[str, int] | None = None) -> int:
        """The publish path with every check. `batch` is (id, count) for the messages of a committed atomic
        batch (count only on the last, whose PubAck says it)."""
        if self.closed:
            return 0
        if reply and (reply[-4:] == ".$FI" or (hdr and reply[:4] == "_R_.")) and batch is None and not sourced:
            op, malformed = fastbatch.parse_reply(reply, hdr)
            if op is not None or malformed:
                return fastbatch.process(self, op, subject, reply, hdr, msg)
        if hdr and batch is None and not sourced and batch_mod.BATCH_ID in hdr:
            batch_id = headers.get(hdr, batch_mod.BATCH_ID)
            if batch_id:
                return batch_mod.process(self, subject, reply, hdr, msg, batch_id)
        can_respond = bool(reply) and not self.cfg.get("no_ack")
        try:
            subject, hdr, msg, msg_id, rollup, ttl, counter, dup_seq = self.check_msg(subject, hdr, msg, sourced)
            if dup_seq:
                if can_respond:
                    self.js.send(self.account, reply, b"%s%d,\"duplicate\": true}" % (self.pub_ack, dup_seq))
                return 0
            seq, stored = self.store_checked(subject, hdr, msg, msg_id, rollup, ttl)
        except ApiError as e:
            self._respond_error(reply, e)
            return 0
        except StoreError as e:
            self._respond_error(reply, api_error("JSStreamStoreFailedF", err=str(e)))
            return 0
        if not seq:
            return 0
        if can_respond:
            if batch is not None and batch[1]:
                self.js.send(self.account, reply, b'%s%d,"batch":%s,"count":%d}' % (
                    self.pub_ack, seq, config_json.compact_json(batch[0]), batch[1]))
            elif counter is None or not stored:
                self.js.send(self.account, reply, b"%s%d}" % (self.pub_ack, seq))
            else:
                self.js.send(self.account, reply, b'%s%d,"val":"%s"}' % (self.pub_ack, seq, counter.encode()))
        if stored:
            self.notify_stored(seq, subject, ttl)
        return seq

    def check_msg(self, subject: str, hdr: bytes | None, msg: bytes, sourced: bool = False,
                  check_last_msg_id: bool = True):
        """nats-server's checks before a message is stored, in its order: raises the ApiError a publisher gets.
        Returns (subject after the input transform, headers, data, msg id, rollup, ttl, counter total, seq of
        the duplicate or 0); data and headers may be rewritten (counters, schedules, TTL raised to the marker
        TTL). A wrong Nats-Expected-Last-Msg-Id gives msg id None when `check_last_msg_id` is off: a fast batch
        answers it at store time, as nats-server does."""
        if self._input_tr is not None:
            subject = self._input_tr.match(subject) or subject
        cfg = self.cfg
        if cfg.get("sealed"):
            raise api_error("JSStreamSealedErr")
        if hdr and b"Nats-Request-Info" in hdr:  # added by a service import: not stored, as nats-server
            hdr = headers.remove(hdr, b"Nats-Request-Info")
        msg_id = ""
        rollup = ""
        ttl = 0
        incr = None
        if hdr:
            incr = counters.check_incr(cfg.get("allow_msg_counter", False), hdr, msg, sourced)
            if not sourced and b"Nats-Schedul" in hdr:
                hdr = schedules.check_publish(self, subject, hdr)
            msg_id, rollup, ttl, dup_seq = self._check_headers(subject, hdr, sourced, check_last_msg_id)
            if dup_seq:
                return subject, hdr, msg, msg_id, rollup, ttl, None, dup_seq
            if ttl and ttl > 0 and not sourced:
                hdr, ttl = self._ttl_at_least_marker(hdr, ttl)
        counter = None
        if cfg.get("allow_msg_counter"):
            if incr is None:
                raise api_error("JSMessageIncrMissingErr")
            hdr, msg, counter = counters.apply(self.store, subject, hdr, msg, incr)
        max_size = cfg.get("max_msg_size", -1)
        if max_size >= 0 and (hdr and len(hdr) > max_size or len(msg) > max_size - (len(hdr) if hdr else 0)):
            raise api_error("JSStreamMessageExceedsMaximumErr")
        if hdr and len(hdr) > 65535:
            raise api_error("JSStreamHeaderExceedsMaximumErr")
        return subject, hdr, msg, msg_id, rollup, ttl, counter, 0

    def store_checked(self, subject: str, hdr: bytes | None, msg: bytes, msg_id: str, rollup: str,
                      ttl: int | None) -> tuple[int, bool]:
        """Store a checked message (or skip it: interest retention without interest). Returns (seq, stored);
        seq 0 after a disk error, which is logged and not answered, as nats-server does. Raises ApiError for
        the limits checked at store time, StoreError for the store's own refusals (discard new)."""
        if self.js.limits_exceeded(self.store.storage):
            raise api_error("JSInsufficientResourcesErr")
        if self.jsa.limited and limits.publish_exceeds(self.jsa, self.store.storage, subject, hdr, msg):
            raise api_error("JSAccountResourcesExceededErr")
        if self.cfg["retention"] == "interest" and not self._has_interest(subject):
            seq = self.store.skip_msg()
            self.lseq, self.lmsgid = seq, msg_id
            if msg_id:
                self._store_msg_id(msg_id, seq, now_ns())
            if rollup:
                self._rollup(subject, rollup, keep=0)
            return seq, False
        if ttl is None:
            raise api_error("JSMessageTTLInvalidErr")
        try:
            seq, ts = self.store.store_msg(subject, hdr, msg, ttl)
        except OSError as e:
            self.js.logger.error(f"JetStream failed to store a msg on stream '{self.account.name} > {self.name}': {e}")
            return 0, False
        self.lseq = seq
        self.lmsgid = msg_id
        self.js.add_usage(self)
        if msg_id:
            self._store_msg_id(msg_id, seq, ts)
        if rollup:
            self._rollup(subject, rollup, keep=1)
        if hdr and b"Nats-Schedul" in hdr:
            schedules.after_store(self, hdr)
        if self.scheduler is not None:
            self.scheduler.stored(seq, subject, hdr, ts)
        if self._republish_tr is not None:
            self._republish(subject, hdr, msg, seq, ts)
        return seq, True

    def store_batched(self, subject: str, hdr: bytes | None, msg: bytes) -> int:
        """A message of a committed atomic batch, not its last (nobody is answered), that carries no header but the
        batch's own, on a stream without per-message work (`_slow_path` off): what _process_checked does for it,
        without the header lookups that cannot find anything. Returns the seq, or 0 (refused, not answered)."""
        max_size = self._max_msg_size
        hlen = len(hdr) if hdr else 0
        if max_size >= 0 and (hlen > max_size or len(msg) > max_size - hlen) or hlen > 65535:
            return 0
        # store_checked for this case: no account limits, limits retention, no TTL, msg id,
        # rollup, schedule or republish (all of them put a stream on the slow path or need a header).
        js = self.js
        storage = self.store.storage
        if js.usage[storage] > js.limit_for[storage]:
            return 0
        try:
            seq, ts = self.store.store_msg(subject, hdr, msg, 0)
        except StoreError:
            return 0
        except OSError as e:
            self.js.logger.error(f"JetStream failed to store a msg on stream '{self.account.name} > {self.name}': {e}")
            return 0
        self.lseq, self.lmsgid = seq, ""
        js.add_usage(self)
        if self.scheduler is not None:
            self.scheduler.stored(seq, subject, hdr, ts)
        self.notify_stored(seq, subject)
        return seq

    def notify_stored(self, seq: int, subject: str, ttl: int = 0) -> None:
        """After a message is stored: wake the consumers and the mirrors/sources reading this stream, arm expiry."""
        if self.consumers:
            for o in self.consumers.values():
                o.signal_new(seq, subject)
        if self.sourcers:
            for feed in self.sourcers:
                feed.origin_stored(seq)
        if (self.cfg.get("max_age") or ttl > 0) and not self._expiry_timer:
            self.schedule_expiry()
        elif ttl > 0 and now_ns() + ttl * 1_000_000_000 < self._expiry_at:
            self.schedule_expiry()  # a shorter TTL than the one the timer waits for

    def _ttl_at_least_marker(self, hdr: bytes, ttl: int) -> tuple[bytes, int]:
        """nats-server raises a message TTL below the subject delete marker TTL to it (unless the stream keeps
        one message per subject), rewriting Nats-TTL as whole seconds at the end of the headers."""
        marker = self.cfg.get("subject_delete_marker_ttl", 0) // 1_000_000_000
        if marker and ttl < marker and self.cfg.get("max_msgs_per_subject", -1) != 1:
            hdr = headers.append(headers.remove(hdr, headers.TTL), [(headers.TTL, str(marker).encode())])
            ttl = marker
        return hdr, ttl

    def _check_headers(self, subject: str, hdr: bytes, sourced: bool = False, check_last_msg_id: bool = True):
        """The header checks of nats-server, in its order; returns (msg_id, rollup, ttl, duplicate_seq).
        A sourced message was checked by its origin: its TTL and its Nats-Stream-Source header are kept."""
        cfg = self.cfg
        get = headers.get
        expect = b"Nats-Expected" in hdr  # one search instead of five for the usual message
        value = get(hdr, headers.EXPECTED_STREAM) if expect else None
        if value and value.decode("utf-8", "replace") != self.name:
            raise api_error("JSStreamNotMatchErr")
        # Each lookup is guarded by a substring test: most keys are absent, and `in` costs no Python call.
        ttl = 0
        ttl_hdr = get(hdr, headers.TTL) if headers.TTL in hdr else None
        if ttl_hdr:
            try:
                ttl = parse_msg_ttl(ttl_hdr)
            except ApiError:
                ttl = None  # refused later, after the other checks, as nats-server does
            if ttl and not cfg.get("allow_msg_ttl"):
                if not sourced:
                    raise api_error("JSMessageTTLDisabledErr")
                ttl = 0
        value = get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ) if expect else None
        if value is not None and value != b"":
            expected = _parse_uint(value)
            check_subject = get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ_SUBJ)
            check_subject = check_subject.decode("utf-8", "replace") if check_subject else subject
            sm = self.store.load_last_msg(check_subject)
            fseq = sm.seq if sm else 0
            if fseq != expected:
                raise api_error("JSStreamWrongLastSequenceErrF", seq=fseq)
        elif expect and get(hdr, headers.EXPECTED_LAST_SUBJ_SEQ_SUBJ):
            raise api_error("JSStreamExpectedLastSeqPerSubjectInvalid")
        value = get(hdr, headers.EXPECTED_LAST_SEQ) if expect else None
        if value is not None and value != b"" and _parse_uint(value) != self.lseq:
            raise api_error("JSStreamWrongLastSequenceErrF", seq=self.lseq)
        if not sourced and b"Nats-Stream-Source" in hdr and get(hdr, b"Nats-Stream-Source"):
            raise api_error("JSMessageSourceHdrNotAllowedErr")
        msg_id = ""
        value = get(hdr, headers.MSG_ID) if headers.MSG_ID in hdr else None
        if value:
            msg_id = value.decode("utf-8", "replace")
            if self._dd:
                self._expire_dedupe(now_ns())
                found = self._dd.get(msg_id)
                if found:
                    return msg_id, "", ttl, found[0]
        value = get(hdr, headers.EXPECTED_LAST_MSG_ID) if expect else None
        if value:
            expected_id = value.decode("utf-8", "replace")
            if expected_id != self.lmsgid:
                if not check_last_msg_id:
                    return None, "", ttl, 0
                raise api_error("JSStreamWrongLastMsgIDErrF", id=self.lmsgid)
        rollup = ""
        value = get(hdr, headers.ROLLUP) if headers.ROLLUP in hdr else None
        if value:
            rollup = value.decode("utf-8", "replace").lower()
            if not cfg.get("allow_rollup_hdrs") or cfg.get("deny_purge"):
                raise api_error("JSStreamRollupFailedF", err="rollup not permitted")
            if rollup not in ("sub", "all"):
                raise api_error("JSStreamRollupFailedF", err=f'rollup value invalid: "{value.decode("utf-8", "replace")}"')
        return msg_id, rollup, ttl, 0

    def _has_interest(self, subject: str) -> bool:
        for o in self.consumers.values():
            if o.filter_matches(subject):
                return True
        return False

    def _rollup(self, subject: str, rollup: str, keep: int) -> None:
        if rollup == "sub":
            self.purge(subject, 0, keep)
        else:
            self.purge("", 0, keep)

    def _republish(self, subject, hdr, msg, seq, ts) -> None:
        dest = self._republish_tr.match(subject)
        if dest is None or not filters.is_valid_publish_subject(dest):
            return
        last = self.store.load_prev_msg((subject,), seq - 1)
        pairs = [(b"Nats-Stream", self.name.encode()), (b"Nats-Subject", subject.encode()),
                 (b"Nats-Sequence", b"%d" % seq), (b"Nats-Time-Stamp", rfc3339(ts).encode()),
                 (b"Nats-Last-Sequence", b"%d" % (last.seq if last else 0))]
        if self.cfg["republish"].get("headers_only"):
            pairs.append((b"Nats-Msg-Size", b"%d" % len(msg)))
            msg = b""
        self.js.server.send_internal(self.account, dest, None, headers.append(hdr, pairs), msg)

    # -- removal ----------------------------------------------------------------------------------
    def purge(self, subject: str = "", seq: int = 0, keep: int = 0) -> int:
        if subject or seq or keep:
            purged = self.store.purge_ex(subject, seq, keep)
        else:
            purged = self.store.purge()
        self.lseq = max(self.lseq, self.store.last_seq)
        self.js.add_usage(self)
        first = self.store.first_seq
        for o in list(self.consumers.values()):
            o.stream_purged(subject, first)
        return purged

    def remove_msg(self, seq: int) -> bool:
        removed = self.store.remove_msg(seq)
        if removed:
            self.js.add_usage(self)
            for o in list(self.consumers.values()):
                o.msg_removed(seq)
        return removed

    def ack_msg(self, consumer, seq: int) -> None:
        """A consumer acknowledged `seq`: work queues drop it, interest streams drop it once no one needs it."""
        retention = self.cfg["retention"]
        if retention == "limits" or seq < self.store.first_seq:
            return
        if retention == "interest":
            subject = self.store.subject_for_seq(seq)
            if subject is None:
                return
            for o in self.consumers.values():
                if o is not consumer and o.needs_ack(seq, subject):
                    return
        self.store.remove_msg(seq)
        self.js.add_usage(self)

    def cleanup_no_interest(self, start: int) -> None:
        """A consumer of an interest stream went away or changed its filter: drop what nobody needs now."""
        if self.cfg["retention"] != "interest":
            return
        if not self.consumers:
            self.purge()
            return
        seq = max(start, self.store.first_seq)
        while True:
            sm = self.store.load_next_msg((), seq)
            if sm is None:
                break
            if not any(o.needs_ack(sm.seq, sm.subject) for o in self.consumers.values()):
                self.store.remove_msg(sm.seq)
            seq = sm.seq + 1
        self.js.add_usage(self)

    # -- age and TTL expiry -----------------------------------------------------------------------
    def schedule_expiry(self) -> None:
        at = self.store.next_expiry(self.cfg.get("max_age", 0))
        loop = self.js.loop
        if self._expiry_timer is not None:
            if at and at >= self._expiry_at:
                return
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if not at:
            return
        self._expiry_at = at
        delay = max(0.0, (at - now_ns()) / 1e9)
        self._expiry_timer = loop.call_later(delay + 0.001, self._expire)

    def _expire(self) -> None:
        self._expiry_timer = None
        if self.closed:
            return
        now = now_ns()
        sdm_ttl = self.cfg.get("subject_delete_marker_ttl", 0)
        if sdm_ttl > 0:
            self._expire_with_markers(now, sdm_ttl)
        else:
            gone = self.store.expire(now, self.cfg.get("max_age", 0))
            if gone:
                self.js.add_usage(self)
                for o in list(self.consumers.values()):
                    for seq in gone:
                        o.msg_removed(seq)
        self.schedule_expiry()

    def _expire_with_markers(self, now: int, sdm_ttl: int) -> None:
        """nats-server's subject delete markers: the last message of a subject to age out is replaced by a
        marker (`Nats-Marker-Reason: MaxAge`, its own TTL, rolling the subject up) instead of vanishing."""
        # nats-server writes the marker TTL as whole seconds (time.Duration(seconds) * time.Second).
        ttl = duration_string(sdm_ttl - sdm_ttl % 1_000_000_000)
        for seq in self.store.expire_candidates(now, self.cfg.get("max_age", 0)):
            sm = self.store.load_msg(seq)
            if sm is None:
                continue
            ss = self.store.subjects_state(sm.subject).get(sm.subject)
            last = ss is not None and ss.msgs == 1
            if last and not (sm.hdr and headers.get(sm.hdr, headers.MARKER_REASON)):
                marker = headers.build([(headers.MARKER_REASON, b"MaxAge"), (headers.TTL, ttl.encode()),
                                        (headers.ROLLUP, b"sub")])
                self._process_checked(sm.subject, "", marker, b"")
            else:
                self.remove_msg(seq)

    # -- direct get -------------------------------------------------------------------------------
    def _direct_request(self, reply: str, payload: bytes) -> dict | None:
        """The JSApiMsgGetRequest of a direct get, decoded as nats-server's json.Unmarshal does (unknown fields
        ignored); None after answering 408 Malformed Request."""
        try:
            return requests.decode(payload, requests.MSG_GET_REQUEST, strict=False)
        except requests.GoJsonError:
            self._status(reply, b"408 Malformed Request")
            return None

    def _direct_get(self, sub, client, subject, reply, hdr, payload) -> None:
        if reply:
            self._guarded(self._direct_get_one, reply, subject, payload)

    def _direct_get_last(self, sub, client, subject, reply, hdr, payload) -> None:
        if reply:
            self._guarded(self._direct_get_last_one, reply, subject, payload)

    def _guarded(self, handler, reply: str, subject: str, payload: bytes) -> None:
        """Run a direct get; a bug answers a 500 status and one log line instead of leaving the client waiting."""
        try:
            handler(reply, subject, payload)
        except Exception as e:
            self.js.logger.error(f"JetStream direct get on '{self.account.name} > {self.name}' failed: "
                                 f"{type(e).__name__}: {e}")
            self._status(reply, b"500 Internal Server Error")

    def _direct_get_one(self, reply: str, subject: str, payload: bytes) -> None:
        if not payload:
            return self._status(reply, b"408 Empty Request")
        req = self._direct_request(reply, payload)
        if req is None:
            return
        seq, last_for, next_for = req.get("seq", 0), req.get("last_by_subj", ""), req.get("next_by_subj", "")
        start_time = req.get("start_time")
        multi = req.get("multi_last")
        batch = req.get("batch", 0)
        if not seq and not last_for and not next_for and not multi and start_time is None:
            return self._status(reply, b"408 Empty Request")
        if (seq and last_for) or (seq and start_time is not None) or (start_time is not None and last_for) or \
                (last_for and next_for) or (last_for and batch > 0) or (last_for and multi) or (next_for and multi) or \
                (req.get("up_to_seq") and req.get("up_to_time") is not None):
            return self._status(reply, b"408 Bad Request")
        self.direct_get(req, reply)

    def _direct_get_last_one(self, reply: str, subject: str, payload: bytes) -> None:
        req = {}
        if payload:
            req = self._direct_request(reply, payload)
            if req is None:
                return
        parts = subject.split(".", 5)
        key = parts[5] if len(parts) > 5 else ""
        if not key:
            return self._status(reply, b"408 Bad Request")
        if any(req.get(k) for k in ("last_by_subj", "next_by_subj", "multi_last", "seq", "batch", "up_to_seq")) \
                or req.get("start_time") is not None or req.get("up_to_time") is not None:
            return self._status(reply, b"408 Bad Request")
        req["last_by_subj"] = key
        self.direct_get(req, reply)

    def _status(self, reply: str, status: bytes) -> None:
        self.js.server.send_internal(self.account, reply, None, b"NATS/1.0 " + status + b"\r\n\r\n", b"")

    def _direct_headers(self, sm, extra=()) -> bytes:
        pairs = [(b"Nats-Stream", self.name.encode()), (b"Nats-Subject", sm.subject.encode()),
                 (b"Nats-Sequence", b"%d" % sm.seq), (b"Nats-Time-Stamp", rfc3339(sm.ts).encode())]
        pairs.extend(extra)
        return headers.append(sm.hdr, pairs)

    def direct_get(self, req: dict, reply: str) -> None:
        """nats-server's getDirectRequest: one message, or a batch followed by an EOB status."""
        store = self.store
        if req.get("multi_last"):
            return self._direct_multi(req, reply)
        seq = req.get("seq", 0)
        if req.get("start_time") is not None:
            seq = store.get_seq_from_time(req["start_time"])
        next_for = req.get("next_by_subj", "")
        last_for = req.get("last_by_subj", "")
        batch = req.get("batch", 0)
        is_batch = batch != 0
        batch = batch or 1
        np = store.num_pending(seq, (next_for,) if next_for else ()) if is_batch else 0
        max_bytes = req.get("max_bytes") or self.js.max_pending
        sent_bytes = 0
        lseq = 0
        no_hdr = req.get("no_hdr")
        for i in range(batch):
            if seq > 0 and not next_for:
                sm = store.load_msg(seq) if i == 0 and not is_batch else store.load_next_msg((), seq)
            elif next_for:
                sm = store.load_next_msg((next_for,), seq)
            else:
                sm = store.load_last_msg(last_for)
            if sm is None:
                if batch > 1 and i > 0:
                    break
                return self._status(reply, b"404 Message Not Found")
            seq = sm.seq + 1
            hdr = None
            if not no_hdr:
                if is_batch:
                    np = max(0, np - 1)
                    hdr = self._direct_headers(sm, [(b"Nats-Num-Pending", b"%d" % np),
                                                    (b"Nats-Last-Sequence", b"%d" % lseq)])
                else:
                    hdr = self._direct_headers(sm)
            lseq = sm.seq
            self.js.server.send_internal(self.account, reply, None, hdr, sm.data)
            sent_bytes += len(sm.subject) + (len(sm.hdr) if sm.hdr else 0) + len(sm.data)
            if sent_bytes >= max_bytes:
                break
        if is_batch:
            np = store.num_pending(seq, (next_for,) if next_for else ())
            self._status(reply, b"204 EOB\r\nNats-Num-Pending: %d\r\nNats-Last-Sequence: %d" % (np, lseq))

    def _direct_multi(self, req: dict, reply: str) -> None:
        store = self.store
        up_to = req.get("up_to_seq") or 0
        if req.get("up_to_time") is not None:
            up_to = store.get_seq_from_time(req["up_to_time"])
            if up_to <= store.first_seq:
                return self._status(reply, b"404 No Results")
            up_to -= 1
        if not up_to:
            up_to = store.last_seq
        min_seq = req.get("seq") or 0
        seqs = []
        for f in req["multi_last"]:
            for name, ss in store.subjects_state(f).items():
                sm = store.load_prev_msg((name,), up_to)
                if sm is not None and sm.seq >= min_seq:
                    seqs.append(sm.seq)
        seqs = sorted(set(seqs))
        if len(seqs) > 1024:
            return self._status(reply, b"413 Too Many Results")
        if not seqs:
            return self._status(reply, b"404 No Results")
        batch = req.get("batch") or 0
        max_bytes = req.get("max_bytes") or self.js.max_pending
        sent = sent_bytes = lseq = 0
        np = len(seqs)
        for s in seqs:
            sm = store.load_msg(s)
            if sm is None:
                continue
            np -= 1
            hdr = self._direct_headers(sm, [(b"Nats-Num-Pending", b"%d" % np), (b"Nats-Last-Sequence", b"%d" % lseq)])
            lseq = sm.seq
            self.js.server.send_internal(self.account, reply, None, hdr, sm.data)
            sent_bytes += len(sm.subject) + (len(sm.hdr) if sm.hdr else 0) + len(sm.data)
            sent += 1
            if sent_bytes >= max_bytes or (batch and sent >= batch):
                break
        self._status(reply, b"204 EOB\r\nNats-Num-Pending: %d\r\nNats-Last-Sequence: %d\r\nNats-UpTo-Sequence: %d"
                     % (np, lseq, up_to))

    # -- info -------------------------------------------------------------------------------------
    def state_json(self, with_deleted: bool = False, subjects_filter: str = "") -> dict:
        st = self.store.state(with_deleted)
        out = {"messages": st.msgs, "bytes": st.bytes, "first_seq": st.first_seq, "first_ts": rfc3339(st.first_ts),
               "last_seq": st.last_seq, "last_ts": rfc3339(st.last_ts)}
        if st.num_subjects:
            out["num_subjects"] = st.num_subjects
        if subjects_filter:
            subjects = {k: v.msgs for k, v in self.store.subjects_state(subjects_filter).items()}
            if subjects:
                out["subjects"] = subjects
        if st.num_deleted:
            out["num_deleted"] = st.num_deleted
        if st.deleted:
            out["deleted"] = st.deleted
        if st.lost_msgs:
            out["lost"] = {"msgs": st.lost_msgs, "bytes": st.lost_bytes}
        out["consumer_count"] = len(self.public_consumers())
        return out

    def public_consumers(self) -> list[str]:
        """The names of the consumers listed and counted (nats-server's getPublicConsumers): every one but the
        `direct` consumers of other servers' mirrors and sources."""
        return sorted(n for n, o in self.consumers.items() if not o.cfg.get("direct"))

    def info(self, version: str | None = None, with_deleted: bool = False, subjects_filter: str = "") -> dict:
        out = {"config": config_json.stream_config_json(self.cfg, version), "created": rfc3339(self.created),
               "state": self.state_json(with_deleted, subjects_filter)}
        if self.sourcing is not None:
            out.update(self.sourcing.info())
        if self.js.domain:
            out["domain"] = self.js.domain
        out["ts"] = rfc3339(now_ns())
        return out

    # -- life cycle -------------------------------------------------------------------------------
    def stop(self, delete: bool = False) -> None:
        self.closed = True
        self._slow_path = True
        self._atomic_plain = False
        if self.sourcing is not None:
            self.sourcing.stop(delete=delete)
        batch_mod.drop_all(self)
        fastbatch.drop_all(self)
        if self.scheduler is not None:
            self.scheduler.stop()
        self.unsubscribe()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        for o in list(self.consumers.values()):
            o.stop(delete=delete, from_stream=True)
        if delete:
            self.consumers.clear()
            self.store.delete()
        else:
            self.store.stop()
