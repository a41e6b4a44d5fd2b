"""Reading and writing the NATS header block (`NATS/1.0\r\nKey: Value\r\n...\r\n\r\n`) the way nats-server does.

Lookups are case-sensitive and return the first value, as nats-server's sliceHeader; the publish path only
calls them when a message has headers at all.
"""
from __future__ import annotations

HDR_LINE = b"NATS/1.0\r\n"

MSG_ID = b"Nats-Msg-Id"
EXPECTED_STREAM = b"Nats-Expected-Stream"
EXPECTED_LAST_SEQ = b"Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJ_SEQ = b"Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_SUBJ_SEQ_SUBJ = b"Nats-Expected-Last-Subject-Sequence-Subject"
EXPECTED_LAST_MSG_ID = b"Nats-Expected-Last-Msg-Id"
ROLLUP = b"Nats-Rollup"
TTL = b"Nats-TTL"
MARKER_REASON = b"Nats-Marker-Reason"


def get(hdr: bytes | None, key: bytes) -> bytes | None:
    """The value of the first `key` header, or None."""
    if not hdr:
        return None
    klen = len(key)
    # The usual block: one search for the whole `\r\nKey:` line start. Found, it is the first match the loop
    # below would take, unless the key also occurs at the block's first two bytes (where the loop gives up).
    j = hdr.find(b"\r\n" + key + b":")
    if j < 0:
        return None
    if hdr.find(key, 0, klen + 1) < 0:
        n = len(hdr)
        start = j + klen + 3
        while start < n and hdr[start] == 32:
            start += 1
        end = hdr.find(b"\r\n", start)
        return hdr[start:end if end >= 0 else n]
    offset = 0
    n = len(hdr)
    while True:
        i = hdr.find(key, offset)
        if i < 2:
            return None
        if hdr[i - 1:i] != b"\n" or hdr[i - 2:i - 1] != b"\r" or i >= n - 1:
            offset = i + klen
            continue
        if i + klen >= n:
            return None
        if hdr[i + klen:i + klen + 1] != b":":
            offset = i + klen
            continue
        start = i + klen + 1
        while start < n and hdr[start:start + 1] == b" ":
            start += 1
        end = hdr.find(b"\r\n", start)
        if end < 0:
            end = n
        return hdr[start:end]


def remove(hdr: bytes | None, key: bytes) -> bytes | None:
    """`hdr` without any `key` lines; None if nothing but the status line is left."""
    if not hdr:
        return hdr
    lines = hdr.split(b"\r\n")
    kept = [ln for ln in lines[1:] if not (ln.startswith(key) and ln[len(key):len(key) + 1] == b":")]
    if kept == lines[1:]:
        return hdr
    body = [ln for ln in kept if ln]
    if not body:
        return None
    return lines[0] + b"\r\n" + b"\r\n".join(body) + b"\r\n\r\n"


def build(pairs, status: bytes = b"") -> bytes:
    """A header block from (key, value) pairs, with an optional status (`b"404 No Messages"`)."""
    first = b"NATS/1.0" + (b" " + status if status else b"") + b"\r\n"
    return first + b"".join(k + b": " + v + b"\r\n" for k, v in pairs) + b"\r\n"


def append(hdr: bytes | None, pairs) -> bytes:
    """`hdr` with the (key, value) pairs added at its end (a fresh block if `hdr` is empty)."""
    if not hdr or len(hdr) <= 4:
        return build(pairs)
    return hdr[:-2] + b"".join(k + b": " + v + b"\r\n" for k, v in pairs) + b"\r\n"


def parse(hdr: bytes | None) -> dict[str, list[str]]:
    """All headers as a dict of lists (for the JSON answers that carry them), status line skipped."""
    out: dict[str, list[str]] = {}
    if not hdr:
        return out
    for line in hdr.split(b"\r\n")[1:]:
        if not line:
            continue
        key, sep, value = line.partition(b":")
        if sep:
            out.setdefault(key.decode("utf-8", "replace"), []).append(value.strip().decode("utf-8", "replace"))
    return out
