"""Accounts from the configuration file: isolated subject spaces, their users, and stream and service
exports/imports between them (nats-server's opts.go parseAccounts and accounts.go, for what is implemented).

A stream import is an internal subscription in the exporting account that republishes into the importing
account (under `prefix` or `to`). A service import is an internal subscription in the importing account that
forwards the request to the exporting account with a reply subject of its own (`_R_.…`), through which the
first response travels back to the requester.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from embedded_server.auth.conf import parse_permissions, parse_users
from embedded_server.auth.permissions import Permissions, _subset_match, is_valid_subject
from embedded_server.auth.users import NkeyUser, User
from embedded_server.config import ConfigError, ConfList, ConfMap, Pos
from embedded_server.gojson import compact_json

GLOBAL_ACCOUNT = "$G"
SYSTEM_ACCOUNT = "$SYS"
RESPONSE_TTL = 120.0  # seconds a service import waits for a response (nats-server's default threshold)


@dataclass
class Export:
    subject: str
    accounts: list[str] | None = None  # None: any account may import
    allow_trace: bool = False          # a service export lets message traces continue into it


@dataclass
class Import:
    account: str
    subject: str
    to: str = ""  # service: local subject; stream: mapped subject
    prefix: str = ""
    allow_trace: bool = False  # a stream import lets message traces continue across it


@dataclass
class AccountConfig:
    name: str
    stream_exports: list[Export] = field(default_factory=list)
    service_exports: list[Export] = field(default_factory=list)
    stream_imports: list[Import] = field(default_factory=list)
    service_imports: list[Import] = field(default_factory=list)
    default_permissions: Permissions | None = None
    jetstream: bool = False          # `jetstream: enabled` (or a limits map) in the account
    mappings: list = field(default_factory=list)   # transform.Mapping, in the order written
    jetstream_limits: dict | None = None   # the limits map of `jetstream { ... }` (jetstream/limits.py names)
    trace_dest: tuple[str, int] | None = None   # `msg_trace`: where sampled `traceparent` messages are traced
    limits: dict = field(default_factory=dict)  # `limits { max_connections, max_subscriptions, max_payload }`


def parse_accounts(value: Any, pos: Pos | None, errors: list[ConfigError]
                   ) -> tuple[list[AccountConfig], list[User], list[NkeyUser]]:
    accounts: list[AccountConfig] = []
    users: list[User] = []
    nkeys: list[NkeyUser] = []
    if isinstance(value, ConfList):
        for i, name in enumerate(value):
            if not isinstance(name, str):
                errors.append(ConfigError("Expected account names to be strings", pos))
            elif name == GLOBAL_ACCOUNT:
                errors.append(ConfigError(f'"{name}" is a Reserved Account', pos))
            elif any(a.name == name for a in accounts):
                errors.append(ConfigError(f"Duplicate Account Entry: {name}", pos))
            else:
                accounts.append(AccountConfig(name))
        return accounts, users, nkeys
    if not isinstance(value, ConfMap):
        errors.append(ConfigError("Expected map entries for accounts", pos))
        return accounts, users, nkeys
    for name, body in value.items():
        apos = value.pos(name) or pos
        if name in value.used:
            continue
        if not isinstance(body, ConfMap):
            errors.append(ConfigError("Expected map entries for accounts", apos))
            continue
        if name == GLOBAL_ACCOUNT:
            errors.append(ConfigError(f'"{name}" is a Reserved Account', apos))
            continue
        acc = AccountConfig(name)
        accounts.append(acc)
        acc_users: list[User] = []
        acc_nkeys: list[NkeyUser] = []
        for key, v in body.items():
            lk, kpos = key.lower(), body.pos(key) or apos
            if lk == "users":
                parsed = parse_users(v, kpos, errors)
                if parsed is not None:
                    acc_nkeys, acc_users = parsed
            elif lk == "exports":
                _exports(v, kpos, acc, errors)
            elif lk == "imports":
                _imports(v, kpos, acc, errors)
            elif lk == "default_permissions":
                acc.default_permissions = parse_permissions(v, kpos, errors)
            elif lk == "jetstream":
                acc.jetstream = _jetstream_enabled(v, kpos, errors)
                if isinstance(v, ConfMap):
                    acc.jetstream_limits = _jetstream_limits(v, kpos, errors)
            elif lk == "limits":
                acc.limits = _account_limits(v, kpos, errors)
            elif lk in ("msg_trace", "trace_dest"):
                acc.trace_dest = _msg_trace(key, v, kpos, errors)
            elif lk in ("mappings", "maps"):
                from embedded_server.mappings import parse_mappings
                acc.mappings = parse_mappings(v, kpos, errors)
            elif key not in body.used:
                errors.append(ConfigError(f'unknown field "{key}"', kpos))
        for u in acc_users + acc_nkeys:
            u.account = name
            if u.permissions is None and acc.default_permissions is not None:
                u.permissions = acc.default_permissions
                u.default_permissions = True
        users += acc_users
        nkeys += acc_nkeys
    _check_imports(accounts, pos, errors)
    return accounts, users, nkeys


def _jetstream_enabled(v: Any, pos: Pos | None, errors: list[ConfigError]) -> bool:
    """An account's `jetstream`: true/false, "enabled"/"disabled", or a map of limits (enabled)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v.lower() in ("enabled", "enable"):
            return True
        if v.lower() in ("disabled", "disable"):
            return False
        errors.append(ConfigError(f"Expected 'enabled' or 'disabled' for string value, got '{v}'", pos))
        return False
    if isinstance(v, ConfMap):
        return True
    errors.append(ConfigError(f"Expected map, bool or string to define JetStream, got {type(v).__name__}", pos))
    return False


def _account_limits(v: Any, pos: Pos | None, errors: list[ConfigError]) -> dict:
    """An account's `limits` map (nats-server's parseAccountLimits), keyed as the account JWT's limits."""
    if not isinstance(v, ConfMap):
        errors.append(ConfigError(f"Expected account limits to be a map/struct, got {v}", pos))
        return {}
    names = {"max_connections": "conn", "max_conn": "conn", "max_subscriptions": "subs", "max_subs": "subs",
             "max_payload": "payload", "max_pay": "payload", "max_leafnodes": "leaf", "max_leafs": "leaf"}
    out = {}
    for key, value in v.items():
        kpos = v.pos(key) or pos
        name = names.get(key.lower())
        if name is None:
            if key not in v.used:
                errors.append(ConfigError(f'Unknown field "{key}" parsing account limits', kpos))
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(ConfigError(f"interface conversion: interface {{}} is {type(value).__name__}, not int64",
                                      kpos))
            continue
        out[name] = value
    return out


def _msg_trace(key: str, v: Any, pos: Pos | None, errors: list[ConfigError]) -> tuple[str, int] | None:
    """An account's `msg_trace` (nats-server's parseAccountMsgTrace): a destination, or {dest, sampling}."""
    from embedded_server.subjects import is_valid_publish_subject
    dest, sampling = "", 100
    items = v.items() if isinstance(v, ConfMap) else [("dest", v)]
    for k, value in items:
        kpos = v.pos(k) if isinstance(v, ConfMap) else pos
        lk = k.lower()
        if lk == "dest":
            if not isinstance(value, str):
                errors.append(ConfigError(f'Field "{k if isinstance(v, ConfMap) else key}" should be a string, got '
                                          f'{type(value).__name__}', kpos))
                return None
            if not is_valid_publish_subject(value):
                errors.append(ConfigError(f'Trace destination "{value}" is not valid', kpos))
                return None
            dest = value
        elif lk == "sampling":
            if isinstance(value, str) and value.endswith("%"):
                value = value[:-1]
            try:
                sampling = int(value)
            except (TypeError, ValueError):
                errors.append(ConfigError(f'Invalid trace destination sampling value "{value}"', kpos))
                return None
            if sampling <= 0 or sampling > 100:
                errors.append(ConfigError(f"Ttrace destination sampling value {sampling} is invalid, needs to be "
                                          "[1..100]", kpos))
                return None
        else:
            errors.append(ConfigError(f'Unknown field "{k}" parsing account message trace map/struct "{key}"',
                                      kpos))
            return None
    return (dest, sampling) if dest else None


_LIMIT_KEYS = {
    "max_memory": "max_memory", "max_mem": "max_memory", "mem": "max_memory", "memory": "max_memory",
    "max_store": "max_storage", "max_file": "max_storage", "max_disk": "max_storage", "store": "max_storage",
    "disk": "max_storage", "max_streams": "max_streams", "streams": "max_streams",
    "max_consumers": "max_consumers", "consumers": "max_consumers",
    "max_bytes_required": "max_bytes_required", "max_stream_bytes": "max_bytes_required",
    "max_bytes": "max_bytes_required", "mem_max_stream_bytes": "memory_max_stream_bytes",
    "memory_max_stream_bytes": "memory_max_stream_bytes", "disk_max_stream_bytes": "storage_max_stream_bytes",
    "store_max_stream_bytes": "storage_max_stream_bytes", "max_ack_pending": "max_ack_pending",
}


def _jetstream_limits(v: ConfMap, pos: Pos | None, errors: list[ConfigError]) -> dict:
    """An account's JetStream limits map (nats-server's parseJetStreamForAccount), as $JS.API.INFO names them."""
    limits: dict = {}
    for key, value in v.items():
        lk, kpos = key.lower(), v.pos(key) or pos
        name = _LIMIT_KEYS.get(lk)
        if name == "max_bytes_required":
            if not isinstance(value, bool):
                errors.append(ConfigError(f'Expected a parseable bool for "{key}", got {value}', kpos))
                continue
            limits[name] = value
        elif name is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append(ConfigError(f'Expected a parseable size for "{key}", got {value}', kpos))
                continue
            limits[name] = value
        elif lk == "cluster_traffic":
            if value not in ("system", "owner", ""):
                errors.append(ConfigError(f"Expected 'system' or 'owner' string value for \"{key}\", got {value}",
                                          kpos))
        elif lk not in ("enabled", "enable") and key not in v.used:
            errors.append(ConfigError(f'Unknown field "{key}" parsing account jetstream limits', kpos))
    return limits


def _entries(v: Any, pos: Pos | None, what: str, errors: list[ConfigError]):
    """The map entries of an exports/imports array, with where each was written."""
    if not isinstance(v, ConfList):
        errors.append(ConfigError(f"{what}s should be an array, got {type(v).__name__}", pos))
        return
    for i, item in enumerate(v):
        ipos = v.positions[i] if i < len(v.positions) else pos
        if not isinstance(item, ConfMap):
            errors.append(ConfigError(f"{what} Items should be a map with type entry", ipos))
            continue
        yield item, ipos


def _exports(v: Any, pos: Pos | None, acc: AccountConfig, errors: list[ConfigError]) -> None:
    for item, ipos in _entries(v, pos, "Export", errors):
        kind = "stream" if "stream" in item else "service" if "service" in item else None
        if kind is None or ("stream" in item and "service" in item):
            errors.append(ConfigError("Export Items should have exactly one of stream or service", ipos))
            continue
        subject = item[kind]
        if not isinstance(subject, str) or not is_valid_subject(subject):
            errors.append(ConfigError(f"Expected {kind} name to be a valid subject, got {subject!r}", ipos))
            continue
        allowed = item.get("accounts")
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)):
            errors.append(ConfigError("Expected accounts to be an array of account names", ipos))
            continue
        (acc.stream_exports if kind == "stream" else acc.service_exports).append(
            Export(subject, list(allowed) if allowed is not None else None, item.get("allow_trace") is True))


def _imports(v: Any, pos: Pos | None, acc: AccountConfig, errors: list[ConfigError]) -> None:
    for item, ipos in _entries(v, pos, "Import", errors):
        kind = "stream" if "stream" in item else "service" if "service" in item else None
        if kind is None:
            errors.append(ConfigError("Import Items should have a stream or a service", ipos))
            continue
        src = item[kind]
        if not isinstance(src, ConfMap) or not src.get("account") or not src.get("subject"):
            errors.append(ConfigError("Expect an account name and a subject", ipos))
            continue
        imp = Import(str(src["account"]), str(src["subject"]), str(item.get("to", "")), str(item.get("prefix", "")),
                     item.get("allow_trace") is True)
        if kind == "stream":
            if imp.prefix and imp.to:
                errors.append(ConfigError("Stream import can not have a 'prefix' and a 'to' property", ipos))
                continue
            acc.stream_imports.append(imp)
        else:
            acc.service_imports.append(imp)


def _authorized(exports: list[Export], subject: str, importer: str) -> bool:
    for e in exports:
        if _subset_match(subject.split("."), e.subject.split(".")) and (
                e.accounts is None or importer in e.accounts):
            return True
    return False


def _check_imports(accounts: list[AccountConfig], pos: Pos | None, errors: list[ConfigError]) -> None:
    by_name = {a.name: a for a in accounts}
    for acc in accounts:
        for kind, imports in (("stream", acc.stream_imports), ("service", acc.service_imports)):
            for imp in imports:
                exporter = by_name.get(imp.account)
                if exporter is None:
                    errors.append(ConfigError(f'"{imp.account}" account not defined for {kind} import', pos))
                    continue
                exports = exporter.stream_exports if kind == "stream" else exporter.service_exports
                if not _authorized(exports, imp.subject, acc.name):
                    errors.append(ConfigError(f'Error adding {kind} import "{imp.subject}": {kind} import not '
                                              "authorized", pos))


# -- wiring into a running server -------------------------------------------------------------------------------
def _mapped(imp: Import, subject: str) -> str:
    if imp.prefix:
        return f"{imp.prefix}.{subject}"
    if imp.to:
        return map_subject(imp.subject, imp.to, subject)
    return subject


def map_subject(pattern: str, to: str, subject: str) -> str:
    """The subject under `to` that `subject` (matched by `pattern`) maps to: the wildcards of `to` take the
    tokens `pattern`'s wildcards matched, in order (`orders.>` → `shop.orders.>`)."""
    ptoks, stoks = pattern.split("."), subject.split(".")
    stars, tail = [], None
    for i, p in enumerate(ptoks):
        if p == "*":
            stars.append(stoks[i])
        elif p == ">":
            tail = stoks[i:]
    out = []
    stars_iter = iter(stars)
    for t in to.split("."):
        if t == "*":
            out.append(next(stars_iter, "*"))
        elif t == ">":
            out.extend(tail if tail is not None else [">"])
        else:
            out.append(t)
    return ".".join(out)


def wire(server, accounts: list[AccountConfig]) -> list:
    """Register the accounts and create the internal subscriptions their imports need; returns those
    subscriptions (to remove on reload)."""
    subs = []
    for acc in accounts:
        server.register_account(acc.name)
    for acc in accounts:
        importer = server.register_account(acc.name)
        for imp in acc.stream_imports:
            exporter = server.register_account(imp.account)

            def forward(sub, client, subject, reply, hdr, payload, imp=imp, importer=importer):
                to = _mapped(imp, subject)
                trace = server.msg_trace
                if trace is not None:
                    trace.stream_export(importer.name, to)
                    if not imp.allow_trace:
                        # The trace stops here: trace-only goes no further, a delivery continues untraced.
                        if trace.only:
                            return
                        server.msg_trace = None
                        try:
                            server.send_internal(importer, to, reply, hdr, payload)
                        finally:
                            server.msg_trace = trace
                        return
                server.send_internal(importer, to, reply, hdr, payload)

            subs.append(server.subscribe_internal(exporter, imp.subject, forward))
        for imp in acc.service_imports:
            exporter = server.register_account(imp.account)
            local = imp.to or imp.subject

            traced = any(e.allow_trace and _subset_match(imp.subject.split("."), e.subject.split("."))
                         for a in accounts if a.name == imp.account for e in a.service_exports)

            def request(sub, client, subject, reply, hdr, payload, imp=imp, importer=importer,
                        exporter=exporter, local=local, traced=traced):
                target = map_subject(local, imp.subject, subject)
                hdr = with_request_info(hdr, client, importer.name, reply)
                trace = server.msg_trace
                if trace is not None:
                    trace.service_import(exporter.name, subject, target)
                    if not traced:
                        if trace.only:
                            return
                        server.msg_trace = None
                        try:
                            request(sub, client, subject, reply, hdr, payload)
                        finally:
                            server.msg_trace = trace
                        return
                    if trace.only:
                        server.send_internal(exporter, target, None, hdr, payload)
                        return
                if not reply:
                    server.send_internal(exporter, target, None, hdr, payload)
                    return
                if not server.has_interest(exporter, target):
                    # Nobody serves it in the exporting account: the requester hears so at once (503).
                    if client is not None and client.no_responders:
                        client._no_responders(subject.encode(), reply.encode())
                    return
                _forward_request(server, importer, exporter, target, reply, hdr, payload)

            subs.append(server.subscribe_internal(importer, local, request))
    return subs


REQUEST_INFO = b"Nats-Request-Info"
_CLIENT_INFO_ORDER = ("start", "host", "id", "acc", "svc", "user", "name", "lang", "ver", "rtt", "server", "cluster",
                      "reply")


def with_request_info(hdr: bytes | None, client, account: str, reply: str = "") -> bytes:
    """The header of a request crossing a service import with nats-server's `Nats-Request-Info` set: the
    requester's account and RTT (`{"acc":"A","rtt":123}`) on the first import, and the original reply subject
    when it is a fast batch's (`....$FI`, which the stream reads the batch from); on a chained one, the
    earlier info with `svc` naming the account whose import it crosses now."""
    lines = hdr.split(b"\r\n")[1:-2] if hdr else []
    earlier = [ln for ln in lines if ln.split(b":", 1)[0].strip() == REQUEST_INFO]
    info: dict = {}
    if getattr(client, "account", None) is not None and hasattr(client, "rtt"):
        info = {"acc": client.account.name}
        rtt = int(client.rtt * 1e9)
        if rtt > 0:
            info["rtt"] = rtt
        if reply and reply.endswith(".$FI"):
            info["reply"] = reply
    elif earlier:
        try:
            info = json.loads(earlier[0].split(b":", 1)[1])
            info["svc"] = account
        except (ValueError, AttributeError, TypeError):
            info = {}
    if not info:
        return hdr
    value = compact_json({k: info[k] for k in _CLIENT_INFO_ORDER if k in info})
    kept = [ln for ln in lines if ln.split(b":", 1)[0].strip() != REQUEST_INFO]
    status = hdr.split(b"\r\n", 1)[0] if hdr else b"NATS/1.0"
    return b"\r\n".join([status] + kept + [REQUEST_INFO + b": " + value]) + b"\r\n\r\n"


def _forward_request(server, importer, exporter, subject: str, reply: str, hdr, payload: bytes) -> None:
    """Send a request into the exporting account with a private reply subject that routes the first
    response back to the requester in the importing account."""
    private = f"_R_.{secrets.token_hex(6)}"
    state: dict = {}

    def respond(sub, client, subj, rep, rhdr, rpayload) -> None:
        done()
        server.send_internal(importer, reply, None, rhdr, rpayload)

    def done() -> None:
        server.unsubscribe_internal(state["sub"])
        timer = state.get("timer")
        if timer is not None:
            timer.cancel()

    state["sub"] = server.subscribe_internal(exporter, private, respond)
    loop = server.loop
    if loop is not None:
        state["timer"] = loop.call_later(RESPONSE_TTL, lambda: server.unsubscribe_internal(state["sub"]))
    server.send_internal(exporter, subject, private, hdr, payload)


def unwire(server, subs: list) -> None:
    for sub in subs:
        server.unsubscribe_internal(sub)


def wire_accounts(server) -> None:
    """(Re)create the import subscriptions of the configured accounts, or of the account JWTs in operator mode."""
    unwire(server, server.account_import_subs)
    operator = server.operator
    configs = operator.account_configs() if operator is not None else list(server.options.accounts or [])
    server.account_import_subs = wire(server, configs)
    from embedded_server import mappings

    mappings.install(server)
