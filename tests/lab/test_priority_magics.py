"""%consumer add --priority-policy, %consumer next --group ..., %consumer unpin through a real IPython shell, on
every JetStream server kind."""
from __future__ import annotations

import pynats_lab
from tests.lab.conftest import assert_one_line_errors, magic


def _orders(shell, n: int) -> None:
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%nats pub orders.new o{{Count}} --count " + str(n) + " --js")


def _pin(frame) -> set:
    return {h.get("Nats-Pin-Id") for h in frame["headers"]}


def test_pinned_client_from_the_magics(lab_js, shell, capsys):
    _orders(shell, 4)
    added = magic(shell, "%consumer add ORDERS pc --priority-policy pinned_client --priority-group A "
                         "--priority-timeout 30s")
    assert added.name == "pc" and added.summary.startswith("consumer pc on ORDERS: pull, all subjects, deliver all, ack explicit")
    first = magic(shell, "%consumer next ORDERS pc --group A --count 2")
    assert first["data"].tolist() == ["o1", "o2"] and first["acked"].tolist() == ["ack", "ack"]
    [pin] = _pin(first)
    assert pin and f"pinned as {pin}" in first.summary
    assert "priority pinned_client (group A)" in added.summary
    # nats-py's ConsumerInfo has no priority fields: info and report show them from the server's JSON
    info = magic(shell, "%consumer info ORDERS pc")
    c = info.config
    assert (c.priority_policy, c.priority_groups, c.priority_timeout) == ("pinned_client", ["A"], 30.0)
    assert [g["group"] for g in info.priority_groups] == ["A"] and info.priority_groups[0]["pinned_client_id"] == pin
    shown = dict(pynats_lab.frames.info_frame(info).values.tolist())
    assert shown["config.priority_policy"] == "pinned_client" and shown["priority_groups.A.pinned_client_id"] == pin
    magic(shell, "%consumer add ORDERS plain")
    report = magic(shell, "%consumer report ORDERS").set_index("consumer")
    assert report.loc["pc", ["priority", "pinned"]].tolist() == ["pinned_client (A)", f"A: {pin}"]
    assert report.loc["plain", ["priority", "pinned"]].isna().all()
    ls = magic(shell, "%consumer ls ORDERS").set_index("name")
    assert ls.loc["pc", ["priority", "pinned"]].tolist() == ["pinned_client (A)", f"A: {pin}"]
    assert ls.loc["plain", ["priority", "pinned"]].isna().all()
    other = magic(shell, "%consumer next ORDERS pc --group A --timeout 500ms")
    assert len(other) == 0 and "408 Request Timeout" in other.summary
    again = magic(shell, f"%consumer next ORDERS pc --group A --pin-id {pin}")
    assert again["data"].tolist() == ["o3"] and _pin(again) == {pin}
    assert str(magic(shell, "%consumer unpin ORDERS pc --group A")) == "unpinned group A of ORDERS > pc"
    after = magic(shell, "%consumer next ORDERS pc --group A")
    assert after["data"].tolist() == ["o4"] and _pin(after) != {pin}
    assert_one_line_errors(shell, capsys, {
        "%consumer next ORDERS pc --group A --pin-id nope":
            "%consumer next: ORDERS > pc refused the pull request for group A: 423 Nats-Pin-Id mismatch",
        "%consumer next ORDERS pc --group B": "%consumer next: ORDERS > pc refused the pull request for group B: "
                                              "400 Bad Request - Invalid Priority Group",
        "%consumer next ORDERS pc": "%consumer next: ",
        "%consumer next ORDERS pc --pin-id x": "%consumer next: --min-pending, --min-ack-pending, --priority and",
        "%consumer unpin ORDERS pc --group B":
            "%consumer unpin: Provided priority group does not exist for this consumer (10160)",
        "%consumer add ORDERS x --priority-policy overflow":
            "%consumer add: Setting PriorityPolicy requires at least one PriorityGroup to be set (10159)",
    })


def test_overflow_and_prioritized_from_the_magics(lab_js, shell):
    _orders(shell, 4)
    magic(shell, "%consumer add ORDERS ov --priority-policy overflow --priority-group A")
    held = magic(shell, "%consumer next ORDERS ov --group A --min-pending 10 --timeout 500ms")
    assert len(held) == 0
    got = magic(shell, "%consumer next ORDERS ov --group A --min-pending 3 --count 2")
    assert got["data"].tolist() == ["o1", "o2"]
    magic(shell, "%consumer add ORDERS pr --priority-policy prioritized --priority-group A")
    assert magic(shell, "%consumer next ORDERS pr --group A --priority 3")["data"].tolist() == ["o1"]


def test_priority_groups_widget_shows_who_receives_what(lab_js, shell):
    import pynats_lab

    pinned = pynats_lab.PriorityGroups("pinned_client", clients=3, messages=8, wait=True)
    df = pinned.df
    assert df["seq"].tolist() == list(range(1, 9)), pinned.status.value
    before, after = df[~df["after_leave"]], df[df["after_leave"]]
    assert before["client"].nunique() == 1 and after["client"].nunique() == 1
    assert before["client"].iloc[0] == pinned.left != after["client"].iloc[0]
    assert before["pin"].nunique() == 1 and set(after["pin"]) != set(before["pin"]) and df["pin"].notna().all()
    ranked = pynats_lab.PriorityGroups("prioritized", clients=3, messages=6, wait=True)
    assert ranked.summary()[["client", "before", "after"]].values.tolist() == [
        ["c1", 3, 0], ["c2", 0, 3], ["c3", 0, 0]]  # every client, c3 waited throughout
    spill = pynats_lab.PriorityGroups("overflow", clients=2, messages=10, min_pending=3, wait=True)
    counts = spill.summary().set_index("client")
    assert counts.loc["c1", "before"] == 5 and "c2" in counts.index and counts.loc["c2", "before"] == 0
    assert 1 <= counts.loc["c2", "after"] < 5, spill.status.value
    assert "waiting for nobody" in spill.status.value
    assert "Priority groups: overflow" in spill._repr_mimebundle_()["text/html"]
    assert not [s for s in pynats_lab.stream_names() if s.startswith("PRIORITY_DEMO")]


def test_consumer_reset_from_the_magics(lab_js, shell, capsys):
    """`%consumer reset` (nats-server 2.14's $JS.API.CONSUMER.RESET): back to the ack floor, or to --seq."""
    magic(shell, "%stream add JOBS --subjects jobs.>")
    magic(shell, "%nats pub jobs.x 'j{{Count}}' --count 5 --js")
    magic(shell, "%consumer add JOBS w --pull")
    magic(shell, "%consumer next JOBS w --count 2")
    assert magic(shell, "%consumer next JOBS w --count 2 --no-ack")["data"].tolist() == ["j3", "j4"]
    done = magic(shell, "%consumer reset JOBS w")
    assert done.reset_seq == 3 and "delivers from stream sequence 3" in str(done)
    assert magic(shell, "%consumer next JOBS w")["data"].tolist() == ["j3"]
    assert magic(shell, "%consumer reset JOBS w --seq 5").reset_seq == 5
    assert magic(shell, "%consumer next JOBS w")["data"].tolist() == ["j5"]
    capsys.readouterr()
    assert_one_line_errors(shell, capsys, {
        "%consumer reset JOBS nope": "%consumer reset: consumer not found",
        "%consumer reset JOBS w --seq 0": "%consumer reset: invalid --seq 0",
    })
