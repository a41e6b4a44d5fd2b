"""JupyterLab in headless Chromium: a notebook with a StreamViewer and a LatencyChart is run through the
UI, and the test checks that rows and a chart rendered (not "Error displaying widget").
Screenshots go to test-artifacts/. Debian's chromium only; Playwright never downloads a browser."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import KINDS, REPO, RunningServer, subprocess_env

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOK = Path(__file__).parent / "notebooks" / "browser_widgets.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nats_url(tmp_path):
    """One JetStream server for the page: the embedded one once its JetStream exists, else nats-server."""
    import importlib.util

    kind = "embedded" if "embedded" in KINDS and importlib.util.find_spec("embedded_server.jetstream") \
        else "nats-server"
    srv = RunningServer(kind, ["-js", "-sd", str(tmp_path / "js")], tmp_path).start()
    yield srv.url
    srv.stop()


@pytest.fixture
def jupyterlab(tmp_path, nats_url):
    """JupyterLab on a free port with a token, rooted in a temporary directory holding the notebook."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    # No news/update prompt: the page stays quiet and offline.
    notification = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"checkForUpdates": false, "fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = subprocess_env()
    env.update(NATS_URL=nats_url, XDG_DATA_HOME=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), IPYTHONDIR=str(tmp_path / "ipython"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--allow-root"]
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 40
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text())
            time.sleep(0.2)
    yield base, token
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def run_all_cells(page, url: str, loaded_screenshot: str | None = None) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, and run every cell with Shift+Enter."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible", timeout=40_000)
    page.wait_for_function(
        "() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')", timeout=40_000)
    if loaded_screenshot:
        page.screenshot(path=str(ARTIFACTS / loaded_screenshot))
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    for _ in range(page.locator(".jp-Notebook .jp-Cell").count()):
        page.keyboard.press("Shift+Enter")


@contextlib.contextmanager
def notebook_page(jupyterlab, tmp_path: Path, notebook: Path, failure_png: str):
    """A Chromium page on which every cell of `notebook` (copied next to the others) has been run; a full-page
    screenshot `failure_png` if the test fails on it."""
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    shutil.copy(notebook, tmp_path / "root" / notebook.name)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            run_all_cells(page, f"{base}/lab/tree/{notebook.name}?token={token}")
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure_png), full_page=True)
            raise
        finally:
            context.close()


def test_widgets_render_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
        except Exception:
            context.close()
            raise
        try:
            run_all_cells(page, f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", "jupyterlab_loaded.png")
            viewer = page.wait_for_selector(".pynats-stream-viewer table tbody tr", timeout=40_000)
            assert viewer is not None
            page.wait_for_function(
                "() => [...document.querySelectorAll('.pynats-latency-chart img')]"
                ".some(i => i.complete && i.naturalWidth > 200)", timeout=40_000)
            page.wait_for_function(
                "() => document.querySelector('.pynats-latency-chart')?.innerText.includes('done:')",
                timeout=40_000)
            rows = page.locator(".pynats-stream-viewer table tbody tr")
            assert rows.count() == 10
            assert "widget" in rows.first.inner_text()
            page.locator(".pynats-stream-viewer button:has-text('next')").click()
            page.wait_for_function(
                "() => document.querySelector('.pynats-stream-viewer').innerText.includes('seq 11..20')",
                timeout=10_000)
            assert "p99.9" in page.locator(".pynats-latency-chart").inner_text()
            text = page.locator(".jp-Notebook").inner_text()
            assert "Error displaying widget" not in text and "Traceback" not in text
            page.locator(".pynats-stream-viewer").screenshot(path=str(ARTIFACTS / "stream_viewer.png"))
            page.locator(".pynats-latency-chart").screenshot(path=str(ARTIFACTS / "latency_chart.png"))
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_notebook.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_failure.png"), full_page=True)
            raise
        finally:
            context.close()
