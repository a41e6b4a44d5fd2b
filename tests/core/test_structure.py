"""The shape of embedded_server that keeps it easy to change: every core `-ERR` text comes from the one table
(errors.py), so changing a text is one edit."""
from __future__ import annotations

import re
from pathlib import Path

import embedded_server
from embedded_server import errors

PACKAGE = Path(embedded_server.__file__).parent


def sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_core_err_text_comes_from_the_table():
    literal = re.compile(r"""-ERR '[^%]|send_err\(\s*f?["']|queue_err\(\s*f?["']""")
    found = [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
             for name, text in sources().items() if name != "errors.py"
             for m in literal.finditer(text)]
    assert found == [], "an -ERR text written outside embedded_server/errors.py"


def test_one_text_one_entry():
    texts = [e.text for e in vars(errors).values() if isinstance(e, errors.Err)]
    assert texts and len(texts) == len(set(texts))
