"""%stream backup / restore on every JetStream server kind: config, consumers, every message with its
headers, binary payloads and original times; readable files."""
from __future__ import annotations

import json

import pynats_lab
from tests.lab.conftest import magic


def test_backup_and_restore_round_trip(lab_js, shell, tmp_path, capsys):
    magic(shell, "%stream add ORDERS --subjects orders.> --max-msgs 1000 --dupe-window 1m")
    magic(shell, "%nats pub orders.new '{\"n\": {{Count}}}' --count 25 --js -H source:test")
    magic(shell, "%nats pub orders.dup same --msg-id once --js")
    pynats_lab.publish("orders.bin", b"\x00\xff\x10binary", js=True)
    s = pynats_lab.get_session()
    s.run(s.js.delete_msg("ORDERS", 5))
    magic(shell, "%consumer add ORDERS worker --pull --filter orders.new")
    before = pynats_lab.stream_frame("ORDERS", raw=True)

    done = magic(shell, f"%stream backup ORDERS {tmp_path}/bk --no-progress")
    assert done.messages == 26 and done.consumers == 1
    lines = (tmp_path / "bk" / "messages.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["subject"] == "orders.new" and first["headers"] == {"source": "test"}
    assert json.loads(first["data"]) == {"n": 1} and first["seq"] == 1
    assert "data_b64" in json.loads(lines[-1])
    assert json.loads((tmp_path / "bk" / "stream.json").read_text())["name"] == "ORDERS"

    magic(shell, "%stream rm ORDERS")
    restored = magic(shell, f"%stream restore {tmp_path}/bk --no-progress")
    assert restored.config.name == "ORDERS" and restored.config.max_msgs == 1000
    assert restored.config.duplicate_window == 60 and restored.state.messages == 26
    after = pynats_lab.stream_frame("ORDERS", raw=True)
    assert after["subject"].tolist() == before["subject"].tolist()
    assert after["data"].tolist() == before["data"].tolist()
    original_times = [h.pop("Lab-Original-Time") for h in after["headers"]]
    original_seqs = [int(h.pop("Lab-Original-Seq")) for h in after["headers"]]
    assert after["headers"].tolist() == before["headers"].tolist()
    assert original_seqs == before["seq"].tolist()
    assert [t[:23] for t in original_times] == [t.isoformat()[:23] for t in before["time"]]
    assert magic(shell, "%consumer ls ORDERS")["name"].tolist() == ["worker"]
    assert magic(shell, "%consumer next ORDERS worker")["data"].tolist() == ['{"n": 1}']


def test_restore_under_a_new_name_beside_the_original(lab_js, shell, tmp_path, capsys):
    magic(shell, "%stream add JOBS --subjects jobs.> --retention workqueue")
    magic(shell, "%nats pub jobs.x j{{Count}} --count 3 --js")
    magic(shell, f"%stream backup JOBS {tmp_path}/jobs --no-progress")
    assert magic(shell, "%stream info JOBS").state.messages == 3  # backup takes nothing from a work queue
    assert magic(shell, f"%stream restore {tmp_path}/jobs --name JOBS2 --no-progress") is None
    assert "subjects overlap" in capsys.readouterr().err
    copy = magic(shell, f"%stream restore {tmp_path}/jobs --name JOBS2 --subjects jobs2.> --no-progress")
    assert copy.config.retention == "workqueue" and copy.state.messages == 3
    assert magic(shell, "%stream view JOBS2")["data"].tolist() == ["j1", "j2", "j3"]
    assert magic(shell, f"%stream restore {tmp_path}/nothing") is None
    assert "no stream backup in" in capsys.readouterr().err
