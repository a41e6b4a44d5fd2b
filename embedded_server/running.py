"""Running a server on an event loop: the loop (uvloop when importable), signals (SIGTERM/SIGINT shut down,
SIGHUP reloads, SIGUSR2 enters lame duck mode), and `run`/`serve`, shared by the command line (__main__.py)
and EmbeddedServer's thread mode (embedded.py).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

from embedded_server import collector, lameduck
from embedded_server.errors import ReloadError, StartError
from embedded_server.logger import Logger
from embedded_server.options import CommandLine, Options
from embedded_server.server import Server
from embedded_server.spin import DEFAULT_WINDOW, SpinSelector

# Go's names for signals, as nats-server logs them ('Trapped "terminated" signal').
_SIGNAL_NAMES = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt", signal.SIGHUP: "hangup",
                 signal.SIGUSR2: "user defined signal 2"}


def new_event_loop(spin: bool = False) -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (much faster), else the standard loop; PYNATS_SERVER_LOOP=asyncio forces the
    standard one (what a plain `pip install` runs). With `spin` the standard loop polls briefly after I/O
    before it sleeps (spin.py; `PYNATS_SERVER_SPIN_US`, microseconds up to 10,000, sets the window, 0 turns
    it off): for a server in its own process, not for one on a thread of a process whose other threads need
    the GIL."""
    if os.environ.get("PYNATS_SERVER_LOOP") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    window = _spin_window() if spin else 0.0
    if window > 0:
        return asyncio.SelectorEventLoop(SpinSelector(window))
    return asyncio.new_event_loop()


def _spin_window() -> float:
    """The spin window in seconds: `PYNATS_SERVER_SPIN_US` when it is a number of microseconds, else the default."""
    value = os.environ.get("PYNATS_SERVER_SPIN_US", "").strip()
    try:
        return min(max(0.0, float(value)), 10_000.0) * 1e-6 if value else DEFAULT_WINDOW
    except ValueError:
        return DEFAULT_WINDOW


def make_logger(opts: Options) -> Logger:
    kw = dict(debug=opts.debug, trace=opts.trace, logtime=opts.logtime, utc=opts.logtime_utc)
    if opts.log_file:
        return Logger.to_file(opts.log_file, **kw)
    return Logger(sys.stderr, **kw)


def _watch_parent(parent: int, loop: asyncio.AbstractEventLoop, stop) -> None:
    """Shut down when the process that started us is gone (the fallback to PR_SET_PDEATHSIG)."""
    def check() -> None:
        if os.getppid() != parent:
            stop(signal.SIGTERM)
            return
        loop.call_later(1.0, check)
    loop.call_later(1.0, check)


async def serve(server: Server, handle_signals: bool = True, on_ready=None) -> int:
    """Start `server` and run until it is shut down (`on_ready()` once it has started). Returns the exit code."""
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
    if on_ready is not None:
        on_ready()
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
    keep_freed_memory()
    logger = logger or make_logger(opts)
    server = Server(opts, logger, command_line)
    loop = new_event_loop(spin=True)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(serve(server, threading.current_thread() is threading.main_thread(),
                                             on_ready=collector.settle_after_start))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            logger.close()


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_TRIM_THRESHOLD = 16 << 20
_MMAP_THRESHOLD = 2 << 20


def keep_freed_memory() -> None:
    """Keep up to 16 MiB of freed memory at the top of glibc's heap instead of returning it to the kernel at once,
    and serve blocks up to 2 MiB from that heap. Each read (up to 256 KiB) and each subscriber's write of it (its
    frames joined) is a block of that size, freed right after: with glibc's defaults the heap shrank and grew
    again on most reads (about three `brk` calls a read), and every page of the regrowth was a page fault (the
    kernel zeroes it): 41 per 1,000 deliveries of `python -m bench core`'s (f), about a tenth of the server's
    CPU (docs/performance.md). Only on glibc (its `mallopt`); elsewhere nothing changes. The price: up to 16 MiB
    of freed memory stays with the process."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    try:
        # (Setting the trim threshold stops glibc from moving the mmap threshold itself, so both are set.)
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, ctypes.ArgumentError):
        pass
