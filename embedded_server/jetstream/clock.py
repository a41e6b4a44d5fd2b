"""Time as JetStream speaks it: nanoseconds since the epoch inside, Go's RFC 3339 with nanoseconds on the wire.

nats-server marshals `time.Time` as RFC3339Nano (trailing zeros of the fraction dropped, `Z` for UTC) and
the zero time as "0001-01-01T00:00:00Z"; durations travel as integer nanoseconds.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$")


def now_ns() -> int:
    return time.time_ns()


_last_second = (None, "")  # the second formatted last and its text: messages stored together share it


def rfc3339(ns: int) -> str:
    """Go's time.Time.MarshalJSON for a UTC time given in nanoseconds; 0 is Go's zero time."""
    global _last_second
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    last = _last_second
    if secs == last[0]:
        base = last[1]
    else:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _last_second = (secs, base)
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 time; Go's zero time is 0. Raises ValueError."""
    if text == ZERO_TIME:
        return 0
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"parsing time {text!r} as RFC 3339")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = int((m.group(7) or "0").ljust(9, "0"))
    dt = datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
    secs = int(dt.timestamp())
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        secs -= offset if m.group(9) == "+" else -offset
    if y < 1970:
        return 0
    return secs * 1_000_000_000 + frac
