"""Tutorials never destroy a user's data: what a tutorial makes carries its marker, and its reset removes only
that, on both servers."""
from __future__ import annotations

import pytest

import pynats_lab as lab
from pynats_lab import objects
from pynats_lab.tutorials import MARKER


def test_a_tutorial_resets_only_what_it_made(lab_js, shell):
    # The user's own stream and bucket, with data, under names a tutorial uses.
    lab.stream_add("ORDERS", "orders.>")
    lab.publish("orders.new", "the user's order", count=3, js=True)
    lab.kv_add("PROFILE")
    lab.kv_put("PROFILE", "alice", "the user's profile")

    with pytest.raises(lab.TutorialConflict) as err:
        lab.tutorial_start("03", streams=["ORDERS", "WORK"], buckets=["PROFILE"])
    line = str(err.value)
    assert "\n" not in line and "stream ORDERS, bucket PROFILE already exist" in line
    assert "left alone" in line and "server_url = None" in line
    # Shown in a notebook as that one line, not a traceback.
    assert err.value._render_traceback_() == [f"TutorialConflict: {line}"]
    assert lab.stream_info("ORDERS").state.messages == 3
    assert lab.kv_get("PROFILE", "alice").loc[0, "value"] == "the user's profile"
    assert lab.get_session().tutorial is None  # nothing it creates is marked: it did not start

    # A tutorial run where the names are its own: what it creates is marked, a second start resets it.
    started = lab.tutorial_start("05", streams=["WORK", "QUEUE"], buckets=["SESSIONS"], objects=["ASSETS"])
    assert str(started) == "tutorial 05: nothing left from an earlier run"
    shell.run_line_magic("stream", 'add WORK --subjects "work.>"')
    lab.stream_add("QUEUE", "queue.>", metadata={"team": "lab"})
    lab.kv_add("SESSIONS")
    objects.obj_add("ASSETS")
    lab.publish("work.1", "x", count=2, js=True)
    assert lab.stream_info("WORK").config.metadata[MARKER] == "05"
    assert lab.stream_info("QUEUE").config.metadata[MARKER] == "05"
    assert lab.stream_info("QUEUE").config.metadata["team"] == "lab"
    assert lab.stream_info("KV_SESSIONS").config.metadata[MARKER] == "05"
    assert lab.stream_info("OBJ_ASSETS").config.metadata[MARKER] == "05"
    assert "ORDERS" in lab.stream_names() and MARKER not in (lab.stream_info("ORDERS").config.metadata or {})
    # The user's bucket, met again by a tutorial's kv_add (which returns an existing bucket), stays unmarked.
    lab.kv_add("PROFILE")
    assert MARKER not in (lab.stream_info("KV_PROFILE").config.metadata or {})

    again = lab.tutorial_start("05", streams=["WORK", "QUEUE"], buckets=["SESSIONS"], objects=["ASSETS"])
    assert again.removed == ["stream WORK", "stream QUEUE", "bucket SESSIONS", "object store ASSETS"]
    assert not {"WORK", "QUEUE", "KV_SESSIONS", "OBJ_ASSETS"} & set(lab.stream_names())

    lab.stream_add("WORK", "work.>")
    ended = lab.tutorial_end()
    assert str(ended) == "tutorial 05: removed stream WORK"
    assert lab.stream_names() == ["KV_PROFILE", "ORDERS"]
    # After the tutorial, the lab marks nothing.
    lab.stream_add("LATER", "later.>")
    assert MARKER not in (lab.stream_info("LATER").config.metadata or {})
    with pytest.raises(lab.LabError, match="no tutorial is running"):
        lab.tutorial_end()
    # Any notebook may use it under its own id.
    with pytest.raises(lab.TutorialConflict, match="bucket PROFILE already exists .* regress/kv stops here"):
        lab.tutorial_start("regress/kv", buckets=["PROFILE"])
