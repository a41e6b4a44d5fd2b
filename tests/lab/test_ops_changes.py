"""The changing commands of the ops half, on every JetStream server kind: %stream rmm, %consumer pause /
resume / edit (each says what it changed), %nats pub --ttl, and %stream add/edit with message TTLs, delete
markers, a subject transform, republish and metadata (natscli's flag names too)."""
from __future__ import annotations

import pandas as pd

from pynats_lab.session import get_session
from tests.lab.conftest import assert_one_line_errors, eventually, magic


def test_rmm_removes_one_message_and_says_which(lab_js, shell, capsys):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%nats pub orders.new n{{Count}} --count 3 --js")
    magic(shell, "%nats pub orders.paid p --js")
    done = magic(shell, "%stream rmm ORDERS 4")
    assert str(done) == "removed message 4 (orders.paid) from ORDERS" and done.seq == 4
    assert magic(shell, "%stream view ORDERS")["seq"].tolist() == [1, 2, 3]
    assert_one_line_errors(shell, capsys, {
        "%stream rmm ORDERS 4": "%stream rmm: no message found",
        "%stream rmm ORDERS 0": "%stream rmm: a message sequence is 1 or more, not 0",
        "%stream rmm NOPE 1": "%stream rmm: stream not found",
    })


def test_pause_and_resume_say_what_they_did(lab_js, shell, capsys):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%nats pub orders.new n{{Count}} --count 3 --js")
    magic(shell, "%consumer add ORDERS worker --pull")
    done = magic(shell, "%consumer pause ORDERS worker --until 1h")
    assert str(done).startswith("paused ORDERS > worker until ") and str(done).endswith("(1h0m0s)")
    info = magic(shell, "%consumer info ORDERS worker")
    assert info.paused and magic(shell, "%consumer next ORDERS worker --timeout 300ms").empty
    later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta("3h")).strftime("%Y-%m-%d %H:%M:%S")
    assert f"until {later} UTC" in str(magic(shell, f"%consumer pause ORDERS worker '{later}'"))
    assert str(magic(shell, "%consumer resume ORDERS worker")) == \
        f"resumed ORDERS > worker (it was paused until {later} UTC)"
    assert magic(shell, "%consumer next ORDERS worker")["data"].tolist() == ["n1"]
    assert str(magic(shell, "%consumer resume ORDERS worker")) == "ORDERS > worker was not paused: nothing changed"
    assert_one_line_errors(shell, capsys, {
        "%consumer pause ORDERS worker --until 2001-01-01T00:00:00": "%consumer pause: ORDERS > worker did not pause",
        "%consumer pause ORDERS worker --until soonish": "%consumer pause: invalid --until 'soonish'",
        "%consumer pause ORDERS worker": "%consumer pause: give the time once",
        "%consumer pause ORDERS nope --until 1h": "%consumer pause: consumer not found",
    })


def test_consumer_edit_prints_each_change(lab_js, shell, capsys):
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%consumer add ORDERS worker --pull --ack-wait 30s --max-pending 10")
    done = magic(shell, "%consumer edit ORDERS worker --ack-wait 2m --max-pending 500 --description 'order worker' "
                        "--filter orders.new --metadata team=ops")
    assert str(done) == ("edited ORDERS > worker: ack_wait 30s -> 2m0s; description unset -> order worker; "
                         "filter_subject unset -> orders.new; max_ack_pending 10 -> 500; metadata unset -> "
                         "{'team': 'ops'}")
    c = magic(shell, "%consumer info ORDERS worker").config
    assert (c.ack_wait, c.max_ack_pending, c.filter_subject, c.description) == (120, 500, "orders.new", "order worker")
    assert str(magic(shell, "%consumer edit ORDERS worker --max-pending 500")).endswith("nothing changed (the settings "
                                                                                      "given were already so)")
    backoff = magic(shell, "%consumer edit ORDERS worker --backoff 1s 5s --max-deliver 3")
    assert "backoff unset -> [1s, 5s]" in str(backoff) and "max_deliver -1 -> 3" in str(backoff)
    assert_one_line_errors(shell, capsys, {
        "%consumer edit ORDERS worker": "%consumer edit: nothing to change",
        "%consumer edit ORDERS nope --max-pending 5": "%consumer edit: consumer not found",
        "%consumer edit ORDERS worker --ack-wait later": "%consumer edit: invalid --ack-wait",
        "%consumer edit ORDERS worker --target deliver.x": "%consumer edit: ",
    })


def test_pub_ttl_on_a_stream_that_allows_it(lab_js, shell, capsys):
    info = magic(shell, "%stream add TTL --subjects ttl.> --allow-msg-ttl --subject-delete-marker-ttl 1m --max-age 1h")
    assert info.config.allow_msg_ttl is True and info.config.subject_delete_marker_ttl == 60
    magic(shell, "%nats pub ttl.mid half --ttl 30m --js")
    magic(shell, "%nats pub ttl.long kept --ttl 1h --js")
    got = magic(shell, "%stream view TTL")
    assert got["headers"].map(lambda h: h.get("Nats-TTL")).tolist() == ["1800s", "3600s"]
    # without delete markers (nats-server raises a TTL below the marker TTL to it), a short TTL after a long one
    magic(shell, "%stream add SHORT --subjects short.> --allow-msg-ttl")
    magic(shell, "%nats pub short.long kept --ttl 1h --js")
    magic(shell, "%nats pub short.x gone --ttl 1s --js")
    eventually(lambda: magic(shell, "%stream view SHORT")["data"].tolist() == ["kept"])
    assert_one_line_errors(shell, capsys, {
        "%nats pub ttl.x y --ttl 500ms --js": "%nats pub: invalid --ttl '500ms'",
        "%nats pub ttl.x y --ttl later": "%nats pub: invalid --ttl",
    })


def test_stream_transform_republish_and_metadata(lab_js, shell, capsys):
    info = magic(shell, "%stream add SHOP --subjects shop.> --transform shop.* stored.shop.{{wildcard(1)}} "
                        "--republish stored.shop.> copy.shop.> --republish-headers-only --metadata owner=team-a "
                        "--metadata tier=1")
    c = info.config
    assert (c.subject_transform.src, c.subject_transform.dest) == ("shop.*", "stored.shop.{{wildcard(1)}}")
    assert (c.republish.src, c.republish.dest, c.republish.headers_only) == ("stored.shop.>", "copy.shop.>", True)
    assert {"owner": "team-a", "tier": "1"}.items() <= (c.metadata or {}).items()
    s = get_session()
    copies = s.run(s.nc.subscribe("copy.shop.>"))
    s.run(s.nc.flush())
    magic(shell, "%nats pub shop.eu hello --js")
    assert magic(shell, "%stream view SHOP")["subject"].tolist() == ["stored.shop.eu"]
    msg = s.run(copies.next_msg(timeout=5))
    assert msg.subject == "copy.shop.eu" and msg.data == b"" and msg.headers["Nats-Msg-Size"] == "5"
    edited = magic(shell, "%stream edit SHOP --no-republish --transform-source shop.* "
                          "--transform-destination kept.shop.{{wildcard(1)}} --metadata tier=2")
    c = edited.config
    assert c.republish is None and c.subject_transform.dest == "kept.shop.{{wildcard(1)}}"
    assert {"owner": "team-a", "tier": "2"}.items() <= (c.metadata or {}).items()
    assert_one_line_errors(shell, capsys, {
        "%stream edit SHOP --transform-source shop.*": "%stream edit: --transform-source and --transform-destination go together",
        "%stream edit SHOP --metadata nokey": "%stream edit: invalid --metadata 'nokey'",
        "%stream add X --subjects x.> --republish-headers-only": "%stream add: --republish-headers-only goes with --republish",
    })
