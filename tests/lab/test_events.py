"""%nats events: advisories as a DataFrame, in the background, kept in a capture stream and read back; and
connection events for a system-account user."""
from __future__ import annotations

import threading

import nats
import pytest

import pynats_lab
from pynats_lab.monitoring import is_system_user
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, magic
from tests.lab.test_server_magics import NO_RESPONDERS, _url, accounts_server  # noqa: F401 (fixture)


def _exhaust(shell):
    """A message delivered max_deliver (2) times, and one terminated."""
    magic(shell, "%stream add WORK --subjects work.> --storage memory")
    magic(shell, "%consumer add WORK worker --pull --max-deliver 2 --ack-wait 30s")
    magic(shell, "%nats pub work.1 one")
    magic(shell, "%consumer next WORK worker --nak")
    magic(shell, "%consumer next WORK worker --nak")
    magic(shell, "%nats pub work.2 two")
    magic(shell, "%consumer next WORK worker --term")


def test_advisories_in_the_background_and_kept_in_a_stream(lab_js, shell, monkeypatch):
    bg = magic(shell, "%nats events --background --capture ADVISORIES")
    assert "stream ADVISORIES keeps them" in repr(bg)
    _exhaust(shell)
    df = bg.stop()
    assert list(df.columns) == ["time", "type", "stream", "consumer", "sequence", "deliveries", "account",
                                "client", "detail", "subject", "raw"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    md = df[df["type"] == "max_deliver"]
    assert len(md) == 1 and (md.iloc[0]["stream"], md.iloc[0]["consumer"], md.iloc[0]["sequence"],
                             md.iloc[0]["deliveries"]) == ("WORK", "worker", 1, 2)
    assert md.iloc[0]["subject"] == "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WORK.worker"
    assert md.iloc[0]["raw"]["type"] == "io.nats.jetstream.advisory.v1.max_deliver"
    term = df[df["type"] == "terminated"]
    assert len(term) == 1 and term.iloc[0]["sequence"] == 2
    assert list(df[df["type"] == "nak"]["deliveries"]) == [1, 2]
    created = df[df["type"] == "consumer_action"].iloc[0]
    assert (created["consumer"], created["detail"]) == ("worker", "create")
    kept_before = magic(shell, "%nats events --from ADVISORIES")
    kept = magic(shell, "%nats events --from ADVISORIES --type max_deliver,terminated")
    assert list(kept["type"]) == ["max_deliver", "terminated"] and list(kept["sequence"]) == [1, 2]
    assert set(magic(shell, "%nats events --from ADVISORIES --type consumer_*")["type"]) == {"consumer_action"}
    # Reading the capture stream consumed nothing and made no consumer, even one large enough for a bulk read's
    # consumer: its advisories would have been captured, and the stream would have grown by being read.
    assert magic(shell, "%stream info ADVISORIES").state.consumer_count == 0
    monkeypatch.setattr(pynats_lab.reader, "CONSUMER_FROM", 1)
    held = magic(shell, "%stream info ADVISORIES").state.messages
    for _ in range(2):  # the second read would see what the first one's consumer left
        assert len(magic(shell, "%nats events --from ADVISORIES")) == len(kept_before)
    assert magic(shell, "%stream info ADVISORIES").state.messages == held


@pytest.mark.timeout(60)
def test_blocking_listen_stops_at_count(lab_js, shell):
    magic(shell, "%stream add T --subjects t --storage memory")
    returned = threading.Event()

    def keep_creating():
        i = 0
        while not returned.is_set() and i < 200:
            i += 1
            pynats_lab.consumer_add("T", f"c{i}")
            returned.wait(0.05)

    helper = threading.Thread(target=keep_creating)
    helper.start()
    try:
        df = magic(shell, "%nats events --count 2 --type consumer_action --timeout 30s")
    finally:
        returned.set()
        helper.join()
    assert len(df) == 2 and set(df["type"]) == {"consumer_action"} and set(df["stream"]) == {"T"}
    empty = magic(shell, "%nats events --timeout 200ms --type max_deliver")
    assert empty.empty and list(empty.columns)[:2] == ["time", "type"]


def test_bad_use_is_one_line(lab_js, shell, capsys):
    magic(shell, "%stream add OTHER --subjects other")
    assert_one_line_errors(shell, capsys, {
        "%nats events --count 0": "%nats events: --count must be at least 1",
        "%nats events --timeout 0": "%nats events: invalid --timeout '0': it must be more than 0",
        "%nats events --from NOPE": "%nats events: stream not found (10059)",
        "%nats events --from OTHER --background": "%nats events: --from reads a stream",
        "%nats events --type max_delivery": "%nats events: invalid --type 'max_delivery': no event type matches "
                                            "max_delivery; types are account_connections, api_audit,",
        "%nats events --capture OTHER --timeout 10ms": "%nats events: stream OTHER exists and does not keep",
    })


def test_connection_events_for_a_system_user(accounts_server, shell, monkeypatch, tmp_path, server_kind):  # noqa: F811
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pynats_lab.connect(_url(accounts_server, "sys"))
    s = get_session()
    try:
        if server_kind == "embedded" and not s.run(is_system_user(s)):
            pytest.skip(NO_RESPONDERS)
        bg = magic(shell, "%nats events --background --type client_*")
        assert "$SYS.ACCOUNT.*.CONNECT" in bg.subjects

        async def visit():
            nc = await nats.connect(_url(accounts_server, "app"), name="visitor")
            await nc.flush()
            await nc.close()

        s.run(visit())
        import time
        deadline = time.monotonic() + 10
        while len(bg) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        df = bg.stop()
        assert list(df["type"]) == ["client_connect", "client_disconnect"]
        assert set(df["account"]) == {"APP"} and set(df["client"]) == {"visitor"}
        assert df.iloc[1]["detail"] == "Client Closed"
    finally:
        get_session().close()
