"""Start, stop, crash and reload NATS servers for tests.

The embedded server and the real nats-server are started the same way, with the same flags, on a random
port (`-p -1`) read back from the "Listening for client connections on" log line, so no test assumes a port.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from embedded_server.embedded import EmbeddedServerError, LogTimeout, ServerExited, ServerProcess
from pynats_lab.servers import nats_server_binary  # the one lookup of the nats-server binary

REPO = Path(__file__).resolve().parent.parent
KINDS = ("nats-server", "embedded")


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
    """One server process (embedded_server.embedded.ServerProcess, the launcher the lab uses too). `url` is
    valid after start(); logs (stdout and stderr) are collected."""

    def __init__(self, kind: str, args: list[str], workdir: Path, host: str = "127.0.0.1",
                 command: list[str] | None = None):
        self.kind = kind
        self.command = command  # instead of server_command(kind): e.g. the embedded server under cProfile
        self.args = list(args)
        self.workdir = workdir
        self.host = host
        self.port: int | None = None
        self.http_port: int | None = None
        self._process: ServerProcess | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "RunningServer":
        """Start, on a random port the first time and on the same port after that (a restart). The port of a
        stopped server lies in the kernel's ephemeral range, so another process's outgoing connection can hold
        it for a moment: a restart that finds it taken tries again until `timeout`."""
        port = str(self.port) if self.port else "-1"
        deadline = time.monotonic() + timeout
        while True:
            self._process = ServerProcess((self.command or server_command(self.kind)) + ["-a", self.host, "-p", port] + self.args,
                                          cwd=self.workdir, env=subprocess_env(), merge_stdout=True)
            try:
                self._process.start(max(1.0, deadline - time.monotonic()))
                break
            except ServerExited as exc:
                if not self.port or "address already in use" not in str(exc) or time.monotonic() > deadline - 1.0:
                    raise
                time.sleep(0.25)
        self.port, self.http_port = self._process.port, self._process.http_port
        return self

    @property
    def proc(self):
        return self._process.proc if self._process is not None else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        return self._process.stop(timeout) if self._process is not None else None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed by the server on its way out."""
        if self._process is not None:
            self._process.kill()

    def restart(self, timeout: float = 20.0) -> "RunningServer":
        """Start again on the same port with the same flags (and the same store directory)."""
        self.stop()
        return self.start(timeout)

    def reload(self, timeout: float = 10.0) -> None:
        """SIGHUP, as `nats-server --signal reload` sends, and wait until the server says it reloaded or
        refused to (a refusal is the test's to check in the logs)."""
        try:
            self._process.reload(timeout)
        except (ServerExited, LogTimeout):
            raise
        except EmbeddedServerError:
            pass

    # -- observation ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def logs(self) -> str:
        return "".join(line + "\n" for line in self._process.log.lines()) if self._process is not None else ""

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """Block until a log line (from line index `since`) matches `pattern`; return that line."""
        return self._process.wait_for_log(pattern, timeout, since)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.url if self.port else '(not started)'}>"
