"""The embedded server's poll before sleeping (embedded_server/spin.py), A/B: counter increments sent one at a
time (publish, wait for the PubAck `val`, next) through nats-py, with the client and the server pinned to
different cores (`split`: every wake-up crosses cores, as on a quiet machine) or to one core (`same`: what the
kernel picks on a busy one), the embedded server with spinning off (window 0) and on (the default window).

    python -m bench spin [--place split,same] [--windows 0,200] [--repeat 3] [--count 1500] [--rt] [--nats-server]
                         [--workload counter|request]

`--workload request`: requests answered by a responder on a second connection of the client's process instead
(the server forwards the request and the answer: two round trips through it per request).

`--rt` (root) makes the client and the server SCHED_FIFO tasks for the measured increments only (a fraction of
a second each): on a shared machine that is the way to see what a quiet one would do. nats-server is left out
under `--rt` (its runtime's spinning threads, pinned to one core as FIFO tasks, starve each other). Prints
round trips/s, the server's CPU µs per round trip and the p10/p50/p90 round trip per window and placement; each
run alternates the windows. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import Server  # noqa: E402


def _place(pid: int, cpus: str, fifo: bool | None) -> None:
    """Pin every thread of `pid` to `cpus`; fifo True/False switches them to SCHED_FIFO / back to normal."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)
    if fifo is not None:
        policy = ["-f", "-p", "10"] if fifo else ["-o", "-p", "0"]
        subprocess.run(["chrt", "-a", *policy, str(pid)], check=True, stdout=subprocess.DEVNULL)


async def _round_trips(srv: Server, count: int, place: str, rt: bool, workload: str) -> dict:
    import nats

    nc = await nats.connect(srv.url)
    if workload == "counter":
        js = nc.jetstream()
        await nc.request("$JS.API.STREAM.CREATE.CTR", json.dumps({
            "name": "CTR", "subjects": ["ctr.>"], "storage": "memory", "allow_msg_counter": True}).encode(),
            timeout=10)
        incr = {"Nats-Incr": "1"}

        async def one():
            return await js.publish("ctr.a", b"", headers=incr)
    else:  # a request answered by a responder on a second connection of the same process, as bench core (c)
        responder = await nats.connect(srv.url)

        async def answer(msg):
            await msg.respond(msg.data)
        await responder.subscribe("svc", cb=answer)
        await responder.flush()

        async def one():
            return await nc.request("svc", b"x", timeout=10)
    for _ in range(300):  # warm up
        ack = await one()
    me, all_cpus = os.getpid(), ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    _place(me, "0", rt or None)
    _place(srv.proc.pid, "1" if place == "split" else "0", rt or None)
    try:
        lat = []
        c0, t0 = srv.cpu_seconds(), time.perf_counter()
        for _ in range(count):
            t1 = time.perf_counter()
            ack = await one()
            lat.append(time.perf_counter() - t1)
        elapsed, cpu = time.perf_counter() - t0, srv.cpu_seconds() - c0
    finally:
        _place(srv.proc.pid, all_cpus, False if rt else None)
        _place(me, all_cpus, False if rt else None)
    if workload == "counter":
        assert ack.val == str(300 + count), ack
    else:
        assert ack.data == b"x"
        await responder.close()
    await nc.close()
    lat.sort()
    return {"rate": count / elapsed, "cpu": cpu * 1e6 / count,
            **{f"p{q}": lat[len(lat) * q // 100] * 1e6 for q in (10, 50, 90)}}


def run_once(variant: str, count: int, place: str, rt: bool, workload: str) -> dict:
    env_before = os.environ.get("PYNATS_SERVER_SPIN_US")
    with tempfile.TemporaryDirectory() as tmp:
        if variant != "nats-server":
            os.environ["PYNATS_SERVER_SPIN_US"] = variant
        try:
            srv = Server("nats-server" if variant == "nats-server" else "embedded", Path(tmp), ("-js", "-sd", tmp))
        finally:
            if env_before is None:
                os.environ.pop("PYNATS_SERVER_SPIN_US", None)
            else:
                os.environ["PYNATS_SERVER_SPIN_US"] = env_before
        try:
            return asyncio.run(_round_trips(srv, count, place, rt, workload))
        finally:
            srv.stop()


def main(argv: list[str]) -> int:
    from embedded_server.spin import DEFAULT_WINDOW

    p = argparse.ArgumentParser(prog="python -m bench spin", description=__doc__.split("\n\n")[0])
    p.add_argument("--place", default="split,same", help="split (two cores), same (one core), or both")
    p.add_argument("--windows", default=f"0,{DEFAULT_WINDOW * 1e6:.0f}",
                   help="embedded spin windows to compare, µs (PYNATS_SERVER_SPIN_US; 0 = off)")
    p.add_argument("--repeat", type=int, default=3, help="runs per window and placement (default 3)")
    p.add_argument("--count", type=int, default=1500, help="increments measured per run (default 1500)")
    p.add_argument("--workload", choices=("counter", "request"), default="counter",
                   help="counter increments (default), or requests answered by a second connection")
    p.add_argument("--rt", action="store_true", help="SCHED_FIFO for the measured increments (needs root)")
    p.add_argument("--nats-server", action="store_true", help="also nats-server (not with --rt)")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        p.error("needs two cores")
    if args.rt and args.nats_server:
        p.error("--rt leaves nats-server out (its spinning threads starve each other as FIFO tasks on one core)")
    variants = (["nats-server"] if args.nats_server else []) + [w for w in args.windows.split(",") if w]
    rows = []
    for place in [x for x in args.place.split(",") if x]:
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(max(args.repeat, 1)):
            for v in variants:
                runs[v].append(run_once(v, args.count, place, args.rt, args.workload))
        for v in variants:
            rs = runs[v]
            rows.append({"server": f"{place}, " + (v if v == "nats-server" else f"embedded, spin {v} µs"),
                         "round trips/s (best)": max(r["rate"] for r in rs),
                         "server CPU µs per round trip (least)": min(r["cpu"] for r in rs),
                         **{f"round trip p{q} µs (median run)": sorted(r[f"p{q}"] for r in rs)[len(rs) // 2]
                            for q in (10, 50, 90)}})
    print(os.popen("uptime").read().strip())
    print(_rows(rows))
    return 0


def _rows(rows: list[dict]) -> str:
    keys = list(rows[0])
    widths = [max(len(k), *(len(_fmt(r[k])) for r in rows)) for k in keys]
    lines = ["  ".join(k.ljust(w) if i == 0 else k.rjust(w) for i, (k, w) in enumerate(zip(keys, widths)))]
    for r in rows:
        lines.append("  ".join(_fmt(r[k]).ljust(w) if i == 0 else _fmt(r[k]).rjust(w)
                               for i, (k, w) in enumerate(zip(keys, widths))))
    return "\n".join(lines)


def _fmt(v) -> str:
    return v if isinstance(v, str) else f"{v:,.0f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
