"""natscli's publish templates: `{{Count}}`, `{{TimeStamp}}`, `{{Unix}}`, `{{UnixNano}}`, `{{Time}}`, `{{ID}}`,
`{{Random min max}}`, rendered per message so `--count 10 "order {{Count}}"` makes ten different bodies.
"""
from __future__ import annotations

import datetime as _dt
import random
import re
import string
import time

from nats.nuid import NUID

from .errors import LabError

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z]+)\s*(?:\(?\s*([^{}]*?)\s*\)?)?\s*\}\}")
_ALPHABET = string.ascii_letters + string.digits
_nuid = NUID()

FUNCTIONS = ("Count", "TimeStamp", "Unix", "UnixNano", "Time", "ID", "Random")


def has_templates(text: str) -> bool:
    return bool(text) and "{{" in text and bool(_TEMPLATE.search(text))


def _random(args: str) -> str:
    parts = [p for p in re.split(r"[\s,]+", args) if p]
    try:
        low, high = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (int(parts[0]), int(parts[0]))
    except (ValueError, IndexError):
        raise LabError("template Random needs a length range: {{Random 10 100}}") from None
    if low < 0 or high < low:
        raise LabError(f"template Random {low} {high}: need 0 <= min <= max")
    return "".join(random.choices(_ALPHABET, k=random.randint(low, high)))


def render(text: str, count: int) -> str:
    """Render one message body; `count` is the message number, from 1."""
    def one(m: re.Match) -> str:
        name, args = m.group(1), m.group(2) or ""
        if name == "Count":
            return str(count)
        if name == "TimeStamp":
            return _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
        if name == "Unix":
            return str(int(time.time()))
        if name == "UnixNano":
            return str(time.time_ns())
        if name == "Time":
            return _dt.datetime.now().strftime("%H:%M:%S")
        if name == "ID":
            return _nuid.next().decode()
        if name == "Random":
            return _random(args)
        raise LabError(f"unknown template function {name!r}; known: {', '.join(FUNCTIONS)}")

    return _TEMPLATE.sub(one, text)
