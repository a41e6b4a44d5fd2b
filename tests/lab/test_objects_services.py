"""pynats_lab.objects (object store buckets as DataFrames) and pynats_lab.services (responders, micro
services and discovery on the session's connection), against both servers."""
from __future__ import annotations

import os

import pandas as pd
import pytest

import pynats_lab as lab
from pynats_lab import objects, services
from pynats_lab.errors import LabError


def test_objects_round_trip_in_chunks_and_leave_delete_markers(lab_js, tmp_path):
    objects.obj_add("FILES", description="tutorial files")
    blob = os.urandom(150_000)
    put = objects.obj_put("FILES", "blob.bin", blob, chunk_size="64KB")
    assert put.loc[0, "size"] == 150_000 and put.loc[0, "chunks"] == 3
    assert put.loc[0, "digest"].startswith("SHA-256=")
    source = tmp_path / "notes.txt"
    source.write_text("hello object store")
    objects.obj_put("FILES", "notes.txt", file=source)
    assert objects.obj_get("FILES", "blob.bin") == blob
    assert objects.obj_get("FILES", "notes.txt", file=tmp_path / "out.txt").read_text() == "hello object store"
    assert list(objects.obj_ls("FILES")["name"]) == ["blob.bin", "notes.txt"]
    status = objects.obj_status("FILES")
    assert status.loc[0, "stream"] == "OBJ_FILES" and status.loc[0, "messages"] == 3 + 1 + 2

    objects.obj_del("FILES", "notes.txt")
    listed = objects.obj_ls("FILES", deleted=True).set_index("name")
    assert listed.loc["notes.txt", "deleted"] and not listed.loc["blob.bin", "deleted"]
    with pytest.raises(LabError, match="object not found: FILES > notes.txt"):
        objects.obj_get("FILES", "notes.txt")
    with pytest.raises(LabError, match="give the object's data or file=PATH"):
        objects.obj_put("FILES", "nothing")
    assert str(objects.obj_rm("FILES")) == "deleted object store FILES"
    with pytest.raises(LabError, match="object store bucket not found: FILES"):
        objects.obj_ls("FILES")


def test_a_queue_group_shares_requests_and_each_responder_keeps_its_own(lab_core):
    workers = [services.respond("jobs", lambda text, i=i: f"w{i}:{text}", queue="workers", name=f"w{i}")
               for i in range(3)]
    replies = pd.concat([lab.request("jobs", f"job {n}") for n in range(30)], ignore_index=True)
    handled = pd.concat([w.stop() for w in workers], ignore_index=True)
    assert len(handled) == 30 and handled["request"].is_unique, "each request went to exactly one member"
    assert (handled.groupby("responder").size() > 0).all()
    assert sorted(replies["data"]) == sorted(handled["reply"])


def test_a_handler_error_is_an_error_reply_and_the_responder_keeps_serving(lab_core):
    r = services.respond("div", lambda text: str(10 // int(text)))
    bad = lab.request("div", "0")
    assert bad.loc[0, "headers"]["Nats-Service-Error"] == "ZeroDivisionError: integer division or modulo by zero"
    assert lab.request("div", "5").loc[0, "data"] == "2"
    assert list(r.stop()["error"].notna()) == [True, False]


def test_a_micro_service_answers_counts_and_is_discovered(lab_core):
    svc = services.add_service("greeter", {"hello": lambda who: f"hello {who}", "fail": lambda _: 1 / 0},
                               version="1.2.0", description="says hello")
    try:
        assert lab.request("greeter.hello", "alice").loc[0, "data"] == "hello alice"
        assert lab.request("greeter.fail", "x").loc[0, "headers"]["Nats-Service-Error-Code"] == "500"
        stats = svc.stats().set_index("endpoint")
        assert stats.loc["hello", "requests"] == 1 and stats.loc["fail", "errors"] == 1
        assert list(svc.info()["subject"]) == ["greeter.hello", "greeter.fail"]
        ping = services.discover("PING", "greeter")
        assert list(ping["id"]) == [svc.id] and ping.loc[0, "version"] == "1.2.0"
        info = services.discover("INFO")
        assert info.loc[0, "endpoints"] == ["greeter.hello", "greeter.fail"]
        assert services.discover("STATS").loc[0, "requests"] == 2
    finally:
        svc.stop()
    assert services.discover("PING", "greeter").empty
    with pytest.raises(LabError, match="invalid verb 'HELLO'"):
        services.discover("hello")
