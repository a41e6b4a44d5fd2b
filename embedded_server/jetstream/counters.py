"""Distributed counters (ADR-49, `allow_msg_counter`): a publish with `Nats-Incr: N` and no payload stores the
subject's new total as `{"val":"<total>"}` and answers it in the PubAck's `val`.

Totals are arbitrary-precision integers written as decimal strings, as nats-server's big.Int. A counter
message copied in by a source carries its origin's total; the aggregate adds the difference from what it had
seen of that origin subject before, remembered per origin stream and subject in `Nats-Counter-Sources`.
"""
from __future__ import annotations

import json
import re

from embedded_server.gojson import go_escape

from . import headers
from .errors import api_error

INCR = b"Nats-Incr"
COUNTER_SOURCES = b"Nats-Counter-Sources"
STREAM_SOURCE = b"Nats-Stream-Source"

_BIG_INT = re.compile(rb"^[+-]?[0-9]+$")
# Headers a counter increment may not carry (nats-server refuses them with "increment is invalid").
_INCOMPATIBLE = (headers.ROLLUP, headers.EXPECTED_STREAM, headers.EXPECTED_LAST_MSG_ID,
                 headers.EXPECTED_LAST_SUBJ_SEQ_SUBJ, headers.EXPECTED_LAST_SEQ, headers.EXPECTED_LAST_SUBJ_SEQ)


def check_config(cfg: dict) -> None:
    """nats-server's checkStreamCfg rules for a counter stream."""
    if not cfg.get("allow_msg_counter"):
        return
    if cfg.get("discard") == "new":
        raise api_error("JSStreamInvalidConfigF", err="counter stream cannot use discard new")
    if cfg.get("allow_msg_ttl"):
        raise api_error("JSStreamInvalidConfigF", err="counter stream cannot use message TTLs")
    if cfg.get("allow_msg_schedules"):
        raise api_error("JSStreamInvalidConfigF", err="counter stream cannot use message schedules")
    if cfg.get("retention", "limits") != "limits":
        raise api_error("JSStreamInvalidConfigF", err="counter stream can only use limits retention")


def parse_incr(value: bytes) -> int | None:
    """Go's big.Int SetString(value, 10): an optional sign and decimal digits, or None."""
    if value.isdigit():  # the usual increment; bytes.isdigit is ASCII digits only, as the pattern
        return int(value)
    value = value.strip()
    if not _BIG_INT.match(value):
        return None
    return int(value)


def check_incr(allowed: bool, hdr: bytes | None, msg: bytes, sourced: bool) -> int | None:
    """The increment of a publish (None without `Nats-Incr`), or the ApiError nats-server answers."""
    if not hdr or INCR not in hdr:
        return None
    value = headers.get(hdr, INCR)
    if value is None or value == b"":
        return None
    incr = parse_incr(value)
    if incr is None:
        raise api_error("JSMessageIncrInvalidErr")
    if sourced:
        return incr
    if not allowed:
        raise api_error("JSMessageIncrDisabledErr")
    if msg:
        raise api_error("JSMessageIncrPayloadErr")
    if (b"Nats-Expected" in hdr or headers.ROLLUP in hdr) and any(headers.get(hdr, key) for key in _INCOMPATIBLE):
        raise api_error("JSMessageIncrInvalidErr")
    return incr


def _value_of(data: bytes) -> int:
    if data[:8] == b'{"val":"' and data[-2:] == b'"}':  # as this server and nats-server write it
        digits = data[8:-2]
        if digits.isdigit() or (digits[:1] == b"-" and digits[1:].isdigit()):
            return int(digits)
    try:
        doc = json.loads(data)
        text = doc["val"]
        if not isinstance(text, str):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        raise api_error("JSMessageCounterBrokenErr") from None
    parsed = parse_incr(text.encode())
    return parsed if parsed is not None else 0


def apply(store, subject: str, hdr: bytes, msg: bytes, incr: int) -> tuple[bytes, bytes, str]:
    """The header, payload and total to store for an increment of `subject` (ApiError 10172 if the stored
    counter cannot be read)."""
    total = 0
    sources: dict = {}
    last = store.load_last_msg(subject)
    if last is not None:
        total = _value_of(last.data)
        ncs = headers.get(last.hdr, COUNTER_SOURCES) if last.hdr and COUNTER_SOURCES in last.hdr else None
        if ncs:
            try:
                sources = json.loads(ncs)
                if not isinstance(sources, dict):
                    raise TypeError
            except (ValueError, TypeError):
                raise api_error("JSMessageCounterBrokenErr") from None
    src = headers.get(hdr, STREAM_SOURCE) if hdr and STREAM_SOURCE in hdr else None
    if src:
        fields = src.decode("utf-8", "replace").split(" ")
        origin = fields[0]
        origin_subject = fields[4] if len(fields) >= 5 else subject
        sourced = _value_of(msg)
        per_stream = sources.get(origin)
        if not isinstance(per_stream, dict):
            per_stream = sources[origin] = {}
        previous = parse_incr(str(per_stream.get(origin_subject) or "0").encode()) or 0
        per_stream[origin_subject] = str(sourced)
        incr = sourced - previous
        hdr = _set(hdr, INCR, str(incr).encode())
    total += incr
    text = str(total)
    msg = b'{"val":"%s"}' % text.encode()
    if sources:
        # json.Marshal of nats-server's map: keys sorted, Go's escapes
        hdr = _set(hdr, COUNTER_SOURCES,
                   go_escape(json.dumps(sources, separators=(",", ":"), sort_keys=True, ensure_ascii=False)).encode())
    return hdr, msg, text


def _set(hdr: bytes | None, key: bytes, value: bytes) -> bytes:
    """nats-server's setHeader: the value of `key` replaced where it stands, or the header added at the end."""
    if hdr:
        at = hdr.find(b"\r\n" + key + b":")
        if at >= 0:
            start = at + 2
            end = hdr.find(b"\r\n", start)
            return hdr[:start] + key + b": " + value + hdr[end:]
    return headers.append(hdr, [(key, value)])
