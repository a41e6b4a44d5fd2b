"""One client connection: reads and parses, processes each operation, batches writes, pings, closes.

A `Client` is an asyncio protocol. Everything it sends during one read is queued in `out` and written once,
after the read is processed (`Server.flush`). Bytes the kernel did not take yet count as pending; above
`max_pending` the connection is a slow consumer and is dropped, so memory stays bounded.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import TYPE_CHECKING

from embedded_server import errors, msgtrace, protocol
from embedded_server.errors import (CLIENT_CLOSED, PARSE_ERROR, PROTOCOL_VIOLATION, READ_ERROR, SLOW_CONSUMER, Err)
from embedded_server.protocol import ProtocolError, go_quote
from embedded_server.subjects import InvalidSubject, Subscription, is_valid_literal_subject

if TYPE_CHECKING:
    from embedded_server.server import Account, Server

PONG = b"PONG\r\n"
PING = b"PING\r\n"
OK = b"+OK\r\n"

# Client-side CONNECT fields and their JSON types; a mismatch makes nats-server drop the connection.
_BOOL_FIELDS = frozenset(("echo", "verbose", "pedantic", "tls_required", "headers", "no_responders", "new_account"))
_STR_FIELDS = frozenset(("nkey", "jwt", "sig", "auth_token", "user", "pass", "name", "lang", "version", "account"))
_INT_FIELDS = frozenset(("protocol",))
# How long one turn of the event loop may spend on a read full of SUBs/UNSUBs before the rest waits (seconds).
_WORK_SLICE = 0.005
# A flush of more payload than this is written in pieces of about this size (Client._write_burst).
_BURST = 1 << 20
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Pairs(dict):
    """A JSON object that also keeps its key/value pairs in order, duplicates included."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.pairs = pairs
SYS_GROUP = "_sys_"

_REDACT = (re.compile(r'"?\s*(?:auth_token\S*?|pass\S*?)"?\s*[:=]\s*"?([^",\r\n}]*)'),
           re.compile(r'(?:^|[^A-Za-z0-9_])"?\s*(?:proxy_sig|nkey|sig)"?\s*[:=]\s*"?([^",\r\n}]*)'))


def redact(connect_json: str) -> str:
    """A CONNECT's JSON with passwords, tokens and signatures replaced, as nats-server traces it."""
    for rx in _REDACT:
        for m in reversed(list(rx.finditer(connect_json))):
            connect_json = connect_json[:m.start(1)] + "[REDACTED]" + connect_json[m.end(1):]
    return connect_json


def decode_subject(b: bytes) -> str:
    """Wire bytes to the str the subscription trie and internal callbacks use (round-trips any bytes)."""
    return b.decode("utf-8", "surrogateescape")


def encode_subject(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def is_reserved_reply(reply: bytes) -> bool:
    """Reply subjects only the server may use: service imports, JetStream acks, gateway replies."""
    return (len(reply) > 3 and reply[:4] == b"_R_.") or (len(reply) > 8 and reply[:8] == b"$JS.ACK.") or (
        len(reply) > 5 and reply[:5] == b"$GNR.")


class Client(asyncio.Protocol):
    """A client connection (nats-server's `client` of kind CLIENT)."""

    def __init__(self, server: "Server"):
        self.server = server
        opts = server.options
        self.cid = server.next_client_id()
        self.account: "Account" = server.global_account
        self.transport: asyncio.Transport | None = None
        self.host = ""
        self.port = 0
        self.parser = protocol.Parser(opts.max_control_line, opts.max_payload,
                                      expect_connect=server.auth_required)
        self.parser.hpub_runs = self._takes_hpub_runs
        self.parser.fast_runs = True
        self.max_pending = opts.max_pending
        # CONNECT options; nats-server's defaults before any CONNECT is seen.
        self.opts: dict = {"echo": True, "verbose": True, "pedantic": True, "protocol": 0, "headers": False,
                           "no_responders": False, "name": "", "lang": "", "version": ""}
        self.echo = True
        self.verbose = True
        self.pedantic = True
        self.headers = False
        self.no_responders = False
        self.connect_received = False
        self.first_pong_sent = False
        self.user = ""                # the authenticated user's name, for logs and /connz
        self.perms = None             # permissions object set by auth (see docs/architecture.md)
        self.identity = None          # who auth/ says this is (auth/authenticator.Identity)
        self.nonce: str | None = None  # the nonce of this connection's INFO, when the server asks for one
        self.auth_expiry = None       # the timer that ends the connection when its credentials expire
        self.announced = False        # a CONNECT event was published for it (events.py)
        self.max_subs = -1            # a user JWT's `subs` limit, set by auth (-1: none; 0: no subscriptions)
        self.subs: dict[bytes, Subscription] = {}
        self.out: list[bytes] = []
        self.dirty = False
        self.closed = False
        self.close_reason = ""
        # Statistics, nats-server's names.
        self.in_msgs = self.out_msgs = self.in_bytes = self.out_bytes = 0
        self._tallied_msgs = self._tallied_bytes = 0   # the part of out_msgs/out_bytes in the totals already
        self.start = time.time()
        self._start_mono = time.monotonic()
        self.last_activity = self.start
        self.last_in = time.monotonic()
        self.rtt = 0.0
        self._ping_sent_at = 0.0
        self.pings_out = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self.stalled_on: "Client | None" = None      # the consumer this producer is held back for
        self.stalled_producers: list["Client"] = []   # producers held back for this consumer
        self._ops = None            # the rest of a read's operations, when it yielded the loop (_yield_work)
        self._held: list[bytes] = []  # reads that arrived meanwhile
        self._stall_timer: asyncio.TimerHandle | None = None
        self.stalls = 0
        self.label = f"cid:{self.cid}"

    # -- connection life cycle --------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.host, self.port = peer[0], peer[1]
        self.label = f"{self.host}:{self.port} - cid:{self.cid}"
        srv = self.server
        opts = srv.options
        transport.set_write_buffer_limits(high=max(opts.max_pending * 3 // 4, 48 * 1024),
                                          low=max(opts.max_pending // 2, 32 * 1024))
        srv.debug(f"{self.label} - Client connection created")
        # INFO goes out first, even to a connection over the limit (as nats-server does).
        transport.write(srv.info_json(self))
        if opts.max_connections < 0 or 0 < opts.max_connections <= len(srv.clients):
            srv.error(f"{self.label} - maximum connections exceeded")
            self.send_err(errors.ERR_MAX_CONNECTIONS)
            return
        srv.add_client(self)
        loop = srv.loop
        if srv.auth_required:
            self._auth_timer = loop.call_later(opts.auth_timeout, self._auth_timeout)
        self._ping_timer = loop.call_later(opts.ping_interval, self._ping_timer_fired)

    def connection_lost(self, exc) -> None:
        if not self.closed:
            self.close(CLIENT_CLOSED if exc is None else READ_ERROR, flush=False)
        self.transport = None

    def pause_writing(self) -> None:
        # Pending bytes are accounted for in flush() (stalls, max_pending); nothing to do when asyncio says so.
        pass

    def resume_writing(self) -> None:
        # The buffer drained below the low-water mark: the producers held back for us may go on.
        self.release_stalled()

    # -- fast producers -----------------------------------------------------------------------------------
    def stall(self, producer: "Client") -> None:
        """Hold back `producer`, which is filling this connection's buffer faster than it drains: its reading
        pauses until the buffer falls below half of max_pending, or for at most 50 ms (a consumer that does not
        read at all is then cut off at max_pending). nats-server stalls a fast producer likewise, for a few
        milliseconds per read of at most 64 KiB; a read here can be 256 KiB, hence the longer bound."""
        if producer.stalled_on is not None or producer.closed or producer.transport is None:
            return
        try:
            producer.transport.pause_reading()
        except (RuntimeError, AttributeError):
            return
        producer.stalled_on = self
        producer.stalls += 1
        self.server.stalls += 1
        self.stalled_producers.append(producer)
        producer._stall_timer = self.server.loop.call_later(0.05, producer.unstall)

    def unstall(self) -> None:
        on = self.stalled_on
        if on is None:
            return
        self.stalled_on = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self in on.stalled_producers:
            on.stalled_producers.remove(self)
        if not self.closed and self.transport is not None and self._ops is None:
            try:
                self.transport.resume_reading()
            except (RuntimeError, AttributeError):
                pass

    def release_stalled(self) -> None:
        for producer in list(self.stalled_producers):
            producer.unstall()

    # -- reading -----------------------------------------------------------------------------------------
    def data_received(self, data: bytes | None) -> None:
        if self.closed:
            return
        if self._ops is not None and data is not None:
            self._held.append(data)  # the rest of an earlier read is still being worked through
            return
        srv = self.server
        # Internal answers sent while this read is processed (PubAcks, API replies) join the one write per read.
        srv.reading = self
        # (Server.batched, inline: this runs once per read.)
        srv._batch += 1
        try:
            try:
                self._process(data)
            except ProtocolError as e:
                self._protocol_error(e)
        finally:
            srv._batch -= 1
            try:
                if not srv._batch:
                    srv.flush()
            finally:
                srv.reading = None

    def _process(self, data: bytes) -> None:
        srv = self.server
        account = self.account
        out = self.out
        n_in = in_bytes = 0
        tracing = srv.logger.trace_enabled
        self.parser.runs = not tracing
        # Whether this connection's publishes need nothing checked per message (set again by a CONNECT).
        plain = not (tracing or self.verbose or self.pedantic) and self.perms is None and account.mappings is None
        skip = None if self.echo else self
        # The operations protocol.Parser yields, by name (locals: the loop below runs once per message).
        PUB, HPUB, PUBS, SUB, UNSUB = protocol.PUB, protocol.HPUB, protocol.PUBS, protocol.SUB, protocol.UNSUB
        PUBB, HPUBS, PUBF = protocol.PUBB, protocol.HPUBS, protocol.PUBF
        PING, PONG, CONNECT, INFO = protocol.PING, protocol.PONG, protocol.CONNECT, protocol.INFO
        ERR, HMSG = protocol.ERR, protocol.HMSG
        ops = self.parser.feed(data) if data is not None else self._ops
        self._ops = None
        heavy = 0
        deadline = time.perf_counter() + _WORK_SLICE
        try:
            for op in ops:
                kind = op[0]
                if tracing:
                    self._trace_in(op)
                if kind == PUBB:
                    _, subjects, tails, sizes, count, total = op
                    if plain and count == 1 and (fast := (account.plans.get(subjects[0])
                                                          or account.plan(subjects[0])).fast) is not None:
                        # One publish (a request's answer, say): the PUB fast path below, without a batch's set-up
                        # or the plan's batch routes built for a subject used once.
                        srv.deliver(fast, tails[0], 1, sizes[0], skip)
                        done = 1
                    elif plain:
                        done = srv.route_batch(account, self, subjects, tails, sizes)
                    else:
                        done = 0
                        for subject, tail, size in zip(subjects, tails, sizes):
                            done += 1
                            self._publish(account, subject, None, tail, len(tail) - size - 2, 0)
                            if self.closed:
                                break
                    if done < count:
                        # The connection closed halfway: what came after was not received.
                        count = done
                        total = sum(sizes[:done])
                    n_in += count
                    in_bytes += total
                elif kind == PUBS:
                    _, subject, head, segment, count, total = op
                    n_in += count
                    in_bytes += total
                    if not plain or not srv.route_run(account, self, subject, head, segment, count, total):
                        for _, subject, reply, tail, body_at in protocol.expand_run(op):
                            self._publish(account, subject, None, tail, body_at, 0)
                elif kind == PUB:
                    _, subject, reply, tail, body_at = op
                    size = len(tail) - body_at - 2
                    n_in += 1
                    in_bytes += size
                    if plain and reply is None:
                        # The common case: nothing to check per message, so straight to delivery when the
                        # subject's plan allows it (see server.Plan).
                        plan = account.plans.get(subject)
                        if plan is None:
                            plan = account.plan(subject)
                        fast = plan.fast
                        if fast is not None:
                            srv.deliver(fast, tail, 1, size, skip)
                        else:
                            srv.route(account, self, subject, None, tail, body_at, 0)
                    elif plain and reply[-4:] == b".$FI":
                        # A fast batch's message to a subject only its stream listens on: the stream takes the
                        # batch's next message itself (Stream._inbound_raw), anything else is routed as usual.
                        plan = account.plans.get(subject)
                        if plan is None:
                            plan = account.plan(subject)
                        raw = plan.raw
                        if raw is None or not raw(subject, reply, tail[body_at:-2]):
                            self._publish(account, subject, reply, tail, body_at, 0)
                    else:
                        self._publish(account, subject, reply, tail, body_at, 0)
                elif kind == HPUB:
                    _, subject, reply, tail, body_at, hdr_len = op
                    n_in += 1
                    in_bytes += len(tail) - body_at - 2
                    raw = None
                    if plain and reply is None and account.trace_dest is None:
                        # A staged atomic batch message to a subject only its stream listens on: the stream
                        # takes it itself (Stream._inbound_raw_h) when its headers are only the batch's, so
                        # none can ask for a trace; anything else is published as usual.
                        plan = account.plans.get(subject)
                        if plan is None:
                            plan = account.plan(subject)
                        raw = plan.raw_h
                    if raw is None or not raw(subject, tail[body_at:body_at + hdr_len],
                                              tail[body_at + hdr_len:-2]):
                        self._publish(account, subject, reply, tail, body_at, hdr_len)
                elif kind == HPUBS:
                    _, subject, head, segment, count, total, records = op
                    n_in += count
                    in_bytes += total
                    done = 0
                    if plain and account.trace_dest is None:
                        # A run of staged atomic batch messages: the stream that alone listens on the subject
                        # takes what it can of it in one call (Stream._inbound_run_h); the rest goes one by one.
                        plan = account.plans.get(subject)
                        if plan is None:
                            plan = account.plan(subject)
                        if plan.raw_hs is not None:
                            done = plan.raw_hs[0](subject, records)
                    if done < count:
                        start = records[done].start() - records[0].start()
                        for _, subject, reply, tail, body_at, hdr_len in protocol.expand_run(op, start):
                            self._hpub(account, plain, subject, tail, body_at, hdr_len)
                            if self.closed:
                                break
                elif kind == PUBF:
                    _, subject, buf, items, total = op
                    count = len(items)
                    n_in += count
                    in_bytes += total
                    done = 0
                    while done < count:
                        # A run of a fast batch's messages: the stream that alone listens on the subject takes
                        # what it can of it in one call (Stream._inbound_run); the first message it does not
                        # take (a batch's first, its commit) goes alone, then the stream is offered the rest.
                        raw_fs = account.plan(subject).raw_fs if plain else None
                        if raw_fs is not None:
                            done = raw_fs(subject, buf, items, done)
                            if done >= count:
                                break
                        reply, tail_at, body_at, end = items[done]
                        self._fast_pub(account, plain, subject, reply, buf[tail_at:end], body_at - tail_at)
                        done += 1
                elif kind == SUB or kind == UNSUB:
                    if kind == SUB:
                        _, subject, queue, sid = op
                        self._sub(subject, queue, sid)
                    else:
                        _, sid, max_msgs = op
                        self._unsub(sid, max_msgs)
                    self.last_in = time.monotonic()
                    heavy += 1
                    if heavy >= 8:
                        heavy = 0
                        if time.perf_counter() > deadline and not self.closed:
                            self._yield_work(ops)
                            break
                elif kind == PING:
                    self._ping()
                elif kind == PONG:
                    self._pong()
                elif kind == CONNECT:
                    self._connect(op[1])
                    account = self.account
                    plain = not (tracing or self.verbose or self.pedantic) and self.perms is None and account.mappings is None
                    skip = None if self.echo else self
                elif kind == INFO:
                    self._info(op[1])
                elif kind == ERR:
                    srv.error(f"{self.label} - Client Error {op[1].decode('utf-8', 'replace')}")
                    self.close(PARSE_ERROR)
                elif kind == HMSG:
                    n_in += 1
                    if self.verbose:
                        out.append(OK)
                # +OK from a client (protocol.OK) needs nothing.
                if self.closed:
                    break
        finally:
            if n_in:
                self.in_msgs += n_in
                self.in_bytes += in_bytes
                account.in_msgs += n_in
                account.in_bytes += in_bytes
                srv.in_msgs += n_in
                srv.in_bytes += in_bytes
                self.last_in = time.monotonic()
                self.last_activity = time.time()
            if out and not self.dirty and not self.closed:
                self.dirty = True
                srv.dirty.append(self)

    def _takes_hpub_runs(self, subject: bytes):
        """Parser.hpub_runs: HPUBs to `subject` form a run when a stream alone listens on it (Plan.raw_hs), of the
        messages its record pattern takes."""
        plan = self.account.plan(subject)
        return plan.raw_hs[1] if plan.raw_hs is not None else None

    def _hpub(self, account, plain: bool, subject: bytes, tail: bytes, body_at: int, hdr_len: int) -> None:
        """One HPUB without a reply of a run (protocol.HPUBS), as _process takes a single one."""
        raw = account.plan(subject).raw_h if plain and account.trace_dest is None else None
        if raw is None or not raw(subject, tail[body_at:body_at + hdr_len], tail[body_at + hdr_len:-2]):
            self._publish(account, subject, None, tail, body_at, hdr_len)

    def _fast_pub(self, account, plain: bool, subject: bytes, reply: bytes, tail: bytes, body_at: int) -> None:
        """One PUB of a fast batch run (protocol.PUBF), as _process takes a single one."""
        raw = account.plan(subject).raw if plain else None
        if raw is None or not raw(subject, reply, tail[body_at:-2]):
            self._publish(account, subject, reply, tail, body_at, 0)

    def _yield_work(self, ops) -> None:
        """A read full of SUBs (a storm of them) has used its slice of the event loop: the rest of it waits
        for the next turn, with this connection's reading paused, so that other clients are served between."""
        self._ops = ops
        if self.transport is not None:
            try:
                self.transport.pause_reading()
            except RuntimeError:
                pass
        self.server.loop.call_soon(self._resume_work)

    def _resume_work(self) -> None:
        if self.closed or self._ops is None:
            return
        self.data_received(None)
        while self._ops is None and self._held and not self.closed:
            self.data_received(self._held.pop(0))
        if self._ops is None and not self.closed and self.stalled_on is None and self.transport is not None:
            try:
                self.transport.resume_reading()
            except RuntimeError:
                pass

    def _trace_in(self, op: tuple) -> None:
        kind = op[0]
        if kind == protocol.PUB or kind == protocol.HPUB:
            tail, body_at = op[3], op[4]
            sizes = tail[:body_at - 2].decode()
            reply = f" {decode_subject(op[2])}" if op[2] else ""
            self.trace(f"<<- [{protocol.OP_NAMES[kind]} {decode_subject(op[1])}{reply} {sizes}]")
            self.trace(f"<<- MSG_PAYLOAD: [{go_quote(tail[body_at:-2])}]")
        elif kind == protocol.SUB:
            parts = [op[1], op[2], op[3]] if op[2] else [op[1], op[3]]
            self.trace(f"<<- [SUB {' '.join(decode_subject(p) for p in parts)}]")
        elif kind == protocol.UNSUB:
            self.trace(f"<<- [UNSUB {decode_subject(op[1])}{'' if op[2] < 0 else f' {op[2]}'}]")
        elif kind == protocol.CONNECT:
            self.trace(f"<<- [CONNECT {redact(op[1].decode('utf-8', 'replace'))}]")
        elif kind == protocol.INFO or kind == protocol.ERR:
            self.trace(f"<<- [{protocol.OP_NAMES[kind]} {op[1].decode('utf-8', 'replace')}]")
        else:
            self.trace(f"<<- [{protocol.OP_NAMES[kind]}]")

    def trace(self, text: str) -> None:
        self.server.logger.trace(f"{self.label} - {text}")

    def _publish(self, account, subject: bytes, reply: bytes | None, tail: bytes, body_at: int,
                 hdr_len: int) -> None:
        trace = None
        if hdr_len and (msgtrace.TRACE_DEST in tail[body_at:body_at + hdr_len] or account.trace_dest is not None):
            trace = msgtrace.start(self, account, decode_subject(subject), tail[body_at:body_at + hdr_len],
                                   len(tail) - body_at - 2)
            if trace is msgtrace.SKIP:
                return
        if account.mappings is not None:
            # nats-server maps a client's publish before anything else looks at its subject.
            mapped = encode_subject(account.mappings.map(decode_subject(subject)))
            if trace is not None and mapped != subject:
                trace.mapping(decode_subject(mapped))
            subject = mapped
        if self.pedantic and not is_valid_literal_subject(decode_subject(subject)):
            self.send_err(errors.ERR_INVALID_PUBLISH_SUBJECT)
        if (reply is not None or self.perms is not None) and not self._may_publish(subject, reply):
            return
        if self.verbose:
            self.out.append(OK)
        srv = self.server
        if trace is not None:
            srv.msg_trace = trace
            try:
                delivered = srv.route(account, self, subject, reply, tail, body_at, hdr_len)
            finally:
                srv.msg_trace = None
            trace.send()
        else:
            delivered = srv.route(account, self, subject, reply, tail, body_at, hdr_len)
        if not delivered and reply and self.no_responders:
            self._no_responders(subject, reply)

    def _may_publish(self, subject: bytes, reply: bytes | None) -> bool:
        perms = self.perms
        if perms is not None and not perms.can_publish_wire(subject):
            self.send_err(errors.ERR_PUBLISH_VIOLATION, decode_subject(subject))
            self.server.error(f'{self.label} - Publish Violation - Subject "{decode_subject(subject)}"')
            return False
        if reply and is_reserved_reply(reply):
            self.send_err(errors.ERR_PUBLISH_REPLY_VIOLATION, decode_subject(reply))
            self.server.error(f'{self.label} - Publish Violation - Reply "{decode_subject(reply)}"')
            return False
        return True

    def _no_responders(self, subject: bytes, reply: bytes) -> None:
        result = self.account.sublist.match(decode_subject(reply))
        for sub in result.psubs:
            if sub.client is self:
                protocol.stored_msg_frame(self.out, reply, sub.sid, b"",
                                          b"NATS/1.0 503\r\nNats-Subject: %s\r\n\r\n" % subject, b"", True)
                return

    def _protocol_error(self, e: ProtocolError) -> None:
        if e.pub_subject and self.pedantic and not is_valid_literal_subject(decode_subject(e.pub_subject)):
            self.queue_err(errors.ERR_INVALID_PUBLISH_SUBJECT)
        if e.err is not None:
            self.queue_err(e.err)
        self.server.error(f"{self.label} - {e}")
        self.close(e.err.closes if e.err is not None else PROTOCOL_VIOLATION)

    # -- operations --------------------------------------------------------------------------------------
    def _connect(self, arg: bytes) -> None:
        srv = self.server
        try:
            if not arg.strip():
                raise ValueError("unexpected end of JSON input")
            # Go's decoder takes invalid UTF-8 (and lone surrogates) in a string as U+FFFD.
            obj = json.loads(arg.decode("utf-8", "replace"), object_pairs_hook=_Pairs)
            if obj is not None and not isinstance(obj, dict):
                raise ValueError("cannot unmarshal into ClientOpts")
            for key, value in (obj.pairs if obj else ()):  # a key given twice is checked twice, as Go does
                k = key.lower()
                if value is None:
                    continue
                if k in _BOOL_FIELDS:
                    if not isinstance(value, bool):
                        raise ValueError(f"cannot unmarshal {type(value).__name__} into field {k} of type bool")
                elif k in _STR_FIELDS:
                    if not isinstance(value, str):
                        raise ValueError(f"cannot unmarshal {type(value).__name__} into field {k} of type string")
                    value = _LONE_SURROGATE.sub("\ufffd", value)
                elif k in _INT_FIELDS:
                    if not isinstance(value, int) or isinstance(value, bool) or not -(1 << 63) <= value < (1 << 63):
                        raise ValueError(f"json: cannot unmarshal number {value} into Go struct field ClientOpts.{k} "
                                         "of type int")
                self.opts[k] = value
        except ValueError as e:
            srv.error(f"{self.label} - {e}")
            self.close(PROTOCOL_VIOLATION)
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        first = not self.connect_received
        self.connect_received = True
        opts = self.opts
        self.rtt = time.monotonic() - self._start_mono
        self._set_first_ping_timer()
        self.echo = opts["echo"]
        self.verbose = opts["verbose"]
        self.pedantic = opts["pedantic"]
        self.headers = bool(opts.get("headers"))
        self.no_responders = bool(opts.get("no_responders"))
        self.parser.headers = self.headers
        if not first:
            # A second CONNECT may move the client to another account: nats-server drops its subscriptions.
            self.clear_subscriptions()
        if not srv.authenticate(self, opts) or opts.get("account") or opts.get("new_account"):
            self.auth_violation()
            return
        if self.closed:   # refused after authenticating (the account's connection limit)
            return
        self.parser.expect_connect = False
        if first:
            self._set_label()
        proto = opts.get("protocol", 0)
        if proto < 0 or proto > 1:
            self.send_err(errors.ERR_BAD_CLIENT_PROTOCOL)
            return
        if self.no_responders and not self.headers:
            self.send_err(errors.ERR_NO_RESPONDERS_NEEDS_HEADERS)
            return
        if self.verbose:
            self.out.append(OK)
        if first:
            srv.client_connected(self)

    def _set_label(self) -> None:
        """nats-server's connection label for logs: address, cid, "v<version>:<lang>:<name>", "<account>/<user>"."""
        opts = self.opts
        parts = [f"v{opts['version']}" if opts.get("version") else "", opts.get("lang") or "", opts.get("name") or ""]
        ncs = ":".join(p for p in parts if p)
        label = f"{self.host}:{self.port} - cid:{self.cid}"
        if ncs:
            label += f' - "{ncs}"'
        user = self.auth_user_label()
        if user:
            label += f' - "{self.account.name}/{user}"'
        self.label = label

    def auth_user_label(self) -> str:
        opts = self.opts
        if opts.get("nkey"):
            return f"nkey:{opts['nkey']}"
        if opts.get("user"):
            return f"user:{opts['user']}"
        if opts.get("jwt"):
            return f"jwt:{self.user}"
        if opts.get("auth_token"):
            return "token"
        return ""

    def _info(self, arg: bytes) -> None:
        try:
            if not arg.strip():
                raise ValueError("unexpected end of JSON input")
            obj = json.loads(arg)
            if obj is not None and not isinstance(obj, dict):
                raise ValueError("cannot unmarshal INFO")
        except ValueError as e:
            self.server.error(f"{self.label} - {e}")
            self.close(PROTOCOL_VIOLATION)

    def _sub(self, subject_b: bytes, queue_b: bytes | None, sid: bytes) -> None:
        srv = self.server
        subject = decode_subject(subject_b)
        queue = decode_subject(queue_b) if queue_b is not None else None
        perms = self.perms
        if queue is not None:
            if (perms is not None and not perms.can_subscribe(subject, queue)) or queue == SYS_GROUP:
                self.send_err(errors.ERR_QUEUE_SUBSCRIPTION_VIOLATION, subject, queue)
                srv.error(f'{self.label} - Subscription Violation - Subject "{subject}", Queue: "{queue}", '
                          f'SID {sid.decode("utf-8", "replace")}')
                return
        elif perms is not None and not perms.can_subscribe(subject, None):
            self.send_err(errors.ERR_SUBSCRIPTION_VIOLATION, subject)
            srv.error(f'{self.label} - Subscription Violation - Subject "{subject}", SID {sid.decode("utf-8", "replace")}')
            return
        max_subs = srv.options.max_subscriptions if srv.options.max_subscriptions > 0 else -1
        if self.max_subs >= 0 and (max_subs < 0 or self.max_subs < max_subs):
            max_subs = self.max_subs
        if max_subs >= 0 and len(self.subs) >= max_subs:
            srv.error(f"{self.label} - maximum subscriptions exceeded")
            self.send_err(errors.ERR_MAX_SUBSCRIPTIONS)
            return
        if sid not in self.subs:
            sub = Subscription(self, subject, queue, sid, account=self.account)
            try:
                self.account.sublist.insert(sub)
            except InvalidSubject:
                self.send_err(errors.ERR_INVALID_SUBJECT)
                return
            self.subs[sid] = sub
        if self.verbose:
            self.out.append(OK)

    def _unsub(self, sid: bytes, max_msgs: int) -> None:
        sub = self.subs.get(sid)
        if sub is not None:
            if max_msgs > 0:
                (sub.account or self.account).settle_subs()
            if max_msgs > 0 and max_msgs > sub.delivered:
                sub.max = max_msgs
                # Deliveries to it are now counted one by one (plans only hold what needs no check).
                (sub.account or self.account).drop_plans()
            else:
                sub.max = 0
                self.remove_subscription(sub)
                if self.server.logger.trace_enabled:
                    self.trace(f"<-> [DELSUB {sid.decode('utf-8', 'replace')}]")
        if self.verbose:
            self.out.append(OK)

    def remove_subscription(self, sub: Subscription) -> None:
        if self.subs.get(sub.sid) is sub:
            del self.subs[sub.sid]
        if not sub.closed:
            sub.closed = True
            (sub.account or self.account).sublist.remove(sub)

    def clear_subscriptions(self) -> None:
        subs = list(self.subs.values())
        self.subs.clear()
        for sub in subs:
            if not sub.closed:
                sub.closed = True
                (sub.account or self.account).sublist.remove(sub)

    def _ping(self) -> None:
        if self.server.logger.trace_enabled:
            self.trace("->> [PONG]")
        self.out.append(PONG)
        self.last_in = time.monotonic()
        if self.connect_received and not self.first_pong_sent:
            self.first_pong_sent = True
            if self.opts.get("protocol", 0) >= 1:
                self.out.append(self.server.info_json(self, connect_info=True))

    def _pong(self) -> None:
        self.pings_out = 0
        if self._ping_sent_at:
            self.rtt = time.monotonic() - self._ping_sent_at

    # -- timers ------------------------------------------------------------------------------------------
    def _set_first_ping_timer(self) -> None:
        # nats-server sends the first PING to a client sooner (2s, +up to 20%) to learn its RTT early.
        interval = self.server.options.ping_interval
        d = min(interval, 2.0)
        d += random.random() * d / 5
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self.server.loop.call_later(d, self._ping_timer_fired)

    def _ping_timer_fired(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        srv = self.server
        opts = srv.options
        now = time.monotonic()
        need_rtt = self.rtt == 0 or now - self._ping_sent_at > 3600
        if now - self.last_in < opts.ping_interval and not need_rtt:
            srv.debug(f"{self.label} - Delaying PING due to client activity {now - self.last_in:.0f}s ago")
        else:
            if self.pings_out + 1 > opts.max_pings_out:
                srv.debug(f"{self.label} - Stale Client Connection - Closing")
                srv.stale_connections += 1
                self.send_err(errors.ERR_STALE_CONNECTION)
                return
            self._ping_sent_at = now
            self.pings_out += 1
            if srv.logger.trace_enabled:
                self.trace("->> [PING]")
            self.send(PING)
        self._ping_timer = srv.loop.call_later(opts.ping_interval, self._ping_timer_fired)

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.closed or self.connect_received:
            return
        err = errors.ERR_AUTHENTICATION_TIMEOUT
        self.queue_err(err)
        self.server.debug(f"{self.label} - Authentication Timeout")
        self.close(err.closes)

    # -- writing -----------------------------------------------------------------------------------------
    def send_err(self, err: Err, *args) -> None:
        """Send an `-ERR` of the table (errors.py), its `{}` fields filled from `args`; close the connection
        after it when the table says nats-server does."""
        self.queue_err(err, *args)
        if err.closes is not None:
            self.close(err.closes)

    def queue_err(self, err: Err, *args) -> None:
        """Queue the `-ERR` only: the caller logs what nats-server logs in between, then closes with `err.closes`."""
        text = err.format(*args)
        if self.server.logger.trace_enabled:
            self.trace(f"->> [-ERR {text}]")
        self.queue(b"-ERR '%s'\r\n" % text.encode("utf-8", "surrogateescape"))

    def queue(self, data: bytes) -> None:
        """Queue bytes for this client; they go out with the next flush (end of the current read)."""
        if self.closed:
            return
        self.out.append(data)
        if not self.dirty:
            self.dirty = True
            self.server.dirty.append(self)

    def send(self, data: bytes) -> None:
        """Queue and write now (timers, internal events outside a read)."""
        self.queue(data)
        self.server.flush()

    def tally_out(self) -> None:
        """Add what was delivered to this connection since the last tally to its account's and the server's
        totals (once per write rather than per message; also on close and before an account change)."""
        msgs = self.out_msgs - self._tallied_msgs
        if msgs:
            size = self.out_bytes - self._tallied_bytes
            self._tallied_msgs = self.out_msgs
            self._tallied_bytes = self.out_bytes
            account = self.account
            account.out_msgs += msgs
            account.out_bytes += size
            srv = self.server
            srv.out_msgs += msgs
            srv.out_bytes += size

    def flush(self) -> None:
        self.dirty = False
        burst = self.out_bytes - self._tallied_bytes
        if self.out_msgs != self._tallied_msgs:
            self.tally_out()
        out = self.out
        if not out:
            return
        transport = self.transport
        if transport is None or self.closed:
            out.clear()
            return
        if len(out) == 1:
            transport.write(out[0])
        elif burst > _BURST:
            self._write_burst(out, transport)
        else:
            transport.write(b"".join(out))
        out.clear()
        pending = transport.get_write_buffer_size()
        if pending > self.max_pending:
            self._slow_consumer()
        elif pending > self.max_pending * 3 // 4:
            producer = self.server.reading
            if producer is not None and producer is not self:
                self.stall(producer)

    def _write_burst(self, out: list, transport) -> None:
        """Write a big queue (a fan-out of one payload to many subscriptions of this connection, say) in pieces,
        never as one joined copy, and stop once the transport holds more than max_pending: the connection is
        then a slow consumer, as nats-server finds it, and what was not written is dropped, not copied.
        Memory stays about max_pending however many frames share the payload."""
        piece: list = []
        size = 0
        for chunk in out:
            piece.append(chunk)
            size += len(chunk)
            if size >= _BURST:
                transport.write(b"".join(piece))
                piece, size = [], 0
                if transport.get_write_buffer_size() > self.max_pending:
                    return
        if piece:
            transport.write(b"".join(piece))

    def _slow_consumer(self) -> None:
        srv = self.server
        srv.slow_consumers += 1
        self.account.slow_consumers += 1
        srv.notice(f"{self.label} - Slow Consumer Detected: MaxPending of {self.max_pending} Exceeded")
        self.close(SLOW_CONSUMER, flush=False)

    def auth_violation(self) -> None:
        srv = self.server
        opts = self.opts
        if opts.get("nkey"):
            who = f'Nkey "{opts["nkey"]}"'
        elif opts.get("user"):
            who = f'User "{opts["user"]}"'
        elif opts.get("jwt"):
            who = f'JWT User "{self.user}"'
        elif opts.get("auth_token"):
            who = 'Token "[REDACTED]"'
        else:
            who = ""
        srv.error(f"{self.label} - authentication error" + (f" - {who}" if who else ""))
        self.send_err(errors.ERR_AUTHORIZATION_VIOLATION)
        srv.auth_failed(self)

    def close(self, reason: str, flush: bool = True) -> None:
        """Close the connection: drop its subscriptions, write what is queued (unless `flush` is False)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for timer in (self._ping_timer, self._auth_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._auth_timer = None
        self.release_stalled()
        self.unstall()
        # (Removing them from their account's sublist settles that account's delivery counts: drop_plans.)
        subs = tuple(self.subs.values())
        self.clear_subscriptions()
        self.tally_out()
        srv = self.server
        srv.remove_client(self, subs)
        transport = self.transport
        if transport is not None:
            if flush and self.out:
                if srv.before_output:
                    srv.run_before_output()
                transport.write(b"".join(self.out))
            self.out.clear()
            if flush:
                transport.close()
            else:
                transport.abort()
        srv.debug(f"{self.label} - Client connection closed: {reason}")

    # -- introspection -----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.opts.get("name") or ""

    @property
    def pending_bytes(self) -> int:
        t = self.transport
        return (t.get_write_buffer_size() if t is not None else 0) + sum(len(b) for b in self.out)

    def __repr__(self) -> str:
        return f"<Client {self.label}>"
