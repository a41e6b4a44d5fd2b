"""Go's renderings of time that nats-server's output shows: time.Duration.String (logs, error texts, /connz rtt)
and time.Time in JSON (monitoring, events). One place for each, so every part prints them alike."""
from __future__ import annotations

import datetime as _dt

_NS = 1_000_000_000


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
