"""Applying a configuration file to Options: nats-server's top-level keys, their aliases and checks.

`process_config_file(opts, path)` parses the file (embedded_server.config), sets what it names on `opts`
and raises ConfigErrors listing every problem at once (as nats-server prints them). Keys nats-server knows
for features the embedded server does not have (cluster, tls, ...) are refused rather than ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
import datetime as _dt
from typing import Any

from embedded_server.auth.conf import AuthConfig, parse_authorization, validate_no_auth_user
from embedded_server.config import ConfigError, ConfList, ConfMap, Pos, parse_duration, parse_file

# nats-server configuration keys for features the embedded server does not implement.
UNSUPPORTED = ("cluster", "gateway", "leaf", "leafnodes", "tls", "websocket", "ws", "mqtt", "https",
               "https_port", "ocsp", "ocsp_cache", "remote_syslog", "syslog", "prof_port", "proxies",
               "default_sentinel", "ports_file_dir")
# Keys of `jetstream { ... }` that turn on store encryption. The embedded server has none, so it refuses them
# rather than storing in plaintext what the file asks to keep encrypted.
ENCRYPTION_KEYS = ("key", "ek", "encryption_key", "prev_key", "prev_ek", "prev_encryption_key", "cipher", "tpm")
# Cluster and internals keys of `jetstream { ... }` read as sizes or counts, with the Go names of the options
# they set (nats-server refuses a reload that changes them).
_FIXED_SIZES = {"max_outstanding_catchup": "JetStreamMaxCatchup", "max_buffered_size": "StreamMaxBufferedSize"}
_FIXED_COUNTS = {"max_buffered_msgs": "StreamMaxBufferedMsgs", "request_queue_limit": "JetStreamRequestQueueLimit",
                 "info_queue_limit": "JetStreamInfoQueueLimit"}


class ConfigErrors(ConfigError):
    """Every error found in one configuration file; str() lists them one per line."""

    def __init__(self, errors: list[ConfigError], warnings: list[ConfigError] | None = None):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
        self.warnings = warnings or []

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def config_digest(conf: ConfMap) -> str:
    """nats-server's config digest ("sha256:..."), the hash it prints with "Using configuration file"."""
    def go_json(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: go_json(x) for k, x in v.items()}
        if isinstance(v, list):
            return [go_json(x) for x in v]
        if isinstance(v, _dt.datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%SZ")
        return v
    text = json.dumps(go_json(conf), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "sha256:" + hashlib.sha256((text + "\n").encode()).hexdigest()


def process_config_file(opts, path: str) -> list[ConfigError]:
    """Set on `opts` what the file at `path` configures. Returns warnings; raises ConfigError(s)."""
    conf = parse_file(path)
    opts.config_file = path
    opts.config_digest = config_digest(conf)
    warnings = apply_config(opts, conf, path)
    opts.config_warnings = warnings
    return warnings


def apply_config(opts, conf: ConfMap, path: str = "") -> list[ConfigError]:
    errors: list[ConfigError] = []
    warnings: list[ConfigError] = []
    if not conf:
        warnings.append(ConfigError(f"{path}: config has no values or is empty"))
    auth: AuthConfig | None = None
    no_auth_pos: Pos | None = None
    accounts_value = None
    for key, value in conf.items():
        pos = conf.pos(key)
        lk = key.lower()
        try:
            if lk == "authorization":
                auth = parse_authorization(value, pos, errors, warnings)
            elif lk == "accounts":
                accounts_value = (value, pos)
            elif lk == "no_auth_user":
                opts.no_auth_user = _typed(value, str, pos)
                no_auth_pos = pos
            else:
                _apply_one(opts, key, lk, value, pos, conf, errors, warnings)
        except ConfigError as e:
            errors.append(e)
    if auth is not None:
        opts.username, opts.password, opts.authorization = auth.username, auth.password, auth.token
        if auth.timeout is not None:
            opts.auth_timeout = auth.timeout
        opts.users = auth.users if auth.users is not None else []
        opts.nkeys = auth.nkeys if auth.nkeys is not None else []
        opts.users_block = auth.users is not None or auth.nkeys is not None
    if accounts_value is not None:
        _apply_accounts(opts, *accounts_value, errors)
    err = validate_no_auth_user(auth_config(opts), no_auth_pos)
    if err:
        errors.append(err)
    from embedded_server.auth.operator import parse_operator_options

    operator = parse_operator_options(opts.operator_keys, os.path.dirname(path) or ".", errors)
    if operator is not None:
        opts.operator_mode = operator
        if opts.no_auth_user:
            errors.append(ConfigError("no_auth_user not compatible with Trusted Operator", no_auth_pos))
    if errors:
        raise ConfigErrors(errors, warnings)
    return warnings


def _apply_accounts(opts, value, pos, errors: list[ConfigError]) -> None:
    from embedded_server.auth.accounts import parse_accounts

    accounts, users, nkeys = parse_accounts(value, pos, errors)
    opts.accounts = accounts
    opts.accounts_block = value
    if not users and not nkeys:
        return
    if opts.username:
        errors.append(ConfigError("Can not have a single user/pass and accounts", pos))
        return
    if opts.authorization:
        errors.append(ConfigError("Can not have a token and accounts", pos))
        return
    seen = {u.username for u in opts.users} | {n.nkey for n in opts.nkeys}
    for u in users:
        if u.username in seen:
            errors.append(ConfigError(f'Duplicate user "{u.username}" detected', pos))
        seen.add(u.username)
    for n in nkeys:
        if n.nkey in seen:
            errors.append(ConfigError(f'Duplicate nkey "{n.nkey}" detected', pos))
        seen.add(n.nkey)
    opts.users = list(opts.users) + users
    opts.nkeys = list(opts.nkeys) + nkeys
    opts.users_block = True


def auth_config(opts) -> AuthConfig:
    """The auth settings an Options carries (flags and config alike), for the Authenticator."""
    has_users = bool(opts.users or opts.nkeys or opts.users_block)
    return AuthConfig(username=opts.username, password=opts.password, token=opts.authorization,
                      timeout=opts.auth_timeout, users=list(opts.users) if has_users else None,
                      nkeys=list(opts.nkeys) if has_users else None, no_auth_user=opts.no_auth_user)


def _typed(value: Any, want: type, pos: Pos | None) -> Any:
    if (want is int and isinstance(value, bool)) or not isinstance(value, want):
        got = {bool: "bool", int: "int64", float: "float64", str: "string", ConfMap: "map[string]interface {}",
               ConfList: "[]interface {}"}.get(type(value), type(value).__name__)
        wanted = {str: "string", bool: "bool", int: "int64"}[want]
        raise ConfigError(f"interface conversion: interface {{}} is {got}, not {wanted}", pos)
    return value


def _duration(field: str, value: Any, pos: Pos | None, warnings: list[ConfigError]) -> float:
    """nats-server's parseDuration: a Go duration string, or (with a warning) a number of seconds."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as e:
            raise ConfigError(f"error parsing {field}: {e}", pos) from None
    seconds = _typed(value, int, pos)
    warnings.append(ConfigError(f"invalid use of field \"{field}\": {field} should be converted to a duration", pos))
    return float(seconds)


def _go_duration_string(field: str, value: Any, pos: Pos | None) -> float:
    """A duration nats-server reads with time.ParseDuration only (a string)."""
    text = _typed(value, str, pos)
    try:
        return parse_duration(text)
    except ValueError as e:
        raise ConfigError(f"error parsing {field}: {e}", pos) from None


def _listen(value: Any, pos: Pos | None) -> tuple[str | None, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return None, value
    if not isinstance(value, str):
        raise ConfigError(f"expected port or host:port, got {type(value).__name__}", pos)
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ConfigError(f'could not parse address string "{value}"', pos)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host, int(port)
    except ValueError:
        raise ConfigError(f'could not parse port "{port}"', pos) from None


def _size32(key: str, value: Any, pos: Pos | None) -> int:
    n = _typed(value, int, pos)
    if n > (1 << 31) - 1:
        raise ConfigError(f"{key} value is too big", pos)
    return n


def _apply_one(opts, key: str, lk: str, v: Any, pos: Pos | None, conf: ConfMap,
               errors: list[ConfigError], warnings: list[ConfigError]) -> None:
    if lk == "listen":
        host, port = _listen(v, pos)
        if host is not None:
            opts.host = host
        opts.port = port
    elif lk == "port":
        opts.port = _typed(v, int, pos)
    elif lk in ("host", "net"):
        opts.host = _typed(v, str, pos)
    elif lk == "server_name":
        name = _typed(v, str, pos)
        if " " in name:
            raise ConfigError("server name cannot contain spaces", pos)
        opts.server_name = name
    elif lk == "http":
        host, port = _listen(v, pos)
        if host is not None:
            opts.http_host = host
        opts.http_port = port
    elif lk in ("http_port", "monitor_port"):
        opts.http_port = _typed(v, int, pos)
    elif lk in ("debug", "trace", "logtime", "logtime_utc"):
        setattr(opts, lk, _typed(v, bool, pos))
    elif lk in ("trace_verbose", "trace_headers"):
        opts.trace = _typed(v, bool, pos)
    elif lk in ("logfile", "log_file"):
        opts.log_file = _typed(v, str, pos)
    elif lk in ("pidfile", "pid_file"):
        opts.pid_file = _typed(v, str, pos)
    elif lk == "max_control_line":
        opts.max_control_line = _size32(key, v, pos)
    elif lk == "max_payload":
        opts.max_payload = _size32(key, v, pos)
    elif lk == "max_pending":
        opts.max_pending = _typed(v, int, pos)
    elif lk in ("max_connections", "max_conn"):
        opts.max_connections = _typed(v, int, pos) or -1
    elif lk in ("max_subscriptions", "max_subs"):
        opts.max_subscriptions = _typed(v, int, pos)
    elif lk == "ping_interval":
        opts.ping_interval = _duration("ping_interval", v, pos, warnings)
    elif lk == "ping_max":
        opts.max_pings_out = _typed(v, int, pos)
    elif lk == "write_deadline":
        opts.write_deadline = _duration("write_deadline", v, pos, warnings)
    elif lk == "lame_duck_duration":
        seconds = _go_duration_string(lk, v, pos)
        if seconds < 30:
            from embedded_server.gotime import seconds_string
            raise ConfigError(f"invalid lame_duck_duration of {seconds_string(seconds)}, minimum is 30 seconds", pos)
        opts.lame_duck_duration = seconds
    elif lk == "lame_duck_grace_period":
        seconds = _go_duration_string(lk, v, pos)
        if seconds < 0:
            raise ConfigError("invalid lame_duck_grace_period, needs to be positive", pos)
        opts.lame_duck_grace_period = seconds
    elif lk in ("store_dir", "storedir"):
        if opts.store_dir and opts.store_dir_from_config:
            raise ConfigError("Duplicate 'store_dir' configuration", pos)
        opts.store_dir = _typed(v, str, pos)
        opts.store_dir_from_config = True
    elif lk == "jetstream":
        _jetstream(opts, v, pos, errors, warnings)
    elif lk == "feature_flags":
        _feature_flags(opts, v, pos)
    elif lk in UNSUPPORTED:
        raise ConfigError(f'"{key}" is not supported by the embedded server (see docs/differences.md)', pos)
    else:
        # Accounts, operators and anything another module owns are kept for it; truly unknown keys are
        # errors unless they were only there to be used as $VARIABLES.
        if lk in ("mappings", "maps"):
            from embedded_server.mappings import parse_mappings
            opts.mappings = parse_mappings(v, pos, errors)
            return
        if lk in ("operator", "operators", "resolver", "resolver_preload", "system_account",
                  "system", "trusted", "trusted_keys"):
            opts.operator_keys[lk] = v
            keys = opts.operator_keys
            system = keys.get("system_account", keys.get("system"))
            opts.system_account = system if isinstance(system, str) else ""
            return
        if key not in conf.used:
            raise ConfigError(f'unknown field "{key}"', pos)


def _go_type(v: Any) -> str:
    """The name Go's %T gives a value of the config."""
    return {bool: "bool", int: "int64", float: "float64", str: "string", ConfMap: "map[string]interface {}",
            ConfList: "[]interface {}"}.get(type(v), type(v).__name__)


def _go_v(v: Any) -> str:
    """A value of the config as Go's %v prints it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, ConfMap):
        return "map[" + " ".join(f"{k}:{_go_v(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, ConfList):
        return "[" + " ".join(_go_v(x) for x in v) + "]"
    return str(v)


def _int64(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _jetstream(opts, v: Any, pos: Pos | None, errors: list[ConfigError], warnings: list[ConfigError]) -> None:
    """nats-server's parseJetStream. As there, unknown keys and unreadable durations are collected and the
    parse goes on; any other error ends the block (raised). A value of the wrong type is reported where the
    `jetstream` key is (nats-server's recovered panic), the other errors where their key is."""
    if isinstance(v, bool):
        opts.jetstream = v
        return
    if isinstance(v, str):
        if v.lower() in ("enabled", "enable"):
            opts.jetstream = True
        elif v.lower() in ("disabled", "disable"):
            opts.jetstream = False
        else:
            raise ConfigError(f"Expected 'enabled' or 'disabled' for string value, got '{v}'", pos)
        return
    if not isinstance(v, ConfMap):
        raise ConfigError(f"Expected map, bool or string to define JetStream, got {_go_type(v)}", pos)
    opts.jetstream_block = v
    # nats-server's options of this block that a reload may not change, by their Go names (reload.py)
    fixed = opts.jetstream_fixed = {}
    enable = True
    for key, value in v.items():
        lk, kpos = key.lower(), v.pos(key) or pos
        if lk == "strict":
            if not isinstance(value, bool):
                shown = value if isinstance(value, str) else f"%!s({_go_type(value)}={_go_v(value)})"
                raise ConfigError(f"Expected 'true' or 'false' for bool value, got '{shown}'", kpos)
            fixed["NoJetStreamStrict"] = not value
        elif lk in ("store", "store_dir", "storedir"):
            if opts.store_dir and opts.store_dir_from_config:
                raise ConfigError("Duplicate 'store_dir' configuration", kpos)
            opts.store_dir = _typed(value, str, pos)
        elif lk in ("sync", "sync_interval"):
            if isinstance(value, str) and value.lower() == "always":
                fixed["SyncAlways"] = True
            else:
                try:
                    fixed["SyncInterval"] = _duration(key, value, kpos, warnings)
                except ConfigError as e:
                    errors.append(e)
        elif lk in ("max_memory_store", "max_mem_store", "max_mem"):
            opts.max_memory_store = _storage_size(value, kpos, "max_mem_store ")
        elif lk in ("max_file_store", "max_file"):
            opts.max_file_store = _storage_size(value, kpos, "max_file_store ")
        elif lk == "block_cache":   # the embedded server's own (docs/configuration.md)
            opts.block_cache = _storage_size(value, kpos)
        elif lk in ("enable", "enabled"):
            enable = _typed(value, bool, pos)
        elif lk == "domain":
            opts.jetstream_domain = _typed(value, str, pos)   # checked when the server starts (start_error)
        elif lk == "limits":
            _jetstream_limits(opts, value, pos, kpos, errors)
        elif lk in ENCRYPTION_KEYS:
            errors.append(ConfigError(
                f'"{key}" is not supported by the embedded server: it has no store encryption and would keep '
                f"the messages in plaintext (see docs/differences.md)", kpos))
        # Keys for clusters and nats-server's internals, which do nothing on one embedded server: read with
        # nats-server's checks (docs/differences.md).
        elif lk == "extension_hint":
            fixed["JetStreamExtHint"] = _typed(value, str, pos)
        elif lk == "unique_tag":
            fixed["JetStreamUniqueTag"] = _typed(value, str, pos).strip().lower()
        elif lk == "meta_compact_sync":
            _typed(value, bool, pos)
        elif lk in _FIXED_SIZES:
            fixed[_FIXED_SIZES[lk]] = _storage_size(value, kpos, lk + " ")
        elif lk in _FIXED_COUNTS:
            if _int64(value) is None:
                raise ConfigError(f'Expected a parseable size for "{key}", got {_go_v(value)}', kpos)
            fixed[_FIXED_COUNTS[lk]] = value
        elif lk == "meta_compact":
            if _int64(value) is None or value < 0:
                raise ConfigError(f'Expected an absolute size for "{key}", got {_go_v(value)}', kpos)
        elif lk == "meta_compact_size":
            if _storage_size(value, kpos, lk + " ") < 0:
                raise ConfigError(f'Expected an absolute size for "{key}", got {_go_v(value)}', kpos)
        elif lk == "max_concurrent_io":
            if _int64(value) is None or not 4 <= value <= 8192:
                raise ConfigError(f'Expected an absolute size for "{key}" between 4 and 8192, got {_go_v(value)}',
                                  kpos)
            fixed["JetStreamConcurrentIOs"] = value
        elif key not in v.used:
            errors.append(ConfigError(f'unknown field "{key}"', kpos))
    opts.jetstream = enable


def _jetstream_limits(opts, v: Any, js_pos: Pos | None, pos: Pos | None, errors: list[ConfigError]) -> None:
    """nats-server's parseJetStreamLimits (`jetstream { limits { ... } }`): `opts.jetstream_limits` holds what
    it sets (durations in nanoseconds, `batch` a dict of its own), a reload compares it as a whole."""
    if not isinstance(v, ConfMap):
        raise ConfigError(f"Expected a map to define JetStreamLimits, got {_go_type(v)}", pos)
    limits = opts.jetstream_limits = {}
    for key, value in v.items():
        lk, kpos = key.lower(), v.pos(key) or pos
        if lk == "default_max_consumers":   # nats-server 2.15
            opts.jetstream_default_max_consumers = _typed(value, int, js_pos)
        elif lk in ("max_ack_pending", "max_ha_assets", "max_request_batch"):
            limits[lk] = _typed(value, int, js_pos)
        elif lk == "duplicate_window":
            limits[lk] = _go_duration_error(_typed(value, str, js_pos), errors)
        elif lk == "batch":
            limits[lk] = _jetstream_limits_batch(value, js_pos, kpos, errors)
        elif key not in v.used:
            errors.append(ConfigError(f'unknown field "{key}"', kpos))


def _jetstream_limits_batch(v: Any, js_pos: Pos | None, pos: Pos | None, errors: list[ConfigError]) -> dict:
    """nats-server's parseJetStreamLimitsBatch (`limits { batch { ... } }`, read again by jetstream/)."""
    if not isinstance(v, ConfMap):
        raise ConfigError(f"Expected a map to define batch limits, got {_go_type(v)}", pos)
    batch = {}
    for key, value in v.items():
        lk, kpos = key.lower(), v.pos(key) or pos
        if lk in ("max_inflight_per_stream", "max_inflight_total", "max_msgs"):
            batch[lk] = _typed(value, int, js_pos)
        elif lk == "timeout":
            batch[lk] = _go_duration_error(_typed(value, str, js_pos), errors)
        elif key not in v.used:
            errors.append(ConfigError(f'unknown field "{key}"', kpos))
    return batch


def _go_duration_error(text: str, errors: list[ConfigError]) -> int:
    """Nanoseconds of a Go duration; time.ParseDuration's error is listed without a position, as nats-server."""
    from embedded_server import gotime

    try:
        return gotime.parse_duration(text)
    except ValueError as e:
        errors.append(ConfigError(str(e)))
        return 0


def _feature_flags(opts, v: Any, pos: Pos | None) -> None:
    """nats-server 2.14's `feature_flags { name: bool }`: every value must be a bool; any name is kept."""
    if not isinstance(v, ConfMap):
        got = {bool: "bool", int: "int64", float: "float64", str: "string", ConfList: "[]interface {}"}.get(
            type(v), type(v).__name__)
        raise ConfigError(f"error parsing feature flags: unsupported type {got}", pos)
    for key, value in v.items():
        if not isinstance(value, bool):
            got = {int: "int64", float: "float64", str: "string", ConfMap: "map[string]interface {}",
                   ConfList: "[]interface {}"}.get(type(value), type(value).__name__)
            raise ConfigError(f'error parsing feature flag "{key}": expected bool, got {got}',
                              v.pos(key) or pos)
        opts.feature_flags[key] = value


def _storage_size(v: Any, pos: Pos | None, prefix: str = "") -> int:
    """nats-server's getStorageSize: an integer, or a string like "1G" (K, M, G, T powers of 1024). `prefix`
    starts the error's text, as nats-server names some keys there."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if not isinstance(v, str):
        raise ConfigError(prefix + "must be int64 or string", pos)
    if not v:
        return 0
    mult = {"K": 10, "M": 20, "G": 30, "T": 40}.get(v[-1])
    try:
        num = int(v[:-1])
    except ValueError:
        raise ConfigError(f'{prefix}strconv.ParseInt: parsing "{v[:-1]}": invalid syntax', pos) from None
    if mult is None:
        raise ConfigError(prefix + "sizes defined as strings must end in K, M, G, T", pos)
    return num << mult
