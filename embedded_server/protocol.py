"""The client protocol parser: bytes in, operations out. No sockets, no asyncio (sans-IO, like h11).

`Parser.feed(data)` is a generator of operation tuples; a malformed stream raises `ProtocolError` at the point
nats-server would stop, after yielding every operation before it. Operations are produced lazily, so the caller
can change the parser's settings (CONNECT received, headers on) between two operations of the same read.
The accepted syntax follows nats-server's parser.go: case-insensitive verbs, spaces or tabs between arguments,
`\\r\\n` or `\\n` line ends, the control-line and payload limits checked before any payload is buffered.
"""
from __future__ import annotations

import re
from itertools import compress, count as counter, islice, repeat
from operator import add, and_, eq, le
from typing import Iterator

from embedded_server.errors import (ERR_AUTHORIZATION_VIOLATION, ERR_MAX_CONTROL_LINE, ERR_MAX_PAYLOAD,
                                    ERR_UNKNOWN_PROTOCOL, Err)

# Operation codes: the first element of each tuple `feed` yields. Callers match the code by name and unpack the
# fields by the names below (client.py); the operations stay plain tuples because a NamedTuple or a class with
# __slots__ costs 0.2-0.4 µs more to build per message, on a path of about 0.5 µs a message.
PUB = 1       # (PUB, subject, reply|None, tail, body_at)
HPUB = 2      # (HPUB, subject, reply|None, tail, body_at, hdr_len)
# `tail` is the message as it goes out after "MSG <subject> <sid> [reply] ": b"<size>\r\n<payload>\r\n", or
# b"<hdr_size> <total_size>\r\n<headers><payload>\r\n" for HPUB; the body starts at `tail[body_at:]`. Routing
# a message to a subscriber is then two appends, with no copy of the payload.
SUB = 3       # (SUB, subject, queue|None, sid)
UNSUB = 4     # (UNSUB, sid, max)             max is -1 when absent or not a number
PING = 5      # (PING,)
PONG = 6      # (PONG,)
CONNECT = 7   # (CONNECT, json_bytes)
INFO = 8      # (INFO, json_bytes)
OK = 9        # (OK,)
ERR = 10      # (ERR, text_bytes)             a client sending -ERR: nats-server closes the connection
HMSG = 11     # (HMSG,)                       a client sending HMSG: treated as an empty message to nowhere
PUBS = 12     # (PUBS, subject, head, segment, count, payload_bytes)
# A run of `count` (2 or more) consecutive well-formed PUBs to the same subject without reply, each starting
# with the same bytes `head` ("PUB <subject> "), as they sit in `segment`. A pipelining publisher sends these;
# delivering them is one bytes.replace of `head` by the subscriber's "MSG <subject> <sid> " (see server.py).
PUBB = 13     # (PUBB, subjects, tails, sizes, count, payload_bytes)
# A batch of consecutive well-formed, complete PUBs without reply (any subjects, no two neighbours alike), the
# i-th with subjects[i], tails[i] (as in PUB) and sizes[i] (its payload bytes). One read from a publisher is mostly one
# batch, routed in one loop (server.Server.route_batch) instead of one yielded operation per message.
HPUBS = 14    # (HPUBS, subject, head, segment, count, total_bytes, records)
# A run of `count` (2 or more) consecutive well-formed, complete HPUBs to the same subject without reply, each
# starting with the same bytes `head` ("HPUB <subject> ", nats-py's second space included), as they sit in
# `segment`; `total_bytes` counts headers and payloads. `records`: each one's match of the record pattern the
# caller gave (Parser.hpub_runs) after its head, whose group 3 is its whole header block. An atomic batch's
# staged messages come so: a stream takes the run in one call (Plan.raw_hs).
PUBF = 15     # (PUBF, subject, buf, items, total_bytes)
# A run of 2 or more consecutive well-formed, complete PUBs to the same subject, each with a fast batch's reply
# (ending in ".$FI", ADR-50) and a single space between the fields, as they sit in `buf`: `items` holds one
# (reply, tail_at, payload_at, end) each, its PUB being (PUB, subject, reply, buf[tail_at:end], payload_at -
# tail_at). A publisher streaming a fast batch sends these; the stream takes the run in one call (Plan.raw_fs).
# `expand_run` turns a PUBS, PUBB, HPUBS or PUBF back into PUB or HPUB operations.

OP_NAMES = {PUB: "PUB", HPUB: "HPUB", SUB: "SUB", UNSUB: "UNSUB", PING: "PING", PONG: "PONG",
            CONNECT: "CONNECT", INFO: "INFO", OK: "+OK", ERR: "-ERR", HMSG: "HMSG", PUBS: "PUBS", PUBB: "PUBB",
            HPUBS: "HPUBS", PUBF: "PUBF"}

MAX_CONTROL_LINE = 4096
MAX_PAYLOAD = 1024 * 1024



# The control line of a PUB a batch takes: a subject without space, tab, CR or LF, one space (or two, as nats-py
# writes a PUB without reply), 1-9 digits. Anything else (a reply, tabs, lower case, a size too long) is left to
# the one-by-one paths of Parser.feed.
_BATCH_PUB = re.compile(rb"PUB ([^ \t\r\n]+)  ?([0-9]{1,9})\r\n")

# What follows "PUB <subject> " in a PUB of a fast batch run (PUBF): a reply ending in ".$FI" without space, tab,
# CR or LF, one space, 1-9 digits.
_FAST_TAIL = re.compile(rb"([^ \t\r\n]*\.\$FI) ([0-9]{1,9})\r\n")

# The same control line as a split point with a lookahead, so that the pieces between two are the tails
# (Parser._batch), with one space or with two (one pattern each: a split then removes a known length, and
# captures no space), the subject short enough for any size to keep the line within max_control_line. The
# lookbehind takes only a control line that follows a CRLF (the first one of a batch is matched on its own):
# every tail but the last then ends with one without being looked at.
_SPLITS: dict = {}
# A batch is cut by a split when its messages took at most this many bytes on average lately: a split reads
# every payload byte, the one-by-one path jumps over payloads.
_SPLIT_BELOW = 640
_SPLIT_BACKOFF = -16
# A batch that starts at most this far into a read is cut out of the whole read (Parser._batch).
_SPLIT_WHOLE = 8192
_FOUR = repeat(4)
# The size fields of payloads under 2 KiB as written without leading zeros: the size each stands for, and the
# length of a tail with it (digits, CRLF, payload, CRLF). Two lookups a message cost less than int() and sums.
_SIZE_TABLE = 2048
_SIZE_OF = {b"%d" % n: n for n in range(_SIZE_TABLE)}.get
_TAIL_OF = {b"%d" % n: n + len(b"%d" % n) + 4 for n in range(_SIZE_TABLE)}.get


def _split_pattern(max_control_line: int, spaces: int):
    """The split pattern (see _SPLITS) of control lines with `spaces` (1 or 2) before the size."""
    pattern = _SPLITS.get((max_control_line, spaces))
    if pattern is None:
        if max_control_line <= 11:
            return None
        pattern = _SPLITS[max_control_line, spaces] = re.compile(
            rb"PUB (?<=\r\nPUB )([^ \t\r\n]{1,%d})%s(?=([0-9]{1,9})\r\n)" % (max_control_line - 11, b" " * spaces))
    return pattern


# Reads of a payload shorter than this are copied together rather than kept one object each (Parser.feed).
_SMALL_READ = 16 * 1024


class ProtocolError(Exception):
    """The stream cannot be parsed any further; the connection must close.

    `err` is the entry of the error table (errors.py) nats-server sends as `-ERR` before closing, or None when
    it closes silently (bad arguments, bad sizes, bad JSON). `str(self)` is the line for the server log.
    """

    def __init__(self, log: str, err: Err | None = None, pub_subject: bytes | None = None):
        super().__init__(log)
        self.err = err
        # A PUB/HPUB whose payload did not end in CRLF: nats-server checked its subject before reading it.
        self.pub_subject = pub_subject


# Verb table: how the verb is followed. SEP: needs a space or tab, then an argument line. OPT: the
# argument may follow directly. REST: everything to the end of the line is ignored.
_SEP, _OPT, _REST = 0, 1, 2
_VERBS = (
    (b"PUB", _SEP, PUB), (b"HPUB", _SEP, HPUB), (b"SUB", _SEP, SUB), (b"UNSUB", _SEP, UNSUB),
    (b"PING", _REST, PING), (b"PONG", _REST, PONG), (b"CONNECT", _OPT, CONNECT), (b"INFO", _OPT, INFO),
    (b"+OK", _REST, OK), (b"-ERR", _SEP, ERR), (b"HMSG", _SEP, HMSG),
)
_WAIT = -1  # the verb is incomplete: wait for more bytes


def _verb(head: bytes):
    """Match the verb at the start of `head` (already upper-cased): (verb, kind, op) or _WAIT, or an error index."""
    for verb, kind, op in _VERBS:
        n = len(verb)
        if head[:n] == verb:
            return verb, kind, op
    for verb, kind, op in _VERBS:
        if verb.startswith(head):
            return _WAIT
    # Index of the first byte that no verb accepts, as nats-server reports it.
    for i in range(1, len(head) + 1):
        if not any(v.startswith(head[:i]) for v, _, _ in _VERBS):
            return i - 1
    return 0


def _uniform(buf: bytes, pos: int, rec: int, m: int, line: bytes) -> bool:
    """Whether `m` records of `rec` bytes from `pos` all start with `line` and end with CRLF."""
    stop = pos + m * rec
    if buf[pos + rec - 2:stop:rec] != b"\r" * m or buf[pos + rec - 1:stop:rec] != b"\n" * m:
        return False
    for j in range(len(line)):
        if buf[pos + j:stop:rec] != line[j:j + 1] * m:
            return False
    return True


def parse_size(b: bytes) -> int:
    """nats-server's parseSize: 1 to 9 ASCII digits, else -1."""
    if 0 < len(b) <= 9 and b.isdigit():
        return int(b)
    return -1


def _split_pub_args(arg: bytes) -> list[bytes]:
    # nats-server separates PUB/HPUB arguments by spaces and tabs only.
    args = arg.split(b" ")
    if b"" in args or b"\t" in arg:
        args = [a for a in arg.replace(b"\t", b" ").split(b" ") if a]
    return args


def split_arg(arg: bytes) -> list[bytes]:
    """nats-server's splitArg (SUB, UNSUB): separated by spaces, tabs, CR and LF."""
    return [a for a in arg.replace(b"\t", b" ").replace(b"\r", b" ").split(b" ") if a]


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def go_quote(data: bytes) -> str:
    """Go's %q of a byte slice (how nats-server traces payloads)."""
    out = ['"']
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _snippet(data: bytes) -> str:
    """nats-server's protoSnippet: up to 32 bytes (one less at the end of the buffer), Go-quoted."""
    return f"'{go_quote(data[:32] if len(data) > 32 else data[:-1])}...'"


class Parser:
    """Incremental parser of what a client sends.

    Settings the connection may change between operations: `expect_connect` (auth pending: anything but CONNECT
    first is an 'Authorization Violation'), `headers` (HPUB allowed), `max_payload`, `max_control_line`.
    """

    __slots__ = ("max_control_line", "max_payload", "expect_connect", "headers", "runs", "hpub_runs", "fast_runs",
                 "_buf", "_pending", "_chunks", "_have", "_failed", "_split")

    def __init__(self, max_control_line: int = MAX_CONTROL_LINE, max_payload: int = MAX_PAYLOAD,
                 expect_connect: bool = False, headers: bool = False, runs: bool = True):
        self.runs = runs
        # hpub_runs(subject): None, or the `match` of a pattern for what follows "HPUB <subject> " in an HPUB without
        # reply that may join an HPUBS run (with `runs`): group 1 and 2 its sizes, then CRLF, group 3 its header
        # block. The caller says where a run is taken whole (a stream staging batches); elsewhere one by one.
        self.hpub_runs = None
        # fast_runs: PUBs with a fast batch's reply to one subject may form a PUBF run (with `runs`).
        self.fast_runs = False
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        self.expect_connect = expect_connect
        self.headers = headers
        self._buf = b""
        self._pending: tuple | None = None   # an operation waiting for its payload
        self._chunks: list[bytes] = []
        self._have = 0
        self._failed: ProtocolError | None = None
        self._split = 0         # > 0: batches are cut with one regex split (Parser._batch): small messages lately

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of an operation (bounded by the limits)."""
        return len(self._buf) + self._have

    def feed(self, data: bytes) -> Iterator[tuple]:
        if self._failed is not None:
            raise self._failed
        try:
            pending = self._pending
            if pending is not None:
                # Waiting for a payload: collect chunks without re-joining until it is all here.
                need = pending[-1]
                chunks = self._chunks
                have = self._have
                if have + len(data) >= need:
                    # This read completes it: only its first bytes join the payload, and parsing goes on in the
                    # read itself (no copy of the whole read into one buffer with the payload's start).
                    at = need - have
                    chunks.append(data[:at])
                    msg = b"".join(chunks)
                    self._chunks = []
                    self._have = 0
                    self._pending = None
                    if msg[need - 2:need] != b"\r\n":
                        raise ProtocolError(f"Client parser ERROR, state=MSG_END, i={need - 2}: "
                                            f"proto={_snippet(msg[need - 2:] + data[at:at + 40])}",
                                            ERR_UNKNOWN_PROTOCOL, pending[1])
                    yield self._complete(pending, msg)
                    buf = data
                    pos = at
                else:
                    if len(data) >= _SMALL_READ:
                        chunks.append(data)
                    elif type(chunks[-1]) is bytearray:
                        chunks[-1] += data
                    else:
                        # A small read keeps the memory block the socket read was made in (a page or more for a
                        # byte): small reads are copied together into one bytearray instead of being kept.
                        chunks.append(bytearray(data))
                    self._have += len(data)
                    if self._have > need - 2:
                        self._check_trailer(b"".join(self._chunks), need - 2, pending[1])
                    return
            else:
                buf = self._buf + data if self._buf else data
                self._buf = b""
                pos = 0

            end = len(buf)
            find = buf.find
            startswith = buf.startswith
            mcl = self.max_control_line
            max_payload = self.max_payload
            expect_connect = self.expect_connect   # only a CONNECT (general path below) can clear it
            match = _BATCH_PUB.match if self.runs else None
            lone = None  # the subject hpub_runs refused last in this read: not asked again
            while pos < end:
                if expect_connect and buf[pos] not in b"Cc":
                    raise ProtocolError(ERR_AUTHORIZATION_VIOLATION.text, ERR_AUTHORIZATION_VIOLATION)
                # Batch path: consecutive complete PUBs without reply go out as one PUBB. Whatever it does not
                # take (an incomplete or invalid message, one over a limit, the start of a run of one subject)
                # is left where it starts for the paths below, which wait, raise or form the run.
                m = match(buf, pos) if match is not None else None
                if m is not None:
                    op, pos = self._batch(buf, pos, m)
                    if op is not None:
                        yield op
                        if pos >= end:
                            break
                nl = find(b"\n", pos)
                if nl < 0:
                    self._partial(buf, pos)
                    return
                # Fast path: a well-formed "PUB <subject> [reply] <size>\r\n" (nats-py leaves two spaces when
                # there is no reply). Anything unusual takes the general path (_op).
                if startswith(b"PUB ", pos) and buf[nl - 1] == 13:
                    arg = buf[pos + 4:nl - 1]
                    args = arg.split(b" ")
                    nargs = len(args)
                    if nargs == 2:
                        subject, szb = args
                        reply = None
                    elif nargs == 3:
                        subject, reply, szb = args
                        if not reply:
                            reply = None
                    else:
                        subject = b""
                    if subject and szb.isdigit() and len(szb) <= 9 and b"\t" not in arg:
                        if len(arg) > mcl:
                            raise self._mcl_error(arg)
                        size = int(szb)
                        if size > max_payload:
                            raise ProtocolError(f"Maximum Payload Violation: {size} vs {max_payload}",
                                                ERR_MAX_PAYLOAD)
                        tail_at = nl - 1 - len(szb)
                        stop = nl + 1 + size
                        if stop + 2 > end:
                            self._wait_payload((PUB, subject, reply, len(szb) + 2, 0, b"", stop + 2 - tail_at),
                                               buf, tail_at)
                            return
                        if buf[stop] != 13 or buf[stop + 1] != 10:
                            raise ProtocolError(
                                f"Client parser ERROR, state=MSG_END, i={stop}: proto={_snippet(buf[stop:])}",
                                ERR_UNKNOWN_PROTOCOL, subject)
                        nxt = stop + 2
                        hl = tail_at - pos
                        # Gather the following PUBs of the same shape into one run. (The index checks are a
                        # cheap first look: same last subject byte, then the separator, in the next line.)
                        if reply is None and nxt + hl < end and buf[nxt + hl - 1] == 32 \
                                and buf[nxt + hl - 2] == buf[tail_at - 2] and self.runs \
                                and startswith(buf[pos:tail_at], nxt):
                            head = buf[pos:tail_at]
                            count = 1
                            total = size
                            run_end = nxt
                            line = buf[pos:nl + 1]
                            if startswith(line, nxt):
                                # Identical messages back to back (a pipelining publisher): check every record's
                                # control line and CRLF at once with strided slices instead of one by one.
                                rec = nxt - pos
                                m = (end - pos) // rec
                                if m > 2 and _uniform(buf, pos, rec, m, line):
                                    count = m
                                    total = size * m
                                    run_end = pos + m * rec
                            while startswith(head, run_end):
                                nl2 = find(b"\n", run_end + hl)
                                if nl2 < 0 or buf[nl2 - 1] != 13:
                                    break
                                szb2 = buf[run_end + hl:nl2 - 1]
                                if not szb2.isdigit() or len(szb2) > 9 or hl - 4 + len(szb2) > mcl:
                                    break
                                size2 = int(szb2)
                                stop2 = nl2 + 1 + size2
                                if size2 > max_payload or stop2 + 2 > end or buf[stop2] != 13 \
                                        or buf[stop2 + 1] != 10:
                                    break
                                count += 1
                                total += size2
                                run_end = stop2 + 2
                            if count > 1:
                                yield (PUBS, subject, head, buf[pos:run_end], count, total)
                                pos = run_end
                                continue
                        elif reply is not None and reply[-4:] == b".$FI" and self.fast_runs and self.runs \
                                and nargs == 3 and startswith(buf[pos:pos + 5 + len(subject)], nxt):
                            # The next PUB starts as this one, "PUB <subject> ": a fast batch's run, maybe.
                            items = [(reply, tail_at, nl + 1, nxt)]
                            run_end, total = self._fast_run(buf, pos, 5 + len(subject), nxt, end, items)
                            if len(items) > 1:
                                yield (PUBF, subject, buf, items, total + size)
                                pos = run_end
                                continue
                        yield (PUB, subject, reply, buf[tail_at:nxt], len(szb) + 2)
                        pos = nxt
                        continue
                elif startswith(b"HPUB ", pos) and buf[nl - 1] == 13 and self.headers:
                    # Fast path of a complete, well-formed "HPUB <subject> [reply] <hdr size> <size>\r\n" with a
                    # header block: the same operation _op would give; anything else (an error to report, a
                    # payload still on its way) takes the general path.
                    arg = buf[pos + 5:nl - 1]
                    args = arg.split(b" ")
                    nargs = len(args)
                    if nargs == 3:
                        subject, hdb, szb = args
                        reply = None
                    elif nargs == 4:
                        subject, reply, hdb, szb = args
                        if not reply:
                            reply = None
                    else:
                        subject = b""
                    if subject and hdb.isdigit() and szb.isdigit() and len(hdb) <= 9 and len(szb) <= 9 \
                            and len(arg) <= mcl and b"\t" not in arg:
                        hdr_len = int(hdb)
                        size = int(szb)
                        stop = nl + 1 + size
                        if 0 < hdr_len <= size <= max_payload and stop + 2 <= end and buf[stop] == 13 \
                                and buf[stop + 1] == 10:
                            tail_at = nl - 2 - len(szb) - len(hdb)
                            nxt = stop + 2
                            hl = tail_at - pos
                            # Gather the following HPUBs of the same subject without reply into one run (a cheap
                            # look first: the next line has a space where this one's sizes start).
                            if reply is None and match is not None and nxt + hl < end \
                                    and buf[nxt + hl - 1] == 32 and subject != lone and self.hpub_runs is not None \
                                    and startswith(buf[pos:tail_at], nxt):
                                record = self.hpub_runs(subject)
                                if record is None:
                                    lone = subject
                                else:
                                    run_end, records, total = self._hpub_run(buf, pos, hl, end, record)
                                    if len(records) > 1:
                                        yield (HPUBS, subject, buf[pos:tail_at], buf[pos:run_end], len(records),
                                               total, records)
                                        pos = run_end
                                        continue
                            yield (HPUB, subject, reply, buf[tail_at:nxt], nl + 1 - tail_at, hdr_len)
                            pos = nxt
                            continue
                pos = yield from self._op(buf, pos, nl)
                expect_connect = self.expect_connect
        except ProtocolError as e:
            self._failed = e
            self._buf = b""
            self._chunks = []
            raise

    def _fast_run(self, buf: bytes, pos: int, hs: int, at: int, end: int, items: list) -> tuple[int, int]:
        """The PUBs from `at` on that start with the `hs` bytes at `pos` ("PUB <subject> "), whose rest _FAST_TAIL
        matches and that would take the one-by-one fast path of feed (complete, within the limits), appended to
        `items` as PUBF has them: (where the first other operation starts, their total payload bytes). Anything
        else ends the run and is left for feed."""
        head = buf[pos:pos + hs]
        startswith = buf.startswith
        match = _FAST_TAIL.match
        mcl = self.max_control_line
        max_payload = self.max_payload
        append = items.append
        total = 0
        while startswith(head, at):
            m = match(buf, at + hs)
            if m is None:
                break
            body = m.end()
            szb = m[2]
            size = int(szb)
            stop = body + size
            if size > max_payload or stop + 2 > end or buf[stop] != 13 or buf[stop + 1] != 10 \
                    or body - at - 6 > mcl:
                break
            append((m[1], body - 2 - len(szb), body, stop + 2))
            total += size
            at = stop + 2
        return at, total

    def _hpub_run(self, buf: bytes, pos: int, hl: int, end: int, record) -> tuple[int, list, int]:
        """The HPUBs from `pos` on that start with the `hl` bytes at `pos` ("HPUB <subject> "), whose rest `record`
        matches with group 3 their whole header block, and that would take the one-by-one fast path of feed (two
        sizes, complete, within the limits): (where the first other operation starts, their matches, their total
        sizes). Anything else ends the run and is left for feed."""
        head = buf[pos:pos + hl]
        startswith = buf.startswith
        # A control line within max_control_line whatever its sizes (two of 9 digits at most), or check each.
        mcl = self.max_control_line if hl + 14 > self.max_control_line else 0
        max_payload = self.max_payload
        records = []
        total = 0
        run_end = pos
        while startswith(head, run_end):
            m = record(buf, run_end + hl)
            if m is None:
                break
            hdr_len = int(m[1])
            size = int(m[2])
            at = m.start(3)
            stop = at + size
            if m.end() - at != hdr_len or not 0 < hdr_len <= size <= max_payload or stop + 2 > end \
                    or buf[stop] != 13 or buf[stop + 1] != 10 or (mcl and at - 7 - run_end > mcl):
                break
            records.append(m)
            total += size
            run_end = stop + 2
        return run_end, records, total

    def _batch(self, buf: bytes, pos: int, m) -> tuple:
        """(the PUBB of the publishes from `pos` on, or None if it would be empty; where the next operation
        starts). `m` is the match of the first control line. With small messages lately (`_split`), the rest of
        the read is cut at every control line in one regex split and checked with whole-list operations; else,
        or when that takes less than half of it, one control line at a time. A split that took less than half
        of what it cut is not tried again before _SPLIT_BACKOFF more batches of small messages."""
        mcl = self.max_control_line
        max_payload = self.max_payload
        # The first control line's spaces (nats-py writes two) choose the pattern: a control line with the other
        # number is no cut, so it makes the tail before it too long and ends the batch there.
        spaces = m.start(2) - m.end(1)
        split = _split_pattern(mcl, spaces) if self._split > 0 else None
        if split is not None:
            subject, szb = m.groups()
            cut = 4 + spaces    # what a cut removes besides the subject: "PUB ", the spaces
            parts = None
            if 0 < pos <= _SPLIT_WHOLE and len(subject) <= mcl - 11 and buf[pos - 2:pos] == b"\r\n":
                # A batch starting a little way into the read (after the end of a payload the previous read
                # began): the whole read is cut, which cuts at `pos` too (a CRLF before it, and no cut before
                # can reach over a CRLF), and the pieces before `pos` are dropped, rather than cutting a copy of
                # the read from `pos` on. (Each cut removes "PUB <subject><spaces>" and gives three pieces.)
                parts = split.split(buf)
                at = len(parts[0])
                i = 0
                last = len(parts) - 3
                while at < pos and i < last:
                    at += cut + len(parts[i + 1]) + len(parts[i + 3])
                    i += 3
                if at == pos:
                    parts[:i + 1] = [b""]
                else:
                    parts = None
            if parts is None:
                parts = split.split(buf[pos:] if pos else buf)
                if len(parts) >= 7 and len(subject) <= mcl - 11:
                    # The first message stays whole in parts[0] (no CRLF before it): its pieces come from `m`.
                    first = parts[0]
                    at = m.start(2) - pos
                    parts[0:1] = [b"", subject, szb, first[at:]]
            if len(parts) < 7 or len(subject) > mcl - 11:
                self._split = _SPLIT_BACKOFF
            else:
                # parts: b"", then per message its subject, size digits and tail (b"<size>\r\n<payload>\r\n"
                # when the next control line follows right after it: a payload holding something like a control
                # line, or anything between messages, makes that tail longer or shorter than its size says; the
                # last one must end with CRLF too).
                subjects, szbs, tails = parts[1::3], parts[2::3], parts[3::3]
                sizes = list(map(_SIZE_OF, szbs))
                if None in sizes:
                    sizes = list(map(int, szbs))
                    want = list(map(add, map(len, szbs), map(add, sizes, _FOUR)))
                    over = max(sizes) > max_payload
                else:
                    want = list(map(_TAIL_OF, szbs))
                    over = max_payload < _SIZE_TABLE and max(sizes) > max_payload
                lens = list(map(len, tails))
                whole = count = len(tails)
                if lens[-1] != want[-1] or not tails[-1].endswith(b"\r\n"):
                    # The last one (most often: cut by the end of the read) is left to the paths below.
                    count -= 1
                    lens.pop()
                    want.pop()
                if lens != want or over:
                    good = list(map(and_, map(eq, lens, want), map(le, sizes, repeat(max_payload))))
                    if False in good:
                        count = good.index(False)
                if count < whole // 2:
                    self._split = _SPLIT_BACKOFF
                # A run of one subject (three or more in a row) is left to the run path, from where it starts,
                # as is a pair that starts the batch. (Pairs are few: the loop goes over where they are.)
                if True in map(eq, islice(subjects, 1, count), subjects):
                    pairs = compress(counter(), map(eq, islice(subjects, 1, count), subjects))
                    first = last = next(pairs)
                    for at in pairs:
                        if at == last + 1:
                            count = last
                            break
                        last = at
                    else:
                        if not first:
                            count = 0
                if not count:
                    return None, pos
                nxt = len(buf)
                if count < whole:
                    # The next operation starts where the messages left out do.
                    nxt -= cut * (whole - count) + sum(map(len, subjects[count:])) + sum(map(len, tails[count:]))
                    del subjects[count:], tails[count:], sizes[count:]
                return (PUBB, subjects, tails, sizes, count, sum(sizes)), nxt
        match = _BATCH_PUB.match
        startswith = buf.startswith
        subjects, tails, sizes = [], [], []
        start = pos
        total = last_size = last_pos = 0
        last = None
        while m is not None:
            subject, szb = m.groups()
            body = m.end()
            size = int(szb)
            stop = body + size
            if size > max_payload or body - pos - 6 > mcl or not startswith(b"\r\n", stop):
                break
            if subject == last:
                # The start of a run of one subject is left to the run path.
                subjects.pop()
                tails.pop()
                sizes.pop()
                total -= last_size
                pos = last_pos
                break
            subjects.append(subject)
            tails.append(buf[body - 2 - len(szb):stop + 2])
            sizes.append(size)
            total += size
            last, last_pos, last_size = subject, pos, size
            pos = stop + 2
            m = match(buf, pos)
        count = len(sizes)
        if not count:
            return None, pos
        if count >= 8 and pos - start <= _SPLIT_BELOW * count and self._split <= 0:
            self._split += 1
        return (PUBB, subjects, tails, sizes, count, total), pos

    def _pub_args(self, arg: bytes):
        args = _split_pub_args(arg)
        if len(args) == 2:
            return args[0], None, args[1]
        if len(args) == 3:
            return args[0], args[1], args[2]
        raise ProtocolError(f"processPub Parse Error: {arg!r}")

    def _mcl_error(self, arg: bytes) -> ProtocolError:
        return ProtocolError(
            f"maximum control line exceeded: max_control_line {self.max_control_line}, Buffer len {len(arg)}"
            f" (snip: {repr(arg[:128])[1:]}...)", ERR_MAX_CONTROL_LINE)

    def _op(self, buf: bytes, pos: int, nl: int):
        """Parse one complete control line at buf[pos:nl+1]; return where the next operation starts."""
        line = buf[pos:nl]
        m = _verb(line[:7].upper())
        if m == _WAIT or isinstance(m, int):
            at = len(line) if m == _WAIT else m
            raise ProtocolError(f"Client parser ERROR, state=0, i={pos + at}: proto={_snippet(buf[pos + at:])}",
                                ERR_UNKNOWN_PROTOCOL)
        verb, kind, op = m
        n = len(verb)
        if kind == _REST:
            yield (op,)
            return nl + 1
        if kind == _SEP:
            if n >= len(line) or line[n] not in b" \t":
                raise ProtocolError(f"Client parser ERROR, state=0, i={pos + n}: proto={_snippet(buf[pos + n:])}",
                                    ERR_UNKNOWN_PROTOCOL)
        arg = line[n:].lstrip(b" \t")
        if b"\r" in arg:
            # nats-server drops the last byte of an argument line in which it saw a CR (normally the CR itself).
            arg = arg[:-1]
        if len(arg) > self.max_control_line:
            raise self._mcl_error(arg)
        if op == PUB:
            subject, reply, szb = self._pub_args(arg)
            size = parse_size(szb)
            if size < 0:
                raise ProtocolError(f"processPub Bad or Missing Size: {arg!r}")
            if size > self.max_payload:
                raise ProtocolError(f"Maximum Payload Violation: {size} vs {self.max_payload}", ERR_MAX_PAYLOAD)
            lead = szb + b"\r\n"
            return (yield from self._payload(buf, nl + 1, (PUB, subject, reply, len(lead), 0, lead, size + 2)))
        if op == HPUB:
            if not self.headers:
                raise ProtocolError("Header Support Not Enabled")
            args = _split_pub_args(arg)
            if len(args) == 3:
                subject, reply, hdb, szb = args[0], None, args[1], args[2]
            elif len(args) == 4:
                subject, reply, hdb, szb = args
            else:
                raise ProtocolError(f"processHeaderPub Parse Error: {arg!r}")
            hdr = parse_size(hdb)
            if hdr < 0:
                raise ProtocolError(f"processHeaderPub Bad or Missing Header Size: {arg!r}")
            size = parse_size(szb)
            if size < 0:
                raise ProtocolError(f"processHeaderPub Bad or Missing Total Size: {arg!r}")
            if hdr > size:
                raise ProtocolError(f"processHeaderPub Header Size larger then TotalSize: {arg!r}")
            if size > self.max_payload:
                raise ProtocolError(f"Maximum Payload Violation: {size} vs {self.max_payload}", ERR_MAX_PAYLOAD)
            if hdr == 0:
                # No header block: nats-server delivers it as a plain MSG.
                lead = szb + b"\r\n"
                return (yield from self._payload(buf, nl + 1, (PUB, subject, reply, len(lead), 0, lead, size + 2)))
            lead = hdb + b" " + szb + b"\r\n"
            return (yield from self._payload(buf, nl + 1, (HPUB, subject, reply, len(lead), hdr, lead, size + 2)))
        if op == SUB:
            args = split_arg(arg)
            if len(args) == 2:
                yield (SUB, args[0], None, args[1])
            elif len(args) == 3:
                yield (SUB, args[0], args[1], args[2])
            else:
                raise ProtocolError(f"processSub Parse Error: {arg!r}")
            return nl + 1
        if op == UNSUB:
            args = split_arg(arg)
            if len(args) == 1:
                yield (UNSUB, args[0], -1)
            elif len(args) == 2:
                yield (UNSUB, args[0], parse_size(args[1]))
            else:
                raise ProtocolError(f"processUnsub Parse Error: {arg!r}")
            return nl + 1
        if op == HMSG:
            # A client may not send HMSG; nats-server then expects an empty body and routes nothing.
            return (yield from self._payload(buf, nl + 1, (HMSG, None, None, 0, 0, b"", 2)))
        yield (op, arg)  # CONNECT, INFO, -ERR
        return nl + 1

    def _payload(self, buf: bytes, start: int, head: tuple):
        need = head[-1]
        stop = start + need
        if stop <= len(buf):
            if buf[stop - 2:stop] != b"\r\n":
                raise ProtocolError(f"Client parser ERROR, state=MSG_END, i={stop - 2}: proto={_snippet(buf[stop - 2:])}",
                                    ERR_UNKNOWN_PROTOCOL, head[1])
            yield self._complete(head, buf[start:stop])
            return stop
        self._wait_payload(head, buf, start)
        return len(buf)

    @staticmethod
    def _complete(head: tuple, data: bytes) -> tuple:
        op, subject, reply, body_at, hdr_len, lead, _ = head
        tail = lead + data if lead else data
        if op == PUB:
            return (PUB, subject, reply, tail, body_at)
        if op == HPUB:
            return (HPUB, subject, reply, tail, body_at, hdr_len)
        return (HMSG,)

    def _wait_payload(self, head: tuple, buf: bytes, start: int) -> None:
        rest = buf[start:]
        need = head[-1]
        if len(rest) > need - 2:
            self._check_trailer(rest, need - 2, head[1])
        self._pending = head
        self._chunks = [rest]
        self._have = len(rest)

    @staticmethod
    def _check_trailer(data: bytes, at: int, pub_subject: bytes | None) -> None:
        if data[at:at + 1] not in (b"\r", b""):
            raise ProtocolError(f"Client parser ERROR, state=MSG_END_R, i={at}: proto={_snippet(data[at:])}",
                                ERR_UNKNOWN_PROTOCOL, pub_subject)

    def _partial(self, buf: bytes, pos: int) -> None:
        """Keep an incomplete control line, failing as early as nats-server would and keeping memory bounded."""
        rest = buf[pos:]
        m = _verb(rest[:7].upper())
        if m == _WAIT:
            self._buf = rest
            return
        if isinstance(m, int):
            raise ProtocolError(f"Client parser ERROR, state=0, i={pos + m}: proto={_snippet(rest[m:])}", ERR_UNKNOWN_PROTOCOL)
        verb, kind, op = m
        n = len(verb)
        if kind == _REST:
            # Everything up to the newline is ignored: keep the verb only.
            self._buf = rest[:n]
            return
        if kind == _SEP:
            if len(rest) == n:
                self._buf = rest
                return
            if rest[n] not in b" \t":
                raise ProtocolError(f"Client parser ERROR, state=0, i={pos + n}: proto={_snippet(rest[n:])}",
                                    ERR_UNKNOWN_PROTOCOL)
        arg = rest[n:].lstrip(b" \t")
        if not arg:
            # Only separators so far: nats-server skips them without storing.
            self._buf = rest[:n + 1]
            return
        if len(arg) > self.max_control_line:
            raise self._mcl_error(arg)
        self._buf = rest


def expand_run(op: tuple, start: int = 0) -> Iterator[tuple]:
    """The PUB operations a PUBS run, a PUBF run or a PUBB batch stands for, or the HPUB operations of an HPUBS
    run, in order (checked against the limits already); of a PUBS or HPUBS, those from byte `start` of its
    segment on (where one of them starts), of a PUBF from its item `start` on."""
    if op[0] == PUBB:
        return iter([(PUB, subject, None, tail, len(tail) - size - 2) for subject, tail, size in zip(*op[1:4])])
    if op[0] == PUBF:
        _, subject, buf, items, _ = op
        return iter([(PUB, subject, reply, buf[tail_at:end], body_at - tail_at)
                     for reply, tail_at, body_at, end in items[start:]])
    segment = op[3] if not start else op[3][start:]
    return Parser(max_control_line=1 << 30, max_payload=1 << 62, runs=False, headers=True).feed(segment)


# -- frames: what the server writes to a subscriber (built here only) ----------------------------------------
# A message travels inside the server as the parser gives it (`tail`, `body_at`, `hdr_len`, see PUB/HPUB above);
# a subscription's frame is its "MSG <subject> <sid> " prefix, the reply, then that tail.

def msg_prefix(subject: bytes, sid: bytes) -> bytes:
    """The start of every MSG line a subscription receives: b"MSG <subject> <sid> "."""
    return b"MSG " + subject + b" " + sid + b" "


def msg_tail(hdr: bytes | None, payload: bytes) -> tuple[bytes, int, int]:
    """(tail, body_at, hdr_len) of a message the server publishes itself, the form a parsed PUB/HPUB has."""
    if hdr:
        hdr_len = len(hdr)
        lead = b"%d %d\r\n" % (hdr_len, hdr_len + len(payload))
        return lead + hdr + payload + b"\r\n", len(lead), hdr_len
    lead = b"%d\r\n" % len(payload)
    return lead + payload + b"\r\n", len(lead), 0


def msg_frame(prefix: bytes, reply: bytes | None, tail: bytes, body_at: int, hdr_len: int,
              headers: bool) -> tuple[bytes, bytes]:
    """(head, body) of the MSG or HMSG frame of a message for one subscription: the frame is head + body. A client
    without header support gets the message without its headers, as nats-server does."""
    head = prefix + reply + b" " if reply else prefix
    if not hdr_len:
        return head, tail
    if headers:
        return b"H" + head, tail
    body = tail[body_at + hdr_len:]
    return head + b"%d\r\n" % (len(body) - 2), body


def stored_msg_frame(chunks: list, subject: bytes, sid: bytes, reply: bytes, hdr: bytes | None, payload: bytes,
                     headers: bool) -> int:
    """Append to `chunks` the frame of a message held as headers and payload (a no-responders status, a message
    delivered without routing); `reply` may be empty. A client without header support gets the payload only,
    as msg_frame gives it. Returns the bytes counted for it: headers and payload, as routing counts them."""
    if reply:
        sid = sid + b" " + reply
    if hdr and headers:
        chunks.append(b"HMSG %s %s %d %d\r\n" % (subject, sid, len(hdr), len(hdr) + len(payload)))
        chunks.append(hdr)
    else:
        chunks.append(b"MSG %s %s %d\r\n" % (subject, sid, len(payload)))
    chunks.append(payload)
    chunks.append(b"\r\n")
    return len(hdr) + len(payload) if hdr else len(payload)


def msg_line_templates(sid: bytes, reply_template: bytes) -> tuple[bytes, bytes]:
    """The MSG and HMSG control lines of stored_msg_frame as %-templates for a batch to one subscription whose
    replies follow `reply_template` (a %-template itself, e.g. a JetStream ack subject's numbers): fill the MSG
    one with (subject, *reply fields, payload size), the HMSG one with (subject, *reply fields, header size,
    total size). A batch of thousands is then one %-operation a message (JetStream pull batches)."""
    line = b" " + sid.replace(b"%", b"%%") + b" " + reply_template
    return b"MSG %s" + line + b" %d\r\n", b"HMSG %s" + line + b" %d %d\r\n"
