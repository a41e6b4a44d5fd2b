"""`pynats-lab regress --server URL --creds FILE [--monitor URL]` running the server_health ops check against
a server in operator mode: a system-account user reads it through $SYS; an application user without the
monitoring port gets a failing run that says what to give (with --monitor it runs: tests/test_notebooks.py)."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from pynats_lab.auth import Operator
from tests.servers import REPO, subprocess_env

NOTEBOOK = REPO / "notebooks" / "regression" / "server_health.ipynb"


def _regress(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pynats_lab.cli", "regress", str(NOTEBOOK), "--jobs", "1",
                           "--timeout", "120", *args], cwd=cwd, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)


def test_server_health_with_creds(start_server, server_kind, tmp_path):
    op = Operator.new("ops")
    system, app = op.system_account(), op.new_account("APP")
    srv = start_server("-js", "-sd", str(tmp_path / "js"), "-m", "-1", config=op.server_config([app], system=system))
    ops = system.new_user("ops").write_creds(tmp_path / "ops.creds")
    worker = app.new_user("worker").write_creds(tmp_path / "worker.creds")
    run = _regress("--server", srv.url, "--creds", str(ops), "--junit", str(tmp_path / "j.xml"),
                   "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 0 failed" in run.stdout
    executed = (tmp_path / "out" / "regression" / "server_health.ipynb").read_text()
    assert "every server's health check is ok" in executed
    if server_kind != "nats-server":
        return
    # An application user, no monitoring port: the check cannot run, and says why.
    run = _regress("--server", srv.url, "--creds", str(worker), "--junit", str(tmp_path / "j2.xml"),
                   "--out", str(tmp_path / "out2"), cwd=tmp_path)
    assert run.returncode == 1 and "0 passed, 1 failed" in run.stdout
    failure = next(ET.parse(tmp_path / "j2.xml").getroot().iter("failure")).text
    assert "connect as a system-account user" in failure and "--monitor" in failure


def test_a_missing_creds_file_is_one_line(tmp_path):
    run = _regress("--server", "nats://127.0.0.1:1", "--creds", str(tmp_path / "nope.creds"), cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == f"pynats-lab regress: credentials file not found: {tmp_path / 'nope.creds'}"
