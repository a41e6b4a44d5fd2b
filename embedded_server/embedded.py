"""`EmbeddedServer`: run the server from Python, in a background thread or as a child process; and
`ServerProcess`, the one launcher of a server process that the lab and the tests share.

Thread mode shares the interpreter (fast start, logs kept in memory). Process mode runs
`python -m embedded_server` with the same flags; the child dies with its parent (PR_SET_PDEATHSIG, a parent
watchdog, and an atexit hook), so a Jupyter kernel that dies leaves no orphan server behind.

`ServerProcess` starts any server that speaks nats-server's command line and log lines (this package's or
nats-server itself), waits for "Server is ready", reads the ports back from the log, and stops, kills or
reloads it (SIGHUP, waiting for the server's answer).
"""
from __future__ import annotations

import asyncio
import atexit
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

_LISTEN = re.compile(r"Listening for client connections on (\S+):(\d+)")
_HTTP = re.compile(r"Starting http monitor on (\S+):(\d+)")
_RELOADED = re.compile(r"Reloaded server configuration|Failed to reload server configuration: (.*)")
_LOG_LINES = 2000

_live: "weakref.WeakSet[EmbeddedServer]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for srv in list(_live):
        try:
            srv.stop(timeout=3)
        except Exception:
            pass


class EmbeddedServerError(RuntimeError):
    """The server could not start (its [FTL] line is the message), or a reload was refused."""


class ServerExited(EmbeddedServerError):
    """The server process ended while a log line was awaited; `reason` is its [FTL] text or its log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LogTimeout(EmbeddedServerError):
    """The awaited log line did not come in time."""


class ServerLog:
    """What a server logged, line by line (the last `max_lines`, or all), with a wait for a given line."""

    def __init__(self, max_lines: int | None = None):
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._cond = threading.Condition()

    def add(self, line: str) -> None:
        with self._cond:
            self._lines.append(line.rstrip("\n"))
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._lines.clear()

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def __len__(self) -> int:
        with self._cond:
            return len(self._lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, pattern: str | re.Pattern, timeout: float, since: int = 0, alive=lambda: True) -> str:
        """The first line from index `since` on that matches; ServerExited once `alive()` is false and no
        line matched (after the last lines are read), LogTimeout after `timeout` seconds."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        gone = False
        with self._cond:
            while True:
                for line in list(self._lines)[since:]:
                    if rx.search(line):
                        return line
                if gone:
                    raise ServerExited(self.failure())
                if not alive():
                    gone = True   # one more look: the last lines may still be on their way
                    self._cond.wait(0.2)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LogTimeout(f"no {rx.pattern!r} in the log within {timeout:g}s:\n{self.text}")
                self._cond.wait(min(left, 0.1))

    def failure(self) -> str:
        """Why the server stopped: its last [FTL] line, or the error it printed before logging anything (a
        configuration it cannot use: `nats-server: <reason>`), or else its whole log."""
        lines = self.lines()
        fatal = [line for line in lines if "[FTL]" in line]
        if fatal:
            return fatal[-1].split("[FTL] ", 1)[-1]
        died = [line for line in lines if line.startswith(("nats-server: ", "pynats-server: "))]
        return died[-1].split(": ", 1)[1] if died else f"the server stopped:\n{self.text}"

    def ports(self) -> tuple[int, int | None]:
        """(client port, monitoring port or None), from the lines nats-server logs when it listens."""
        text = self.text
        m = _LISTEN.search(text)
        if not m:
            raise EmbeddedServerError(f"no listen line in the logs:\n{text}")
        h = _HTTP.search(text)
        return int(m.group(2)), int(h.group(2)) if h else None


class ServerProcess:
    """One server process: `command` is a server's command line (nats-server's flags); its stderr (and stdout,
    with `merge_stdout`) is read into `log`. `preexec_fn` runs in the child (e.g. a parent-death signal)."""

    def __init__(self, command: list[str], cwd: str | os.PathLike | None = None, env: dict | None = None,
                 preexec_fn=None, max_lines: int | None = None, merge_stdout: bool = False):
        self.command = [str(c) for c in command]
        self.cwd, self.env, self.preexec_fn, self.merge_stdout = cwd, env, preexec_fn, merge_stdout
        self.log = ServerLog(max_lines)
        self._pump_thread: threading.Thread | None = None  # reads the server's log until the pipe's end
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.http_port: int | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        """Start and return once the server logged 'Server is ready' (ports read back); stopped again and
        ServerExited or LogTimeout if not."""
        self.log.clear()
        self.proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.merge_stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self.merge_stdout else subprocess.PIPE,
            text=True, errors="replace", preexec_fn=self.preexec_fn)
        stream = self.proc.stdout if self.merge_stdout else self.proc.stderr
        self._pump_thread = threading.Thread(target=self._pump, args=(stream, self.proc), name="nats-server-log",
                                             daemon=True)
        self._pump_thread.start()
        try:
            self.wait_for_log("Server is ready", timeout)
        except EmbeddedServerError:
            self.stop(2)
            raise
        self.port, self.http_port = self.log.ports()
        return self

    def _pump(self, stream, proc: subprocess.Popen) -> None:
        for line in stream:
            self.log.add(line)
        # The pipe ends when the server exits, whoever stopped it: reaped at once, it never lingers as a zombie
        # that its parent's own shutdown waits on as a live child (ipykernel gave such a kernel 2.5 s, then
        # killed it before its exit handlers ran).
        try:
            proc.wait()
        except Exception:  # noqa: BLE001 - reaped elsewhere meanwhile
            pass
        with self.log._cond:
            self.log._cond.notify_all()

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 10.0, since: int = 0) -> str:
        """A server that exited may still have lines in the pipe (its last ones, `Server Exiting..`): the log
        counts as alive until they are all read."""
        pump = self._pump_thread
        return self.log.wait_for(pattern, timeout, since,
                                 alive=lambda: self.running or (pump is not None and pump.is_alive()))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed by the server on its way out."""
        if self.running:
            self.proc.kill()
            self.proc.wait()

    def reload(self, timeout: float = 10.0) -> str:
        """SIGHUP, as `nats-server --signal reload` sends, and wait for the server's answer: its log line, or
        EmbeddedServerError with the reason it refused. Only those two lines end the wait."""
        before = len(self.log)
        self.proc.send_signal(signal.SIGHUP)
        line = self.wait_for_log(_RELOADED, timeout, since=before)
        m = _RELOADED.search(line)
        if m.group(1):
            raise EmbeddedServerError(m.group(1))
        return line


class EmbeddedServer:
    """A NATS server you start from Python.

    >>> with EmbeddedServer(jetstream=True, store_dir=tmp) as srv:
    ...     nc = await nats.connect(srv.client_url)

    `args` are extra nats-server flags. `port=-1` picks a free port (read back into `port`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = -1, jetstream: bool = False,
                 store_dir: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
                 http_port: int | None = None, args=(), mode: str = "thread"):
        if mode not in ("thread", "process"):
            raise ValueError(f"mode must be 'thread' or 'process', not {mode!r}")
        self.host = host
        self.mode = mode
        self.port: int | None = None
        self.http_port: int | None = None
        argv = ["-a", host, "-p", str(port)]
        if jetstream:
            argv.append("-js")
        if store_dir is not None:
            argv += ["-sd", os.fspath(store_dir)]
        if config_file is not None:
            argv += ["-c", os.fspath(config_file)]
        if http_port is not None:
            argv += ["-m", str(http_port)]
        self.argv = argv + [str(a) for a in args]
        self.log = ServerLog(_LOG_LINES)
        self._process: ServerProcess | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server = None            # the Server object (thread mode only)

    # -- public API -----------------------------------------------------------------------------------
    @property
    def client_url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("the server is not running")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"nats://{host}:{self.port}"

    @property
    def logs(self) -> str:
        return self.log.text

    @property
    def proc(self) -> subprocess.Popen | None:
        """The child process (process mode)."""
        return self._process.proc if self._process is not None else None

    @property
    def running(self) -> bool:
        if self.mode == "process":
            return self._process is not None and self._process.running
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 20.0) -> "EmbeddedServer":
        """Start and return once the server logged 'Server is ready'. Raises EmbeddedServerError."""
        if self.running:
            return self
        self.log.clear()
        if self.mode == "thread":
            self._start_thread(timeout)
        else:
            self._start_process(timeout)
        _live.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM in process mode); forcefully if it does not stop within `timeout`."""
        _live.discard(self)
        if self.mode == "thread":
            self._stop_thread(timeout)
        else:
            self._stop_process(timeout)
        self.port = None

    def reload(self, timeout: float = 10.0) -> None:
        """Apply the configuration file again, as SIGHUP does. Raises EmbeddedServerError if refused."""
        if not self.running:
            raise EmbeddedServerError("the server is not running")
        if self.mode == "thread":
            from embedded_server.errors import ReloadError

            async def do_reload() -> None:
                self.server.reload()

            fut = asyncio.run_coroutine_threadsafe(do_reload(), self._loop)
            try:
                fut.result(timeout)
            except ReloadError as e:
                self.server.logger.error(f"Failed to reload server configuration: {e}")
                raise EmbeddedServerError(str(e)) from None
            self.server.logger.notice("Reloaded server configuration")
            return
        self._process.reload(timeout)

    def call(self, fn, *args, timeout: float = 10.0):
        """Thread mode: run `fn(*args)` on the server's event loop thread and return its result (the server's
        objects, e.g. `server.subscribe_internal`, belong to that thread)."""
        if self.mode != "thread" or not self.running:
            raise EmbeddedServerError("call() needs a running thread-mode server")

        async def on_loop():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(timeout)

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.client_url if self.port else "not running"
        return f"<EmbeddedServer {self.mode} {where}>"

    # -- thread mode ----------------------------------------------------------------------------------
    def _start_thread(self, timeout: float) -> None:
        from embedded_server.running import new_event_loop, serve
        from embedded_server.logger import Logger
        from embedded_server.options import ConfigFileError, FlagError, load_options, start_error
        from embedded_server.server import Server

        try:
            opts, command_line = load_options(self.argv)
        except (FlagError, ConfigFileError) as e:
            raise EmbeddedServerError(str(e)) from None
        refused = start_error(opts)
        if refused:
            raise EmbeddedServerError(refused)
        logger = Logger(debug=opts.debug, trace=opts.trace, sink=self.log.add)
        self.server = Server(opts, logger, command_line)
        started = threading.Event()
        result: dict = {}

        def run() -> None:
            loop = new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                task = loop.create_task(serve(self.server, handle_signals=False))
                ready = loop.create_task(self.server.ready.wait())
                loop.run_until_complete(asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED))
                started.set()
                result["code"] = loop.run_until_complete(task)
            except BaseException as e:  # surfaced by start()
                result["error"] = e
            finally:
                started.set()
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name="embedded-nats-server", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            self._stop_thread(2)
            raise EmbeddedServerError(f"the server did not become ready within {timeout}s:\n{self.logs}")
        if not self.server.ready.is_set():
            self._thread.join(2)
            if "error" in result:
                raise EmbeddedServerError(str(result["error"])) from result["error"]
            raise EmbeddedServerError(self.log.failure())
        self.port = self.server.port
        self.http_port = self.server.http_port or None

    def _stop_thread(self, timeout: float) -> None:
        thread, loop, server = self._thread, self._loop, self.server
        if thread is None:
            return
        if loop is not None and thread.is_alive() and server is not None:
            try:
                loop.call_soon_threadsafe(lambda: loop.create_task(server.shutdown()))
            except RuntimeError:
                pass  # the loop already closed
        thread.join(timeout)
        self._thread = None

    # -- process mode ---------------------------------------------------------------------------------
    def _start_process(self, timeout: float) -> None:
        env = dict(os.environ)
        repo_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
        env["PYNATS_SERVER_PARENT"] = str(os.getpid())
        # The parent-death signal belongs to the thread that forks: only ask for it from the main thread,
        # otherwise the child would die with a short-lived worker thread. The watchdog covers the rest.
        if threading.current_thread() is threading.main_thread():
            env["PYNATS_SERVER_PDEATHSIG"] = "1"
        self._process = ServerProcess([sys.executable, "-m", "embedded_server", *self.argv], env=env,
                                      max_lines=_LOG_LINES)
        self.log = self._process.log
        self._process.start(timeout)
        self.port, self.http_port = self._process.port, self._process.http_port

    def _stop_process(self, timeout: float) -> None:
        if self._process is not None:
            self._process.stop(timeout)
