"""Durations, sizes and times as people type them in magics ("90s", "1h30m", "2KB", "10MiB").

Durations follow Go's time.ParseDuration, as natscli does, plus days and weeks ("7d", "1w");
sizes accept natscli's units. Everything returns plain numbers (seconds, bytes).
"""
from __future__ import annotations

import datetime as _dt
import numbers
import re

from .errors import LabError

_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0, "w": 604800.0, "y": 31536000.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w|y)")

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
    "ti": 1024**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(text: str | float | int | None, what: str = "duration") -> float | None:
    """'1h30m' -> 5400.0 seconds. A bare number is seconds. None and '' stay None."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    if isinstance(text, _dt.timedelta):
        return text.total_seconds()
    s = str(text).strip()
    try:
        return float(s)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise LabError(f"invalid {what} {text!r}: use e.g. 500ms, 30s, 5m, 2h, 1h30m, 7d")
    return total


def parse_interval(text: str | float | int | None, what: str = "--interval", default: float = 1.0) -> float:
    """How often to look again ('500ms', 2): a duration above zero; None gives `default`."""
    seconds = parse_duration(text, what)
    if seconds is None:
        return default
    if seconds <= 0:
        raise LabError(f"invalid {what} {text!r}: it must be more than 0, e.g. 200ms or 2s")
    return seconds


def parse_size(text: str | int | None, what: str = "size") -> int | None:
    """'10MiB' -> 10485760; '1KB' -> 1000 (natscli's units). -1 means unlimited and passes through."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s == "-1":
        return -1
    m = _SIZE.match(s)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise LabError(f"invalid {what} {text!r}: use e.g. 512, 10KB, 5MB, 1GiB or -1 for unlimited")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def format_duration(seconds: float | None) -> str:
    """5400.0 -> '1h30m0s', the way nats-server and natscli print durations."""
    if seconds is None or seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = seconds - whole
    sec = f"{s + frac:g}s"
    if h:
        return f"{h}h{m}m{sec}"
    if m:
        return f"{m}m{sec}"
    return sec


def since_to_time(since: str | float | _dt.datetime | None) -> _dt.datetime | None:
    """'2h' -> the UTC time two hours ago; a datetime or ISO string is taken as is (naive means UTC)."""
    if since is None or since == "":
        return None
    if isinstance(since, _dt.datetime):
        return since if since.tzinfo else since.replace(tzinfo=_dt.timezone.utc)
    if isinstance(since, str) and ("T" in since or "-" in since[1:]):
        try:
            when = _dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise LabError(f"invalid time {since!r}: use a duration (2h) or an ISO time") from exc
        return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=parse_duration(since, "--since duration"))


def rfc3339(when: _dt.datetime) -> str:
    """A UTC time as nats-server's JSON wants it."""
    return when.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def at_least_one(value: int | None, flag: str) -> int | None:
    """A count the user gave (None: no limit). Zero or less is a mistake, said in one line, not an empty
    result after a wait."""
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)):
        raise LabError(f"{flag} must be a whole number, not {value!r}")
    if value is not None and value < 1:
        raise LabError(f"{flag} must be at least 1")
    return value
