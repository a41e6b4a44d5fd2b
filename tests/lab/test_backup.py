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


def test_snapshot_backup_and_restore_keep_sequences_times_and_consumer_state(lab_js, shell, tmp_path, capsys):
    """`--snapshot` is the server's own snapshot in natscli's layout; restore finds out which kind a directory
    holds. Misuse gets one line each."""
    magic(shell, "%stream add ORDERS --subjects orders.>")
    magic(shell, "%nats pub orders.new 'n{{Count}}' --count 30 --js -H source:test")
    pynats_lab.publish("orders.bin", b"\x00\xff\x10binary", js=True)
    s = pynats_lab.get_session()
    for seq in (4, 5, 31):
        s.run(s.js.delete_msg("ORDERS", seq))
    magic(shell, "%consumer add ORDERS worker --pull --filter orders.new")
    got = magic(shell, "%consumer next ORDERS worker --count 5 --no-ack")
    assert len(got) == 5
    magic(shell, "%consumer next ORDERS worker --count 2")
    before = pynats_lab.stream_frame("ORDERS", raw=True)
    worker_before = magic(shell, "%consumer info ORDERS worker")

    done = magic(shell, f"%stream backup ORDERS {tmp_path}/snap --snapshot --no-progress")
    assert done.messages == 28 and done.consumers == 1
    meta = json.loads((tmp_path / "snap" / "backup.json").read_text())
    assert set(meta) == {"config", "state"} and meta["config"]["name"] == "ORDERS"
    assert meta["state"]["last_seq"] == 31 and (tmp_path / "snap" / "stream.tar.s2").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["backup.json", "stream.tar.s2"]

    assert magic(shell, f"%stream restore {tmp_path}/snap --no-progress") is None
    assert "stream ORDERS already exists" in capsys.readouterr().err
    magic(shell, "%stream rm ORDERS")
    restored = magic(shell, f"%stream restore {tmp_path}/snap --no-progress")
    assert restored.state.messages == 28 and (restored.state.first_seq, restored.state.last_seq) == (1, 31)
    after = pynats_lab.stream_frame("ORDERS", raw=True)
    for column in ("seq", "subject", "data", "headers", "time"):
        assert after[column].tolist() == before[column].tolist(), column
    worker_after = magic(shell, "%consumer info ORDERS worker")
    def position(ci):
        return (ci.delivered.consumer_seq, ci.delivered.stream_seq, ci.ack_floor.consumer_seq,
                ci.ack_floor.stream_seq, ci.num_ack_pending, ci.num_pending)

    assert position(worker_after) == position(worker_before)
    assert worker_after.num_ack_pending == 5

    assert magic(shell, f"%stream restore {tmp_path}/snap --name OTHER --no-progress") is None
    assert "restores under its own name" in capsys.readouterr().err
    assert magic(shell, f"%stream backup ORDERS {tmp_path}/plain --no-consumers") is None
    assert "go with --snapshot" in capsys.readouterr().err
    assert magic(shell, f"%stream backup NOPE {tmp_path}/none --snapshot --no-progress") is None
    assert "stream not found" in capsys.readouterr().err
    assert not (tmp_path / "none" / "stream.tar.s2").exists()
