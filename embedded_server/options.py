"""The options a server runs with, their nats-server defaults, and the command-line flags that set them.

Flags are parsed the way Go's `flag` package parses nats-server's: `-flag value`, `-flag=value`, one or two
dashes, booleans as `-flag` or `-flag=false`. A configuration file (`-c`) is applied by
`embedded_server.config`, then the flags are applied again so that they win, as in nats-server.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_HOST = "127.0.0.1"   # nats-server binds 0.0.0.0; see docs/differences.md
DEFAULT_PORT = 4222
RANDOM_PORT = -1
MAX_CONTROL_LINE_SIZE = 4096
MAX_PAYLOAD_SIZE = 1024 * 1024
MAX_PENDING_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64 * 1024
AUTH_TIMEOUT = 2.0
# nats-server 2.15.1's feature flags, with their defaults (`feature_flags { ... }` in a config), all listed in
# /varz. js_ack_fc_v2 changes consumers' ack and flow control subjects here as there; js_api_reply_v2 only names
# the `$JSC.R` reply of the consumer requests of a source or mirror, which this server does not send (its sources
# read the origin's store); js_raft_delete_range and js_snapshot_sources change raft, which a lone server has not.
FEATURE_FLAGS = {"js_ack_fc_v2": False, "js_api_reply_v2": False, "js_raft_delete_range": True,
                 "js_snapshot_sources": False}
DEFAULT_PING_INTERVAL = 120.0
DEFAULT_PING_MAX_OUT = 2
DEFAULT_WRITE_DEADLINE = 10.0
DEFAULT_SYNC_INTERVAL = 120.0
DEFAULT_LAME_DUCK_DURATION = 120.0
DEFAULT_LAME_DUCK_GRACE_PERIOD = 10.0


@dataclass
class Options:
    """Server options, with nats-server's names (snake_case) and defaults. Durations are seconds."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    server_name: str = ""
    http_host: str = ""              # defaults to `host`
    http_port: int = 0               # 0: no monitoring; -1: a random port
    config_file: str = ""
    check_config: bool = False
    pid_file: str = ""
    log_file: str = ""
    logtime: bool = True
    logtime_utc: bool = False
    debug: bool = False
    trace: bool = False
    # Authorization from flags or the config's `authorization` block (single user or token).
    username: str = ""
    password: str = ""
    authorization: str = ""          # token
    auth_timeout: float = AUTH_TIMEOUT
    no_auth_user: str = ""
    users: list = field(default_factory=list)      # filled by embedded_server.config / auth
    nkeys: list = field(default_factory=list)
    accounts: list = field(default_factory=list)
    # Limits.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_subscriptions: int = 0       # per connection; 0: unlimited
    max_payload: int = MAX_PAYLOAD_SIZE
    max_control_line: int = MAX_CONTROL_LINE_SIZE
    max_pending: int = MAX_PENDING_SIZE
    ping_interval: float = DEFAULT_PING_INTERVAL
    max_pings_out: int = DEFAULT_PING_MAX_OUT
    write_deadline: float = DEFAULT_WRITE_DEADLINE
    # JetStream.
    jetstream: bool = False
    store_dir: str = ""
    max_memory_store: int = -1       # -1: dynamic, as nats-server
    max_file_store: int = -1
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    block_cache: int = -1            # bytes of file store blocks kept in memory (-1: the default, 64 MB)
    jetstream_domain: str = ""       # `jetstream { domain }`: $JS.<domain>.API.> reaches the API too
    # `jetstream { limits { default_max_consumers } }` (nats-server 2.15): the consumers a stream may have when
    # neither the stream nor its account sets max_consumers; 0 is the default (1,000), below 0 unlimited
    jetstream_default_max_consumers: int = 0
    jetstream_block: Any = None      # the config's `jetstream { ... }` map, read by jetstream/
    # `jetstream { limits { max_ack_pending, max_ha_assets, max_request_batch, duplicate_window, batch {} } }`
    jetstream_limits: dict = field(default_factory=dict)
    # the block's options a reload may not change, by nats-server's Go names (reload.py)
    jetstream_fixed: dict = field(default_factory=dict)
    # `feature_flags { name: bool }` (nats-server 2.14+): only js_ack_fc_v2 changes anything here (the v2 form of
    # consumer ack and flow control subjects; see FEATURE_FLAGS); unknown names are kept and logged as
    # unsupported, as nats-server.
    feature_flags: dict = field(default_factory=dict)
    store_dir_from_config: bool = False
    # The system account, lame duck mode, subject mappings (mappings.py).
    system_account: str = ""         # `system_account` (or `system`) of the config; "" for the default
    lame_duck_duration: float = DEFAULT_LAME_DUCK_DURATION
    lame_duck_grace_period: float = DEFAULT_LAME_DUCK_GRACE_PERIOD
    mappings: list = field(default_factory=list)      # transform.Mapping of the top-level `mappings` block
    # Accounts and operator mode as written (auth/ reads them): the `accounts` block, and the operator/resolver
    # keys that auth/operator.py turns into `operator_mode`.
    accounts_block: Any = None
    users_block: bool = False        # an `authorization { users }` or account users exist
    operator_keys: dict[str, Any] = field(default_factory=dict)
    operator_mode: Any = None
    # Bookkeeping: the flags a reload applies again over the file, and what `-t` reports.
    command_line: Any = None
    config_digest: str = ""
    config_warnings: list = field(default_factory=list)

    @property
    def auth_required(self) -> bool:
        return bool(self.username or self.authorization or self.users or self.nkeys)

    @property
    def monitor_host(self) -> str:
        return self.http_host or self.host


class FlagError(Exception):
    """A command line nats-server would refuse (unknown flag, bad value)."""


@dataclass(frozen=True)
class _Flag:
    dest: str
    kind: type       # bool, int, str
    help: str = ""


# Every spelling nats-server accepts for the flags implemented here.
_FLAGS: dict[str, _Flag] = {}


def _define(names: tuple[str, ...], dest: str, kind: type) -> None:
    for name in names:
        _FLAGS[name] = _Flag(dest, kind)


_define(("h", "help"), "help", bool)
_define(("v", "version"), "version", bool)
_define(("p", "port"), "port", int)
_define(("a", "addr", "net"), "host", str)
_define(("n", "name", "server_name"), "server_name", str)
_define(("m", "http_port"), "http_port", int)
_define(("c", "config"), "config_file", str)
_define(("t",), "check_config", bool)
_define(("sl", "signal"), "signal", str)
_define(("P", "pid"), "pid_file", str)
_define(("l", "log"), "log_file", str)
_define(("T", "logtime"), "logtime", bool)
_define(("logtime_utc",), "logtime_utc", bool)
_define(("D", "debug"), "debug", bool)
_define(("V", "trace"), "trace", bool)
_define(("VV",), "trace", bool)
_define(("DV",), "debug_trace", bool)
_define(("DVV",), "debug_trace", bool)
_define(("user",), "username", str)
_define(("pass",), "password", str)
_define(("auth",), "authorization", str)
_define(("js", "jetstream"), "jetstream", bool)
_define(("sd", "store_dir"), "store_dir", str)
_define(("block_cache",), "block_cache", int)

USAGE = """\
Usage: pynats-server [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 127.0.0.1)
    -p, --port <port>                Use port for clients (default: 4222, -1 for a random port)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring (-1 for a random port)
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to pynats-server process (stop, quit, term, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
        --logtime_utc                Timestamps in UTC instead of local timezone (default: false)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory
        --block_cache <bytes>        Memory for file store blocks (default: 64 MB; embedded server only)

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
"""


@dataclass
class CommandLine:
    """What the command line asked for: the option values it set, and the one-shot actions."""

    values: dict[str, Any] = field(default_factory=dict)
    help: bool = False
    version: bool = False
    signal: str = ""

    def apply(self, opts: Options) -> Options:
        """Set the flag values on `opts` (after a config file, so the flags win)."""
        for dest, value in self.values.items():
            if dest == "debug_trace":
                opts.debug = opts.trace = bool(value)
            else:
                setattr(opts, dest, value)
        return opts


def _parse_bool(text: str, name: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise FlagError(f'invalid boolean value "{text}" for -{name}: parse error')


def parse_command_line(argv: list[str]) -> CommandLine:
    """Parse nats-server-style flags. Raises FlagError with Go's wording for what it refuses."""
    cl = CommandLine()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            # nats-server accepts the commands `version` and `help` without dashes.
            if arg == "version":
                cl.version = True
                continue
            if arg == "help":
                cl.help = True
                continue
            raise FlagError(f'unrecognized command: "{arg}"')
        name = arg[2:] if arg.startswith("--") else arg[1:]
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        flag = _FLAGS.get(name)
        if flag is None:
            raise FlagError(f"flag provided but not defined: -{name}")
        if flag.kind is bool:
            parsed: Any = True if value is None else _parse_bool(value, name)
        else:
            if value is None:
                if i >= len(argv):
                    raise FlagError(f"flag needs an argument: -{name}")
                value = argv[i]
                i += 1
            if flag.kind is int:
                try:
                    parsed = int(value, 0)
                except ValueError:
                    raise FlagError(f'invalid value "{value}" for flag -{name}: parse error') from None
            else:
                parsed = value
        if flag.dest == "help":
            cl.help = bool(parsed)
        elif flag.dest == "version":
            cl.version = bool(parsed)
        elif flag.dest == "signal":
            cl.signal = parsed
        else:
            cl.values[flag.dest] = parsed
    return cl



class ConfigFileError(Exception):
    """The configuration file cannot be used; the message says why (and where, when the parser knows)."""


def apply_config_file(opts: Options, path: str) -> None:
    """Apply a nats-server configuration file to `opts` (embedded_server.configure)."""
    from embedded_server.configure import process_config_file  # (configure imports this module)

    try:
        process_config_file(opts, path)
    except (ValueError, OSError) as e:
        raise ConfigFileError(str(e)) from None
    opts.config_file = path


def start_error(opts: Options) -> str | None:
    """What nats-server's validateOptions refuses when a server starts, though `-t` (which only reads the
    file) passed it: a JetStream domain that cannot be one token of `$JS.<domain>.API.>`."""
    domain = opts.jetstream_domain
    if domain:
        from embedded_server.subjects import is_valid_subject

        subject = f"$JS.{domain}.API.>"
        if not is_valid_subject(subject):
            return f'invalid domain name: derived "{subject}" is not a valid subject'
        if any(c in domain for c in " \t\r\n\f.*>"):
            return "invalid domain name: may not contain ., * or >"
    return None


def load_options(argv: list[str]) -> tuple[Options, CommandLine]:
    """Flags, then the config file they name, then the flags again (they win), as nats-server does."""
    cl = parse_command_line(argv)
    opts = Options()
    path = cl.values.get("config_file")
    if path:
        apply_config_file(opts, path)
    cl.apply(opts)
    opts.command_line = cl   # a reload applies the flags again over the new config file
    return opts, cl


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
