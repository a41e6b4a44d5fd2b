"""Lab fixtures: a real IPython shell with the extension loaded, connected to a test server of each kind."""
from __future__ import annotations

import importlib.util
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import pynats_lab
from pynats_lab.session import get_session
from tests.servers import KINDS, RunningServer, subprocess_env


@pytest.fixture(scope="session")
def shell():
    """One real InteractiveShell for the whole run, with `%load_ext pynats_lab` done."""
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "pynats_lab")
    return ip


def _connected(srv, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(srv.url)
    yield srv
    get_session().close()


@pytest.fixture
def lab_js(js_server, shell, monkeypatch, tmp_path):
    """The session connected to a JetStream server of this test's kind."""
    yield from _connected(js_server, monkeypatch, tmp_path)


@pytest.fixture
def lab_core(server, shell, monkeypatch, tmp_path):
    """The session connected to a core (no JetStream) server of this test's kind."""
    yield from _connected(server, monkeypatch, tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _browser_lab(tmp_path_factory):
    """One JupyterLab (and one JetStream server for its pages: the embedded one once its JetStream exists,
    else nats-server) for every browser test: started by the first that asks, stopped at the end of the run.
    Each test opens its own notebook (own stream names) in it; `jupyterlab` shuts that page's kernel down."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    kind = "embedded" if "embedded" in KINDS and importlib.util.find_spec("embedded_server.jetstream") \
        else "nats-server"
    srv = RunningServer(kind, ["-js", "-sd", str(tmp / "js")], tmp).start()
    root = tmp / "root"
    root.mkdir()
    # No news/update prompt: the page stays quiet and offline.
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"checkForUpdates": false, "fetchNews": "false"}')
    # Every cell in the page, not only those in view: the test runs and reads them all.
    tracker = tmp / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = subprocess_env()
    env.update(NATS_URL=srv.url, XDG_DATA_HOME=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp / "cfg"), IPYTHONDIR=str(tmp / "ipython"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={tmp / 'settings'}", f"--LabApp.workspaces_dir={tmp / 'ws'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--allow-root"]
    log = open(tmp / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 40
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp / "jupyterlab.log").read_text())
                time.sleep(0.2)
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        srv.stop()


def _lab_api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}?token={token}", method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


@pytest.fixture
def jupyterlab(_browser_lab):
    """(base URL, token, root directory) of the shared JupyterLab; after the test, every kernel the test's
    page started is shut down (with the embedded default it may have started), as closing JupyterLab would."""
    base, token, root = _browser_lab
    yield _browser_lab
    for session in _lab_api(base, token, "/api/sessions"):
        _lab_api(base, token, f"/api/sessions/{session['id']}", "DELETE")
    for kernel in _lab_api(base, token, "/api/kernels"):
        _lab_api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")


def magic(shell, line: str):
    """Run `%name args` through the shell as a user would; returns its value."""
    name, _, rest = line.lstrip("%").partition(" ")
    return shell.run_line_magic(name, rest)


def cell(shell, source: str):
    """Run a whole cell (so assignments and cell magics work); returns the ExecutionResult."""
    return shell.run_cell(source, store_history=False)


def eventually(condition, timeout: float = 20.0) -> None:
    """Wait until `condition()` is true (a loaded machine gets time); fail the test if it never is."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout:g}s: {getattr(condition, '__name__', condition)}")


def assert_one_line_errors(shell, capsys, cases: dict) -> None:
    """Each magic line fails with exactly one stderr line starting as given; no traceback, cell succeeds."""
    for line, start in cases.items():
        res = cell(shell, line)
        captured = capsys.readouterr()
        assert res.success and "Traceback" not in captured.err + captured.out, line
        assert captured.err.count("\n") == 1 and captured.err.startswith(start), (line, captured.err)


def assert_dedup_follows_the_window(df, window: float, margin: float = 0.3) -> None:
    """Each publish is a duplicate exactly when its id was accepted less than `window` ago (any subject);
    rows within `margin` of the window edge are not judged (timing on a loaded machine). Both outcomes
    must occur, so the check cannot pass vacuously."""
    accepted_at: dict[str, float] = {}
    judged = {"duplicate": 0, "accepted": 0}
    for row in df.itertuples():
        last = accepted_at.get(row.msg_id)
        gap = None if last is None else row.offset_s - last
        if gap is None or gap > window + margin:
            assert row.accepted, f"{row.msg_id} at {row.offset_s:.2f}s should be accepted (gap {gap})"
            judged["accepted"] += 1
        elif gap < window - margin:
            assert row.duplicate, f"{row.msg_id} at {row.offset_s:.2f}s should be a duplicate (gap {gap:.2f}s)"
            judged["duplicate"] += 1
        if row.accepted:
            accepted_at[row.msg_id] = row.offset_s
    assert judged["duplicate"] and judged["accepted"], judged
