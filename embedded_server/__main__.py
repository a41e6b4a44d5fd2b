"""The command line, flag-compatible with nats-server: `python -m embedded_server` and `pynats-server`.

Runs the server on the current thread (uvloop when importable), handles SIGTERM/SIGINT (clean shutdown) and
SIGHUP (reload), and implements `--signal` to send those signals to a running server.
"""
from __future__ import annotations

import os
import signal
import sys

from embedded_server.options import USAGE, ConfigFileError, FlagError, load_options, start_error
from embedded_server.running import run
from embedded_server.version import PROTOCOL_VERSION, VERSION

PROG = "pynats-server"

_SIGNALS = {
    "stop": signal.SIGKILL, "quit": signal.SIGINT, "term": signal.SIGTERM, "reload": signal.SIGHUP,
    "reopen": signal.SIGUSR1, "ldm": signal.SIGUSR2,
}


def _our_pids() -> list[int]:
    """Running pynats-server processes (what `pgrep nats-server` is to nats-server's --signal)."""
    pids = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"embedded_server" in argv[:4] or any(a.endswith(b"pynats-server") for a in argv[:2]):
            if b"--signal" not in argv and b"-sl" not in argv and not any(a.startswith(b"--signal=") for a in argv):
                pids.append(int(entry))
    return sorted(pids)


def process_signal(spec: str) -> None:
    """`--signal CMD[=PID|PIDFILE]`: send CMD's signal to a running server. Raises ValueError."""
    parts = spec.split("=")
    if len(parts) > 2:
        raise ValueError(f"invalid signal parameters: {parts[2:]}")
    command = parts[0]
    pid_text = ""
    if len(parts) == 2:
        pid_text = parts[1]
        try:
            with open(pid_text) as f:
                pid_text = f.read()
        except OSError:
            pass
        pid_text = pid_text.strip()
    if command not in _SIGNALS:
        raise ValueError(f'unknown signal "{command}"')
    if pid_text:
        try:
            pids = [int(pid_text)]
        except ValueError:
            raise ValueError(f"invalid pid: {pid_text}") from None
    else:
        pids = _our_pids()
        if not pids:
            raise ValueError(f"no {PROG} processes running")
        if len(pids) > 1:
            raise ValueError(f"multiple {PROG} processes running:\n" + "\n".join(map(str, pids)))
    for pid in pids:
        try:
            os.kill(pid, _SIGNALS[command])
        except OSError as e:
            reason = (e.strerror or str(e))
            raise ValueError(f'\nsignal "{command}" {pid}: {reason[:1].lower()}{reason[1:]}') from None


def _set_parent_death_signal() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of `pynats-server`; `argv` excludes the program name."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("PYNATS_SERVER_PDEATHSIG") == "1":
        _set_parent_death_signal()
    try:
        opts, cl = load_options(argv)
    except FlagError as e:
        # nats-server prints the complaint, then its usage, and exits 0 (its usage() always does).
        print(e, file=sys.stderr)
        print("\n" + USAGE)
        return 0
    except ConfigFileError as e:
        # nats-server's PrintAndDie: the program's name and the error (which ends in a newline), no log line.
        print(f"{PROG}: {e}\n", file=sys.stderr)
        return 1
    if cl.help:
        print(USAGE)
        return 0
    if cl.version:
        print(f"{PROG}: v{PROTOCOL_VERSION} (embedded_server {VERSION})")
        return 0
    if cl.signal:
        try:
            process_signal(cl.signal)
        except ValueError as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
        return 0
    if opts.check_config:
        if not opts.config_file:
            print(f"{PROG}: must specify [-c, --config] option to check configuration file syntax", file=sys.stderr)
            return 1
        warnings = opts.config_warnings
        if warnings:
            # nats-server's -t treats warnings (e.g. a duration given as a bare number) as failures.
            print(f"{PROG}: " + "\n".join(str(w) for w in warnings) + "\n", file=sys.stderr)
            return 1
        digest = opts.config_digest
        print(f"{PROG}: configuration file {opts.config_file} is valid" + (f" ({digest})" if digest else ""),
              file=sys.stderr)
        return 0
    refused = start_error(opts)
    if refused:
        print(f"{PROG}: {refused}", file=sys.stderr)
        return 1
    try:
        return run(opts, command_line=cl)
    except KeyboardInterrupt:
        return 0


def _cli_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _cli_main()
