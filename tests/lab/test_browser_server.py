"""The ServerMonitor widget (`%server watch`) in JupyterLab in headless Chromium: its charts are drawn and
redrawn in place while a benchmark runs, one line per server, and show the load. Screenshot in
test-artifacts/server_monitor.png."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.test_browser import ARTIFACTS, CHROMIUM, notebook_page

NOTEBOOK = Path(__file__).parent / "notebooks" / "browser_server_monitor.ipynb"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def test_server_monitor_updates_in_place(jupyterlab, tmp_path):
    with notebook_page(jupyterlab, tmp_path, NOTEBOOK, "server_monitor_failure.png") as page:
        page.wait_for_selector(".pynats-server-monitor svg polyline", timeout=40_000)
        # Redrawn in place: the number of readings grows in the same widget, and the load shows.
        page.wait_for_function(
            "() => /([3-9]|\\d\\d) readings/.test(document.querySelector('.pynats-server-monitor')?.innerText)",
            timeout=40_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.pynats-server-monitor td')].some("
            "td => /^[1-9][0-9.]*[kMG]?$/.test(td.innerText) && (parseFloat(td.innerText) > 500"
            " || /[kMG]$/.test(td.innerText)))", timeout=40_000,
            # The table shows the latest reading only, one interval long: look every 50 ms, not on animation
            # frames, which a loaded machine delays past it.
            polling=50)
        assert page.locator(".pynats-server-monitor").count() == 1
        assert page.locator(".pynats-server-monitor svg").count() == 4
        text = page.locator(".jp-Notebook").inner_text()
        assert "Error displaying widget" not in text and "Traceback" not in text
        assert "msgs/s" in text and "slow consumers" in text
        # The embedded default has no name: the table calls it by the start of its id, as the legend does,
        # and on a narrow page the whole table fits (no column cut off).
        cells = page.locator(".pynats-server-monitor td").all_inner_texts()
        assert not any(len(c) == 56 and c.isupper() for c in cells) and any(c.endswith("…") for c in cells)
        page.set_viewport_size({"width": 900, "height": 1000})
        page.wait_for_function(
            "() => { const w = document.querySelector('.pynats-server-monitor').getBoundingClientRect();"
            " const t = document.querySelector('.pynats-server-monitor .pnl-table table');"
            " return w.width < 600 && t && t.getBoundingClientRect().right <= w.right + 1; }", timeout=10_000)
        page.locator(".pynats-server-monitor").screenshot(path=str(ARTIFACTS / "server_monitor.png"))
