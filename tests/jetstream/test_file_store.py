"""The embedded server's file store on disk: checksummed records, a torn tail cut off with a warning, corruption
in the middle reported loudly without deleting anything, unreadable metadata leaving the stream untouched.

The on-disk format is the embedded server's own, so these run on the embedded kind only.
"""
import os
import pathlib

import pytest

from .helpers import api, connected, run, streams_dir


def _stream_dir(server) -> pathlib.Path:
    return streams_dir(server) / "S"


async def _fill(server, n=10, size=100):
    async with connected(server) as (nc, js):
        await js.add_stream(name="S", subjects=["s"])
        for i in range(n):
            await js.publish("s", bytes([65 + i % 26]) * size)


async def _state(server):
    async with connected(server) as (nc, js):
        return (await api(nc, "$JS.API.STREAM.INFO.S"))


def test_a_torn_tail_is_cut_off_with_a_warning_and_its_sequence_not_reused(embedded_js):
    """A record cut short at the end of the newest block is an interrupted write: cut off with a warning. The
    state file had recorded its sequence, so it is reported lost and the next message does not get it."""
    run(_fill(embedded_js))
    embedded_js.kill()
    block = _stream_dir(embedded_js) / "msgs" / "1.blk"
    size = block.stat().st_size
    with open(block, "r+b") as f:
        f.truncate(size - 7)
    embedded_js.start()
    info = run(_state(embedded_js))
    assert info["state"]["messages"] == 9 and info["state"]["last_seq"] == 10
    assert info["state"]["lost"]["msgs"] == [10]
    assert "[WRN]" in embedded_js.logs and "torn record" in embedded_js.logs
    assert "[ERR]" in embedded_js.logs and "1 message(s) lost (sequences 10)" in embedded_js.logs
    assert block.stat().st_size < size - 7

    async def publish():
        async with connected(embedded_js) as (nc, js):
            return (await js.publish("s", b"after")).seq

    assert run(publish()) == 11


def test_corruption_in_the_middle_is_reported_and_kept_on_disk(embedded_js):
    run(_fill(embedded_js))
    embedded_js.stop()
    block = _stream_dir(embedded_js) / "msgs" / "1.blk"
    raw = bytearray(block.read_bytes())
    record = len(raw) // 10
    raw[record * 4 + record // 2] ^= 0xFF
    block.write_bytes(bytes(raw))
    embedded_js.start()
    info = run(_state(embedded_js))
    st = info["state"]
    assert st["messages"] == 9 and st["first_seq"] == 1 and st["last_seq"] == 10
    assert st["lost"]["msgs"] == [5] and st["lost"]["bytes"] > 0
    assert "[ERR]" in embedded_js.logs and "corrupt record" in embedded_js.logs
    assert block.read_bytes() == bytes(raw)


def test_a_flipped_byte_in_the_last_record_is_corruption_not_a_torn_write(embedded_js):
    """The newest record is complete in length but fails its checksum: it was written whole and damaged later,
    so it is reported lost (not cut as a torn write), the file is kept, and its sequence is not handed out again."""
    run(_fill(embedded_js))
    embedded_js.kill()
    block = _stream_dir(embedded_js) / "msgs" / "1.blk"
    raw = bytearray(block.read_bytes())
    raw[-20] ^= 0x01
    block.write_bytes(bytes(raw))
    embedded_js.start()

    async def after():
        async with connected(embedded_js) as (nc, js):
            info = await api(nc, "$JS.API.STREAM.INFO.S")
            return info["state"], (await js.publish("s", b"after")).seq

    state, seq = run(after())
    assert (state["messages"], state["last_seq"], state["lost"]["msgs"]) == (9, 10, [10]) and seq == 11
    assert "[ERR]" in embedded_js.logs and "1 message(s) lost (sequences 10): corrupt record" in embedded_js.logs
    store_lines = [line for line in embedded_js.logs.splitlines() if "Stream store" in line]
    assert len(store_lines) == 1 and "[ERR]" in store_lines[0], store_lines  # once, as a server log line
    assert "torn" not in embedded_js.logs
    assert block.read_bytes() == bytes(raw), "the damaged block is kept as it is"


def test_unreadable_metadata_moves_the_stream_aside(embedded_js):
    run(_fill(embedded_js, n=3))
    embedded_js.stop()
    blocks = (_stream_dir(embedded_js) / "msgs" / "1.blk").read_bytes()
    meta = _stream_dir(embedded_js) / "meta.inf"
    meta.write_bytes(meta.read_bytes().replace(b'"S"', b'"T"', 1))
    embedded_js.start()

    async def names():
        async with connected(embedded_js) as (nc, js):
            return (await api(nc, "$JS.API.STREAM.NAMES"))["streams"]

    assert run(names()) is None
    assert "[ERR]" in embedded_js.logs and 'Error recreating stream "S"' in embedded_js.logs
    assert not _stream_dir(embedded_js).exists()
    aside = list((_stream_dir(embedded_js).parent.parent / "unloadable").glob("S.*"))
    assert len(aside) == 1 and (aside[0] / "msgs" / "1.blk").read_bytes() == blocks, "kept, untouched"


def test_sync_always_from_the_config_file(start_server, server_kind, tmp_path):
    if server_kind != "embedded":
        pytest.skip("the on-disk format is the embedded server's own")
    store = tmp_path / "store"
    server = start_server(config=f'jetstream {{ store_dir: "{store}", sync_interval: always }}')
    assert "always" in server.logs

    async def publish():
        async with connected(server) as (nc, js):
            await js.add_stream(name="S", subjects=["s"])
            return (await js.publish("s", b"durable")).seq

    assert run(publish()) == 1
    assert os.path.getsize(store / "jetstream" / "$G" / "streams" / "S" / "msgs" / "1.blk") > 0


async def _consume(server, fetch: int, ack: int):
    """Fetch `fetch` messages with durable C (created on first use) and ack the first `ack` of them."""
    async with connected(server) as (nc, js):
        psub = await js.pull_subscribe("s", durable="C", stream="S")
        msgs = await psub.fetch(fetch, timeout=2) if fetch else []
        for m in msgs[:ack]:
            await m.ack_sync()
        return [m.metadata.sequence.stream for m in msgs]


async def _ack_floor(server):
    async with connected(server) as (nc, js):
        return (await js.consumer_info("S", "C")).ack_floor.stream_seq


def _slots(server) -> dict[int, bytes]:
    obs = _stream_dir(server) / "obs" / "C"
    return {int(p.name.split(".")[1]): p.read_bytes() for p in obs.glob("o.*.dat")}


def _newest(slots: dict[int, bytes]) -> int:
    return max(slots, key=lambda i: int(slots[i].split(b" ")[1]))


def test_a_torn_consumer_state_falls_back_to_the_state_before(embedded_js):
    run(_fill(embedded_js))
    assert run(_consume(embedded_js, 3, 3)) == [1, 2, 3]
    embedded_js.stop()
    embedded_js.start()
    assert run(_consume(embedded_js, 2, 2)) == [4, 5]
    embedded_js.stop()
    slots = _slots(embedded_js)
    assert sorted(slots) == [0, 1]
    newest = _newest(slots)
    obs = _stream_dir(embedded_js) / "obs" / "C"
    (obs / f"o.{newest}.dat").write_bytes(slots[newest][:-5])  # a write cut short by a power loss
    embedded_js.start()
    floor = run(_ack_floor(embedded_js))
    assert 3 <= floor < 5, "the state before the torn one"
    assert run(_consume(embedded_js, 10, 10))[0] == floor + 1, "what it had not recorded is delivered again"
    embedded_js.stop()
    for i in (0, 1):
        (obs / f"o.{i}.dat").write_bytes(b"garbage")
    embedded_js.start()
    assert "[ERR]" in embedded_js.logs and 'Error recreating consumer "C"' in embedded_js.logs
    aside = list((_stream_dir(embedded_js) / "unloadable").glob("C.*"))
    assert len(aside) == 1 and (aside[0] / "o.0.dat").read_bytes() == b"garbage", "kept aside, untouched"


def test_a_consumer_state_of_the_single_file_format_is_read(embedded_js):
    run(_fill(embedded_js))
    run(_consume(embedded_js, 4, 4))
    embedded_js.stop()
    slots = _slots(embedded_js)
    head, _, data = slots[_newest(slots)].partition(b"\n")
    obs = _stream_dir(embedded_js) / "obs" / "C"
    for i in slots:
        (obs / f"o.{i}.dat").unlink()
    (obs / "o.dat").write_bytes(head.split(b" ")[0] + b"\n" + data[:int(head.split(b" ")[2])])
    embedded_js.start()
    assert run(_ack_floor(embedded_js)) == 4
    run(_consume(embedded_js, 1, 1))
    embedded_js.stop()
    assert not (obs / "o.dat").exists() and _slots(embedded_js), "rewritten in the slot format"
