"""A server that does not answer in time (a JetStream leader election in a cluster, a stuck API) is one
clear line in a magic and nats-py's own timeout error in Python, never a crash inside the session."""
from __future__ import annotations

import nats.errors
import pytest

import pynats_lab
from pynats_lab.session import get_session
from tests.lab.conftest import magic


@pytest.fixture
def silent_jetstream_api(lab_core):
    """Someone listens on the stream info API subject but never answers; JetStream calls time out fast."""
    s = get_session()

    async def ignore(msg) -> None:
        pass

    sub = s.run(s.nc.subscribe("$JS.API.STREAM.INFO.>", cb=ignore))
    s.js = s.nc.jetstream(timeout=0.3)
    yield
    s.run(sub.unsubscribe())


def test_an_unanswered_request_is_a_timeout_not_a_crash(silent_jetstream_api, shell, capsys):
    assert magic(shell, "%stream info ORDERS") is None
    assert capsys.readouterr().err == "%stream info: timed out waiting for the server\n"
    with pytest.raises(nats.errors.TimeoutError):
        pynats_lab.stream_info("ORDERS")
    assert str(magic(shell, "%nats pub still.works ok")).startswith("published 1 message")
