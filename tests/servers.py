"""Start, stop, crash and reload NATS servers for tests.

The embedded server and the real nats-server are started the same way, with the same flags, on a random
port (`-p -1`) read back from the "Listening for client connections on" log line, so no test assumes a port.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pynats_lab.servers import nats_server_binary  # the one lookup of the nats-server binary

REPO = Path(__file__).resolve().parent.parent
KINDS = ("nats-server", "embedded")

_LISTEN = re.compile(r"Listening for client connections on (\S+):(\d+)")
_HTTP = re.compile(r"Starting http monitor on (\S+):(\d+)")


def server_command(kind: str) -> list[str]:
    if kind == "nats-server":
        return [nats_server_binary()]
    if kind == "embedded":
        return [sys.executable, "-m", "embedded_server"]
    raise ValueError(f"unknown server kind {kind!r}")


def subprocess_env() -> dict[str, str]:
    """Children import this checkout's packages, whatever is installed in the venv."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class RunningServer:
    """One server process. `url` is valid after start(); logs are collected from stderr."""

    def __init__(self, kind: str, args: list[str], workdir: Path, host: str = "127.0.0.1"):
        self.kind = kind
        self.args = list(args)
        self.workdir = workdir
        self.host = host
        self.port: int | None = None
        self.http_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "RunningServer":
        port = str(self.port) if self.port else "-1"
        cmd = server_command(self.kind) + ["-a", self.host, "-p", port] + self.args
        self._lines = []
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, env=subprocess_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        self.wait_for_log("Server is ready", timeout=timeout)
        m = _LISTEN.search(self.logs)
        if not m:
            raise RuntimeError(f"{self.kind}: no listen line in logs:\n{self.logs}")
        self.port = int(m.group(2))
        h = _HTTP.search(self.logs)
        self.http_port = int(h.group(2)) if h else None
        return self

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed by the server on its way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = 20.0) -> "RunningServer":
        """Start again on the same port with the same flags (and the same store directory)."""
        self.stop()
        return self.start(timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """SIGHUP, as `nats-server --signal reload` sends, and wait until the server says it reloaded or
        refused to. Only those two lines end the wait: an error logged meanwhile for something else (a refused
        login whose log line comes late) is not the reload's answer."""
        assert self.proc is not None
        before = len(self._lines)
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for_log(r"Reloaded server configuration|Failed to reload server configuration", timeout,
                          since=before)

    # -- observation ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def logs(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """Block until a log line (from line index `since`) matches `pattern`; return that line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[since:]:
                    if rx.search(line):
                        return line
                if self.proc and self.proc.poll() is not None and not any(
                        rx.search(x) for x in self._lines[since:]):
                    # Process is gone; give the pump a moment to drain, then fail with the logs.
                    self._cond.wait(0.2)
                    if not any(rx.search(x) for x in self._lines[since:]):
                        raise RuntimeError(
                            f"{self.kind} exited ({self.proc.returncode}) before {pattern!r}:\n"
                            + "".join(self._lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.kind}: no {pattern!r} in {timeout}s:\n" + "".join(self._lines))
                # The process may exit just after its output ends: look again soon, not only when woken.
                self._cond.wait(min(left, 0.1))

    def __repr__(self) -> str:
        return f"<{self.kind} {self.url if self.port else '(not started)'}>"
