"""JetStream targets (issue 3 §7), both servers side by side, file and memory storage, with ratios:

  (a) synchronous publish through nats-py, 128-byte messages, p50 and p99     target: p50 ≤ 1.3x nats-server
  (b) async publish (publish_async, acks gathered), msgs/s                   target: ≥ 0.8x
  (c) pull fetch (batch 100) + ack of every message, msgs/s                  target: ≥ 0.8x
  (d) KV put and KV get, ops/s
  (e) direct get of a random sequence in a 1,000,000-message stream, gets/s and p50
  (f) resident memory of the server holding a 1,000,000 x 128-byte memory stream   target: embedded < 600 MB
  (g) a file mirror catching up the 1,000,000-message file stream, msgs/s      target: ≥ 0.5x
  (h) counter increments (`Nats-Incr: 1`, no payload) with their PubAck `val`: one at a time, and
      pipelined (publish_async), increments/s                                  target: ≥ 0.8x
  (i) atomic batch publish (`allow_atomic`), batches of 100 x 128 B, the first and the commit as requests,
      msgs/s                                                                   target: ≥ 0.8x
  (j) fast batch publish (`allow_batched`), one batch of the whole count, flow window 100, the publisher
      keeping at most two windows unacknowledged, msgs/s                       target: ≥ 0.8x

    python -m bench jetstream [--kinds nats-server,embedded] [--repeat 3] [--quick] [--only g|h]

Every workload runs `--repeat` times per server, alternating servers, and the best run counts (the machine
is shared: the best run is the least disturbed one). Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import KINDS, Server, _raw_connect, table  # noqa: E402

PAYLOAD = b"x" * 128


async def _publish_and_fetch(url: str, storage: str, sync_n: int, async_n: int) -> dict:
    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    await js.add_stream(name="BENCH", subjects=["bench.js"], storage=storage)
    for _ in range(200):  # warm up
        await js.publish("bench.js", PAYLOAD)
    lat = []
    for _ in range(sync_n):
        t0 = time.perf_counter()
        await js.publish("bench.js", PAYLOAD)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    await js.purge_stream("BENCH")
    t0 = time.perf_counter()
    futures = [await js.publish_async("bench.js", PAYLOAD, wait_stall=10) for _ in range(async_n)]
    await asyncio.gather(*futures)
    async_rate = async_n / (time.perf_counter() - t0)
    psub = await js.pull_subscribe("bench.js", durable="BENCHC", stream="BENCH")
    got = 0
    t0 = time.perf_counter()
    while got < async_n:
        msgs = await psub.fetch(100, timeout=10)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    fetch_rate = got / (time.perf_counter() - t0)
    await js.delete_stream("BENCH")
    await nc.close()
    return {"p50": lat[len(lat) // 2] * 1e6, "p99": lat[int(len(lat) * 0.99)] * 1e6,
            "async": async_rate, "fetch": fetch_rate}


async def _kv(url: str, storage: str, n: int) -> dict:
    import nats
    from nats.js.api import KeyValueConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="benchkv", storage=storage, direct=True))
    t0 = time.perf_counter()
    for i in range(n):
        await kv.put(f"k{i % 100}", PAYLOAD)
    put_rate = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n):
        await kv.get(f"k{i % 100}")
    get_rate = n / (time.perf_counter() - t0)
    await js.delete_key_value("benchkv")
    await nc.close()
    return {"put": put_rate, "get": get_rate}


def _fill_raw(port: int, subject: bytes, count: int, window: int = 20_000, payload: bytes = PAYLOAD,
              subjects: int = 0) -> None:
    """Publish `count` messages on one pipelined socket, at most `window` of them waiting for their PubAck
    (a server may drop what it cannot take in, so acks pace the sender). With `subjects`, message i goes to
    `<subject>.<i % subjects>`."""
    s = _raw_connect(port)
    s.sendall(b"SUB _BENCHFILL.* 1\r\n")
    names = [subject + b".%d" % i for i in range(subjects)] if subjects else [subject]
    frames = [b"PUB %s _BENCHFILL.a %d\r\n%s\r\n" % (name, len(payload), payload) for name in names]
    cycle = b"".join(frames)
    per = max(1000 // len(names), 1) * len(names)
    sent = acked = 0
    buf = b""
    while acked < count:
        if sent < count and sent - acked < window:
            n = min(per, count - sent)
            whole, rest = divmod(n, len(names))
            s.sendall(cycle * whole + b"".join(frames[:rest]))
            sent += n
            continue
        buf += s.recv(1 << 20)
        cut = buf.rfind(b"\r\n") + 2
        acked += buf.count(b"MSG _BENCHFILL", 0, cut)
        buf = buf[cut:]
    s.close()


async def _direct_gets(url: str, stream: str, count: int, n: int) -> dict:
    import nats

    nc = await nats.connect(url)
    rng = random.Random(7)
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        seq = rng.randint(1, count)
        t1 = time.perf_counter()
        msg = await nc.request(f"$JS.API.DIRECT.GET.{stream}", b'{"seq":%d}' % seq, timeout=5)
        lat.append(time.perf_counter() - t1)
        assert msg.headers and msg.headers.get("Nats-Sequence") == str(seq)
    rate = n / (time.perf_counter() - t0)
    await nc.close()
    lat.sort()
    return {"rate": rate, "p50": lat[len(lat) // 2] * 1e6}


async def _create(url: str, name: str, storage: str) -> None:
    import nats

    nc = await nats.connect(url)
    await nc.jetstream().add_stream(name=name, subjects=[f"big.{storage}"], storage=storage, allow_direct=True)
    await nc.close()


async def _mirror_catch_up(url: str, origin: str, count: int) -> float:
    """Create a file mirror of `origin` (holding `count` messages) and time it until it holds them all."""
    import json

    import nats

    nc = await nats.connect(url)
    t0 = time.perf_counter()
    await nc.request(f"$JS.API.STREAM.CREATE.MIRROR{origin}",
                     json.dumps({"name": f"MIRROR{origin}", "mirror": {"name": origin}}).encode(), timeout=10)
    while True:
        msg = await nc.request(f"$JS.API.STREAM.INFO.MIRROR{origin}", b"", timeout=10)
        if json.loads(msg.data)["state"]["messages"] >= count:
            break
        await asyncio.sleep(0.01)
    rate = count / (time.perf_counter() - t0)
    await nc.close()
    return rate


async def _counters_and_batches(url: str, storage: str, sync_n: int, async_n: int, batch_n: int, cpu) -> dict:
    """Rates, and the server's CPU µs per message of each (`cpu()` reads the server's CPU seconds): on a busy
    machine a rate through nats-py mostly measures who got the cores, the CPU per message what the server does."""
    import json

    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    out = {}
    await nc.request("$JS.API.STREAM.CREATE.CTR", json.dumps({
        "name": "CTR", "subjects": ["ctr.>"], "storage": storage, "allow_msg_counter": True}).encode(), timeout=10)
    incr = {"Nats-Incr": "1"}
    for _ in range(200):  # warm up
        await js.publish("ctr.a", b"", headers=incr)
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(sync_n):
        ack = await js.publish("ctr.a", b"", headers=incr)
    out["incr"] = sync_n / (time.perf_counter() - t0)
    out["incr_cpu"] = (cpu() - c0) * 1e6 / sync_n
    assert ack.val == str(200 + sync_n), ack
    c0, t0 = cpu(), time.perf_counter()
    futures = [await js.publish_async("ctr.b", b"", headers=incr, wait_stall=10) for _ in range(async_n)]
    acks = await asyncio.gather(*futures)
    out["incr_async"] = async_n / (time.perf_counter() - t0)
    out["incr_async_cpu"] = (cpu() - c0) * 1e6 / async_n
    assert max(int(a.val) for a in acks) == async_n

    await nc.request("$JS.API.STREAM.CREATE.BAT", json.dumps({
        "name": "BAT", "subjects": ["bat.>"], "storage": storage, "allow_atomic": True,
        "allow_batched": True}).encode(), timeout=10)
    size = 100
    c0, t0 = cpu(), time.perf_counter()
    for b in range(batch_n // size):
        bid = f"b{b}"
        for seq in range(1, size + 1):
            h = {"Nats-Batch-Id": bid, "Nats-Batch-Sequence": str(seq)}
            if seq == size:
                h["Nats-Batch-Commit"] = "1"
            if seq == 1 or seq == size:
                reply = await nc.request("bat.a", PAYLOAD, headers=h, timeout=10)
            else:
                await nc.publish("bat.a", PAYLOAD, headers=h)
        assert json.loads(reply.data).get("count") == size, reply.data
    out["atomic"] = batch_n // size * size / (time.perf_counter() - t0)
    out["atomic_cpu"] = (cpu() - c0) * 1e6 / (batch_n // size * size)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox + ".>")
    flow, acked = 100, 0
    c0, t0 = cpu(), time.perf_counter()
    for seq in range(1, batch_n + 1):
        op = 0 if seq == 1 else (2 if seq == batch_n else 1)
        await nc.publish("bat.f", PAYLOAD, reply=f"{inbox}.fast.{flow}.fail.{seq}.{op}.$FI")
        while seq - acked >= 2 * flow or (seq == batch_n and acked < seq):
            answer = json.loads((await sub.next_msg(10)).data)
            if answer.get("type") == "ack":
                acked, flow = max(acked, answer["seq"]), answer["msgs"]
            elif "batch" in answer:
                assert answer["count"] == batch_n, answer
                acked = seq
            else:
                raise AssertionError(answer)
    out["fast"] = batch_n / (time.perf_counter() - t0)
    out["fast_cpu"] = (cpu() - c0) * 1e6 / batch_n
    for name in ("CTR", "BAT"):
        await nc.request(f"$JS.API.STREAM.DELETE.{name}", b"", timeout=10)
    await nc.close()
    return out


def run_once(kind: str, quick: bool, only: str = "") -> dict:
    sync_n, async_n, kv_n = (500, 5_000, 500) if quick else (2_000, 50_000, 2_000)
    batch_n = 10_000 if quick else 100_000
    big, gets = (100_000, 1_000) if quick else (1_000_000, 5_000)
    out: dict = {"file": {}, "memory": {}}
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(kind, Path(tmp), ("-js", "-sd", str(Path(tmp) / "store")))
        try:
            if only == "h" or not only:
                for storage in ("file", "memory"):
                    out[storage].update(asyncio.run(_counters_and_batches(srv.url, storage, sync_n, async_n, batch_n,
                                                                             srv.cpu_seconds)))
            if only == "h":
                return out
            if not only:
                for storage in ("file", "memory"):
                    out[storage].update(asyncio.run(_publish_and_fetch(srv.url, storage, sync_n, async_n)))
                    out[storage].update(asyncio.run(_kv(srv.url, storage, kv_n)))
            for storage in ("memory", "file"):
                if only and storage == "memory":
                    continue
                name = f"BIG{storage.upper()}"
                asyncio.run(_create(srv.url, name, storage))
                _fill_raw(srv.port, f"big.{storage}".encode(), big)
                if storage == "memory":
                    out["rss_big"] = srv.rss_mib()
                if not only:
                    out[storage]["dget"] = asyncio.run(_direct_gets(srv.url, name, big, gets))
            out["mirror"] = asyncio.run(_mirror_catch_up(srv.url, "BIGFILE", big))
        finally:
            srv.stop()
    return out


def run(kinds: list[str], repeat: int, quick: bool, only: str = "") -> list[dict]:
    from tqdm import tqdm

    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    steps = [k for _ in range(repeat) for k in kinds]
    for kind in tqdm(steps, desc="jetstream bench", unit="run"):
        runs[kind].append(run_once(kind, quick, only))
    rows = []
    big = "100k" if quick else "1M"
    for kind in kinds:
        rs = runs[kind]
        row = {"server": kind}
        for st in ("file", "memory") if only in ("", "h") else ():
            for key, label in (("incr", "(h) {}: counter increments"), ("incr_async", "(h) {}: pipelined increments"),
                               ("atomic", "(i) {}: atomic batch"), ("fast", "(j) {}: fast batch")):
                row[label.format(st) + ", msgs/s"] = max(r[st][key] for r in rs)
                row[label.format(st) + ": server CPU per message, µs"] = min(r[st][key + "_cpu"] for r in rs)
        for st in ("file", "memory") if not only else ():
            row[f"(a) {st}: sync publish p50 µs"] = min(r[st]["p50"] for r in rs)
            row[f"(a) {st}: sync publish p99 µs"] = min(r[st]["p99"] for r in rs)
            row[f"(b) {st}: async publish msgs/s"] = max(r[st]["async"] for r in rs)
            row[f"(c) {st}: fetch+ack msgs/s"] = max(r[st]["fetch"] for r in rs)
            row[f"(d) {st}: KV put ops/s"] = max(r[st]["put"] for r in rs)
            row[f"(d) {st}: KV get ops/s"] = max(r[st]["get"] for r in rs)
            row[f"(e) {st}: direct get in {big}, gets/s"] = max(r[st]["dget"]["rate"] for r in rs)
            row[f"(e) {st}: direct get in {big}, p50 µs"] = min(r[st]["dget"]["p50"] for r in rs)
        if not only:
            row[f"(f) RSS with {big} x 128 B in memory, MiB"] = min(r["rss_big"] for r in rs)
        if only != "h":
            row[f"(g) mirror catching up {big}, msgs/s"] = max(r["mirror"] for r in rs)
        rows.append(row)
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench jetstream", description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS), help="servers to compare (default: both)")
    p.add_argument("--repeat", type=int, default=3, help="runs per server; the best one counts (default 3)")
    p.add_argument("--quick", action="store_true", help="smaller counts (100k-message stream), for a smoke run")
    p.add_argument("--only", choices=("g", "h"), default="",
                   help="run some workloads: g = mirror catch-up, h = counters and batches (h, i, j)")
    args = p.parse_args(argv)
    rows = run([k for k in args.kinds.split(",") if k], max(args.repeat, 1), args.quick, args.only)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
