"""%nats through a real IPython shell on a core server: pub (templates, headers, cell payload), sub, req,
info, errors as one line, --help."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest

import pynats_lab
from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, cell, magic


def _responder(subject: str, answer: bytes):
    s = get_session()

    async def start():
        async def respond(msg):
            await s.nc.publish(msg.reply, answer + b":" + msg.data)
        sub = await s.nc.subscribe(subject, cb=respond)
        await s.nc.flush()
        return sub

    return s.run(start())


def test_pub_with_templates_reaches_a_subscriber(lab_core, shell):
    listener = magic(shell, "%nats sub orders.> --background")
    done = magic(shell, '%nats pub orders.new "order {{Count}} id={{ID}}" --count 3 -H app:lab')
    assert str(done) == "published 3 messages to orders.new"
    deadline = time.time() + 5
    while len(listener) < 3 and time.time() < deadline:
        time.sleep(0.02)
    df = listener.stop()
    assert list(df.columns) == ["received", "subject", "data", "headers", "size", "reply"]
    assert [d.split(" id=")[0] for d in df["data"]] == ["order 1", "order 2", "order 3"]
    ids = [d.split(" id=")[1] for d in df["data"]]
    assert len(set(ids)) == 3 and all(len(i) == 22 for i in ids)
    assert all(h == {"app": "lab"} for h in df["headers"])
    assert str(df["received"].dtype) == "datetime64[ns, UTC]"


def test_python_variables_expand_but_templates_stay(lab_core, shell):
    shell.user_ns["who"] = "alice"
    listener = magic(shell, "%nats sub greet --background")
    cell(shell, '%nats pub greet "hi {who} #{{Count}}" --count 2')
    cell(shell, "%nats pub greet $who")
    assert list(listener.stop()["data"]) == ["hi alice #1", "hi alice #2", "alice"]


def test_variables_expand_beside_json_braces_and_templates(lab_core, shell):
    shell.user_ns["n"] = 2
    listener = magic(shell, "%nats sub orders --background")
    cell(shell, """%nats pub orders '{"order": {{Count}}, "of": {n}}' --count {n}""")
    assert list(listener.stop()["data"]) == ['{"order": 1, "of": 2}', '{"order": 2, "of": 2}']


def test_background_subscriptions_see_what_was_just_published(lab_core, shell):
    for _ in range(5):
        listeners = {s: pynats_lab.subscribe_background(s) for s in ("w.>", "w.us.>", "w.*.pa")}
        for subject in ("w.us.pa", "w.us.ny", "w.de.be"):
            pynats_lab.publish(subject, "x")
        counts = {s: len(l.stop()) for s, l in listeners.items()}
        assert counts == {"w.>": 3, "w.us.>": 2, "w.*.pa": 1}
    live = pynats_lab.subscribe_background("v")
    pynats_lab.publish("v", "{{Count}}", count=4)
    assert live.df["data"].tolist() == ["1", "2", "3", "4"]
    live.stop()


def test_cell_magic_publishes_the_cell_as_payload(lab_core, shell):
    listener = magic(shell, "%nats sub docs --background")
    cell(shell, '%%nats pub docs\n{"id": 7,\n "name": "x"}\n')
    data = listener.stop()["data"].tolist()
    assert [json.loads(d) for d in data] == [{"id": 7, "name": "x"}]


@pytest.mark.timeout(60)  # an ignored --timeout fails here instead of hanging
def test_sub_collects_until_count_or_timeout(lab_core, shell):
    df = magic(shell, "%nats sub quiet --timeout 300ms")
    assert isinstance(df, pd.DataFrame) and len(df) == 0


def test_request_returns_the_reply_with_rtt(lab_core, shell):
    _responder("svc.echo", b"echo")
    res = cell(shell, 'r = %nats req svc.echo ping --timeout 2s')
    r = shell.user_ns["r"]
    assert res.success and r["data"].tolist() == ["echo:ping"]
    assert r["rtt_ms"].iloc[0] > 0


def test_request_without_responders_is_one_line(lab_core, shell, capsys):
    out = magic(shell, "%nats req nobody.here x")
    err = capsys.readouterr().err
    assert out is None
    assert err.strip() == "%nats req: no responders on nobody.here"


def test_info_shows_the_server_and_connection(lab_core, shell):
    info = magic(shell, "%nats info")
    assert info["connected_url"] == lab_core.url
    assert info["max_payload"] > 0 and "version" in info.index


def test_wrong_uses_print_one_line_and_keep_the_session(lab_core, shell, capsys):
    cases = {
        "%nats frobnicate": "%nats: argument COMMAND: invalid choice",
        "%nats pub": "%nats pub: the following arguments are required: subject",
        "%nats sub x --timeout soon": "%nats sub: invalid --timeout 'soon'",
        "%nats pub x y --count many": "%nats pub: argument --count: not a number: 'many'",
        '%nats pub x "unclosed': "%nats pub: cannot split the line",
        "%nats sub x --count 0": "%nats sub: --count must be at least 1",
        "%nats req x y --replies 0": "%nats req: --replies must be at least 1",
        "%nats bench --msgs 0": "%nats bench: --msgs must be at least 1",
    }
    assert_one_line_errors(shell, capsys, cases)
    assert str(magic(shell, "%nats pub still.works ok")).startswith("published 1 message")


def test_help_is_clean_and_lists_the_flags(shell, capsys):
    assert magic(shell, "%nats pub --help") is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %nats pub")
    for flag in ("--count", "--header", "--msg-id", "--js", "{{Count}}"):
        assert flag in out
    magic(shell, "%nats --help")
    top = capsys.readouterr().out
    for command in ("connect", "pub", "sub", "req", "info", "latency", "bench"):
        assert command in top


def test_connect_to_nowhere_is_one_line(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert magic(shell, "%nats connect nats://127.0.0.1:1") is None
    err = capsys.readouterr().err
    assert err.startswith("%nats connect: could not connect to nats://127.0.0.1:1") and err.count("\n") == 1


def test_a_failed_connect_keeps_the_working_connection(lab_core, shell, capsys):
    assert magic(shell, "%nats connect nats://127.0.0.1:1") is None
    assert "could not connect" in capsys.readouterr().err
    assert magic(shell, "%nats info")["connected_url"] == lab_core.url


def test_connect_with_a_natscli_context(server, shell, tmp_path, monkeypatch, capsys):
    ctx_dir = tmp_path / "config" / "nats" / "context"
    ctx_dir.mkdir(parents=True)
    (ctx_dir / "local.json").write_text(json.dumps({"description": "test", "url": server.url}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    try:
        session = magic(shell, "%nats connect --context local")
        assert session is get_session() and session.url == server.url
        assert magic(shell, "%nats info")["connected_url"] == server.url
        assert magic(shell, "%nats connect --context missing") is None
        assert "no natscli context 'missing'" in capsys.readouterr().err
    finally:
        get_session().close()


def test_token_auth_and_its_failure(start_server, shell, capsys):
    srv = start_server("--auth", "s3cret")
    try:
        assert magic(shell, f"%nats connect {srv.url} --token wrong") is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "uthorization" in err
        assert magic(shell, f"%nats connect {srv.url} --token s3cret").url == srv.url
        assert str(magic(shell, "%nats pub a b")) == "published 1 message to a"
    finally:
        get_session().close()


def test_reconnect_is_visible(server, shell, capfd):
    pynats_lab.connect(server.url)
    try:
        server.restart()
        deadline = time.time() + 10
        seen = ""
        while time.time() < deadline and "reconnected" not in seen:
            time.sleep(0.1)
            seen += capfd.readouterr().err
        assert "nats: disconnected from " + server.url in seen
        assert "nats: reconnected to" in seen
        assert str(magic(shell, "%nats pub after.reconnect x")).startswith("published")
    finally:
        get_session().close()
