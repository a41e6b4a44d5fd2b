"""The `server` fixture: every behaviour test runs against the embedded server and the real nats-server."""
from __future__ import annotations

import threading

import pytest

from tests.servers import KINDS, RunningServer

SPARES = 2  # embedded servers of each kind started ahead


@pytest.fixture(params=KINDS)
def server_kind(request) -> str:
    return request.param


class _Spare:
    """Embedded servers with the same flags as the next tests', started in the background while the tests
    before them run (a Python server takes a few tenths of a second to start; nats-server starts at once).
    Taken, one is the test's own, fresh server: nothing ran on it, its store directory is new. Whoever takes
    it stops it; those left over are stopped at the end of the run."""

    def __init__(self, tmp_path_factory, jetstream: bool, depth: int = SPARES):
        self._factory, self._jetstream, self._depth = tmp_path_factory, jetstream, depth
        self._ready: list[tuple[RunningServer, threading.Thread, list]] = []

    def _new(self) -> RunningServer:
        workdir = self._factory.mktemp("server")
        flags = ["-js", "-sd", str(self._factory.mktemp("jetstream"))] if self._jetstream else []
        return RunningServer("embedded", flags, workdir)

    def _prepare(self) -> None:
        srv, failed = self._new(), []

        def start():
            try:
                srv.start()
            except Exception:  # the test that takes it starts one itself and sees why
                failed.append(True)
                srv.stop()

        thread = threading.Thread(target=start, name="spare-server", daemon=True)
        thread.start()
        self._ready.append((srv, thread, failed))

    def take(self) -> RunningServer:
        srv = None
        if self._ready:
            srv, thread, failed = self._ready.pop(0)
            thread.join()
            srv = None if failed else srv
        if srv is None:
            srv = self._new().start()
        while len(self._ready) < self._depth:
            self._prepare()
        return srv

    def close(self) -> None:
        for srv, thread, _failed in self._ready:
            thread.join()
            srv.stop()


@pytest.fixture(scope="session")
def _stopper():
    """stop(srv) after a test: an embedded server (a Python process takes a few hundredths of a second to shut
    down) is stopped on a thread while the next test starts; every one has exited by the end of the run.
    nats-server stops at once, here."""
    threads: list[threading.Thread] = []

    def stop(srv: RunningServer) -> None:
        if srv.kind != "embedded":
            srv.stop()
            return
        thread = threading.Thread(target=srv.stop, name="stop-server", daemon=True)
        thread.start()
        threads.append(thread)
        threads[:] = [t for t in threads if t.is_alive()]

    yield stop
    for thread in threads:
        thread.join()


@pytest.fixture(scope="session")
def _spares(tmp_path_factory):
    spares = {"core": _Spare(tmp_path_factory, False), "js": _Spare(tmp_path_factory, True)}
    yield spares
    for spare in spares.values():
        spare.close()


@pytest.fixture
def start_server(server_kind, tmp_path_factory, _stopper):
    """Factory: start_server(*flags, config=None) starts a server of this test's kind; all are stopped after."""
    started: list[RunningServer] = []

    def start(*flags: str, config: str | None = None, kind: str | None = None) -> RunningServer:
        workdir = tmp_path_factory.mktemp("server")
        args = list(flags)
        if config is not None:
            conf = workdir / "server.conf"
            conf.write_text(config)
            args = ["-c", str(conf)] + args
        srv = RunningServer(kind or server_kind, args, workdir)
        started.append(srv)
        return srv.start()

    def adopt(srv: RunningServer) -> RunningServer:
        started.append(srv)
        return srv

    start.adopt = adopt
    yield start
    for srv in started:
        _stopper(srv)


@pytest.fixture
def server(server_kind, start_server, _spares) -> RunningServer:
    """A plain core server (no auth, no JetStream)."""
    if server_kind == "embedded":
        return start_server.adopt(_spares["core"].take())
    return start_server()


@pytest.fixture
def js_server(server_kind, start_server, _spares, tmp_path_factory) -> RunningServer:
    """A server with JetStream on and file storage in a fresh temporary directory."""
    if server_kind == "embedded":
        return start_server.adopt(_spares["js"].take())
    return start_server("-js", "-sd", str(tmp_path_factory.mktemp("jetstream")))


@pytest.fixture
def embedded_js(js_server) -> RunningServer:
    """js_server, for tests of the embedded server's own on-disk format (skipped for nats-server)."""
    if js_server.kind != "embedded":
        pytest.skip("the on-disk format is the embedded server's own")
    return js_server
