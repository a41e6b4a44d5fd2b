"""JupyterLab in headless Chromium: a notebook with the four widgets is run through the UI, and the test
checks that they render (not "Error displaying widget") and answer clicks: a StreamViewer row picks the
detail, the filter shows in the status line, a binary payload shows as hex or base64, a search finds a
message; the LatencyChart takes every sample asked; ConsumerReplay and DedupChart finish inside their box;
PriorityGroups shows the pinned client, then the next one, in two tables inside its box.
Screenshots go to test-artifacts/. Debian's chromium only; Playwright never downloads a browser."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from tests.servers import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOK = Path(__file__).parent / "notebooks" / "browser_widgets.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")]


def shows(page, css: str, text: str, timeout: int = 10_000) -> None:
    """Wait until the first element matching `css` shows `text`."""
    page.wait_for_function("([css, text]) => document.querySelector(css)?.innerText.includes(text)",
                           arg=[css, text], timeout=timeout)


def lab_url(base: str, token: str, notebook: Path) -> str:
    """The notebook in a workspace of its own: the JupyterLab the browser tests share restores no other
    test's tabs into the page."""
    return f"{base}/lab/workspaces/{notebook.stem}/tree/{notebook.name}?token={token}"


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

    base, token, root = jupyterlab
    shutil.copy(notebook, root / notebook.name)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            run_all_cells(page, lab_url(base, token, notebook))
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure_png), full_page=True)
            raise
        finally:
            context.close()


def test_widgets_render_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, root = jupyterlab
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
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
            run_all_cells(page, lab_url(base, token, NOTEBOOK), "jupyterlab_loaded.png")
            rows = page.locator(".pynats-stream-viewer select option")
            rows.first.wait_for(timeout=40_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.pynats-latency-chart img')]"
                ".some(i => i.complete && i.naturalWidth > 200)", timeout=40_000)
            shows(page, ".pynats-latency-chart", "done:", 60_000)
            assert rows.count() == 10 and "widget" in rows.first.inner_text()
            viewer = page.locator(".pynats-stream-viewer")
            # A click on a row shows that message in full.
            rows.nth(3).click()
            shows(page, ".pynats-stream-viewer .pnl-detail", "seq 4", 10_000)
            assert '"order": 4' in viewer.locator(".pnl-detail").inner_text()
            viewer.screenshot(path=str(ARTIFACTS / "stream_viewer_detail.png"))
            viewer.locator("button:has-text('next')").click()
            shows(page, ".pynats-stream-viewer", "seq 11..20", 10_000)
            # The filter shows in the status line; a binary payload shows as hex, or base64 on a click.
            viewer.locator("input[placeholder='subject filter, e.g. orders.>']").fill("browser.bin")
            viewer.locator("button:has-text('go')").click()
            shows(page, ".pynats-stream-viewer", "filter: subject browser.bin", 10_000)
            shows(page, ".pynats-stream-viewer .pnl-detail", "00 ff 62", 10_000)
            viewer.screenshot(path=str(ARTIFACTS / "stream_viewer_hex.png"))
            viewer.locator("button:has-text('base64')").click()
            shows(page, ".pynats-stream-viewer .pnl-detail", "AP9iaW5hcnk=", 10_000)
            # A search looks in payloads and headers.
            viewer.locator("input[placeholder='subject filter, e.g. orders.>']").fill("")
            viewer.locator("input[placeholder='text in payload or headers']").fill('"order": 27')
            viewer.locator("button:has-text('find')").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.pynats-stream-viewer select option')].map(o => o.textContent)"
                ".join('|').replace(/\\u00a0/g, ' ').includes('\"order\": 27')", timeout=10_000)
            assert rows.count() == 1 and "1 found" in viewer.inner_text()
            viewer.screenshot(path=str(ARTIFACTS / "stream_viewer_search.png"))
            # LatencyChart: every sample asked for, only the percentiles 150 samples support.
            latency = page.locator(".pynats-latency-chart").inner_text()
            assert "done: 150 samples per kind" in latency and "p99" in latency and "p99.9" not in latency
            # ConsumerReplay and DedupChart finish; the replay table stays inside its box.
            shows(page, ".pynats-consumer-replay", "done: 10 messages", 30_000)
            shows(page, ".pynats-dedup-chart", "done:", 60_000)
            overflow = page.evaluate(
                "() => { const b = document.querySelector('.pynats-consumer-replay');"
                " return b.scrollWidth - b.clientWidth; }")
            assert overflow <= 1, f"the replay widget is {overflow}px wider than its box"
            # PriorityGroups: the pinned client took everything until it left, then the next one was pinned;
            # both tables (per client, per message) and the lesson fit inside the box.
            groups = page.locator(".pynats-priority-groups")
            shows(page, ".pynats-priority-groups", "done: 8 of 8 messages delivered", 30_000)
            assert groups.locator("table").count() == 2 and groups.inner_text().count("Priority groups:") == 1
            assert groups.locator("table").nth(0).locator("tbody tr").count() == 3  # the stand-by that got 0 too
            per_message = groups.locator("table").nth(1).locator("tbody tr")
            assert per_message.count() == 8
            clients = {per_message.nth(i).locator("td").nth(1).inner_text().strip() for i in range(8)}
            assert len(clients) == 2 and "Nats-Pin-Id" in groups.inner_text()
            overflow = page.evaluate(
                "() => { const b = document.querySelector('.pynats-priority-groups');"
                " return b.scrollWidth - b.clientWidth; }")
            assert overflow <= 1, f"the priority groups widget is {overflow}px wider than its box"
            text = page.locator(".jp-Notebook").inner_text()
            assert "Error displaying widget" not in text and "Traceback" not in text
            for name, css in (("stream_viewer", ".pynats-stream-viewer"), ("latency_chart", ".pynats-latency-chart"),
                              ("consumer_replay", ".pynats-consumer-replay"), ("dedup_chart", ".pynats-dedup-chart"),
                              ("priority_groups", ".pynats-priority-groups")):
                page.locator(css).screenshot(path=str(ARTIFACTS / f"{name}.png"))
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_notebook.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_failure.png"), full_page=True)
            (ARTIFACTS / "jupyterlab_failure.txt").write_text(page.locator(".jp-Notebook").inner_text())
            raise
        finally:
            context.close()
