"""Go's time as nats-server reads and shows it: time.ParseDuration (configuration, headers, ack delays),
time.Duration.String (logs, error texts, /connz rtt) and time.Time in JSON (monitoring, events). One place for
each, so every part reads and prints them alike."""
from __future__ import annotations

import datetime as _dt
import re

_NS = 1_000_000_000
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": _NS, "m": 60 * _NS, "h": 3600 * _NS}
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_INT64_MAX = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds with integer arithmetic ("1h30m", "500ms", "-1.5s", ".5µs");
    ValueError with Go's message when it is not one (or overflows int64)."""
    s = text
    neg = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    while s:
        m = _PART.match(s)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        size = _UNITS.get(unit)
        if size is None:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += int(whole or "0") * size + (int(frac) * size // 10 ** len(frac) if frac else 0)
        if total > _INT64_MAX + neg:
            raise ValueError(f'time: invalid duration "{text}"')
        s = s[m.end():]
    return -total if neg else total


def duration_string(ns: int) -> str:
    """Go's time.Duration.String() of a duration in nanoseconds: 1h2m3.5s, 2m0s, 250ms, 243µs, 0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1000)}µs"
    if ns < _NS:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rem = divmod(ns, 3600 * _NS)
    minutes, rem = divmod(rem, 60 * _NS)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{sign}{out}{_fraction(rem, _NS)}s"


def seconds_string(seconds: float) -> str:
    """duration_string of a duration in (float) seconds, as the options hold them."""
    return duration_string(round(seconds * _NS))


def _fraction(n: int, unit: int) -> str:
    whole, frac = divmod(n, unit)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{len(str(unit)) - 1}d}".rstrip("0")


def rfc3339(ts: float) -> str:
    """A Unix time as Go marshals time.Time in UTC: 2026-11-26T04:19:17.206489Z."""
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    frac = f"{d.microsecond:06d}".rstrip("0")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"
