"""%stream through a real IPython shell, on every JetStream server kind: add/ls/info/edit/get/purge/rm,
and %stream view: columns and types, paging both ways, filters, --since, --raw, and that viewing a
work-queue stream takes nothing from it."""
from __future__ import annotations

import json
import time

import pandas as pd
from nats.js.api import StreamInfo

import pynats_lab
from tests.lab.conftest import assert_one_line_errors, cell, magic


def _fill(shell, n=30):
    magic(shell, "%stream add ORDERS --subjects orders.> --max-age 1h --dupe-window 30s")
    magic(shell, '%nats pub orders.new \'{"n": {{Count}}}\' --count ' + str(n) + " --js")
    magic(shell, "%nats pub orders.paid paid-{{Count}} --count 5 --js -H who:lab --msg-id pay-{{Count}}")


def test_add_ls_info_edit_rm(lab_js, shell, capsys):
    info = magic(shell, "%stream add ORDERS --subjects orders.> --storage memory --max-msgs 1000 --dupe-window 1m")
    assert isinstance(info, StreamInfo)
    assert info.config.subjects == ["orders.>"] and info.config.max_msgs == 1000
    assert info.config.duplicate_window == 60 and info.config.allow_direct is True
    ls = magic(shell, "%stream ls")
    assert ls["name"].tolist() == ["ORDERS"] and ls["storage"].iloc[0] == "memory"
    edited = magic(shell, "%stream edit ORDERS --max-msgs 10 --max-age 2h")
    assert edited.config.max_msgs == 10 and edited.config.max_age == 7200
    formatters = shell.display_formatter.formatters
    assert "Stream ORDERS" in formatters["text/html"].lookup(edited)(edited) and "max_msgs" in formatters["text/plain"](edited)
    assert str(magic(shell, "%stream rm ORDERS")) == "deleted stream ORDERS"
    assert magic(shell, "%stream info ORDERS") is None
    assert capsys.readouterr().err == "%stream info: stream not found (10059)\n"


def test_view_returns_typed_columns(lab_js, shell):
    _fill(shell)
    res = cell(shell, "df = %stream view ORDERS --page-size 10")
    df = shell.user_ns["df"]
    assert res.success
    assert list(df.columns) == ["seq", "time", "subject", "data", "headers", "size", "msg_id"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]" and str(df["seq"].dtype) == "int64"
    assert df["seq"].tolist() == list(range(1, 11))
    assert json.loads(df["data"].iloc[0]) == {"n": 1}
    assert pynats_lab.frames.is_json(df["data"]).all()
    assert df["size"].iloc[0] == len(df["data"].iloc[0])
    last = magic(shell, "%stream view ORDERS --last --page-size 5")
    assert last["seq"].tolist() == [31, 32, 33, 34, 35]
    assert last["msg_id"].tolist() == [f"pay-{i}" for i in range(1, 6)]
    assert last["headers"].iloc[0] == {"who": "lab", "Nats-Msg-Id": "pay-1"}


def test_view_filters_start_and_raw(lab_js, shell):
    _fill(shell)
    paid = magic(shell, "%stream view ORDERS --subject orders.paid")
    assert paid["data"].tolist() == [f"paid-{i}" for i in range(1, 6)]
    from_id = magic(shell, "%stream view ORDERS --id 29 --page-size 3")
    assert from_id["seq"].tolist() == [29, 30, 31]
    recent = magic(shell, "%stream view ORDERS --since 1h --page-size 2")
    assert recent["seq"].tolist() == [1, 2]
    none_yet = magic(shell, "%stream view ORDERS --since 2026-01-01T00:00:00Z --page-size 2")
    assert len(none_yet) == 2
    future = pynats_lab.stream_view("ORDERS", since=pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h"))
    assert len(future) == 0 and list(future.columns) == list(paid.columns)
    raw = magic(shell, "%stream view ORDERS --raw --page-size 1")
    assert raw["data"].iloc[0] == b'{"n": 1}'


def test_pager_moves_both_ways_with_a_filter(lab_js, shell):
    _fill(shell, n=40)
    pager = pynats_lab.StreamPager("ORDERS", subject="orders.new", page_size=15)
    assert pager.first()["seq"].tolist() == list(range(1, 16))
    assert pager.next()["seq"].tolist() == list(range(16, 31))
    assert pager.next()["seq"].tolist() == list(range(31, 41))
    assert pager.next()["seq"].tolist() == list(range(31, 41))  # at the end it stays
    assert pager.prev()["seq"].tolist() == list(range(16, 31))
    assert pager.last()["seq"].tolist() == list(range(26, 41))
    assert pager.prev()["seq"].tolist() == list(range(11, 26))
    paid = pynats_lab.StreamPager("ORDERS", subject="orders.paid", page_size=2)
    assert paid.last()["seq"].tolist() == [44, 45]
    assert paid.prev()["seq"].tolist() == [42, 43]
    assert "seq 42..43" in paid.position


def test_view_skips_deleted_messages_and_pages_without_direct_get(lab_js, shell):
    magic(shell, "%stream add PLAIN --subjects plain.> --no-allow-direct")
    magic(shell, "%nats pub plain.x m{{Count}} --count 12 --js")
    pynats_lab.get_session().run(pynats_lab.get_session().js.delete_msg("PLAIN", 3))
    pager = pynats_lab.StreamPager("PLAIN", page_size=5)
    assert pager.first()["seq"].tolist() == [1, 2, 4, 5, 6]
    assert pager.next()["seq"].tolist() == [7, 8, 9, 10, 11]
    assert pager.last()["seq"].tolist() == [8, 9, 10, 11, 12]
    assert pager.prev()["seq"].tolist() == [2, 4, 5, 6, 7]


def test_viewing_a_work_queue_takes_nothing(lab_js, shell):
    magic(shell, "%stream add JOBS --subjects jobs.> --retention workqueue")
    magic(shell, "%nats pub jobs.run job-{{Count}} --count 20 --js")
    for _ in range(3):
        assert len(magic(shell, "%stream view JOBS --page-size 7")) == 7
        magic(shell, "%stream view JOBS --last")
        magic(shell, "%stream get JOBS 5")
    info = magic(shell, "%stream info JOBS")
    assert info.state.messages == 20 and info.state.consumer_count == 0
    magic(shell, "%consumer add JOBS worker --pull")
    got = magic(shell, "%consumer next JOBS worker --count 20")
    assert got["data"].tolist() == [f"job-{i}" for i in range(1, 21)]


def test_get_and_purge(lab_js, shell, capsys):
    _fill(shell)
    one = magic(shell, "%stream get ORDERS 31")
    assert one["data"].tolist() == ["paid-1"] and one["msg_id"].tolist() == ["pay-1"]
    last_for = magic(shell, "%stream get ORDERS --last-for orders.new")
    assert last_for["seq"].tolist() == [30]
    assert magic(shell, "%stream get ORDERS 999") is None
    assert capsys.readouterr().err.strip() == "%stream get: no message 999 in stream ORDERS"
    r = magic(shell, "%stream purge ORDERS --subject orders.paid")
    assert str(r) == "purged 5 messages on orders.paid from ORDERS" and r.purged == 5
    assert magic(shell, "%stream purge ORDERS --keep 10").purged == 20
    assert magic(shell, "%stream info ORDERS").state.messages == 10


def test_a_purge_number_out_of_range_is_refused_and_purges_nothing(lab_js, shell, capsys):
    _fill(shell)
    assert_one_line_errors(shell, capsys, {
        "%stream purge ORDERS --seq 0": "%stream purge: --seq must be at least 1",
        "%stream purge ORDERS --keep -1": "%stream purge: --keep must be 0 or more",
        "%stream purge ORDERS --seq 5 --keep 1": "%stream purge: --seq and --keep do not go together",
    })
    assert magic(shell, "%stream info ORDERS").state.messages == 35
    assert magic(shell, "%stream purge ORDERS --seq 31").purged == 30


def test_wrong_stream_uses_are_one_line(lab_js, shell, capsys):
    cases = {
        "%stream view NOPE": "%stream view: stream not found (10059)",
        "%stream add X --subjects x --max-age forever": "%stream add: invalid max-age 'forever'",
        "%stream add X --subjects x --max-bytes lots": "%stream add: invalid max-bytes 'lots'",
        "%stream add X --subjects x --retention sometimes": "%stream add: argument --retention: invalid choice",
        "%stream view X --page-size 0": "%stream view: page size must be at least 1",
        "%stream edit NOPE --max-msgs 3": "%stream edit: stream not found (10059)",
        "%stream fly": "%stream: argument COMMAND: invalid choice",
        "%stream view X --interval 1s": "%stream view: --interval goes with --follow",
        "%stream view X --follow --interval 0s": "%stream view: invalid --interval '0s': it must be more than 0",
        "%stream view X --follow --interval soon": "%stream view: invalid --interval 'soon': use e.g. 500ms",
    }
    assert magic(shell, "%stream") is None
    assert capsys.readouterr().out.startswith("usage: %stream")
    assert_one_line_errors(shell, capsys, cases)
    magic(shell, "%stream add A --subjects shared.>")
    assert magic(shell, "%stream add B --subjects shared.>") is None
    assert capsys.readouterr().err == ("%stream add: subjects overlap with an existing stream: held by A (shared.>) "
                                       "(10065). Use other subjects, or change or delete that stream "
                                       "(%stream edit / %stream rm)\n")
    assert_one_line_errors(shell, capsys, {"%stream view A --id -3": "%stream view: --id must be a sequence number, not -3"})


def test_follow_in_a_terminal_tails_new_messages(lab_js, shell, capsys):
    magic(shell, "%stream add LIVE --subjects live.>")
    magic(shell, "%nats pub live.a old --js")
    s = pynats_lab.get_session()

    async def later():
        import asyncio
        await asyncio.sleep(0.3)
        for i in range(3):
            await s.js.publish("live.a", f"new-{i}".encode())

    s.submit(later())
    t0 = time.monotonic()
    df = magic(shell, "%stream view LIVE --follow --timeout 1.5s --interval 100ms")
    assert time.monotonic() - t0 >= 1.4, "it follows until --timeout"
    assert df["data"].tolist() == ["new-0", "new-1", "new-2"]
    assert "new-2" in capsys.readouterr().out


def test_an_add_again_is_idempotent_and_a_conflicting_one_says_how_on(lab_js, shell, capsys):
    first = magic(shell, "%stream add ORDERS --subjects orders.* --storage memory --max-msgs 100")
    again = magic(shell, "%stream add ORDERS --subjects orders.* --storage memory --max-msgs 100")
    assert again.config.subjects == first.config.subjects and capsys.readouterr().err == ""
    assert magic(shell, "%stream add ORDERS --subjects orders.> --max-msgs 100") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("%stream add: stream ORDERS already exists with other settings")
    assert "storage memory (asked file)" in err and "subjects orders.* (asked orders.>)" in err
    assert "(10058)" in err and all(f"%stream {c} ORDERS" in err for c in ("info", "edit", "rm"))
    assert magic(shell, "%stream add SHOP --subjects orders.new") is None
    err = capsys.readouterr().err
    assert err.startswith("%stream add: subjects overlap with an existing stream: held by ORDERS (orders.*)")
    try:
        pynats_lab.stream_add("ORDERS", "orders.>")
    except pynats_lab.NatsError as exc:
        assert exc.err_code == 10058 and "already exists with other settings" in str(exc)
    else:
        raise AssertionError("a conflicting add must raise")
    assert pynats_lab.stream_info("ORDERS").config.subjects == ["orders.*"], "nothing changed"
