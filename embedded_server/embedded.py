"""`EmbeddedServer`: run the server from Python, in a background thread or as a child process.

Thread mode shares the interpreter (fast start, logs kept in memory). Process mode runs
`python -m embedded_server` with the same flags; the child dies with its parent (PR_SET_PDEATHSIG, a parent
watchdog, and an atexit hook), so a Jupyter kernel that dies leaves no orphan server behind.
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
        self._log = collections.deque(maxlen=_LOG_LINES)
        self._log_cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server = None            # the Server object (thread mode only)
        self.proc: subprocess.Popen | None = None

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
        with self._log_cond:
            return "\n".join(self._log)

    @property
    def running(self) -> bool:
        if self.mode == "process":
            return self.proc is not None and self.proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 20.0) -> "EmbeddedServer":
        """Start and return once the server logged 'Server is ready'. Raises EmbeddedServerError."""
        if self.running:
            return self
        self._log.clear()
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
        before = len(self._log)
        self.proc.send_signal(signal.SIGHUP)
        line = self._wait_log(_RELOADED, timeout, since=before)
        m = _RELOADED.search(line)
        if m.group(1):
            raise EmbeddedServerError(m.group(1))

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

    # -- logs -----------------------------------------------------------------------------------------
    def _add_log(self, line: str) -> None:
        with self._log_cond:
            self._log.append(line.rstrip("\n"))
            self._log_cond.notify_all()

    def _wait_log(self, rx: re.Pattern, timeout: float, since: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._log_cond:
            while True:
                for line in list(self._log)[since:]:
                    if rx.search(line):
                        return line
                if not self.running:
                    raise EmbeddedServerError(self._failure())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EmbeddedServerError(f"timed out after {timeout}s waiting for {rx.pattern!r}:\n{self.logs}")
                self._log_cond.wait(min(left, 0.1))

    def _failure(self) -> str:
        fatal = [line for line in self._log if "[FTL]" in line]
        return fatal[-1].split("[FTL] ", 1)[-1] if fatal else f"the server stopped:\n{self.logs}"

    def _read_ports(self) -> None:
        text = self.logs
        m = _LISTEN.search(text)
        if not m:
            raise EmbeddedServerError(f"no listen line in the logs:\n{text}")
        self.port = int(m.group(2))
        h = _HTTP.search(text)
        self.http_port = int(h.group(2)) if h else None

    # -- thread mode ----------------------------------------------------------------------------------
    def _start_thread(self, timeout: float) -> None:
        from embedded_server.running import new_event_loop, serve
        from embedded_server.logger import Logger
        from embedded_server.options import ConfigFileError, FlagError, load_options
        from embedded_server.server import Server

        try:
            opts, command_line = load_options(self.argv)
        except (FlagError, ConfigFileError) as e:
            raise EmbeddedServerError(str(e)) from None
        logger = Logger(debug=opts.debug, trace=opts.trace, sink=self._add_log)
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
            raise EmbeddedServerError(self._failure())
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
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "embedded_server", *self.argv], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace")
        threading.Thread(target=self._pump, args=(self.proc,), name="embedded-nats-server-log",
                         daemon=True).start()
        try:
            self._wait_log(re.compile("Server is ready"), timeout)
        except EmbeddedServerError:
            self._stop_process(2)
            raise
        self._read_ports()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._add_log(line)
        with self._log_cond:
            self._log_cond.notify_all()

    def _stop_process(self, timeout: float) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
