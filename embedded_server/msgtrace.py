"""Message tracing (nats-server's msgtrace.go, 2.11): a message published with a `Nats-Trace-Dest` header (or a
sampled W3C `traceparent` in an account with a trace destination) is followed through the server, and one event
is published to the destination in the publisher's account: ingress, subject mapping, stream export, service
import, JetStream, and one egress per delivery. `Nats-Trace-Only: true` traces without delivering or storing.

The client's checked publish path starts a trace (`start`) and sets `server.msg_trace` while the message is
routed; the delivery function, the import forwards and the streams record their hop on it. Messages without
headers never reach this module.
"""
from __future__ import annotations

import random
import time

from embedded_server import errors
from embedded_server.gojson import compact_json

TRACE_DEST = b"Nats-Trace-Dest"
TRACE_ONLY = "Nats-Trace-Only"
TRACE_HOP = "Nats-Trace-Hop"
ORIGIN_ACCOUNT = "Nats-Trace-Origin-Account"
DISABLED = "trace disabled"
CLIENT = 0

# nats-server's reasons for a delivery that did not happen.
NO_ECHO = "Not delivered because of no echo"
SUB_DENY = "Not delivered because subscription denies this subject"
AUTO_UNSUB_EXCEEDED = "Not delivered because auto-unsubscribe exceeded"


def _now() -> str:
    from embedded_server.gotime import rfc3339
    return rfc3339(time.time())


def parse_headers(hdr: bytes) -> tuple[dict[str, list[str]] | None, bool]:
    """nats-server's genHeaderMapIfTraceHeadersPresent: (every header as a map, external) when the block has a
    `Nats-Trace-Dest` (external False) or only a sampled `traceparent` (external True); else (None, False)."""
    if not hdr.startswith(b"NATS/1.0"):
        return None, False
    lines = hdr.split(b"\r\n")[1:]
    pairs = []
    dest_found = parent_found = False
    for line in lines:
        key, sep, val = line.partition(b":")
        if not sep:
            continue
        val = val.strip(b" \t")
        if not key or not val:
            continue
        if not parent_found and key.lower() == b"traceparent":
            parts = val.split(b"-")
            if len(parts) == 4 and len(parts[3]) == 2:
                try:
                    parent_found = bool(int(parts[3], 16) & 1)
                except ValueError:
                    pass
        elif not dest_found and key == TRACE_DEST:
            if val == DISABLED.encode():
                return None, False
            dest_found = True
        pairs.append((key.decode("utf-8", "replace"), val.decode("utf-8", "replace")))
    if not dest_found and not parent_found:
        return None, False
    headers: dict[str, list[str]] = {}
    for k, v in pairs:
        headers.setdefault(k, []).append(v)
    return headers, not dest_found and parent_found


class MsgTrace:
    """One traced message: its events so far, sent as one JSON document by `send`."""

    __slots__ = ("server", "account", "dest", "only", "event", "ingress_account", "_js")

    def __init__(self, server, account, dest: str, only: bool, headers: dict, size: int, client, subject: str):
        self.server = server
        self.account = account
        self.dest = dest
        self.only = only
        self.ingress_account = account.name
        self._js = None
        ingress = {"type": "in", "ts": _now(), "kind": CLIENT, "cid": client.cid}
        name = client.opts.get("name")
        if name:
            ingress["name"] = name
        ingress.update({"acc": account.name, "subj": subject})
        request: dict = {"header": headers}
        if size:
            request["msgsize"] = size
        self.event = {"server": None, "request": request, "events": [ingress]}

    def mapping(self, to: str) -> None:
        self.event["events"].append({"type": "sm", "ts": _now(), "to": to})

    def stream_export(self, account: str, to: str) -> None:
        self.event["events"].append({"type": "se", "ts": _now(), "acc": account, "to": to})

    def service_import(self, account: str, frm: str, to: str) -> None:
        self.event["events"].append({"type": "si", "ts": _now(), "acc": account, "from": frm, "to": to})

    def jetstream(self, stream: str, subject: str, no_interest: bool = False) -> dict:
        js = {"type": "js", "ts": _now(), "stream": stream}
        if subject:
            js["subject"] = subject
        if no_interest:
            js["nointerest"] = True
        self.event["events"].append(js)
        self._js = js
        return js

    def jetstream_error(self, error: str) -> None:
        if self._js is not None and error:
            self._js["error"] = error

    def egress(self, client, sub, account, error: str = "") -> None:
        eg = {"type": "eg", "ts": _now(), "kind": CLIENT, "cid": client.cid}
        name = client.opts.get("name")
        if name:
            eg["name"] = name
        if account is not None and account.name != self.ingress_account:
            eg["acc"] = account.name
        eg["sub"] = sub.subject if isinstance(sub.subject, str) else sub.subject.decode()
        if sub.queue:
            eg["queue"] = sub.queue if isinstance(sub.queue, str) else sub.queue.decode()
        if error:
            eg["error"] = error
        self.event["events"].append(eg)

    def ingress_error(self, error: str) -> None:
        self.event["events"][0]["error"] = error

    def send(self) -> None:
        events = self.server.events
        self.event["server"] = events.server_info() if events is not None else {}
        body = compact_json(self.event)
        self.server.send_internal(self.account, self.dest, None, None, body)


SKIP = object()   # `start`'s answer when the message must not be processed at all


def start(client, account, subject: str, hdr: bytes, size: int):
    """A trace for this publish when its headers ask for one (nats-server's initMsgTrace); None otherwise, or
    SKIP when the publisher may not publish to the trace destination (it got a permissions violation)."""
    headers, external = parse_headers(hdr)
    if headers is None:
        return None
    server = client.server

    def value(key: str) -> str:
        vals = headers.get(key)
        return vals[0] if vals else ""

    only = False
    if not external:
        only = value(TRACE_ONLY).lower() in ("1", "true", "on")
        dest = value(TRACE_DEST.decode())
        if not dest:
            return None
    if value(ORIGIN_ACCOUNT):
        server.error(f'{client.label} - Message tracing disabled because of header "{ORIGIN_ACCOUNT}" with '
                     f'value="{value(ORIGIN_ACCOUNT)}"')
        return None
    if external:
        dest, sampling = getattr(account, "trace_dest", None) or ("", 100)
        if not dest:
            return None
        if 0 < sampling < 100 and random.randrange(100) > sampling:
            return None
    from embedded_server.subjects import is_valid_publish_subject
    if not is_valid_publish_subject(dest):
        server.error(f'{client.label} - Destination "{dest}" is not valid, won\'t be able to trace events')
        return None
    perms = client.perms
    if perms is not None and not perms.can_publish(dest):
        client.send_err(errors.ERR_PUBLISH_VIOLATION, dest)
        server.error(f'{client.label} - Publish Violation - Subject "{dest}"')
        return SKIP
    return MsgTrace(server, account, dest, only, headers, size, client, subject)
