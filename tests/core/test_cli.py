"""The command line, flag for flag like nats-server's: version, help, bad flags, a taken port, pid and log files,
signals (SIGTERM, SIGINT, --signal), -t; each run on both servers where nats-server has the same behaviour."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.raw import RawClient
from tests.servers import RunningServer, server_command, subprocess_env


def run_cli(kind: str, *args: str, cwd=None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(server_command(kind) + list(args), cwd=cwd, env=subprocess_env(), capture_output=True,
                          text=True, timeout=timeout)


def wait_until_reaped(pid: int, timeout: float) -> bool:
    """True once process `pid` is gone altogether: exited and waited for (a zombie still has its /proc entry)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                f.read()
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_version_and_help(server_kind):
    version = run_cli(server_kind, "-v")
    assert version.returncode == 0 and re.match(r"\S+: v2\.\d+\.\d+", version.stdout)
    assert run_cli(server_kind, "version").stdout == version.stdout
    helped = run_cli(server_kind, "-h")
    assert helped.returncode == 0 and "Usage:" in helped.stdout and "--jetstream" in helped.stdout


def test_an_unknown_flag_is_refused_with_usage(server_kind):
    out = run_cli(server_kind, "--bogus")
    assert out.returncode == 0  # nats-server's usage() exits 0, even after a bad flag
    assert out.stderr == "flag provided but not defined: -bogus\n" and "Usage:" in out.stdout


def test_a_taken_port_is_fatal(server_kind, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli(server_kind, "-a", "127.0.0.1", "-p", str(port), cwd=tmp_path)
    assert out.returncode == 1
    fatal = [line for line in out.stderr.splitlines() if "[FTL]" in line]
    assert fatal and fatal[0].endswith(f'[FTL] Error listening on port: 127.0.0.1:{port}, '
                                       f'"listen tcp 127.0.0.1:{port}: bind: address already in use"')


def test_check_config(server_kind, tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text("port: 4333\nmax_payload: 2KB\n")
    out = run_cli(server_kind, "-t", "-c", str(conf))
    assert out.returncode == 0 and f"configuration file {conf} is valid (sha256:" in out.stderr
    missing = run_cli(server_kind, "-t")
    assert missing.returncode == 1 and "must specify [-c, --config] option" in missing.stderr


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupt")])
def test_signals_shut_down_cleanly(start_server, signum, name):
    srv = start_server()
    pid = srv.proc.pid
    os.kill(pid, signum)  # from outside, as a kernel's shutdown signals its children: nobody here waits on it
    # The launcher reaps the exited server by itself (no zombie left for the parent's shutdown to wait on).
    assert wait_until_reaped(pid, 10), f"server {pid} exited but was left a zombie"
    assert srv.proc.wait(10) == 0
    srv.wait_for_log("Server Exiting", 10)  # the exited server's last lines may still be in the pipe
    logs = srv.logs
    assert f'Trapped "{name}" signal' in logs and "Server Exiting.." in logs


def test_signal_command_reaches_the_server_by_pid_file(start_server, server_kind, tmp_path):
    pid_file = tmp_path / "server.pid"
    srv = start_server("-P", str(pid_file))
    assert pid_file.read_text().strip() == str(srv.proc.pid)
    out = run_cli(server_kind, "--signal", f"quit={pid_file}")
    assert out.returncode == 0, out.stderr
    assert srv.proc.wait(10) == 0
    assert 'Trapped "interrupt" signal' in srv.logs


def test_signal_command_errors(server_kind):
    unknown = run_cli(server_kind, "--signal", "bogus=1")
    assert unknown.returncode == 1 and unknown.stderr.strip().endswith('unknown signal "bogus"')
    gone = run_cli(server_kind, "--signal", "quit=999999")
    assert gone.returncode == 1 and gone.stderr.strip().endswith('signal "quit" 999999: no such process')


def test_reload_without_a_config_file_is_refused(start_server):
    srv = start_server()
    srv.reload()
    assert ("Failed to reload server configuration: can only reload config when a file is provided using -c "
            "or --config") in srv.logs
    assert srv.proc.poll() is None


def test_log_file(server_kind, tmp_path):
    log = tmp_path / "server.log"
    proc = subprocess.Popen(server_command(server_kind) + ["-a", "127.0.0.1", "-p", "-1", "-l", str(log)],
                            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if log.exists() and "Server is ready" in log.read_text():
                break
            proc.wait(0.05) if proc.poll() is not None else __import__("time").sleep(0.05)
        text = log.read_text()
        assert re.search(r"^\[\d+\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} \[INF\] Listening for client connections on "
                         r"127\.0\.0\.1:\d+$", text, re.M)
    finally:
        proc.terminate()
        proc.wait(10)
    _, err = proc.communicate()
    assert b"Server is ready" not in err


def test_monitoring_port_is_announced(start_server):
    srv = start_server("-m", "-1")
    assert srv.http_port and re.search(r"\[INF\] Starting http monitor on 127\.0\.0\.1:\d+", srv.logs)


def test_embedded_default_bind_is_loopback(tmp_path):
    """Without -a the embedded server listens on 127.0.0.1 (nats-server: 0.0.0.0; docs/differences.md)."""
    cmd_server = subprocess.Popen([sys.executable, "-m", "embedded_server", "-p", "-1"], cwd=tmp_path,
                                  env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    try:
        for line in cmd_server.stderr:
            if "Listening for client connections on" in line:
                assert " on 127.0.0.1:" in line
                break
    finally:
        cmd_server.terminate()
        cmd_server.wait(10)


def test_jetstream_flag_without_jetstream_support_warns(tmp_path):
    import importlib.util

    if importlib.util.find_spec("embedded_server.jetstream") is not None:
        pytest.skip("the embedded server has JetStream")
    srv = RunningServer("embedded", ["-js"], tmp_path).start()
    try:
        assert "JetStream requested but not available" in srv.logs
        from tests.raw import RawClient
        with RawClient(srv) as c:
            assert "jetstream" not in c.info
    finally:
        srv.stop()


def test_the_pid_in_every_log_line_is_the_servers(start_server):
    srv = start_server()
    pids = {int(m) for m in re.findall(r"^\[(\d+)\] ", srv.logs, re.M)}
    assert pids == {srv.proc.pid}
    assert os.getpid() not in pids


def test_trace_and_debug_lines_read_like_nats_servers(start_server):
    """-DV: the same exchange traced in the same words (passwords redacted), connection opened and closed."""
    srv = start_server("-DV")
    with RawClient(srv) as c:
        me = "%s:%d" % c.sock.getsockname()
        c.send('CONNECT {"verbose":false,"pedantic":false,"name":"tr","lang":"go","version":"1.2","user":"u",'
               '"pass":"secret","headers":true}\r\nSUB foo 1\r\nPUB foo r 5\r\nhello\r\n'
               "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1\r\nPING\r\nBOGUS\r\n")
        c.expect_closed()
    srv.wait_for_log(f"{re.escape(me)} .*Client connection closed")
    mine = [line.split(" - ", 1)[1] for line in srv.logs.splitlines() if f"] {me} - cid:" in line]
    mine = [re.sub(r"^cid:\d+", "cid:N", line) for line in mine]
    assert mine == [
        "cid:N - Client connection created",
        'cid:N - <<- [CONNECT {"verbose":false,"pedantic":false,"name":"tr","lang":"go","version":"1.2",'
        '"user":"u","pass":"[REDACTED]","headers":true}]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- [SUB foo 1]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- [PUB foo r 5]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- MSG_PAYLOAD: ["hello"]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> [MSG foo 1 r 5]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> MSG_PAYLOAD: ["hello"]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- [HPUB foo 12 14]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- MSG_PAYLOAD: ["NATS/1.0\\r\\n\\r\\nhi"]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> [HMSG foo 1 12 14]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> MSG_PAYLOAD: ["NATS/1.0\\r\\n\\r\\nhi"]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- [UNSUB 1]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <-> [DELSUB 1]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - <<- [PING]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> [PONG]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - ->> [-ERR Unknown Protocol Operation]',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - Client parser ERROR, state=0, i=204: proto=\'"BOGUS\\r"...\'',
        'cid:N - "v1.2:go:tr" - "$G/user:u" - Client connection closed: Protocol Violation',
    ]
