"""notebooks/regression/consumer_health.ipynb on every JetStream server kind: it passes when every consumer
is well, and fails listing each stuck consumer (with %consumer why's finding) and each whose lag grows."""
from __future__ import annotations

import threading
import time

import pynats_lab
from pynats_lab.regress import run_notebook
from tests.servers import REPO

NOTEBOOK = REPO / "notebooks" / "regression" / "consumer_health.ipynb"


def _run(tmp_path, url, **params):
    return run_notebook(NOTEBOOK, tmp_path / "out.ipynb", {"server_url": url, **params}, "python3", 120)


def test_consumer_health_passes_then_fails_with_the_findings(lab_js, tmp_path):
    url = lab_js.url
    pynats_lab.stream_add("ORDERS", "orders.>")
    pynats_lab.publish("orders.new", "o{{Count}}", count=20, js=True)
    pynats_lab.consumer_add("ORDERS", "worker", max_ack_pending=5)
    pynats_lab.consumer_next("ORDERS", "worker", count=20)
    healthy = _run(tmp_path, url, lag_window="500ms")
    assert healthy.status == "passed", healthy.error

    # stuck: a worker that stopped acknowledging, and a consumer nobody pulls; lag: publishers outrun one
    pynats_lab.publish("orders.new", "o{{Count}}", count=10, js=True)
    pynats_lab.consumer_next("ORDERS", "worker", count=5, action="none")
    pynats_lab.consumer_add("ORDERS", "forgotten")
    pynats_lab.stream_add("EVENTS", "events.>")
    pynats_lab.consumer_add("EVENTS", "reader")
    pynats_lab.publish("events.x", "e", js=True)
    pynats_lab.consumer_next("EVENTS", "reader")
    stop = threading.Event()

    def publisher():
        while not stop.is_set():
            pynats_lab.publish("events.x", "e{{Count}}", count=50, js=True)
            time.sleep(0.05)

    feeding = threading.Thread(target=publisher, daemon=True)
    feeding.start()
    try:
        failed = _run(tmp_path, url, lag_window="3s", max_lag_growth=20, idle="1h")
    finally:
        stop.set()
        feeding.join()
    assert failed.status == "failed", failed.status
    error = failed.error
    assert "ORDERS > worker: max_ack_pending reached (stuck)" in error
    assert "ORDERS > forgotten: nobody is pulling (stuck)" in error and "What to do:" in error
    assert "EVENTS > reader: lag grew by" in error
    assert "EVENTS > reader: nobody" not in error  # recently active: not stuck, only behind
    only = _run(tmp_path, url, streams=["EVENTS"], lag_window="300ms")
    assert only.status == "passed", only.error
    assert pynats_lab.stream_info("ORDERS").state.consumer_count == 2  # the check made no consumer
