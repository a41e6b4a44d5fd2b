"""`python -m bench clients`: many connected nats-py clients (issue 16, item 4), both servers side by side.

N nats-py clients (1,000 by default) each subscribe to S subjects (10 by default) of a pool of 100
(`many.0` … `many.99`, spread so that every subject has N*S/100 subscribers), then one nats-py publisher sends
M messages over the pool in turn; every client counts what it receives. Reported per server: the time to
connect and subscribe everyone, server RSS before the clients, with them connected and after the messages,
delivered msgs/s (first publish to last delivery) and the server's CPU time per delivered message.

    python -m bench clients [--clients 1000] [--subs 10] [--messages 2000] [--repeat 1] [--quick]
                            [--profile FILE]

`--profile FILE` runs the embedded server under cProfile, as `python -m bench core --profile` does.

All clients live in this one process on one event loop, so the delivered rate is bound by nats-py's reading
(a Python callback per delivered message) as much as by the server; the server CPU per message and the RSS
are the server's own. Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.core import KINDS, Server, print_results, profiled_embedded

POOL = 100


async def _connect_all(url: str, clients: int, subs: int, on_msg) -> tuple[list, float]:
    import nats

    async def one(i: int):
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=30)
        for j in range(subs):
            await nc.subscribe(f"many.{(i * subs + j) % POOL}", cb=on_msg)
        await nc.flush(timeout=30)
        return nc

    t0 = time.perf_counter()
    conns = []
    for start in range(0, clients, 50):  # 50 handshakes at a time: a loaded machine times out a thousand at once
        conns += await asyncio.gather(*(one(i) for i in range(start, min(start + 50, clients))))
    return conns, time.perf_counter() - t0


async def _workload(srv: Server, clients: int, subs: int, messages: int, size: int) -> dict:
    import nats

    per_subject = [0] * POOL
    for i in range(clients):
        for j in range(subs):
            per_subject[(i * subs + j) % POOL] += 1
    expected = sum(per_subject[k % POOL] for k in range(messages))
    received = 0
    done = asyncio.Event()

    async def on_msg(_msg) -> None:
        nonlocal received
        received += 1
        if received == expected:
            done.set()

    rss_before = srv.rss_mib()
    conns, connect_s = await _connect_all(srv.url, clients, subs, on_msg)
    await asyncio.sleep(0.5)
    rss_connected = srv.rss_mib()
    pub = await nats.connect(srv.url, allow_reconnect=False, pending_size=64 * 1024 * 1024)
    payload = b"x" * size
    cpu = srv.cpu_seconds()
    t0 = time.perf_counter()
    for k in range(messages):
        await pub.publish(f"many.{k % POOL}", payload)
        if k % 200 == 199:
            await asyncio.sleep(0)
    await pub.flush(timeout=60)
    try:
        await asyncio.wait_for(done.wait(), 300)
    except asyncio.TimeoutError:
        raise RuntimeError(f"only {received:,} of {expected:,} messages delivered in 300 s") from None
    elapsed = time.perf_counter() - t0
    cpu = srv.cpu_seconds() - cpu
    rss_after = srv.rss_mib()
    for start in range(0, len(conns), 100):
        await asyncio.gather(*(nc.close() for nc in conns[start:start + 100]))
    await pub.close()
    return {"connect": connect_s, "rate": expected / elapsed, "cpu": cpu / expected * 1e6,
            "rss_before": rss_before, "rss_connected": rss_connected, "rss_after": rss_after,
            "delivered": expected}


def run(kinds: list[str], repeat: int, clients: int, subs: int, messages: int, size: int,
        profile: Path | None = None) -> list[dict]:
    from tqdm import tqdm

    results: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for _, kind in tqdm([(r, k) for r in range(repeat) for k in kinds], desc="clients bench", unit="run"):
            command = profiled_embedded(profile) if profile and kind == "embedded" else None
            srv = Server(kind, Path(tmp), command=command)
            try:
                time.sleep(0.3)
                results[kind].append(asyncio.run(_workload(srv, clients, subs, messages, size)))
            finally:
                srv.stop()
    rows = []
    for kind in kinds:
        runs = results[kind]
        rows.append({
            "server": kind,
            f"connect + subscribe {clients:,} clients x {subs} subs, s": min(r["connect"] for r in runs),
            f"delivered msgs/s ({runs[0]['delivered']:,} deliveries)": max(r["rate"] for r in runs),
            "server CPU per delivered message, µs": statistics.median(r["cpu"] for r in runs),
            "RSS before the clients, MiB": statistics.median(r["rss_before"] for r in runs),
            f"RSS with {clients:,} clients connected, MiB": max(r["rss_connected"] for r in runs),
            "RSS after the messages, MiB": max(r["rss_after"] for r in runs),
        })
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench clients", description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS), help="servers to compare (default: both)")
    p.add_argument("--clients", type=int, default=1000, help="nats-py clients (default 1000)")
    p.add_argument("--subs", type=int, default=10, help="subscriptions per client (default 10)")
    p.add_argument("--messages", type=int, default=2000, help="messages published (default 2000)")
    p.add_argument("--size", type=int, default=128, help="payload bytes (default 128)")
    p.add_argument("--repeat", type=int, default=1, help="runs per server; the best one counts (default 1)")
    p.add_argument("--quick", action="store_true", help="300 messages, for a smoke run")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="run the embedded server under cProfile, write its statistics to FILE, print the top")
    args = p.parse_args(argv)
    if min(args.clients, args.subs, args.messages, args.repeat) < 1 or args.size < 0:
        p.error("--clients, --subs, --messages and --repeat must be at least 1, --size at least 0")
    kinds = [k for k in args.kinds.split(",") if k]
    messages = 300 if args.quick else args.messages
    print_results(run(kinds, args.repeat, args.clients, args.subs, messages, args.size, args.profile), kinds,
                  args.profile)
    return 0
