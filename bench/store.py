"""The file store at scale (issue 16 item 2), both servers side by side:

  a file stream of N x 1 KB messages (5,000,000 by default, `--quick` 200,000) on 100 subjects, published
  pipelined over a raw socket, paced by the PubAcks (20,000 in flight: the store's rate, not the client's); then
  - publish rate (msgs/s) and server RSS once stored                       target: embedded RSS < 1 GiB
  - restart with that store: seconds to "Server is ready", and RSS after it
  - random direct get by sequence from cold blocks (just restarted: nothing of the server's cache; the OS page
    cache may hold the files), p50 and p90 in µs
  - sequential read throughput: batched direct gets (`batch: 1000`) over the first M messages, msgs/s, and RSS
    after it (the embedded server's block cache fills to its limit)

    python -m bench store [--kinds nats-server,embedded] [--quick] [--messages N] [--gets 2000]
                          [--read 1000000] [--block-cache BYTES] [--dir PATH]

The store directories are deleted at the end. Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import KINDS, Server, table  # noqa: E402
from bench.jetstream import _fill_raw  # noqa: E402

SUBJECTS = 100
SIZE = 1024


async def _info(nc) -> dict:
    msg = await nc.request("$JS.API.STREAM.INFO.STORE", b"", timeout=30)
    return json.loads(msg.data)


async def _wait_stored(nc, n: int, timeout: float) -> dict:
    deadline = time.perf_counter() + timeout
    while True:
        info = await _info(nc)
        if info.get("state", {}).get("messages", 0) >= n or time.perf_counter() > deadline:
            return info
        await asyncio.sleep(0.2)


async def _create(url: str) -> None:
    import nats

    nc = await nats.connect(url)
    cfg = {"name": "STORE", "subjects": ["store.>"], "storage": "file", "allow_direct": True}
    reply = json.loads((await nc.request("$JS.API.STREAM.CREATE.STORE", json.dumps(cfg).encode(), timeout=10)).data)
    assert "error" not in reply, reply
    await nc.close()


async def _reads(url: str, n: int, gets: int, read: int, seed: int) -> dict:
    import nats

    nc = await nats.connect(url, pending_size=512 * 1024 * 1024)
    info = await _wait_stored(nc, n, 600)
    assert info["state"]["messages"] >= n, info
    first = info["state"]["first_seq"]
    rng = random.Random(seed)
    lat = []
    for _ in range(gets):
        seq = first + rng.randrange(n)
        t0 = time.perf_counter()
        msg = await nc.request("$JS.API.DIRECT.GET.STORE", json.dumps({"seq": seq}).encode(), timeout=10)
        lat.append(time.perf_counter() - t0)
        assert len(msg.data) == SIZE, (seq, msg.headers)
    lat.sort()

    # Sequential: batched direct gets, 1000 messages a request, the next one asked when a batch ends.
    done = asyncio.Event()
    state = {"got": 0, "next": first}
    inbox = nc.new_inbox()
    batch = 1000
    end = first + read

    async def on_msg(msg):
        if msg.headers and msg.headers.get("Status"):  # 204 end of batch (or an error)
            if state["next"] >= end or msg.headers.get("Status") != "204":
                done.set()
                return
            await ask()
            return
        state["got"] += 1

    async def ask():
        want = min(batch, end - state["next"])
        body = json.dumps({"seq": state["next"], "batch": want}).encode()
        state["next"] += want
        await nc.publish("$JS.API.DIRECT.GET.STORE", body, reply=inbox)

    await nc.subscribe(inbox, cb=on_msg)
    t0 = time.perf_counter()
    await ask()
    await asyncio.wait_for(done.wait(), 1800)
    elapsed = time.perf_counter() - t0
    await nc.close()
    return {"p50": lat[len(lat) // 2] * 1e6, "p90": lat[int(len(lat) * 0.9)] * 1e6,
            "seq_rate": state["got"] / elapsed, "seq_got": state["got"]}


def run_kind(kind: str, n: int, gets: int, read: int, block_cache: int | None, base: Path) -> dict:
    store = Path(tempfile.mkdtemp(prefix=f"bench-store-{kind}-", dir=base))
    args = ("-js", "-sd", str(store))
    if kind == "embedded" and block_cache is not None:
        args += ("--block_cache", str(block_cache))
    try:
        srv = Server(kind, store, args)
        try:
            asyncio.run(_create(srv.url))
            t0 = time.perf_counter()
            _fill_raw(srv.port, b"store", n, payload=b"m" * SIZE, subjects=SUBJECTS)

            async def stored():
                import nats
                nc = await nats.connect(srv.url)
                info = await _wait_stored(nc, n, 3600)
                await nc.close()
                return info

            info = asyncio.run(stored())
            publish_rate = n / (time.perf_counter() - t0)
            assert info["state"]["messages"] == n, info["state"]
            rss_stored = srv.rss_mib()
        finally:
            srv.stop()
        disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / (1 << 20)
        t0 = time.perf_counter()
        srv = Server(kind, store, args)
        try:
            ready = time.perf_counter() - t0
            rss_restarted = srv.rss_mib()
            reads = asyncio.run(_reads(srv.url, n, gets, min(read, n), 16))
            rss_read = srv.rss_mib()
        finally:
            srv.stop()
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return {"server": kind, "publish msgs/s": publish_rate, "store on disk, MiB": disk,
            "RSS once stored, MiB": rss_stored, "restart to ready, s": ready,
            "RSS after restart, MiB": rss_restarted,
            "random direct get p50 (cold), µs": reads["p50"], "random direct get p90 (cold), µs": reads["p90"],
            f"sequential read ({reads['seq_got']:,} msgs) msgs/s": reads["seq_rate"],
            "RSS after the reads, MiB": rss_read}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench store", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--quick", action="store_true", help="200,000 messages")
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--read", type=int, default=1_000_000, help="messages read sequentially")
    ap.add_argument("--block-cache", type=int, default=None, help="the embedded server's --block_cache")
    ap.add_argument("--dir", default=None, help="where the stores go (deleted after)")
    args = ap.parse_args(argv)
    n = args.messages or (200_000 if args.quick else 5_000_000)
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    print(f"file stream of {n:,} x {SIZE} B messages on {SUBJECTS} subjects; load {os.getloadavg()[0]:.1f}")
    rows = []
    for kind in args.kinds.split(","):
        rows.append(run_kind(kind, n, args.gets, args.read, args.block_cache, base))
        print(f"  {kind} done; load {os.getloadavg()[0]:.1f}", flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
