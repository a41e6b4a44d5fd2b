"""The LagChart widget (`%consumer watch`) in JupyterLab in headless Chromium: redrawn in place while a
fast and a slow worker work through a stream, one line per consumer. Screenshot in
test-artifacts/lag_chart.png."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.test_browser import ARTIFACTS, CHROMIUM, notebook_page

NOTEBOOK = Path(__file__).parent / "notebooks" / "browser_lag_chart.ipynb"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def test_lag_chart_updates_in_place(jupyterlab, tmp_path):
    with notebook_page(jupyterlab, tmp_path, NOTEBOOK, "lag_chart_failure.png") as page:
        page.wait_for_selector(".pynats-lag-chart svg polyline", timeout=40_000)
        page.wait_for_function(
            "() => /([5-9]|\\d\\d) readings/.test(document.querySelector('.pynats-lag-chart')?.innerText)",
            timeout=40_000)
        # the fast worker drains its backlog: its row in the table reaches 0 pending; the slow one is held
        # at its max_ack_pending of 10
        page.wait_for_function(
            "() => [...document.querySelectorAll('.pynats-lag-chart tr')].some("
            "tr => tr.innerText.includes('fast') && tr.querySelectorAll('td')[2]?.innerText.trim() === '0')",
            timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.pynats-lag-chart tr')].some("
            "tr => tr.innerText.includes('slow') && tr.querySelectorAll('td')[3]?.innerText.trim() === '10')",
            timeout=60_000)
        assert page.locator(".pynats-lag-chart").count() == 1
        assert page.locator(".pynats-lag-chart svg").count() == 4
        text = page.locator(".pynats-lag-chart").inner_text()
        for word in ("num_pending", "num_ack_pending", "num_redelivered", "num_waiting", "fast", "slow"):
            assert word in text
        notebook = page.locator(".jp-Notebook").inner_text()
        assert "Error displaying widget" not in notebook and "Traceback" not in notebook
        page.locator(".pynats-lag-chart").screenshot(path=str(ARTIFACTS / "lag_chart.png"))
