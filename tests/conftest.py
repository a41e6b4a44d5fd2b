"""The `server` fixture: every behaviour test runs against the embedded server and the real nats-server."""
from __future__ import annotations


import pytest

from tests.servers import KINDS, RunningServer


@pytest.fixture(params=KINDS)
def server_kind(request) -> str:
    return request.param


@pytest.fixture
def start_server(server_kind, tmp_path_factory):
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

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def server(start_server) -> RunningServer:
    """A plain core server (no auth, no JetStream)."""
    return start_server()


@pytest.fixture
def js_server(server_kind, start_server, tmp_path_factory) -> RunningServer:
    """A server with JetStream on and file storage in a fresh temporary directory."""
    return start_server("-js", "-sd", str(tmp_path_factory.mktemp("jetstream")))


@pytest.fixture
def embedded_js(js_server) -> RunningServer:
    """js_server, for tests of the embedded server's own on-disk format (skipped for nats-server)."""
    if js_server.kind != "embedded":
        pytest.skip("the on-disk format is the embedded server's own")
    return js_server
