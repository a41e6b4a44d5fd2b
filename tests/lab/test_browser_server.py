"""The ServerMonitor widget (`%server watch`) in JupyterLab in headless Chromium: its charts are drawn and
redrawn in place while a benchmark runs, one line per server, and show the load. Screenshot in
test-artifacts/server_monitor.png."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.lab.test_browser import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, jupyterlab, nats_url,  # noqa: F401
                                    run_all_cells)

NOTEBOOK = Path(__file__).parent / "notebooks" / "browser_server_monitor.ipynb"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def test_server_monitor_updates_in_place(jupyterlab, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    shutil.copy(NOTEBOOK, tmp_path / "root" / NOTEBOOK.name)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            run_all_cells(page, f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_selector(".pynats-server-monitor svg polyline", timeout=40_000)
            # Redrawn in place: the number of readings grows in the same widget, and the load shows.
            page.wait_for_function(
                "() => /([3-9]|\\d\\d) readings/.test(document.querySelector('.pynats-server-monitor')?.innerText)",
                timeout=40_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.pynats-server-monitor td')].some("
                "td => /^[1-9][0-9.]*$/.test(td.innerText) && parseFloat(td.innerText) > 500)", timeout=40_000)
            assert page.locator(".pynats-server-monitor").count() == 1
            assert page.locator(".pynats-server-monitor svg").count() == 4
            text = page.locator(".jp-Notebook").inner_text()
            assert "Error displaying widget" not in text and "Traceback" not in text
            assert "msgs/s" in text and "slow consumers" in text
            page.locator(".pynats-server-monitor").screenshot(path=str(ARTIFACTS / "server_monitor.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "server_monitor_failure.png"), full_page=True)
            raise
        finally:
            context.close()
