"""The system account's services and events (nats-server's events.go): `$SYS.REQ.SERVER.*` monitoring requests,
`$SYS.REQ.ACCOUNT.<acc>.*` account requests, connect/disconnect and connection-count events, the STATSZ heartbeat,
and the imports through which every other account may ask about itself.

Everything lives in internal subscriptions of the system account, so only its users reach it; the other accounts
get nats-server's four system imports (their own CONNZ and STATZ, and USER.INFO) answered for their account only.
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import time
from typing import TYPE_CHECKING

from embedded_server.gojson import compact_json
from embedded_server.version import PROTOCOL_VERSION
from embedded_server.monitor import BadRequest

if TYPE_CHECKING:
    from embedded_server.server import Account, Server

# The monitoring kinds a server answers on `$SYS.REQ.SERVER.PING.<KIND>` and `$SYS.REQ.SERVER.<id>.<KIND>`.
SERVER_KINDS = ("IDZ", "STATSZ", "VARZ", "SUBSZ", "CONNZ", "ROUTEZ", "GATEWAYZ", "LEAFZ", "ACCOUNTZ", "JSZ",
                "HEALTHZ")
ACCOUNT_KINDS = ("SUBSZ", "CONNZ", "LEAFZ", "JSZ", "INFO", "STATZ", "CONNS")
STATSZ_INTERVAL = 10.0          # nats-server's default statsz heartbeat, reached by doubling from 0.25 s
CONNS_HEARTBEAT = 30.0          # an account with connections repeats its CONNS event this often
_NUID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# The JSON fields of each request's options (nats-server's <Kind>EventOptions), with the Go type of each, and the
# filter options every request accepts (EventFilterOptions).
_FILTER_FIELDS = {"server_name": str, "cluster": str, "host": str, "exact_match": bool, "tags": list, "domain": str}
_OPTION_FIELDS = {
    "STATSZ": {},
    "IDZ": {},
    "VARZ": {},
    "CONNZ": {"sort": str, "auth": bool, "subscriptions": bool, "subscriptions_detail": bool, "offset": int,
              "limit": int, "cid": int, "mqtt_client": str, "state": int, "user": str, "acc": str,
              "filter_subject": str},
    "SUBSZ": {"offset": int, "limit": int, "subscriptions": bool, "account": str, "test": str},
    "ROUTEZ": {"subscriptions": bool, "subscriptions_detail": bool},
    "GATEWAYZ": {"name": str, "accounts": bool, "account_name": str, "subscriptions": bool,
                 "subscriptions_detail": bool},
    "LEAFZ": {"subscriptions": bool, "account": str},
    "ACCOUNTZ": {"account": str},
    "JSZ": {"account": str, "accounts": bool, "streams": bool, "consumer": bool, "direct_consumer": bool,
            "config": bool, "leader_only": bool, "offset": int, "limit": int, "raft": bool,
            "stream_leader_only": bool},
    "HEALTHZ": {"js-enabled": bool, "js-enabled-only": bool, "js-server-only": bool, "js-meta-only": bool,
                "account": str, "stream": str, "consumer": str, "details": bool},
    "INFO": {},
    "CONNS": {},
    "STATZ": {"accounts": list, "include_unused": bool},
}
_GO_TYPES = {str: "string", bool: "bool", int: "int", list: "[]string"}
_GO_STRUCTS = {"STATSZ": "StatszEventOptions", "IDZ": "IdzEventOptions", "VARZ": "VarzEventOptions",
               "CONNZ": "ConnzEventOptions", "SUBSZ": "SubszEventOptions", "ROUTEZ": "RoutezEventOptions",
               "GATEWAYZ": "GatewayzEventOptions", "LEAFZ": "LeafzEventOptions", "ACCOUNTZ": "AccountzEventOptions",
               "JSZ": "JszEventOptions", "HEALTHZ": "HealthzEventOptions", "INFO": "AccInfoEventOptions",
               "STATZ": "AccountStatzEventOptions"}
_CONN_STATES = {0: "open", 1: "closed", 2: "all"}



def client_identity(client) -> dict:
    """The first fields of nats-server's ClientInfo for a client connection (events, advisories)."""
    from embedded_server.gotime import rfc3339
    info: dict = {"start": rfc3339(client.start), "host": client.host, "id": client.cid, "acc": client.account.name}
    if client.user:
        info["user"] = client.user
    for key, field in (("name", "name"), ("lang", "lang"), ("ver", "version")):
        if client.opts.get(field):
            info[key] = client.opts[field]
    return info

class RequestError(Exception):
    """A request the server answers with `{"error": {"code", "description"}}`."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


class _Skip(Exception):
    """The request is not for this server (a filter did not match): no answer at all, as nats-server."""


def new_event_id() -> str:
    """A 22-character id of nats-server's NUID alphabet."""
    return "".join(secrets.choice(_NUID_ALPHABET) for _ in range(22))


def go_json_error(text: str, err: json.JSONDecodeError) -> str:
    """Go's encoding/json syntax error for what Python's decoder refused (the common cases)."""
    pos = err.pos
    if pos >= len(text) or err.msg.startswith("Unterminated"):
        return "unexpected end of JSON input"
    ch = text[pos]
    shown = ch if ch != "'" else "\\''"
    if err.msg.startswith("Expecting property name"):
        return f"invalid character '{shown}' looking for beginning of object key string"
    if err.msg.startswith("Expecting ':'"):
        return f"invalid character '{shown}' after object key"
    if err.msg.startswith("Expecting ','"):
        before = text[:pos].rstrip()
        inside = "array element" if _innermost(before) == "[" else "object key:value pair"
        return f"invalid character '{shown}' after {inside}"
    if err.msg.startswith("Extra data"):
        return f"invalid character '{shown}' after top-level value"
    return f"invalid character '{shown}' looking for beginning of value"


def _innermost(text: str) -> str:
    depth: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth.append(ch)
        elif ch in "]}" and depth:
            depth.pop()
    return depth[-1] if depth else ""


def parse_options(kind: str, payload: bytes) -> dict:
    """A request body as nats-server's json.Unmarshal into <Kind>EventOptions sees it: {} when empty; unknown
    fields ignored; a syntax or type error raises RequestError(400, Go's text)."""
    if not payload:
        return {}
    text = payload.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(400, go_json_error(text, e)) from None
    struct = _GO_STRUCTS.get(kind, "EventFilterOptions")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        what = {list: "array", str: "string", bool: "bool"}.get(type(doc), "number")
        raise RequestError(400, f"json: cannot unmarshal {what} into Go value of type server.{struct}")
    fields = {**_FILTER_FIELDS, **_OPTION_FIELDS.get(kind, {})}
    out = {}
    for key, value in doc.items():
        want = next((t for f, t in fields.items() if f.lower() == key.lower()), None)
        if want is None or value is None:
            continue
        name = next(f for f in fields if f.lower() == key.lower())
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is list and ok and not all(isinstance(v, str) for v in value):
            ok = False
        if want is int and (isinstance(value, float) or (ok and not -2**63 <= value < 2**63)):
            raise RequestError(400, f"json: cannot unmarshal number {_number_text(text, key, value)} into Go "
                                    f"struct field {struct}.{name} of type int")
        if not ok:
            what = {list: "array", str: "string", bool: "bool", dict: "object"}.get(type(value), "number")
            raise RequestError(400, f"json: cannot unmarshal {what} into Go struct field {struct}.{name} of type "
                                    f"{_GO_TYPES[want]}")
        out[name] = value
    return out


def _number_text(text: str, key: str, value) -> str:
    """The number as written in the request (Go's error quotes the literal)."""
    import re
    m = re.search(r'"%s"\s*:\s*(-?[0-9][0-9.eE+-]*)' % re.escape(key), text)
    return m.group(1) if m else str(value)


class SystemServices:
    """The system account's request services and events for one server."""

    def __init__(self, server: "Server", account: "Account"):
        self.server = server
        self.account = account
        self.seq = 0
        self.subs: list = []
        self.import_subs: dict[str, list] = {}
        self._statsz_timer = None
        self._statsz_every = 0.25
        self._conns_timers: dict[str, object] = {}
        self.remote_stats_sub = None

    # -- set-up ----------------------------------------------------------------------------------------
    def start(self) -> None:
        srv = self.server
        sid = srv.server_id
        sub = self._subscribe
        sub("$SYS.REQ.SERVER.PING", lambda s, c, subj, reply, hdr, p: self._statsz_request(reply, p))
        for kind in SERVER_KINDS:
            handler = self._server_handler(kind)
            sub(f"$SYS.REQ.SERVER.{sid}.{kind}", handler)
            sub(f"$SYS.REQ.SERVER.PING.{kind}", handler)
        for kind in ACCOUNT_KINDS:
            sub(f"$SYS.REQ.ACCOUNT.*.{kind}", self._account_handler(kind))
        sub("$SYS.REQ.ACCOUNT.PING.STATZ", self._account_ping_statz)
        sub("$SYS.REQ.ACCOUNT.PING.CONNZ", self._account_handler("CONNZ"))
        sub("$SYS.REQ.USER.INFO", lambda s, c, subj, reply, hdr, p: self._user_info(c, reply))
        sub(f"$SYS.REQ.SERVER.{sid}.KICK", lambda s, c, subj, reply, hdr, p: self._client_request(reply, p, kick=True))
        sub(f"$SYS.REQ.SERVER.{sid}.LDM", lambda s, c, subj, reply, hdr, p: self._client_request(reply, p, kick=False))
        sub(f"$SYS.REQ.SERVER.{sid}.RELOAD", lambda s, c, subj, reply, hdr, p: self._reload_request(reply, p))
        # Our own heartbeat subject: with only this subscription there is nobody to send the STATSZ to.
        self.remote_stats_sub = sub("$SYS.SERVER.*.STATSZ", lambda *a: None)
        for acc in list(srv.accounts.values()):
            self.account_registered(acc)
        self._schedule_statsz()

    def _subscribe(self, subject: str, callback):
        s = self.server.subscribe_internal(self.account, subject, callback)
        self.subs.append(s)
        return s

    def stop(self) -> None:
        """The server shuts down: the last event is `$SYS.SERVER.<id>.SHUTDOWN` (its ServerInfo), as nats-server."""
        if self.subs:
            self.publish(f"$SYS.SERVER.{self.server.server_id}.SHUTDOWN", self.server_info())
        for s in self.subs:
            self.server.unsubscribe_internal(s)
        self.subs.clear()
        for subs in self.import_subs.values():
            for s in subs:
                self.server.unsubscribe_internal(s)
        self.import_subs.clear()
        if self._statsz_timer is not None:
            self._statsz_timer.cancel()
            self._statsz_timer = None
        for timer in self._conns_timers.values():
            timer.cancel()
        self._conns_timers.clear()

    def account_registered(self, acc: "Account") -> None:
        """Give a non-system account nats-server's system imports: its own CONNZ (under both PING subjects),
        its STATZ, and USER.INFO, each answered for that account only."""
        if acc is self.account or acc.name in self.import_subs:
            return
        srv = self.server
        name = acc.name

        def connz(s, c, subj, reply, hdr, p):
            self._respond(reply, "CONNZ", p, lambda o: self._connz(o, account=name), via=acc)

        def statz(s, c, subj, reply, hdr, p):
            self._respond(reply, "STATZ", p, lambda o: self._account_statz([name], o, skip_empty=True), via=acc)

        def user_info(s, c, subj, reply, hdr, p):
            self._user_info(c, reply, via=acc)

        self.import_subs[name] = [
            srv.subscribe_internal(acc, "$SYS.REQ.SERVER.PING.CONNZ", connz),
            srv.subscribe_internal(acc, "$SYS.REQ.ACCOUNT.PING.CONNZ", connz),
            srv.subscribe_internal(acc, "$SYS.REQ.ACCOUNT.PING.STATZ", statz),
            srv.subscribe_internal(acc, "$SYS.REQ.USER.INFO", user_info),
        ]

    def system_imports(self, acc_name: str) -> list[dict]:
        """The import entries /accountz and ACCOUNT.<acc>.INFO list for these system imports."""
        if acc_name == self.account.name:
            return []
        sys_name = self.account.name

        def imp(subject: str, to: str, share: bool = False) -> dict:
            return {"subject": subject, "account": sys_name, "to": to, "local_subject": to, "type": "service",
                    "invalid": False, "share": share, "tracking": False}

        return [imp(f"$SYS.REQ.ACCOUNT.{acc_name}.CONNZ", "$SYS.REQ.ACCOUNT.PING.CONNZ"),
                imp(f"$SYS.REQ.ACCOUNT.{acc_name}.CONNZ", "$SYS.REQ.SERVER.PING.CONNZ"),
                imp(f"$SYS.REQ.ACCOUNT.{acc_name}.STATZ", "$SYS.REQ.ACCOUNT.PING.STATZ"),
                imp(f"$SYS.REQ.USER.{acc_name}.INFO", "$SYS.REQ.USER.INFO", share=True)]

    # -- the envelope ----------------------------------------------------------------------------------
    def server_info(self) -> dict:
        srv = self.server
        self.seq += 1
        from embedded_server.gotime import rfc3339
        js = srv.jetstream is not None
        return {"name": srv.server_name, "host": srv.options.host, "id": srv.server_id, "ver": PROTOCOL_VERSION,
                "jetstream": js, "flags": 1 if js else 0, "seq": self.seq, "time": rfc3339(time.time())}

    def publish(self, subject: str, doc: dict) -> None:
        self.server.send_internal(self.account, subject, None, None,
                                  compact_json(doc))

    def _respond(self, reply: str | None, kind: str, payload: bytes, build, via=None) -> None:
        """zReq: parse the options, apply the server filter, answer {"server", "data"} or {"server", "error"}
        (a failure of the options themselves has no "data"; a failure of the request has "data": null). The
        answer travels in `via` (the requester's account, for a system import) or the system account."""
        if not reply:
            return
        doc: dict = {"server": None}
        try:
            opts = parse_options(kind, payload)
            if self._filtered_out(opts):
                return
            try:
                doc["data"] = build(opts)
            except _Skip:
                return
            except BadRequest as e:
                doc["data"] = None
                doc["error"] = {"code": 500, "description": str(e)}
            except RequestError as e:
                doc["data"] = None
                doc["error"] = {"code": e.code, "description": e.description}
        except RequestError as e:
            doc["error"] = {"code": e.code, "description": e.description}
        doc["server"] = self.server_info()
        self.server.send_internal(via or self.account, reply, None, None,
                                  compact_json(doc))

    def _filtered_out(self, opts: dict) -> bool:
        srv = self.server
        name, host = opts.get("server_name", ""), opts.get("host", "")
        cluster = opts.get("cluster", "")
        if opts.get("exact_match"):
            if (name and name != srv.server_name) or (host and host != srv.options.host) or cluster:
                return True
        elif (name and name not in srv.server_name) or (host and host not in srv.options.host) or cluster:
            return True
        if opts.get("tags") or opts.get("domain"):
            return True
        return False

    # -- server requests -------------------------------------------------------------------------------
    def _server_handler(self, kind: str):
        def handle(sub, client, subject, reply, hdr, payload):
            if kind == "STATSZ":
                self._statsz_request(reply, payload)
            elif kind == "IDZ":
                if reply:
                    srv = self.server
                    self._send(reply, {"name": srv.server_name, "host": srv.options.host, "id": srv.server_id})
            else:
                self._respond(reply, kind, payload, lambda opts: self._server_doc(kind, opts))
        return handle

    def _send(self, reply: str, doc: dict) -> None:
        self.server.send_internal(self.account, reply, None, None,
                                  compact_json(doc))

    def _server_doc(self, kind: str, opts: dict):
        srv = self.server
        mon = srv.monitor_docs()
        from embedded_server.gotime import rfc3339
        now = rfc3339(time.time())
        if kind == "VARZ":
            return _ok(mon.varz({}))
        if kind == "CONNZ":
            return self._connz(opts)
        if kind == "SUBSZ":
            return self._subsz(opts)
        if kind == "ROUTEZ":
            return {"server_id": srv.server_id, "server_name": srv.server_name, "now": now, "num_routes": 0,
                    "routes": []}
        if kind == "GATEWAYZ":
            return {"server_id": srv.server_id, "now": now, "outbound_gateways": {}, "inbound_gateways": {}}
        if kind == "LEAFZ":
            return {"server_id": srv.server_id, "now": now, "leafnodes": 0, "leafs": []}
        if kind == "ACCOUNTZ":
            return _ok(mon.accountz({"acc": opts["account"]} if opts.get("account") else {}))
        if kind == "JSZ":
            return self._jsz(opts)
        if kind == "HEALTHZ":
            q = {k: "true" for k in ("js-enabled", "js-enabled-only", "js-server-only", "js-meta-only", "details")
                 if opts.get(k)}
            for k in ("account", "stream", "consumer"):
                if opts.get(k):
                    q[k] = opts[k]
            return mon.health(q)
        raise RequestError(500, f"unknown request {kind}")

    def _connz(self, opts: dict, account: str | None = None) -> dict:
        q: dict = {}
        if opts.get("sort"):
            q["sort"] = opts["sort"]
        if opts.get("auth"):
            q["auth"] = "true"
        if opts.get("subscriptions_detail"):
            q["subs"] = "detail"
        elif opts.get("subscriptions"):
            q["subs"] = "true"
        for key in ("offset", "limit", "cid"):
            if opts.get(key):
                q[key] = str(opts[key])
        state = opts.get("state", 0)
        if state not in _CONN_STATES:
            state = 0
        q["state"] = _CONN_STATES[state]
        if opts.get("user"):
            q["user"] = opts["user"]
        if account is not None:
            q["acc"] = account
        elif opts.get("acc"):
            q["acc"] = opts["acc"]
        if opts.get("filter_subject"):
            q["filter_subject"] = opts["filter_subject"]
        return _ok(self.server.monitor_docs().connz(q))

    def _subsz(self, opts: dict, account: str | None = None) -> dict:
        q: dict = {}
        if opts.get("subscriptions") or account is not None:
            q["subs"] = "true"
        for key in ("offset", "limit"):
            if opts.get(key):
                q[key] = str(opts[key])
        if opts.get("test"):
            q["test"] = opts["test"]
        acc = account if account is not None else opts.get("account")
        if acc:
            q["acc"] = acc
        return _ok(self.server.monitor_docs().subsz(q))

    def _jsz(self, opts: dict) -> dict:
        q = {k: "true" for k in ("accounts", "streams", "config", "leader_only") if opts.get(k)}
        if opts.get("consumer"):
            q["consumers"] = "true"
        if opts.get("account"):
            q["acc"] = opts["account"]
        for key in ("offset", "limit"):
            if opts.get(key):
                q[key] = str(opts[key])
        return _ok(self.server.monitor_docs().jsz(q))

    # -- operations on this server ---------------------------------------------------------------------
    def _plain_answer(self, reply: str | None, payload: bytes, action) -> None:
        """nats-server's zReq for requests without a document: {"server"} on success, {"server", "error"}."""
        if not reply:
            return
        doc: dict = {"server": None}
        try:
            opts = parse_options("", payload)
            if self._filtered_out(opts):
                return
            error = action()
            if error:
                doc["error"] = {"code": 500, "description": error}
        except RequestError as e:
            doc["error"] = {"code": e.code, "description": e.description}
        doc["server"] = self.server_info()
        self._send(reply, doc)

    def _client_request(self, reply: str | None, payload: bytes, kick: bool) -> None:
        """`$SYS.REQ.SERVER.<id>.KICK` closes a client ("Kicked"); `.LDM` sends it an INFO with `ldm: true`.
        A body that is not a `{"cid": N}` object is logged and not answered, as nats-server."""
        try:
            req = json.loads(payload or b"")
            cid = req.get("cid", 0) if isinstance(req, dict) else None
            if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
                raise ValueError("cid")
        except (ValueError, AttributeError):
            self.server.error("Error unmarshalling kick client request")   # (nats-server's words for LDM too)
            return

        def act() -> str:
            client = self.server.clients.get(cid)
            if client is None or client.closed:
                return "no such client or leafnode id" if kick else "no such client id"
            if kick:
                client.close("Kicked")
                return ""
            if client.opts.get("protocol", 0) < 1 or not client.connect_received:
                return "client does not support Lame Duck Mode or is not ready to receive the notification"
            from embedded_server import lameduck
            lameduck._announce(self.server, [client])
            return ""

        self._plain_answer(reply, payload, act)

    def _reload_request(self, reply: str | None, payload: bytes) -> None:
        def act() -> str:
            try:
                self.server.reload()
            except Exception as e:
                return str(e)
            self.server.notice("Reloaded server configuration")
            return ""

        self._plain_answer(reply, payload, act)

    # -- statsz ----------------------------------------------------------------------------------------
    def statsz(self) -> dict:
        srv = self.server
        from embedded_server.gotime import rfc3339
        from embedded_server.monitor import _rss_bytes
        now = time.time()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        stats = {
            "start": rfc3339(srv.start_time),
            "mem": _rss_bytes(),
            "cores": os.cpu_count() or 1,
            "cpu": round(100.0 * (cpu.ru_utime + cpu.ru_stime) / max(now - srv.start_time, 1e-9), 2),
            "connections": len(srv.clients),
            "total_connections": srv.total_connections,
            "active_accounts": self.active_accounts(),
            "subscriptions": srv.num_subscriptions,
            "sent": {"msgs": srv.out_msgs, "bytes": srv.out_bytes},
            "sent_to_clients": {"msgs": srv.out_msgs, "bytes": srv.out_bytes},
            "received": {"msgs": srv.in_msgs, "bytes": srv.in_bytes},
            "received_from_clients": {"msgs": srv.in_msgs, "bytes": srv.in_bytes},
            "slow_consumers": srv.slow_consumers,
        }
        if srv.slow_consumers:
            stats["slow_consumer_stats"] = {"clients": srv.slow_consumers, "routes": 0, "gateways": 0, "leafs": 0}
        if srv.stale_connections:
            stats["stale_connections"] = srv.stale_connections
            stats["stale_connection_stats"] = {"clients": srv.stale_connections, "routes": 0, "gateways": 0,
                                               "leafs": 0}
        if srv.stalls:
            stats["stalled_clients"] = srv.stalls
        stats["active_servers"] = 1
        if srv.jetstream is not None and hasattr(srv.jetstream, "varz"):
            js = srv.jetstream.varz()
            config = dict(js.get("config", {}))
            config.pop("store_dir", None)
            stats["jetstream"] = {**js, "config": config}
        stats["gomaxprocs"] = 1
        return stats

    def active_accounts(self) -> int:
        return len({c.account.name for c in self.server.clients.values() if c.connect_received})

    def _statsz_request(self, reply: str | None, payload: bytes) -> None:
        subject = reply or f"$SYS.SERVER.{self.server.server_id}.STATSZ"
        try:
            opts = parse_options("STATSZ", payload)
        except RequestError as e:
            self._send(subject, {"server": self.server_info(), "error": {"code": e.code,
                                                                           "description": e.description}})
            return
        if self._filtered_out(opts):
            return
        self._send(subject, {"server": self.server_info(), "statsz": self.statsz()})

    def _schedule_statsz(self) -> None:
        loop = self.server.loop
        if loop is None:
            return
        self._statsz_timer = loop.call_later(self._statsz_every, self._statsz_heartbeat)

    def _statsz_heartbeat(self) -> None:
        self._statsz_every = min(self._statsz_every * 2, STATSZ_INTERVAL)
        self._schedule_statsz()
        subject = f"$SYS.SERVER.{self.server.server_id}.STATSZ"
        result = self.account.sublist.match(subject)
        receivers = list(result.psubs) + [s for g in result.qsubs for s in g]
        if not receivers or receivers == [self.remote_stats_sub]:
            return
        self._send(subject, {"server": self.server_info(), "statsz": self.statsz()})

    # -- account requests ------------------------------------------------------------------------------
    def _account_handler(self, kind: str):
        def handle(sub, client, subject, reply, hdr, payload):
            tokens = subject.split(".")
            if len(tokens) != 5:
                return
            acc = tokens[3]
            if kind == "CONNS":
                self._conns_request(acc, reply, payload)
            elif kind == "CONNZ":
                self._respond(reply, kind, payload, lambda o: self._connz(o, account=acc))
            elif kind == "SUBSZ":
                self._respond(reply, kind, payload, lambda o: self._subsz(o, account=acc))
            elif kind == "LEAFZ":
                self._respond(reply, kind, payload, lambda o: self._server_doc("LEAFZ", o))
            elif kind == "JSZ":
                self._respond(reply, kind, payload, lambda o: self._account_jsz(acc, o))
            elif kind == "INFO":
                self._respond(reply, kind, payload, lambda o: self._account_info(acc))
            elif kind == "STATZ":
                if acc == "PING":
                    return
                self._respond(reply, kind, payload, lambda o: self._account_statz([acc], o, skip_empty=True))
        return handle

    def _account_ping_statz(self, sub, client, subject, reply, hdr, payload) -> None:
        self._respond(reply, "STATZ", payload, lambda o: self._account_statz(o.get("accounts") or [], o,
                                                                             skip_empty=True))

    def _account_info(self, name: str) -> dict:
        detail = self.server.monitor_docs().account_detail(name)
        if detail is None:
            raise RequestError(500, f"Account {name} does not exist")
        return detail

    def _account_jsz(self, name: str, opts: dict) -> dict:
        """JszAccount: one account's JetStream usage, with stream/consumer/config detail on request."""
        js = self.server.jetstream
        if js is None:
            raise RequestError(500, "jetstream not enabled")
        if self.server.lookup_account(name) is None:
            raise RequestError(500, f'account "{name}" not found')
        if name not in js.accounts:
            raise RequestError(500, f'account "{name}" not jetstream enabled')
        q = {"acc": name, "accounts": "true"}
        if opts.get("streams") or opts.get("consumer"):
            q["streams"] = "true"
        if opts.get("consumer"):
            q["consumers"] = "true"
        if opts.get("config"):
            q["config"] = "true"
        for detail in js.jsz(q).get("account_details", []):
            if detail.get("name") == name:
                detail = dict(detail)
                # nats-server reports an account without reservations as unlimited (math.MaxUint64).
                detail["reserved_memory"] = detail["reserved_storage"] = 18446744073709551615
                return detail
        raise RequestError(500, f'account "{name}" not jetstream enabled')

    def _account_statz(self, names: list[str], opts: dict, skip_empty: bool) -> dict:
        doc = self.server.monitor_docs().accstatz(names, bool(opts.get("include_unused")))
        if skip_empty and not doc["account_statz"] and not opts.get("include_unused"):
            raise _Skip()
        return doc

    def account_stat(self, acc: "Account") -> dict:
        from embedded_server.monitor import _plain_account_stat
        return _plain_account_stat(self.server, acc)

    def _conns_request(self, name: str, reply: str | None, payload: bytes) -> None:
        if payload:
            try:
                doc = json.loads(payload)
            except ValueError:
                self.server.error("Error unmarshalling account connections request message")
                return
            if not isinstance(doc, dict) or doc.get("acc", name) != name:
                self.server.error("Error unmarshalled account does not match subject")
                return
        acc = self.server.lookup_account(name)
        if acc is None:
            return
        stat = self.account_stat(acc)
        if stat["conns"] > 0 and reply:
            self._send(reply, self._conns_event(stat))

    def _conns_event(self, stat: dict) -> dict:
        from embedded_server.gotime import rfc3339
        return {"type": "io.nats.server.advisory.v1.account_connections", "id": new_event_id(),
                "timestamp": rfc3339(time.time()), "server": self.server_info(), **stat}

    def _user_info(self, client, reply: str | None, via=None) -> None:
        if not reply:
            return
        doc: dict = {"server": self.server_info()}
        if client is None:
            doc["error"] = {"code": 400}
        else:
            identity = client.identity
            data = {"user": client.user or "", "account": client.account.name, "account_name": client.account.name}
            perms = identity.permissions if identity is not None else None
            if perms is not None and hasattr(perms, "to_json"):
                data["permissions"] = perms.to_json()
            doc["data"] = data
        self.server.send_internal(via or self.account, reply, None, None,
                                  compact_json(doc))

    # -- events ----------------------------------------------------------------------------------------
    def client_info(self, client, stop: float | None = None) -> dict:
        from embedded_server.gotime import rfc3339
        info = client_identity(client)
        if stop is not None:
            rtt = int(client.rtt * 1_000_000_000)
            if rtt:
                info["rtt"] = rtt
            info["stop"] = rfc3339(stop)
        jwt = client.opts.get("jwt")
        if jwt:
            info["jwt"] = jwt
        from embedded_server.monitor import name_tag
        info["name_tag"] = name_tag(self.server, client.account.name)
        info["kind"] = "Client"
        info["client_type"] = "nats"
        return info

    def client_connected(self, client) -> None:
        from embedded_server.gotime import rfc3339
        if not self.subs:
            return
        acc = client.account
        self._conns_update(acc)
        doc = {"type": "io.nats.server.advisory.v1.client_connect", "id": new_event_id(),
               "timestamp": rfc3339(time.time()), "server": self.server_info(), "client": self.client_info(client)}
        self.publish(f"$SYS.ACCOUNT.{acc.name}.CONNECT", doc)

    def client_disconnected(self, client) -> None:
        from embedded_server.gotime import rfc3339
        if not self.subs:
            return
        acc = client.account
        now = time.time()
        self._conns_update(acc)
        doc = {"type": "io.nats.server.advisory.v1.client_disconnect", "id": new_event_id(),
               "timestamp": rfc3339(now), "server": self.server_info(),
               "client": self.client_info(client, stop=now),
               "sent": {"msgs": client.in_msgs, "bytes": client.in_bytes},
               "received": {"msgs": client.out_msgs, "bytes": client.out_bytes},
               "reason": client.close_reason}
        self.publish(f"$SYS.ACCOUNT.{acc.name}.DISCONNECT", doc)

    def auth_error(self, client) -> None:
        """A refused CONNECT: `$SYS.SERVER.<id>.CLIENT.AUTH.ERR`, and the client's DISCONNECT in the account it
        was in (`$G`), both with nats-server's client_disconnect JSON and reason "Authentication Failure"."""
        from embedded_server.monitor import rfc3339
        if not self.subs:
            return
        now = time.time()
        for subject in (f"$SYS.SERVER.{self.server.server_id}.CLIENT.AUTH.ERR",
                        f"$SYS.ACCOUNT.{client.account.name}.DISCONNECT"):
            info = self.client_info(client, stop=now)
            user = client.opts.get("user") or client.opts.get("nkey")
            if user and "user" not in info:
                info["user"] = user   # the name it tried (nats-server's raw auth user)
            doc = {"type": "io.nats.server.advisory.v1.client_disconnect", "id": new_event_id(),
                   "timestamp": rfc3339(now), "server": self.server_info(), "client": info,
                   "sent": {"msgs": client.in_msgs, "bytes": client.in_bytes},
                   "received": {"msgs": client.out_msgs, "bytes": client.out_bytes},
                   "reason": "Authentication Failure"}
            self.publish(subject, doc)

    def _conns_update(self, acc: "Account") -> None:
        """`$SYS.ACCOUNT.<acc>.SERVER.CONNS` (and the older `$SYS.SERVER.ACCOUNT.<acc>.CONNS`) with the account's
        connection count; repeated every 30 s while it has connections. Never for `$G`, as nats-server."""
        if acc is self.server.global_account:
            return
        timer = self._conns_timers.pop(acc.name, None)
        if timer is not None:
            timer.cancel()
        stat = self.account_stat(acc)
        event = self._conns_event(stat)
        self.publish(f"$SYS.SERVER.ACCOUNT.{acc.name}.CONNS", event)
        event = dict(event)
        event["server"] = self.server_info()
        self.publish(f"$SYS.ACCOUNT.{acc.name}.SERVER.CONNS", event)
        if stat["total_conns"] and self.server.loop is not None:
            self._conns_timers[acc.name] = self.server.loop.call_later(CONNS_HEARTBEAT, self._conns_update, acc)


def _ok(result):
    """A monitor document: (status, doc) from the HTTP handlers, or the doc itself."""
    if isinstance(result, tuple):
        status, doc = result
        return doc
    return result
