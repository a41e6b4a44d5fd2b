"""The core server's targets (issue 2 §7), run on both servers in one go and printed side by side with ratios:

  (a) pub→sub through nats-py clients, 128-byte messages, msgs/s        target: embedded ≥ 0.9x nats-server
  (b) raw pipelined socket blast of 16-byte messages, delivered msgs/s  target: ≥ 0.3x
      (and two variants that defeat the embedded server's bulk paths: payload sizes that vary, and 100
      subjects in turn)
  (c) request/reply round trip through nats-py, p50 and p99             target: p50 ≤ 1.3x
  (d) 1→10 fan-out (raw sockets, 16-byte messages), delivered msgs/s
  (e) start-up time to "Server is ready", and resident memory idle and after the runs
and, for (a), (b) and (d), the CPU time the server process spent per message (less sensitive than rates to the
other work on a shared machine).

    python -m bench core [--kinds nats-server,embedded] [--repeat 3] [--quick]

Each throughput workload runs `--repeat` times per server, alternating servers, and the best run counts (the
machine is shared: the best run is the least disturbed one). Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pynats_lab.session import flush  # noqa: E402
from tests.servers import server_command, subprocess_env  # noqa: E402

KINDS = ("nats-server", "embedded")
_LISTEN = re.compile(r"Listening for client connections on (\S+):(\d+)")


class Server:
    """One server process for the benchmark, with its start-up time and memory readings."""

    def __init__(self, kind: str, workdir: Path, args: tuple = ()):
        self.kind = kind
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(server_command(kind) + ["-a", "127.0.0.1", "-p", "-1", *args], cwd=workdir,
                                     env=subprocess_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        lines = []
        for line in self.proc.stderr:
            lines.append(line)
            if "Server is ready" in line:
                break
        else:
            raise RuntimeError(f"{kind} did not start:\n{''.join(lines)}")
        self.startup = time.perf_counter() - t0
        self.port = int(_LISTEN.search("".join(lines)).group(2))
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.url = f"nats://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used (it is less disturbed by a busy machine than rates)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- (a) nats-py pub -> sub ----------------------------------------------------------------------------
def natspy_pubsub(url: str, count: int, size: int = 128) -> float:
    import nats

    async def go() -> float:
        pub = await nats.connect(url, pending_size=64 * 1024 * 1024)
        sub_nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
        done = asyncio.Event()
        received = 0

        async def on_msg(msg) -> None:
            nonlocal received
            received += 1
            if received == count:
                done.set()

        await sub_nc.subscribe("bench.a", cb=on_msg, pending_msgs_limit=count + 1,
                               pending_bytes_limit=(size + 64) * (count + 1))
        await flush(sub_nc)
        payload = b"x" * size
        t0 = time.perf_counter()
        for i in range(count):
            await pub.publish("bench.a", payload)
            if i % 5000 == 4999:
                await asyncio.sleep(0)
        await pub.flush(timeout=60)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t0
        await pub.close()
        await sub_nc.close()
        return count / elapsed

    return asyncio.run(go())


# -- (b) and (d) raw pipelined blast ---------------------------------------------------------------------
def _raw_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(4096)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    return s


def _sync(s: socket.socket) -> None:
    s.sendall(b"PING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        buf += s.recv(4096)


def raw_blast(port: int, count: int, subscribers: int = 1, size: int = 16, mix: str = "same") -> float:
    """Delivered messages per second: one raw publisher pipelining `count` PUBs (rounded up to whole chunks of
    4096), `subscribers` raw readers. `mix`: "same" identical messages; "sizes" payloads of 12 to 20 bytes on
    one subject; "subjects" 100 subjects in turn (no two neighbours alike)."""
    chunk_msgs = 4096
    messages = []
    for i in range(chunk_msgs):
        subject = b"bench.b.%d" % (i % 100) if mix == "subjects" else b"bench.b"
        n = 12 + i % 9 if mix == "sizes" else size
        messages.append((subject, b"x" * n))
    filter_subject = b"bench.b.>" if mix == "subjects" else b"bench.b"
    subs = []
    for i in range(subscribers):
        s = _raw_connect(port)
        s.sendall(b"SUB %s %d\r\n" % (filter_subject, i + 1))
        _sync(s)
        subs.append(s)
    pub = _raw_connect(port)
    _sync(pub)
    chunk = b"".join(b"PUB %s %d\r\n%s\r\n" % (subj, len(p), p) for subj, p in messages)
    chunks = -(-count // chunk_msgs)
    count = chunks * chunk_msgs
    per_sub_bytes = [chunks * sum(len(b"MSG %s %d %d\r\n" % (subj, i + 1, len(p))) + len(p) + 2
                                  for subj, p in messages) for i in range(subscribers)]
    done = [threading.Event() for _ in subs]
    t_end = [0.0] * subscribers

    def reader(i: int, s: socket.socket) -> None:
        want = per_sub_bytes[i]
        got = 0
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while got < want:
            n = s.recv_into(view)
            if not n:
                break
            got += n
        t_end[i] = time.perf_counter()
        done[i].set()

    threads = [threading.Thread(target=reader, args=(i, s), daemon=True) for i, s in enumerate(subs)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    for _ in range(chunks):
        pub.sendall(chunk)
    for d in done:
        if not d.wait(120):
            raise RuntimeError("subscriber did not receive everything (slow consumer?)")
    elapsed = max(t_end) - t0
    for s in subs + [pub]:
        s.close()
    return count * subscribers / elapsed


# -- (c) request/reply --------------------------------------------------------------------------------
def natspy_request_reply(url: str, count: int) -> tuple[float, float]:
    import nats

    async def go() -> tuple[float, float]:
        responder = await nats.connect(url)
        requester = await nats.connect(url)

        async def answer(msg) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bench.rr", cb=answer)
        await flush(responder)
        for _ in range(200):  # warm up: inbox subscription, caches
            await requester.request("bench.rr", b"ping", timeout=5)
        lat = []
        for _ in range(count):
            t0 = time.perf_counter()
            await requester.request("bench.rr", b"ping", timeout=5)
            lat.append(time.perf_counter() - t0)
        await requester.close()
        await responder.close()
        lat.sort()
        return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6

    return asyncio.run(go())


# -- the run --------------------------------------------------------------------------------------------
def run(kinds: list[str], repeat: int, quick: bool) -> list[dict]:
    from tqdm import tqdm

    n_a = 50_000 if quick else 200_000
    n_b = 200_000 if quick else 2_000_000
    n_c = 1_000 if quick else 5_000
    n_d = 50_000 if quick else 300_000
    results: dict[str, dict] = {k: {"startup": [], "rss_idle": [], "a": [], "b": [], "c": [], "d": [],
                                    "rss_after": [], "cpu_a": [], "cpu_b": [], "cpu_d": [], "b_sizes": [],
                                    "cpu_b_sizes": [], "b_subjects": [], "cpu_b_subjects": []} for k in kinds}
    steps = [(r, k) for r in range(repeat) for k in kinds]
    with tempfile.TemporaryDirectory() as tmp:
        for r, kind in tqdm(steps, desc="core bench", unit="run"):
            srv = Server(kind, Path(tmp))
            try:
                res = results[kind]
                res["startup"].append(srv.startup)
                time.sleep(0.3)
                res["rss_idle"].append(srv.rss_mib())
                cpu = srv.cpu_seconds()
                res["a"].append(natspy_pubsub(srv.url, n_a))
                res["cpu_a"].append((srv.cpu_seconds() - cpu) / n_a * 1e6)
                cpu = srv.cpu_seconds()
                res["b"].append(raw_blast(srv.port, n_b))
                res["cpu_b"].append((srv.cpu_seconds() - cpu) / n_b * 1e6)
                for mix in ("sizes", "subjects"):
                    cpu = srv.cpu_seconds()
                    res[f"b_{mix}"].append(raw_blast(srv.port, n_b // 4, mix=mix))
                    res[f"cpu_b_{mix}"].append((srv.cpu_seconds() - cpu) / (n_b // 4) * 1e6)
                res["c"].append(natspy_request_reply(srv.url, n_c))
                cpu = srv.cpu_seconds()
                res["d"].append(raw_blast(srv.port, n_d, subscribers=10))
                res["cpu_d"].append((srv.cpu_seconds() - cpu) / n_d * 1e6)
                res["rss_after"].append(srv.rss_mib())
            finally:
                srv.stop()
    rows = []
    for kind in kinds:
        res = results[kind]
        c_p50 = min(x[0] for x in res["c"])
        c_p99 = min(x[1] for x in res["c"])
        rows.append({
            "server": kind,
            "(a) nats-py pub→sub 128 B, msgs/s": max(res["a"]),
            "(a) server CPU per message, µs": statistics.median(res["cpu_a"]),
            "(b) raw blast 16 B, delivered msgs/s": max(res["b"]),
            "(b) server CPU per message, µs": statistics.median(res["cpu_b"]),
            "(b) sizes 12-20 B vary, delivered msgs/s": max(res["b_sizes"]),
            "(b) sizes vary: server CPU per message, µs": statistics.median(res["cpu_b_sizes"]),
            "(b) 100 subjects in turn, delivered msgs/s": max(res["b_subjects"]),
            "(b) 100 subjects: server CPU per message, µs": statistics.median(res["cpu_b_subjects"]),
            "(c) request/reply p50 µs": c_p50,
            "(c) request/reply p99 µs": c_p99,
            "(d) 1→10 fan-out, delivered msgs/s": max(res["d"]),
            "(d) server CPU per published message, µs": statistics.median(res["cpu_d"]),
            "(e) start-up to ready, s": statistics.median(res["startup"]),
            "(e) RSS idle, MiB": statistics.median(res["rss_idle"]),
            "(e) RSS after the runs, MiB": max(res["rss_after"]),
        })
    return rows


def table(rows: list[dict]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows).set_index("server").T
    if {"nats-server", "embedded"} <= set(df.columns):
        df["embedded / nats-server"] = df["embedded"] / df["nats-server"]
    fmt = df.copy().astype(object)
    for label, row in df.iterrows():
        for col, value in row.items():
            if col == "embedded / nats-server":
                fmt.loc[label, col] = f"{value:.2f}x"
            elif "msgs/s" in label:
                fmt.loc[label, col] = f"{value:,.0f}"
            elif "CPU" in label:
                fmt.loc[label, col] = f"{value:.2f}"
            elif "µs" in label:
                fmt.loc[label, col] = f"{value:,.0f}"
            else:
                fmt.loc[label, col] = f"{value:.2f}"
    return fmt.to_markdown() if _has_tabulate() else fmt.to_string()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench core", description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS), help="servers to compare (default: both)")
    p.add_argument("--repeat", type=int, default=3, help="runs per server; the best one counts (default 3)")
    p.add_argument("--quick", action="store_true", help="smaller message counts, for a smoke run")
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    rows = run(kinds, max(args.repeat, 1), args.quick)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
