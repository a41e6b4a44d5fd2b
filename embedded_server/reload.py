"""Applying a changed configuration file to a running server (SIGHUP, `--signal reload`), as nats-server's reload.go.

All or nothing: the file is parsed and compared with the running options first; a file that does not parse,
or changes an option that cannot change at run time, is refused with nats-server's message and the running
configuration stays. Otherwise the new options are swapped in at once and applied: logging, limits, and auth
(every connection is authenticated again with its CONNECT; removed users are closed, changed permissions
apply to live connections, subscriptions no longer allowed are removed).
"""
from __future__ import annotations

from embedded_server.config import ConfigError
from embedded_server.errors import ReloadError
from embedded_server.gotime import seconds_string

# Options that may change at run time (nats-server's reloadable options among those implemented here), with
# the name nats-server uses in its "Reloaded: ..." log line.
_RELOADABLE = {
    "trace": "trace", "debug": "debug", "logtime": "logtime", "logtime_utc": "logtime_utc",
    "log_file": "log_file", "pid_file": "pid_file", "max_connections": "max_connections",
    "max_control_line": "max_control_line", "max_payload": "max_payload", "ping_interval": "ping_interval",
    "max_pings_out": "ping_max", "write_deadline": "write_deadline",
}
_AUTH = {"username": "authorization username", "password": "authorization password",
         "authorization": "authorization token", "users": "authorization users",
         "nkeys": "authorization nkey users"}
# The Go field names nats-server prints in "config reload not supported for X".
_GO_NAMES = {
    "host": "Host", "port": "Port", "server_name": "ServerName", "http_host": "HTTPHost", "http_port": "HTTPPort",
    "max_pending": "MaxPending", "max_subscriptions": "MaxSubs", "no_auth_user": "NoAuthUser",
    "jetstream": "JetStream", "store_dir": "StoreDir", "max_memory_store": "JetStreamMaxMemory",
    "max_file_store": "JetStreamMaxStore", "sync_interval": "SyncInterval", "accounts": "Accounts",
    "feature_flags": "FeatureFlags",
}
# Bookkeeping fields that are not options of their own.
_IGNORED = {"config_file", "check_config", "accounts", "accounts_block", "jetstream_block", "jetstream_fixed",
            "store_dir_from_config",
            "system_account", "lame_duck_duration", "lame_duck_grace_period", "mappings", "users_block",
            "operator_keys", "operator_mode", "command_line", "config_digest", "config_warnings"}


# JetStream's server-wide limits: a reload may raise them while JetStream runs (nats-server 2.12.7+), with the
# name of its "Reloaded: JetStream ..." line.
_JS_LIMITS = {"max_memory_store": "max_mem_store", "max_file_store": "max_file_store"}


# The options of `jetstream { ... }` nats-server cannot reload, in the order of its Options, with their values
# when the file does not set them (configure.py keeps what the file sets in `jetstream_fixed`).
_JS_FIXED = (("NoJetStreamStrict", False), ("JetStreamExtHint", ""), ("JetStreamUniqueTag", ""),
             ("JetStreamMaxCatchup", 0), ("JetStreamRequestQueueLimit", 0), ("JetStreamInfoQueueLimit", 0),
             ("JetStreamConcurrentIOs", 0), ("StreamMaxBufferedMsgs", 0), ("StreamMaxBufferedSize", 0),
             ("SyncInterval", 120.0), ("SyncAlways", False))


class ReloadRefused(ValueError):
    """The new configuration is not applied; the message is nats-server's reason."""


def _go_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):  # Go prints a map with its keys sorted: map[a:1 b:2]
        return "map[" + " ".join(f"{k}:{_go_value(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def diff_options(old, new) -> list[str]:
    """The option names that changed. Raises ReloadRefused if one of them cannot change at run time."""
    changed = []
    for name, old_value in vars(old).items():
        if name in _IGNORED:
            continue
        new_value = getattr(new, name, old_value)
        if new_value == old_value:
            continue
        if name in _JS_LIMITS:
            if _js_limit_raised(old_value, new_value, old.jetstream):
                changed.append(name)
        elif name in ("jetstream_default_max_consumers", "jetstream_limits"):  # "JetStream limits"
            changed.append(name)
        elif name in _RELOADABLE or name in _AUTH or name == "auth_timeout":
            changed.append(name)
        elif name == "no_auth_user" and old_value and not new_value and not any(
                getattr(u, "username", None) == old_value for u in new.users):
            changed.append(name)
        else:
            go = _GO_NAMES.get(name, name)
            raise ReloadRefused(f"config reload not supported for {go}: old={_go_value(old_value)}, "
                                f"new={_go_value(new_value)}")
    if old.accounts_block != new.accounts_block:
        changed.append("accounts")
    _check_js_fixed(old, new)
    return changed


def _js_fixed(opts) -> dict:
    """The values nats-server runs with for the options of `_JS_FIXED` (its setBaselineOptions defaults)."""
    values = {name: opts.jetstream_fixed.get(name, default) for name, default in _JS_FIXED}
    if values["JetStreamRequestQueueLimit"] <= 0:
        values["JetStreamRequestQueueLimit"] = 10_000
    if values["JetStreamInfoQueueLimit"] <= 0:
        values["JetStreamInfoQueueLimit"] = values["JetStreamRequestQueueLimit"]
    if values["JetStreamConcurrentIOs"] <= 0:
        values["JetStreamConcurrentIOs"] = 4096
    return values


def _check_js_fixed(old, new) -> None:
    """Refuse, as nats-server, a reload that changes an option of `jetstream { ... }` it cannot change at run
    time (these do nothing on the embedded server, but a file that reloads here must reload there too)."""
    before, after = _js_fixed(old), _js_fixed(new)
    for name, _ in _JS_FIXED:
        if before[name] == after[name] or (name == "JetStreamConcurrentIOs" and not new.jetstream):
            continue
        show = seconds_string if name == "SyncInterval" else _go_value
        raise ReloadRefused(f"config reload not supported for {name}: old={show(before[name])}, "
                            f"new={show(after[name])}")


def _js_limit_raised(old_value: int, new_value: int, jetstream: bool) -> bool:
    """Whether a changed `max_memory_store` / `max_file_store` is applied (True), ignored (JetStream off) or
    refused with nats-server's reason: only a raise of a set limit, never to or from "dynamic" (-1)."""
    if not jetstream:
        return False
    if old_value != -1 and new_value != -1 and new_value > old_value:
        return True
    if new_value == -1:
        raise ReloadRefused("config reload not supported for jetstream max memory and max store")
    if old_value == -1:
        raise ReloadRefused("config reload not supported for jetstream dynamic max memory and store")
    raise ReloadRefused("config reload not supported for decreasing jetstream max memory and store")


def load_new_options(server):
    """Options from the server's config file with the command line applied again (flags win)."""
    from embedded_server.options import Options
    from embedded_server.configure import process_config_file

    old = server.options
    if not old.config_file:
        raise ReloadRefused("can only reload config when a file is provided using -c or --config")
    new = Options()
    try:
        warnings = process_config_file(new, old.config_file)
    except (ConfigError, OSError) as e:
        raise ReloadRefused(str(e)) from None
    flags = server.command_line or old.command_line
    if flags is not None:
        flags.apply(new)
        new.command_line = flags
    # A random port (-1) stays the port the server listens on.
    if new.port in (-1, 0):
        new.port = old.port
    if new.http_port == -1 and old.http_port == -1:
        new.http_port = old.http_port
    for w in warnings:
        server.warn(str(w))
    return new


def reload(server) -> None:
    """Reload `server`'s configuration file; raises ReloadRefused (keeping the running config) if it cannot."""
    try:
        new = load_new_options(server)
        changed = diff_options(server.options, new)
    except ReloadRefused as e:
        raise ReloadError(str(e)) from None
    old, server.options = server.options, new
    auth_changed = False
    logged: set[str] = set()
    for name in changed:
        value = getattr(new, name, None)
        if name in _AUTH:
            server.notice(f"Reloaded: {_AUTH[name]}")
            auth_changed = True
        elif name == "auth_timeout":
            server.notice(f"Reloaded: authorization timeout = {_go_float(value)}")
            auth_changed = True
        elif name in ("no_auth_user", "accounts"):
            auth_changed = True
            if name == "accounts":
                server.notice("Reloaded: accounts")
        elif name in _JS_LIMITS:
            _raise_js_limit(server, name, value)
        elif name in ("jetstream_default_max_consumers", "jetstream_limits"):
            js = server.jetstream
            if js is not None:
                from embedded_server.jetstream import DEFAULT_MAX_CONSUMERS, _batch_limits
                js.default_max_consumers = new.jetstream_default_max_consumers or DEFAULT_MAX_CONSUMERS
                js.batch_limits = _batch_limits(new)
            if "JetStream limits" not in logged:
                logged.add("JetStream limits")
                server.notice("Reloaded: JetStream limits")
        elif name in ("ping_interval", "write_deadline"):
            server.notice(f"Reloaded: {_RELOADABLE[name]} = {seconds_string(value)}")
        else:
            server.notice(f"Reloaded: {_RELOADABLE[name]} = {_go_value(value)}")
    _apply_limits(server, old, new)
    if {"debug", "trace", "logtime", "logtime_utc", "log_file"} & set(changed):
        server.logger.reconfigure(new)
    if auth_changed:
        from embedded_server.auth.hook import reauthorize_all

        reauthorize_all(server)


def _raise_js_limit(server, name: str, value: int) -> None:
    """A raised JetStream limit takes effect at once (nats-server's jetStreamLimitsOption)."""
    from embedded_server.jetstream import format_size

    js = server.jetstream
    if js is not None:
        storage = "memory" if name == "max_memory_store" else "file"
        if storage == "memory":
            js.max_memory = value
        else:
            js.max_store = value
        js.limit_for[storage] = value
    server.notice(f"Reloaded: JetStream {_JS_LIMITS[name]} = {format_size(value)}")


def _go_float(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _apply_limits(server, old, new) -> None:
    """Limits that live connections keep a copy of (nats-server updates each client)."""
    if old.max_payload == new.max_payload and old.max_control_line == new.max_control_line:
        return
    for client in list(server.clients.values()):
        client.parser.max_payload = new.max_payload
        client.parser.max_control_line = new.max_control_line
