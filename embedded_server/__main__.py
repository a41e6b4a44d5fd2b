"""The command line, flag-compatible with nats-server: `python -m embedded_server` and `pynats-server`.

Runs the server on the current thread (uvloop when importable), handles SIGTERM/SIGINT (clean shutdown) and
SIGHUP (reload), and implements `--signal` to send those signals to a running server.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

from embedded_server import PROTOCOL_VERSION, VERSION
from embedded_server.logger import Logger
from embedded_server.options import (USAGE, CommandLine, ConfigFileError, FlagError, Options, load_options)
from embedded_server.server import ReloadError, Server, StartError

PROG = "pynats-server"

_SIGNALS = {
    "stop": signal.SIGKILL, "quit": signal.SIGINT, "term": signal.SIGTERM, "reload": signal.SIGHUP,
    "reopen": signal.SIGUSR1, "ldm": signal.SIGUSR2,
}
# Go's names for signals, as nats-server logs them ('Trapped "terminated" signal').
_SIGNAL_NAMES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt", signal.SIGHUP: "hangup",
                 signal.SIGUSR2: "user defined signal 2"}


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (much faster), else the standard loop; PYNATS_SERVER_LOOP=asyncio forces the
    standard one (what a plain `pip install` runs)."""
    if os.environ.get("PYNATS_SERVER_LOOP") == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def make_logger(opts: Options) -> Logger:
    kw = dict(debug=opts.debug, trace=opts.trace, logtime=opts.logtime, utc=opts.logtime_utc)
    if opts.log_file:
        return Logger.to_file(opts.log_file, **kw)
    return Logger(sys.stderr, **kw)


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


def _watch_parent(parent: int, loop: asyncio.AbstractEventLoop, stop) -> None:
    """Shut down when the process that started us is gone (the fallback to PR_SET_PDEATHSIG)."""
    def check() -> None:
        if os.getppid() != parent:
            stop(signal.SIGTERM)
            return
        loop.call_later(1.0, check)
    loop.call_later(1.0, check)


def _set_parent_death_signal() -> None:
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def serve(server: Server, handle_signals: bool = True) -> int:
    """Start `server` and run until it is shut down. Returns the exit code."""
    loop = asyncio.get_running_loop()
    logger = server.logger

    def on_signal(signum: int) -> None:
        logger.notice(f'Trapped "{_SIGNAL_NAMES.get(signum, str(signum))}" signal')
        if signum == signal.SIGHUP:
            try:
                server.reload()
                logger.notice("Reloaded server configuration")
            except ReloadError as e:
                logger.error(f"Failed to reload server configuration: {e}")
            except Exception as e:  # a reload must never take the server down
                logger.error(f"Failed to reload server configuration: {e}")
            return
        if signum == signal.SIGUSR2:
            from embedded_server import lameduck
            loop.create_task(lameduck.enter(server))
            return
        loop.create_task(server.shutdown())

    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
            loop.add_signal_handler(signum, on_signal, signum)
        parent = os.environ.get("PYNATS_SERVER_PARENT")
        if parent and parent.isdigit():
            _watch_parent(int(parent), loop, on_signal)
    try:
        await server.start()
    except StartError as e:
        logger.fatal(str(e))
        return 1
    await server.wait_stopped()
    return 0


def raise_open_files_limit() -> None:
    """Allow as many connections as the hard limit permits (Go raises the soft limit the same way for
    nats-server); a default soft limit of 1024 would cap the server at about a thousand clients."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass


def run(opts: Options, logger: Logger | None = None, command_line: CommandLine | None = None) -> int:
    """Run a server with `opts` on this thread until SIGTERM/SIGINT. Returns the exit code."""
    raise_open_files_limit()
    logger = logger or make_logger(opts)
    server = Server(opts, logger, command_line)
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(serve(server, threading.current_thread() is threading.main_thread()))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            logger.close()


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
        Logger(sys.stderr).fatal(str(e))
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
        warnings = opts.extra.get("config_warnings")
        if warnings:
            # nats-server's -t treats warnings (e.g. a duration given as a bare number) as failures.
            print(f"{PROG}: " + "\n".join(str(w) for w in warnings) + "\n", file=sys.stderr)
            return 1
        digest = opts.extra.get("config_digest")
        print(f"{PROG}: configuration file {opts.config_file} is valid" + (f" ({digest})" if digest else ""),
              file=sys.stderr)
        return 0
    try:
        return run(opts, command_line=cl)
    except KeyboardInterrupt:
        return 0


def _cli_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _cli_main()
