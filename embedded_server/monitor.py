"""HTTP monitoring (`-m`): /varz, /connz, /subsz, /healthz, /jsz, with nats-server's field names and formats.

A small HTTP/1.1 responder on the server's own event loop; each request is answered from the server's live
state and the connection is closed. Times are RFC 3339 in UTC, durations in Go's notation, as nats-server.
"""
from __future__ import annotations

import asyncio
import collections
import os
import platform
import resource
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from embedded_server.errors import StartError
from embedded_server.gojson import compact_json, indent_json
from embedded_server.gotime import rfc3339, seconds_string
from embedded_server.options import FEATURE_FLAGS, join_host_port
from embedded_server.version import PROTOCOL_VERSION

if TYPE_CHECKING:
    from embedded_server.client import Client
    from embedded_server.server import Server

MAX_CLOSED_CLIENTS = 10000
DEFAULT_LIST_SIZE = 1024
_NS = 1_000_000_000


class BadRequest(Exception):
    pass


def _trim(x: float) -> str:
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def uptime(seconds: float) -> str:
    """nats-server's myUptime: 1y2d3h4m5s, with the leading zero units left out."""
    secs = int(seconds)
    mins, hrs, days = secs // 60, secs // 3600, secs // 86400
    years = days // 365
    if years:
        return f"{years}y{days % 365}d{hrs % 24}h{mins % 60}m{secs % 60}s"
    if days:
        return f"{days}d{hrs % 24}h{mins % 60}m{secs % 60}s"
    if hrs:
        return f"{hrs}h{mins % 60}m{secs % 60}s"
    if mins:
        return f"{mins}m{secs % 60}s"
    return f"{secs}s"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_SORTS = {
    "cid": lambda c: c["cid"], "start": lambda c: c["start_ts"], "subs": lambda c: -c["subscriptions"],
    "pending": lambda c: -c["pending_bytes"], "msgs_to": lambda c: -c["out_msgs"],
    "msgs_from": lambda c: -c["in_msgs"], "bytes_to": lambda c: -c["out_bytes"],
    "bytes_from": lambda c: -c["in_bytes"], "last": lambda c: -c["last_ts"], "idle": lambda c: c["last_ts"],
    "uptime": lambda c: c["start_ts"], "stop": lambda c: -c.get("stop_ts", 0), "reason": lambda c: c.get("reason", ""),
    "rtt": lambda c: -c["rtt_s"],
}


class Monitor:
    """The monitoring endpoint of one server."""

    def __init__(self, server: "Server"):
        self.server = server
        self.closed = collections.deque(maxlen=MAX_CLOSED_CLIENTS)
        self.req_stats: dict[str, int] = {}
        self._http: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        srv = self.server
        opts = srv.options
        host = opts.monitor_host
        port = 0 if opts.http_port == -1 else opts.http_port
        try:
            self._http = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        except OSError as e:
            raise StartError(f"Can't start monitoring: can't listen to the monitor port: listen tcp "
                             f"{join_host_port(host, port)}: {(e.strerror or str(e)).lower()}") from None
        self.port = self._http.sockets[0].getsockname()[1]
        srv.http_port = self.port
        srv.notice(f"Starting http monitor on {join_host_port(host, self.port)}")

    async def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def closed_client(self, client: "Client", subs: tuple = ()) -> None:
        """Remember a closed connection for /connz?state=closed: with its user and account (shown with auth=true,
        as nats-server) and the subscriptions it had, `subs`, with what they received (their counts are settled:
        removing them from their account's sublist settled that account, Account.drop_plans)."""
        info = self.conn_info(client, subs=False, detail=False, auth=True)
        info["stop_ts"] = time.time()
        info["stop"] = rfc3339(info["stop_ts"])
        info["reason"] = client.close_reason
        info["acc_name"] = client.account.name if client.account is not None else ""
        info["subscriptions"] = len(subs)
        info["subs_snapshot"] = [(s.subject, s.queue, s.sid, s.delivered, client.cid) for s in subs]
        self.closed.append(info)

    # -- HTTP ---------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) < 2:
                raise BadRequest("malformed request line")
            method, target = parts[0], parts[1]
            status, ctype, body = self.respond(method, target)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        except BadRequest as e:
            status, ctype, body = 400, "text/plain; charset=utf-8", str(e).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}.get(status, "OK")
        headers = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                   f"Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n")
        try:
            writer.write(headers.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def respond(self, method: str, target: str) -> tuple[int, str, bytes]:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        handlers = {"/varz": self.varz, "/connz": self.connz, "/subsz": self.subsz, "/subscriptionsz": self.subsz,
                    "/healthz": self.healthz, "/jsz": self.jsz, "/accountz": self.accountz,
                    "/accstatz": self.accstatz_http}
        if path == "/":
            self._count("/")
            return 200, "text/html; charset=utf-8", self.index()
        handler = handlers.get(path)
        if handler is None:
            return 404, "text/plain; charset=utf-8", b"404 page not found\n"
        self._count(path)
        status, doc = handler(query)
        if path == "/healthz":
            body = compact_json(doc)
        else:
            body = indent_json(doc)
        # No JSONP `?callback=` wrapping: nats-server 2.14.3 removed it (the query parameter is ignored).
        return status, "application/json", body

    def _count(self, path: str) -> None:
        self.req_stats[path] = self.req_stats.get(path, 0) + 1

    def index(self) -> bytes:
        links = "".join(f'<a href=.{p}>{label}<span class="endpoint"> {p}</span></a>\n'
                        for p, label in (("/varz", "General"), ("/jsz", "JetStream"), ("/connz", "Connections"),
                                         ("/accountz", "Accounts"), ("/subsz", "Subscriptions"),
                                         ("/healthz", "Health Probe")))
        return (f"<html lang=\"en\"><head><title>pynats-server</title></head><body>\n"
                f"<h3>pynats-server (NATS {PROTOCOL_VERSION})</h3>\n{links}</body></html>\n").encode()

    # -- documents ----------------------------------------------------------------------------------------
    def varz(self, query: dict) -> tuple[int, dict]:
        srv = self.server
        opts = srv.options
        now = time.time()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        jetstream: dict = {}
        if srv.jetstream is not None and hasattr(srv.jetstream, "varz"):
            jetstream = srv.jetstream.varz()
        doc = {
            "server_id": srv.server_id,
            "server_name": srv.server_name,
            "version": PROTOCOL_VERSION,
            "proto": 1,
            "go": f"python{platform.python_version()}",
            "host": opts.host,
            "port": srv.port,
        }
        if srv.auth_required:
            doc["auth_required"] = True
        doc.update({
            "max_connections": opts.max_connections,
            "ping_interval": int(opts.ping_interval * _NS),
            "ping_max": opts.max_pings_out,
            "http_host": opts.monitor_host,
            "http_port": opts.http_port,
            "http_base_path": "",
            "https_port": 0,
            "auth_timeout": opts.auth_timeout,
            "max_control_line": opts.max_control_line,
            "max_payload": opts.max_payload,
            "max_pending": opts.max_pending,
            "cluster": {}, "gateway": {}, "leaf": {}, "mqtt": {}, "websocket": {},
            "jetstream": jetstream,
            "tls_timeout": 2,
            "write_deadline": int(opts.write_deadline * _NS),
            "start": rfc3339(srv.start_time),
            "now": rfc3339(now),
            "uptime": uptime(now - srv.start_time),
            "mem": _rss_bytes(),
            "cores": os.cpu_count() or 1,
            "gomaxprocs": 1,
            "cpu": round(100.0 * (cpu.ru_utime + cpu.ru_stime) / max(now - srv.start_time, 1e-9), 2),
            "connections": len(srv.clients),
            "total_connections": srv.total_connections,
            "routes": 0,
            "remotes": 0,
            "leafnodes": 0,
            "in_msgs": srv.in_msgs,
            "in_bytes": srv.in_bytes,
            "in_client_msgs": srv.in_msgs,
            "in_client_bytes": srv.in_bytes,
            "out_msgs": srv.out_msgs,
            "out_bytes": srv.out_bytes,
            "out_client_msgs": srv.out_msgs,
            "out_client_bytes": srv.out_bytes,
            "slow_consumers": srv.slow_consumers,
            "stale_connections": srv.stale_connections,
            "stalled_clients": srv.stalls,
            "subscriptions": srv.num_subscriptions,
            "http_req_stats": dict(self.req_stats),
            "config_load_time": rfc3339(srv.config_load_time),
            "config_digest": "",
            # nats-server 2.14+: every flag with its value (defaults merged with the config's known ones).
            "feature_flags": {k: opts.feature_flags.get(k, v) for k, v in FEATURE_FLAGS.items()},
            **({"system_account": srv.system_account_name} if srv.system_account_name else {}),
            "slow_consumer_stats": {"clients": srv.slow_consumers, "routes": 0, "gateways": 0, "leafs": 0},
            "stale_connection_stats": {"clients": srv.stale_connections, "routes": 0, "gateways": 0, "leafs": 0},
        })
        return 200, doc

    def conn_info(self, c: "Client", subs: bool, detail: bool, auth: bool = False) -> dict:
        now = time.time()
        info = {
            "cid": c.cid,
            "kind": "Client",
            "type": "nats",
            "ip": c.host,
            "port": c.port,
            "start": rfc3339(c.start),
            "last_activity": rfc3339(c.last_activity),
            "rtt": seconds_string(c.rtt),
            "uptime": uptime(now - c.start),
            "idle": uptime(now - c.last_activity),
            "pending_bytes": c.pending_bytes,
            "in_msgs": c.in_msgs,
            "out_msgs": c.out_msgs,
            "in_bytes": c.in_bytes,
            "out_bytes": c.out_bytes,
        }
        if c.stalls:
            info["stalls"] = c.stalls
        info["subscriptions"] = len(c.subs)
        for key in ("name", "lang", "version"):
            if c.opts.get(key):
                info[key] = c.opts[key]
        if auth and c.user:
            info["authorized_user"] = c.user
        if auth and c.account is not None and c.account.name != "$G":  # nats-server leaves $G unnamed
            info["account"] = c.account.name
        if subs and c.subs:
            info["subscriptions_list"] = [s.subject for s in c.subs.values()]
        if detail and c.subs:
            info["subscriptions_list_detail"] = [_sub_detail(s.subject, s.queue, s.sid, s.delivered, c.cid)
                                                 for s in c.subs.values()]
        # Sort keys, removed before the document is sent.
        info["start_ts"] = c.start
        info["last_ts"] = c.last_activity
        info["rtt_s"] = c.rtt
        return info

    def connz(self, q: dict) -> tuple[int, dict]:
        srv = self.server
        sort = q.get("sort", "") or "cid"
        auth = _bool(q, "auth")
        detail = q.get("subs", "").lower() == "detail"
        subs = False if detail else _bool(q, "subs")
        offset = _int(q, "offset")
        limit = _int(q, "limit") or DEFAULT_LIST_SIZE
        cid = _int(q, "cid")
        state = (q.get("state") or "open").lower()
        if state not in ("open", "closed", "any", "all"):
            raise BadRequest(f"Error decoding state for {q.get('state')}")
        if sort not in _SORTS:
            raise BadRequest(f"invalid sorting option: {sort}")
        if detail:
            srv.settle_deliveries()
        if sort in ("stop", "reason") and state != "closed":
            raise BadRequest(f"sort by {sort} only valid on closed connections")
        user = q.get("user", "")
        acc = q.get("acc", "")
        subject_filter = q.get("filter_subject", "")
        if subject_filter and subject_filter != ">" and not acc:
            raise BadRequest("filter by subject only valid with account filtering")
        conns: list[dict] = []
        if state in ("open", "any", "all"):
            conns += [self.conn_info(c, subs, detail, auth) for c in srv.clients.values()
                      if (not acc or (c.account is not None and c.account.name == acc))
                      and (not subject_filter or subject_filter == ">" or _has_colliding_sub(c, subject_filter))]
        if state in ("closed", "any", "all"):
            for closed in self.closed:
                info = dict(closed)
                if not auth:
                    info.pop("authorized_user", None)
                    info.pop("account", None)
                snapshot = info.pop("subs_snapshot", [])
                if subs and snapshot:
                    info["subscriptions_list"] = [s[0] for s in snapshot]
                if detail and snapshot:
                    info["subscriptions_list_detail"] = [_sub_detail(*s) for s in snapshot]
                conns.append(info)
        if cid:
            conns = [c for c in conns if c["cid"] == cid]
        if user:
            conns = [c for c in conns if c.get("authorized_user") == user]
        if acc:
            conns = [c for c in conns if c.get("acc_name", acc) == acc]
        conns.sort(key=_SORTS[sort])
        total = len(conns)
        page = conns[offset:offset + limit]
        for c in page:
            for key in ("start_ts", "last_ts", "rtt_s", "stop_ts", "subs_snapshot", "acc_name"):
                c.pop(key, None)
        return 200, {
            "server_id": srv.server_id,
            "now": rfc3339(time.time()),
            "num_connections": len(page),
            "total": total,
            "offset": offset,
            "limit": limit,
            "connections": page,
        }

    def subsz(self, q: dict) -> tuple[int, dict]:
        srv = self.server
        subs = _bool(q, "subs")
        offset = _int(q, "offset")
        limit = _int(q, "limit") or DEFAULT_LIST_SIZE
        test = q.get("test", "")
        acc_name = q.get("acc", "")
        if test:
            from embedded_server.subjects import is_valid_publish_subject
            if not is_valid_publish_subject(test):
                raise BadRequest(f"invalid test subject, must be valid publish subject: {test}")
        accounts = [srv.accounts[acc_name]] if acc_name in srv.accounts else (
            [] if acc_name else list(srv.accounts.values()))
        if subs:
            for acc in accounts:
                acc.settle_subs()
        stats = {"num_subscriptions": 0, "num_cache": 0, "num_inserts": 0, "num_removes": 0, "num_matches": 0,
                 "cache_hit_rate": 0.0, "max_fanout": 0, "avg_fanout": 0.0}
        hits = 0
        fanouts = 0.0
        for acc in accounts:
            st = acc.sublist.stats()
            for key in ("num_subscriptions", "num_cache", "num_inserts", "num_removes", "num_matches"):
                stats[key] += st[key]
            hits += acc.sublist.cache_hits
            stats["max_fanout"] = max(stats["max_fanout"], st["max_fanout"])
            fanouts += st["avg_fanout"] * st["num_cache"]
        if stats["num_matches"]:
            stats["cache_hit_rate"] = hits / stats["num_matches"]
        if stats["num_cache"]:
            stats["avg_fanout"] = fanouts / stats["num_cache"]
        doc = {"server_id": srv.server_id, "now": rfc3339(time.time()), **stats}
        details = []
        if subs:
            for acc in accounts:
                for s in acc.sublist.all():
                    if test:
                        from embedded_server.subjects import matches
                        if not matches(s.subject, test):
                            continue
                    d = {"account": acc.name, "account_tag": acc.name, "subject": s.subject}
                    if s.queue:
                        d["qgroup"] = s.queue
                    d["sid"] = s.sid.decode("utf-8", "replace") if s.client is not None else ""
                    d["msgs"] = s.delivered
                    d["cid"] = s.client.cid if s.client is not None else 0
                    details.append(d)
        doc["total"] = len(details)
        doc["offset"] = offset
        doc["limit"] = limit
        if subs:
            page = details[offset:offset + limit]
            if page:
                doc["subscriptions_list"] = page
        return 200, doc

    def healthz(self, q: dict) -> tuple[int, dict]:
        """/healthz: the HTTP status and body (nats-server leaves `status_code` out of the HTTP body)."""
        doc = self.health(q)
        status = doc.pop("status_code")
        return status, doc

    def health(self, q: dict) -> dict:
        """nats-server's healthz: `js-enabled-only`, `js-server-only`, `account`/`stream`/`consumer` and `details`,
        with its texts and codes; the store directory is read for the streams that must have been recovered."""
        details = _bool(q, "details")
        server_only = _bool(q, "js-server-only")
        enabled_only = _bool(q, "js-enabled-only") or _bool(q, "js-enabled")
        account, stream, consumer = q.get("account", ""), q.get("stream", ""), q.get("consumer", "")

        def fail(code: int, kind: str, text: str, status: str = "unavailable", **where) -> dict:
            if details:
                return {"status": "error", "status_code": code, "errors": [{"type": kind, **where, "error": text}]}
            return {"status": status, "status_code": code, "error": text}

        ok = {"status": "ok", "status_code": 200}
        if not account and stream:
            return fail(400, "BAD_REQUEST", '"account" must not be empty when checking stream health', "error")
        if not stream and consumer:
            return fail(400, "BAD_REQUEST", '"stream" must not be empty when checking consumer health', "error")
        srv = self.server
        if server_only or not srv.options.jetstream:
            return ok
        js = srv.jetstream
        if js is None:
            return fail(503, "JETSTREAM", "JetStream not enabled (10076)")
        if enabled_only:
            return ok
        base = js.store_dir
        acc_found = stream_found = consumer_found = False
        for name in _listdir(base):
            if account:
                if name != account:
                    continue
                acc_found = True
            jsa = js.accounts.get(name)
            # A stream start-up set aside (jetstream/recovery.py) stays a failed check until it is dealt with.
            for entry in _listdir(os.path.join(base, name, "unloadable")):
                sname = entry.split(".", 1)[0]
                if not stream or sname == stream:
                    return fail(503, "STREAM", f"JetStream stream '{name} > {sname}' could not be recovered",
                                account=name, stream=sname)
            for sname in _listdir(os.path.join(base, name, "streams")):
                if stream:
                    if sname != stream:
                        continue
                    stream_found = True
                st = jsa.streams.get(sname) if jsa is not None else None
                if st is None:
                    return fail(503, "STREAM", f"JetStream stream '{name} > {sname}' could not be recovered",
                                account=name, stream=sname)
                if stream_found:
                    consumer_found = bool(consumer) and consumer in st.consumers
                    break
            if acc_found:
                break
        if account and not acc_found:
            return fail(404, "ACCOUNT", f'JetStream account "{account}" not found', account=account)
        if stream and not stream_found:
            return fail(404, "STREAM", f'JetStream stream "{stream}" not found on account "{account}"',
                        account=account, stream=stream)
        if consumer and not consumer_found:
            return fail(404, "CONSUMER", f'JetStream consumer "{consumer}" not found for stream "{stream}" on '
                                         f'account "{account}"', account=account, stream=stream, consumer=consumer)
        return ok

    def jsz(self, q: dict) -> tuple[int, dict]:
        js = self.server.jetstream
        if js is not None:
            return 200, js.jsz(q) if _accepts_query(js.jsz) else js.jsz()
        srv = self.server
        return 200, {"server_id": srv.server_id, "now": rfc3339(time.time()), "disabled": True,
                     "config": {"max_memory": 0, "max_storage": 0}, "memory": 0, "storage": 0,
                     "reserved_memory": 0, "reserved_storage": 0, "accounts": 0, "ha_assets": 0,
                     "api": {"level": 0, "total": 0, "errors": 0}, "streams": 0, "consumers": 0, "messages": 0,
                     "bytes": 0, "total": 0}

    def accountz(self, q: dict) -> tuple[int, dict]:
        srv = self.server
        doc = {"server_id": srv.server_id, "now": rfc3339(time.time())}
        if srv.system_account_name:
            doc["system_account"] = srv.system_account_name
        name = q.get("acc", "")
        if name:
            detail = self.account_detail(name)
            if detail is None:
                raise BadRequest(f"Account {name} does not exist")
            doc["account_detail"] = detail
        else:
            doc["accounts"] = list(srv.accounts)
        return 200, doc

    def account_detail(self, name: str) -> dict | None:
        """nats-server's AccountInfo: /accountz?acc=NAME and `$SYS.REQ.ACCOUNT.<acc>.INFO`."""
        srv = self.server
        acc = srv.accounts.get(name)
        if acc is None:
            return None
        config = next((a for a in _account_configs(srv) if a.name == name), None)
        js = srv.jetstream
        detail: dict = {"account_name": name, "update_time": rfc3339(getattr(acc, "created", srv.start_time))}
        if name == srv.system_account_name:
            detail["is_system"] = True
        detail.update({
            "expired": False, "complete": True,
            "jetstream_enabled": bool(js is not None and name in js.accounts),
            "leafnode_connections": 0,
            "client_connections": sum(1 for c in srv.clients.values() if c.account is acc and c.connect_received),
            "subscriptions": acc.sublist.count,
        })
        exports = []
        imports = []
        if config is not None:
            for e in config.service_exports:
                exports.append({"subject": e.subject, "type": "service", "response_type": "Singleton",
                                "approved_accounts": list(e.accounts or [])})
            for e in config.stream_exports:
                exports.append({"subject": e.subject, "type": "stream", "approved_accounts": list(e.accounts or [])})
            for i in config.stream_imports:
                imp = {"subject": i.subject, "account": i.account, "type": "stream", "invalid": False,
                       "share": False, "tracking": False}
                local = i.to or (f"{i.prefix}.{i.subject}" if i.prefix else "")
                if local:
                    imp = {"subject": i.subject, "account": i.account, "local_subject": local, "type": "stream",
                           "invalid": False, "share": False, "tracking": False}
                imports.append(imp)
            for i in config.service_imports:
                local = i.to or i.subject
                imports.append({"subject": i.subject, "account": i.account, "to": local, "local_subject": local,
                                "type": "service", "invalid": False, "share": False, "tracking": False})
        if srv.events is not None:
            imports += srv.events.system_imports(name)
        if exports:
            detail["exports"] = exports
        if imports:
            detail["imports"] = imports
        detail["name_tag"] = name_tag(srv, name)
        st = acc.sublist.stats()
        detail["sublist_stats"] = {k: st[k] for k in ("num_subscriptions", "num_cache", "num_inserts", "num_removes",
                                                      "num_matches")}
        detail["sublist_stats"].update({
            "cache_hit_rate": acc.sublist.cache_hits / st["num_matches"] if st["num_matches"] else 0,
            "max_fanout": st["max_fanout"], "avg_fanout": st["avg_fanout"]})
        return detail

    def accstatz(self, names: list[str], include_unused: bool) -> dict:
        """nats-server's AccountStatz: the named accounts (all when none are named), only those with
        connections unless `include_unused`."""
        srv = self.server
        events = srv.events
        chosen = [srv.accounts[n] for n in names if n in srv.accounts] if names else list(srv.accounts.values())
        stats = []
        for acc in chosen:
            stat = events.account_stat(acc) if events is not None else _plain_account_stat(srv, acc)
            if include_unused or stat["conns"] > 0:
                stats.append(stat)
        return {"server_id": srv.server_id, "now": rfc3339(time.time()), "account_statz": stats}

    def accstatz_http(self, q: dict) -> tuple[int, dict]:
        names = [n for n in q.get("accounts", "").split(",") if n]
        return 200, self.accstatz(names, _bool(q, "unused") or _bool(q, "include_unused"))


def _account_configs(srv) -> list:
    operator = srv.operator
    if operator is not None:
        try:
            return operator.account_configs()
        except Exception:
            return []
    return list(srv.options.accounts or [])


def _plain_account_stat(srv, acc) -> dict:
    conns = sum(1 for c in srv.clients.values() if c.account is acc and c.connect_received)
    zero = {"msgs": 0, "bytes": 0}

    def stats(msgs: int, size: int) -> dict:
        return {"msgs": msgs, "bytes": size, "gateways": dict(zero), "routes": dict(zero), "leafs": dict(zero)}

    return {"acc": acc.name, "name": name_tag(srv, acc.name), "conns": conns, "leafnodes": 0, "total_conns": conns,
            "num_subscriptions": acc.sublist.count, "sent": stats(acc.out_msgs, acc.out_bytes),
            "received": stats(acc.in_msgs, acc.in_bytes), "slow_consumers": acc.slow_consumers}


def name_tag(srv, account: str) -> str:
    """An account's name as nats-server shows it: its JWT's `name` in operator mode, else the account name."""
    operator = getattr(srv, "operator", None)
    if operator is not None:
        name = (operator.accounts.get(account) or {}).get("name")
        if isinstance(name, str) and name:
            return name
    return account


def _has_colliding_sub(client, subject: str) -> bool:
    """Does the client have a subscription that could receive a message on `subject` (nats-server's
    SubjectsCollide)?"""
    tokens = subject.split(".")
    for sub in client.subs.values():
        other = sub.subject if isinstance(sub.subject, str) else sub.subject.decode()
        if _collide(tokens, other.split(".")):
            return True
    return False


def _collide(a: list[str], b: list[str]) -> bool:
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b):
            return False
        x, y = a[i], b[i]
        if x == ">" or y == ">":
            return True
        if x != y and x != "*" and y != "*":
            return False
    return True


def _listdir(path: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(path) if not e.startswith("."))
    except OSError:
        return []


def _sub_detail(subject: str, queue, sid: bytes, msgs: int, cid: int) -> dict:
    d = {"subject": subject}
    if queue:
        d["qgroup"] = queue
    d["sid"] = sid.decode("utf-8", "replace")
    d["msgs"] = msgs
    d["cid"] = cid
    return d


def _bool(q: dict, name: str) -> bool:
    text = q.get(name, "")
    if text == "":
        return False
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise BadRequest(f"Error decoding boolean for '{name}': strconv.ParseBool: parsing \"{text}\": invalid syntax")


def _int(q: dict, name: str) -> int:
    text = q.get(name, "")
    if text == "":
        return 0
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"Error decoding int for '{name}': strconv.Atoi: parsing \"{text}\": invalid syntax") from None


def _accepts_query(fn) -> bool:
    import inspect
    try:
        return len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        return False
