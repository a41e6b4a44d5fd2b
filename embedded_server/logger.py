"""The server log, line for line in nats-server's format: `[PID] 2006/01/02 15:04:05.000000 [INF] text`.

Tools written for nats-server (and our test harness) read these lines, e.g. `Listening for client connections
on HOST:PORT` and `Server is ready`, so the format and the words are kept identical.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, TextIO


class Logger:
    """Writes nats-server-style lines to a stream (stderr by default), a file (`-l`), or a callback."""

    def __init__(self, stream: TextIO | None = None, *, debug: bool = False, trace: bool = False,
                 logtime: bool = True, utc: bool = False, pid: int | None = None,
                 sink: Callable[[str], None] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.debug_enabled = debug
        self.trace_enabled = trace
        self.logtime = logtime
        self.utc = utc
        self.pid = os.getpid() if pid is None else pid
        self.sink = sink
        self._lock = threading.Lock()
        self._owned_file: TextIO | None = None

    @classmethod
    def to_file(cls, path: str, **kw) -> "Logger":
        f = open(path, "a", buffering=1, encoding="utf-8")
        log = cls(f, **kw)
        log._owned_file = f
        return log

    def reconfigure(self, opts) -> None:
        """Apply reloaded logging options (debug, trace, timestamps)."""
        self.debug_enabled = opts.debug
        self.trace_enabled = opts.trace
        self.logtime = opts.logtime
        self.utc = opts.logtime_utc

    def close(self) -> None:
        if self._owned_file is not None:
            self._owned_file.close()
            self._owned_file = None

    def _prefix(self) -> str:
        if not self.logtime:
            return f"[{self.pid}] "
        now = time.time()
        t = time.gmtime(now) if self.utc else time.localtime(now)
        micros = int((now % 1) * 1_000_000)
        return f"[{self.pid}] {time.strftime('%Y/%m/%d %H:%M:%S', t)}.{micros:06d} "

    def log(self, level: str, text: str) -> None:
        line = f"{self._prefix()}[{level}] {text}"
        if self.sink is not None:
            self.sink(line)
            return
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (ValueError, OSError):
                pass  # the stream went away (parent died, file closed): logging must never take the server down

    def notice(self, text: str) -> None:
        self.log("INF", text)

    info = notice

    def warn(self, text: str) -> None:
        self.log("WRN", text)

    def error(self, text: str) -> None:
        self.log("ERR", text)

    def fatal(self, text: str) -> None:
        self.log("FTL", text)

    def debug(self, text: str) -> None:
        if self.debug_enabled:
            self.log("DBG", text)

    def trace(self, text: str) -> None:
        if self.trace_enabled:
            self.log("TRC", text)
