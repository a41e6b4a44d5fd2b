"""JSON written as Go's encoding/json writes it, for everything nats-server marshals: the INFO line, `$SYS`
events and answers, monitoring pages, JetStream answers and advisories. UTF-8 stays as it is; `<`, `>`, `&`,
U+2028 and U+2029 are escaped (Go's HTML-safe default), so `"orders.>"` reads `"orders.\\u003e"`."""
from __future__ import annotations

import json


def go_escape(text: str) -> str:
    """Go's encoding/json escapes of serialized JSON `text`: these characters can only occur inside strings."""
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text


def compact_json(obj) -> bytes:
    """json.Marshal: no spaces."""
    return go_escape(json.dumps(obj, separators=(",", ":"), ensure_ascii=False)).encode()


def indent_json(obj) -> bytes:
    """json.MarshalIndent(obj, "", "  "), as the monitoring pages are written."""
    return go_escape(json.dumps(obj, indent=2, ensure_ascii=False)).encode()
