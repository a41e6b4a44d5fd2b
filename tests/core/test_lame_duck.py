"""Lame duck mode on both servers: `--signal ldm=PID` (SIGUSR2) makes the server stop accepting clients, tell the
connected ones (INFO with `ldm: true`), close them after `lame_duck_grace_period` and exit; the durations are
checked as nats-server checks them."""
from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.raw import RawClient
from tests.servers import RunningServer, server_command, subprocess_env

CONFIG = """
lame_duck_duration: "30s"
lame_duck_grace_period: "1s"
"""


def _lines_until_closed(sock: socket.socket, timeout: float) -> list[str]:
    """Every protocol line the server sends until it closes the connection (RawClient skips later INFOs)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode().splitlines()
        data += chunk


def test_lame_duck_mode_tells_clients_then_closes_them_and_exits(server_kind, start_server):
    srv = start_server(config=CONFIG)
    with RawClient(srv) as c:
        c.connect(name="duckling", protocol=1)
        assert c.ping() == []
        signal_cmd = server_command(server_kind) + ["--signal", f"ldm={srv.proc.pid}"]
        done = subprocess.run(signal_cmd, env=subprocess_env(), capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        lines = _lines_until_closed(c.sock, 20)
    infos = [json.loads(line[5:]) for line in lines if line.startswith("INFO ")]
    assert infos and infos[0]["ldm"] is True and infos[0]["client_id"] >= 1
    assert srv.proc.wait(20) == 0
    logs = srv.logs
    assert "Entering lame duck mode, stop accepting new clients" in logs
    assert 'Trapped "user defined signal 2" signal' in logs
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


@pytest.mark.parametrize("setting, reason", [
    ('lame_duck_duration: "10s"', "invalid lame_duck_duration of 10s, minimum is 30 seconds"),
    ('lame_duck_duration: "soon"', 'error parsing lame_duck_duration: time: invalid duration "soon"'),
    ('lame_duck_grace_period: "-1s"', "invalid lame_duck_grace_period, needs to be positive"),
])
def test_bad_lame_duck_settings_are_refused_as_nats_server_does(tmp_path, setting, reason):
    for kind in ("nats-server", "embedded"):
        conf = tmp_path / f"{kind}.conf"
        conf.write_text(setting + "\n")
        srv = RunningServer(kind, ["-c", str(conf)], tmp_path)
        with pytest.raises(Exception):
            srv.start(timeout=15)
        srv.stop()
        assert reason in srv.logs, (kind, srv.logs)
