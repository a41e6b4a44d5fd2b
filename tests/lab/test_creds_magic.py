"""`%nats connect --creds FILE` with identities minted by pynats_lab.auth, on every server kind in operator mode."""
from __future__ import annotations

from pynats_lab.auth import Operator
from pynats_lab.session import get_session
from tests.lab.conftest import magic


def test_connect_with_creds_minted_after_the_server_started(start_server, shell, capsys, tmp_path):
    op = Operator.new("lab")
    app = op.new_account("APP")
    srv = start_server(config=op.server_config())
    alice = app.new_user("alice", pub_allow=["orders.>"], sub_allow=["orders.>", "_INBOX.>"])
    creds = alice.write_creds(tmp_path / "alice.creds")
    try:
        assert magic(shell, f"%nats connect {srv.url} --creds {creds}").url == srv.url
        assert str(magic(shell, "%nats pub orders.new hello")) == "published 1 message to orders.new"
    finally:
        get_session().close()
    stranger = Operator.new("other").new_account("X").new_user("eve")
    bad = stranger.write_creds(tmp_path / "eve.creds")
    assert magic(shell, f"%nats connect {srv.url} --creds {bad}") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uthorization" in err, err
