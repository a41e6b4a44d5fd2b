"""The embedded default: `%nats connect` with no URL and no NATS_URL starts the embedded server on
127.0.0.1 with its store in the per-user data directory, a second session gets a private store, magics
connect lazily, and a killed kernel leaves no server behind."""
from __future__ import annotations

import os
import signal
import time

import pytest

import pynats_lab
from pynats_lab.session import Session, get_session
from tests.lab.conftest import magic

EmbeddedServer = getattr(pytest.importorskip("embedded_server"), "EmbeddedServer", None)  # a lazy attribute
pytestmark = pytest.mark.skipif(EmbeddedServer is None, reason="embedded_server.EmbeddedServer has not landed yet")


@pytest.fixture
def no_url(monkeypatch, tmp_path):
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    get_session().close()
    yield tmp_path / "data" / "pynats-lab"
    get_session().close()


def test_connect_without_url_starts_the_embedded_server(shell, no_url, capsys):
    session = magic(shell, "%nats connect")
    err = capsys.readouterr().err
    assert session.server is not None and session.url.startswith("nats://127.0.0.1:")
    assert session.store_dir == no_url / "jetstream"
    assert f"started the embedded server at {session.url}" in err
    info = magic(shell, "%nats info")
    assert bool(info["embedded"]) and info["store_dir"] == str(no_url / "jetstream")
    listener = magic(shell, "%nats sub hello --background")
    magic(shell, "%nats pub hello world")
    assert listener.stop()["data"].tolist() == ["world"]
    assert str(magic(shell, "%nats disconnect")).startswith("disconnected from nats://127.0.0.1:")
    assert not session.server


def test_magics_connect_lazily_and_a_second_session_gets_its_own_store(shell, no_url, capsys):
    assert str(magic(shell, "%nats pub lazy x")) == "published 1 message to lazy"
    first = get_session()
    assert first.server is not None and first.store_dir == no_url / "jetstream"
    capsys.readouterr()
    second = Session().connect()
    try:
        note = capsys.readouterr().err
        assert "is in use by another kernel" in note and second.store_dir != first.store_dir
        assert second.url != first.url
        private = second.store_dir
        assert private.exists()
    finally:
        second.close()
    assert not private.exists()


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper (a dead kernel's child is reparented)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_server_dies_with_a_killed_kernel(tmp_path):
    from jupyter_client.manager import KernelManager

    from tests.servers import subprocess_env

    env = subprocess_env()
    env.pop("NATS_URL", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))  # no TCP port race
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        code = "import pynats_lab\ns = pynats_lab.connect()\nprint('PID', s.server.proc.pid)"
        pid = None

        def grab(msg):
            nonlocal pid
            text = msg["content"].get("text", "")
            if msg["msg_type"] == "stream" and "PID" in text:
                pid = int(text.split("PID", 1)[1].split()[0])

        kc.execute_interactive(code, timeout=60, output_hook=grab)
        assert pid is not None
        os.kill(pid, 0)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and _alive(pid):
            time.sleep(0.1)
        if not _alive(pid):
            return
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the embedded server outlived its kernel")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_script_that_ends_says_nothing_about_a_lost_connection(tmp_path):
    """The connection closes before the embedded server stops, so the end of a run is not reported as
    'disconnected ... reconnecting'; and the server is gone after it."""
    import subprocess
    import sys

    from tests.servers import subprocess_env

    env = subprocess_env()
    env.pop("NATS_URL", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    code = "import pynats_lab\ns = pynats_lab.connect()\npynats_lab.publish('x', 'y')\nprint('PID', s.server.proc.pid)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "started the embedded server" in done.stderr
    assert "disconnected" not in done.stderr + done.stdout and "reconnecting" not in done.stderr
    assert not _alive(int(done.stdout.split("PID", 1)[1].split()[0]))


def test_a_fresh_connect_gets_an_empty_private_store_that_goes_at_disconnect(shell, no_url, capsys,
                                                                                 monkeypatch):
    pynats_lab.connect()
    pynats_lab.stream_add("KEPT", "kept", storage="memory")
    default = get_session().store_dir
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")  # --fresh asks for the embedded server anyway
    try:
        session = magic(shell, "%nats connect --fresh   # a store of this notebook's own")
        assert session is not None and session.store_dir != default
        private = session.store_dir
        assert pynats_lab.stream_names() == [], "fresh: nothing another notebook made"
        assert "a fresh private JetStream store" in capsys.readouterr().err
        assert magic(shell, "%nats connect nats://127.0.0.1:4222 --fresh") is None
        assert capsys.readouterr().err == ("%nats connect: --fresh starts a private embedded server: it takes no "
                                           "URL and no --context\n")
        assert get_session().store_dir == private, "a refused connect leaves the session as it was"
    finally:
        magic(shell, "%nats disconnect")
    assert not private.exists() and default.exists()
