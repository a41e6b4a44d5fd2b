"""Where a slow request/reply round trip comes from: `python -m bench core`'s (c) (a requester and a responder on
two nats-py connections of one process, one request at a time) with every round trip's latency kept, beside
what happened meanwhile:

  - the server's cyclic garbage collections and its event loop callbacks longer than 100 µs (embedded server
    only: it runs under bench/_tailprobe.py, which records them),
  - the client process's own garbage collections,
  - how long the server's main thread and the client's thread waited for a CPU during the round trip
    (run-queue delay from /proc/PID/schedstat, read just before and after each round trip, outside its timing).

    python -m bench tail [--kinds nats-server,embedded] [--repeat 3] [--count 20000] [--no-schedstat]
                         [--preload N] [--freeze 1,0]

`--preload N`: each server first gets a file stream of N messages, a subject each, and is restarted on it.
`--freeze 1,0`: the embedded server once with and once without its start-up freeze (embedded_server/
collector.py; PYNATS_SERVER_GC_FREEZE).

Prints p50/p90/p99/p99.9/max per server (each repeat's own, then all repeats pooled) and, for the round trips
above the pooled p99 and p99.9 of each server, how many overlapped each kind of event and how much of their excess
(latency minus p50) those events account for. Both servers alternate in one run. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import bisect
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._tailprobe import GcLog  # noqa: E402
from bench.core import Server  # noqa: E402
from pynats_lab.session import flush  # noqa: E402
from tests.servers import server_command  # noqa: E402

WAIT = 50_000  # ns of run-queue delay in a round trip that count as "waited for a CPU"


def _schedstat(fds: list[int]) -> int:
    """Nanoseconds the threads have waited on a run queue so far."""
    return sum(int(os.pread(fd, 100, 0).split()[1]) for fd in fds)


def _thread_fds(pid: int) -> list[int]:
    return [os.open(f"/proc/{pid}/task/{tid}/schedstat", os.O_RDONLY) for tid in os.listdir(f"/proc/{pid}/task")]


def round_trips(srv: Server, count: int, use_schedstat: bool) -> dict:
    import nats

    clock = time.perf_counter_ns
    client_gc = GcLog()

    async def go() -> dict:
        responder = await nats.connect(srv.url)
        requester = await nats.connect(srv.url)

        async def answer(msg) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bench.rr", cb=answer)
        await flush(responder)
        for _ in range(200):
            await requester.request("bench.rr", b"ping", timeout=5)
        srv_fd = _thread_fds(srv.proc.pid) if use_schedstat else []
        me_fd = [os.open(f"/proc/self/task/{os.getpid()}/schedstat", os.O_RDONLY)] if use_schedstat else []
        t0s, lats, srv_wait, me_wait = [], [], [], []
        gc.callbacks.append(client_gc)
        try:
            for _ in range(count):
                if use_schedstat:
                    s0, m0 = _schedstat(srv_fd), _schedstat(me_fd)
                t0 = clock()
                await requester.request("bench.rr", b"ping", timeout=5)
                t1 = clock()
                t0s.append(t0)
                lats.append(t1 - t0)
                if use_schedstat:
                    srv_wait.append(_schedstat(srv_fd) - s0)
                    me_wait.append(_schedstat(me_fd) - m0)
        finally:
            gc.callbacks.remove(client_gc)
            for fd in srv_fd + me_fd:
                os.close(fd)
        await requester.close()
        await responder.close()
        return {"t0": t0s, "lat": lats, "srv_wait": srv_wait, "me_wait": me_wait, "client_gc": client_gc.events}

    return asyncio.run(go())


def preload(srv: Server, count: int) -> None:
    """A file stream on `load.>` with `count` messages of 100 bytes, each on its own subject (a KV bucket's
    shape), published pipelined over a raw socket and checked through the stream's state."""
    import socket

    s = socket.create_connection(("127.0.0.1", srv.port))
    s.recv(4096)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    body = json.dumps({"name": "LOAD", "subjects": ["load.>"], "storage": "file"}).encode()
    s.sendall(b"SUB _r 1\r\nPUB $JS.API.STREAM.CREATE.LOAD _r %d\r\n%s\r\nPING\r\n" % (len(body), body))
    buf = b""
    while b"PONG" not in buf or b"MSG _r" not in buf:
        buf += s.recv(65536)
    payload = b"x" * 100
    for start in range(0, count, 10_000):
        s.sendall(b"".join(b"PUB load.%d 100\r\n%s\r\n" % (i, payload)
                           for i in range(start, min(count, start + 10_000))))
    while True:
        s.sendall(b"PUB $JS.API.STREAM.INFO.LOAD _r 0\r\n\r\n")
        buf = b""
        while b"}\r\n" not in buf:
            buf += s.recv(65536)
        state = json.loads(buf[buf.index(b"{"):buf.rindex(b"}") + 1])
        if state.get("state", {}).get("messages") == count:
            break
        time.sleep(0.2)
    s.close()


def percentiles(lats: list[int]) -> dict:
    s = sorted(lats)
    n = len(s)
    return {"p50": s[n // 2] / 1e3, "p90": s[int(n * 0.9)] / 1e3, "p99": s[int(n * 0.99)] / 1e3,
            "p99.9": s[int(n * 0.999)] / 1e3, "max": s[-1] / 1e3}


def _overlaps(t0: int, t1: int, events: list[tuple]) -> int:
    """Nanoseconds of [t0, t1] covered by events (start, length, ...)."""
    return sum(max(0, min(t1, s + d) - max(t0, s)) for s, d, *_ in events)


def attribute(runs: list[dict], p50: float, p99: float) -> dict:
    """For the round trips above p99 (µs): how many overlapped each kind of event, and the share of their
    excess over p50 that the overlap covers."""
    causes = {"server gc": 0, "server long callback": 0, "client gc": 0, "server waited for CPU": 0,
              "client waited for CPU": 0, "none of these": 0}
    covered = {k: 0.0 for k in causes}
    slow = 0
    excess_total = 0.0
    names: dict[str, int] = {}
    for run in runs:
        probe = run.get("probe") or {}
        sgc = sorted(map(tuple, probe.get("gc", [])))
        scb = sorted(map(tuple, probe.get("callbacks", [])))
        for i, (t0, lat) in enumerate(zip(run["t0"], run["lat"])):
            if lat / 1e3 <= p99:
                continue
            slow += 1
            excess = lat - p50 * 1e3
            excess_total += excess
            t1 = t0 + lat
            found = False
            for key, ns in (("server gc", _overlaps(t0, t1, sgc)),
                            ("server long callback", _overlaps(t0, t1, scb)),
                            ("client gc", _overlaps(t0, t1, run["client_gc"])),
                            ("server waited for CPU", run["srv_wait"][i] if run["srv_wait"] else 0),
                            ("client waited for CPU", run["me_wait"][i] if run["me_wait"] else 0)):
                if ns > (WAIT if "CPU" in key else 0):
                    causes[key] += 1
                    covered[key] += min(ns, excess)
                    found = True
            if not found:
                causes["none of these"] += 1
            for s, d, name in scb:
                if s < t1 and s + d > t0:
                    names[name] = names.get(name, 0) + 1
    return {"slow": slow, "counts": causes,
            "share": {k: (covered[k] / excess_total if excess_total else 0.0) for k in causes},
            "callbacks": sorted(names.items(), key=lambda kv: -kv[1])[:8]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench tail", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="nats-server,embedded")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--no-schedstat", action="store_true")
    ap.add_argument("--preload", type=int, default=0,
                    help="first store this many messages, each on a subject of its own, in a file stream "
                         "(JetStream on), and restart the server: the round trips then run beside that state")
    ap.add_argument("--freeze", default=None,
                    help="embedded variants: PYNATS_SERVER_GC_FREEZE values, e.g. 1,0 (each runs as its own server)")
    args = ap.parse_args(argv)
    kinds = []
    for kind in args.kinds.split(","):
        if kind == "embedded" and args.freeze is not None:
            kinds += [f"embedded[freeze={v}]" for v in args.freeze.split(",")]
        else:
            kinds.append(kind)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for kind in kinds:
                probe_file = Path(tmp) / f"probe-{len(runs[kind])}-{r}.json"
                base = kind.split("[")[0]
                command = None
                if base == "embedded":
                    os.environ["PYNATS_TAILPROBE"] = str(probe_file)
                    if "[" in kind:
                        os.environ["PYNATS_SERVER_GC_FREEZE"] = kind[len("embedded[freeze="):-1]
                    command = [sys.executable, "-m", "bench._tailprobe"]
                js_args = ()
                if args.preload:
                    store = Path(tmp) / f"store-{kind}-{r}"
                    js_args = ("-js", "-sd", str(store))
                    srv = Server(base, Path(tmp), js_args, command=server_command(base))
                    try:
                        preload(srv, args.preload)
                    finally:
                        srv.stop()
                srv = Server(base, Path(tmp), js_args, command=command or server_command(base))
                try:
                    run = round_trips(srv, args.count, not args.no_schedstat)
                finally:
                    srv.stop()
                    os.environ.pop("PYNATS_TAILPROBE", None)
                    os.environ.pop("PYNATS_SERVER_GC_FREEZE", None)
                if probe_file.exists():
                    run["probe"] = json.loads(probe_file.read_text())
                runs[kind].append(run)
                p = percentiles(run["lat"])
                extra = ""
                if "probe" in run:
                    g = run["probe"]["gc"]
                    lo, hi = run["t0"][0], run["t0"][-1] + run["lat"][-1]
                    w = [x for x in g if lo <= x[0] <= hi]
                    extra = (f"  server gc while measured: {len(w)} ({sum(1 for x in w if x[2] == 2)} gen 2), "
                             f"longest {max((x[1] for x in w), default=0) / 1e3:.0f} µs; "
                             f"callbacks > 100 µs: {len(run['probe']['callbacks'])}; tracked at the end "
                             f"{run['probe']['tracked']}, a full collection of them {run['probe']['full_ms']:.1f} ms")
                print(f"{kind:12} run {r + 1}: " + "  ".join(f"{k} {v:7.0f}" for k, v in p.items()) + extra,
                      flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print()
    for kind in kinds:
        pooled = [x for run in runs[kind] for x in run["lat"]]
        p = percentiles(pooled)
        print(f"{kind:12} pooled ({len(pooled)}): " + "  ".join(f"{k} {v:7.0f} µs" for k, v in p.items()))
        for name in ("p99", "p99.9"):
            a = attribute(runs[kind], p["p50"], p[name])
            print(f"  {a['slow']} round trips above {name}; overlapping (count, share of their excess over p50):")
            for key, n in a["counts"].items():
                print(f"    {key:24} {n:5d}  {100 * a['share'][key]:5.1f} %")
            if a["callbacks"]:
                print("    long server callbacks among them: " + ", ".join(f"{n} x{c}" for n, c in a["callbacks"]))
        if runs[kind] and "probe" in runs[kind][0]:
            hit = n = 0
            for run in runs[kind]:
                g = sorted((x[0], x[1]) for x in run["probe"]["gc"])
                starts = [x[0] for x in g]

                for t0, lat in zip(run["t0"], run["lat"]):
                    n += 1
                    i = bisect.bisect_left(starts, t0 + lat)
                    if i and g[i - 1][0] + g[i - 1][1] > t0:
                        hit += 1
            print(f"  round trips during a server collection: {hit} of {n} ({100 * hit / n:.2f} %)")
        cg = [x for run in runs[kind] for x in run["client_gc"]]
        if cg:
            print(f"  client gc: {len(cg)} collections, longest {max(x[1] for x in cg) / 1e3:.0f} µs")
        if runs[kind] and "probe" in runs[kind][0]:
            g = [x for run in runs[kind] for x in run["probe"]["gc"]]
            cbs = [x for run in runs[kind] for x in run["probe"]["callbacks"]]
            by_gen = {gen: [x[1] / 1e3 for x in g if x[2] == gen] for gen in (0, 1, 2)}
            print("  server gc: " + ", ".join(
                f"gen {gen} {len(v)} (median {statistics.median(v):.0f} µs, max {max(v):.0f} µs)"
                for gen, v in by_gen.items() if v) + f"; threshold {runs[kind][0]['probe']['threshold']}, "
                f"frozen {runs[kind][0]['probe']['frozen']}")
            by_name: dict[str, list] = {}
            for _s, d, name in cbs:
                by_name.setdefault(name, []).append(d / 1e3)
            for name, ds in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:8]:
                print(f"    callback {name}: {len(ds)} over 100 µs, max {max(ds):.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
