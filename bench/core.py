"""The core server's targets (issue 2 §7), run on both servers in one go and printed side by side with ratios:

  (a) pub→sub through nats-py clients, 128-byte messages, msgs/s        target: embedded ≥ 0.9x nats-server
  (b) raw pipelined socket blast of 16-byte messages, delivered msgs/s  target: ≥ 0.3x
      (and two variants that defeat the embedded server's bulk paths: payload sizes that vary, and 100
      subjects in turn)
  (c) request/reply round trip through nats-py, p50 (and p90, p99, p99.9) target: p50 ≤ 1.3x
  (d) 1→10 fan-out (raw sockets, 16-byte messages), delivered msgs/s
  (e) start-up time to "Server is ready", and resident memory idle and after the runs
  (f) the honest per-message path (issue 16): payload sizes that vary, 200 subjects, 4 raw publishers and 4 raw
      subscribers (one on a wildcard, one with 100 literal subscriptions, two in a queue group), delivered
      msgs/s                                                           target: ≥ 0.7x
  (g) (f) with the two queue members subscribed plainly instead, half the messages: what a queue group costs
and, for each of (a) to (d), (f) and (g), the CPU time the server process spent per message (less sensitive than rates to
the other work on a shared machine).

    python -m bench core [--kinds nats-server,embedded] [--repeat 3] [--quick] [--only a,b,c,d,f,g]
                         [--profile FILE]

`--profile FILE` runs the embedded server under cProfile (only for the workloads of `--only`), writes its
statistics to FILE and prints the functions with the most own time.

Each throughput workload runs `--repeat` times per server, alternating servers, and the best run counts (the
machine is shared: the best run is the least disturbed one). Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
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

    def __init__(self, kind: str, workdir: Path, args: tuple = (), command: list[str] | None = None):
        self.kind = kind
        t0 = time.perf_counter()
        command = command or server_command(kind)
        self.proc = subprocess.Popen(command + ["-a", "127.0.0.1", "-p", "-1", *args], cwd=workdir,
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

    def cpu_during(self, work, *args, **kwargs) -> tuple:
        """Run `work(*args, **kwargs)`; return its result and the server's CPU seconds meanwhile."""
        cpu = self.cpu_seconds()
        result = work(*args, **kwargs)
        return result, self.cpu_seconds() - cpu

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


# -- (f) the honest per-message path -----------------------------------------------------------------------
HONEST_SUBJECTS = 200
HONEST_PUBLISHERS = 4
HONEST_MAX_PAYLOAD = 512


def _honest_messages(seed: int, n: int) -> list[tuple[bytes, bytes]]:
    """`n` messages of one publisher: subjects of the 200 in a random order, payload sizes 0-512 bytes."""
    rng = random.Random(seed)
    return [(b"bench.h.%d" % rng.randrange(HONEST_SUBJECTS), b"x" * rng.randint(0, HONEST_MAX_PAYLOAD))
            for _ in range(n)]


def _msg_len(subject: bytes, sid: int, payload: bytes) -> int:
    return len(b"MSG %s %d %d\r\n" % (subject, sid, len(payload))) + len(payload) + 2


def honest_path(port: int, count: int, queue: bool = True) -> tuple[float, int]:
    """(delivered msgs/s, messages delivered): 4 raw publishers pipeline `count` PUBs between them (rounded up
    to whole chunks of 2048 each) over 200 subjects with payloads of 0-512 bytes; 4 raw subscribers read them:
    `bench.h.>` (every message), 100 literal subscriptions to the even subjects on one connection, and two
    members of queue group `q` on `bench.h.*` (every message to one of the two): 2.5 deliveries a message.
    `queue=False`: the last two subscribe to `bench.h.*` without a group (3.5 deliveries a message), the variant
    that shows what a queue group costs."""
    chunk_msgs = 2048
    per_pub = [_honest_messages(seed, chunk_msgs) for seed in range(HONEST_PUBLISHERS)]
    chunks = -(-count // (chunk_msgs * HONEST_PUBLISHERS))
    wildcard = _raw_connect(port)
    wildcard.sendall(b"SUB bench.h.> 1\r\n")
    literal = _raw_connect(port)
    literal.sendall(b"".join(b"SUB bench.h.%d %d\r\n" % (k, 100 + k // 2)
                             for k in range(0, HONEST_SUBJECTS, 2)))
    members = [_raw_connect(port) for _ in range(2)]
    for sid, s in enumerate(members, start=2):
        s.sendall(b"SUB bench.h.* %s%d\r\n" % (b"q " if queue else b"", sid))
    for s in [wildcard, literal, *members]:
        _sync(s)
    pubs = [_raw_connect(port) for _ in range(HONEST_PUBLISHERS)]
    for s in pubs:
        _sync(s)
    payloads = [b"".join(b"PUB %s %d\r\n%s\r\n" % (subj, len(p), p) for subj, p in msgs) for msgs in per_pub]
    every = [m for msgs in per_pub for m in msgs]

    def even(subject: bytes) -> bool:
        return int(subject.rsplit(b".", 1)[1]) % 2 == 0

    want_wildcard = chunks * sum(_msg_len(subj, 1, p) for subj, p in every)
    want_literal = chunks * sum(_msg_len(subj, 100 + int(subj.rsplit(b".", 1)[1]) // 2, p)
                                for subj, p in every if even(subj))
    want_queue = chunks * sum(_msg_len(subj, 2, p) for subj, p in every)  # sids 2 and 3: same length
    delivered = chunks * ((2 if queue else 3) * len(every) + sum(1 for subj, _ in every if even(subj)))
    queue_got = [0]
    lock = threading.Lock()
    ends: list[float] = []
    failed: list[str] = []

    def reader(s: socket.socket, want: int, shared: list | None) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        got = 0
        s.settimeout(0.2)
        deadline = time.monotonic() + 300
        while (shared[0] if shared else got) < want:
            if time.monotonic() > deadline:
                failed.append("timed out")
                return
            try:
                n = s.recv_into(view)
            except socket.timeout:
                continue
            if not n:
                failed.append("connection closed (slow consumer?)")
                return
            if shared is None:
                got += n
                continue
            with lock:  # the queue group is done when its two members together have everything
                shared[0] += n
                if shared[0] >= want:
                    ends.append(time.perf_counter())
                    return
        if shared is None:
            ends.append(time.perf_counter())

    def publisher(s: socket.socket, chunk: bytes) -> None:
        start.wait()
        for _ in range(chunks):
            s.sendall(chunk)

    start = threading.Event()
    threads = [threading.Thread(target=reader, args=(wildcard, want_wildcard, None), daemon=True),
               threading.Thread(target=reader, args=(literal, want_literal, None), daemon=True)]
    threads += [threading.Thread(target=reader, args=(s, want_queue, queue_got if queue else None), daemon=True)
                for s in members]
    threads += [threading.Thread(target=publisher, args=(s, c), daemon=True) for s, c in zip(pubs, payloads)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join(310)
    for s in [wildcard, literal, *members, *pubs]:
        s.close()
    if failed or len(ends) < (3 if queue else 4):
        raise RuntimeError(f"(f) a subscriber did not receive everything: {failed or 'still reading'}")
    return delivered / (max(ends) - t0), delivered


# -- (c) request/reply --------------------------------------------------------------------------------
def natspy_request_reply(url: str, count: int) -> tuple[float, float, float, float]:
    """p50, p99, p90 and p99.9 of `count` round trips, µs."""
    import nats

    async def go() -> tuple[float, float, float, float]:
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
        n = len(lat)
        return lat[n // 2] * 1e6, lat[int(n * 0.99)] * 1e6, lat[int(n * 0.9)] * 1e6, lat[int(n * 0.999)] * 1e6

    return asyncio.run(go())


# -- the run --------------------------------------------------------------------------------------------
WORKLOADS = "abcdfg"


def profiled_embedded(path: Path) -> list[str]:
    return [sys.executable, "-m", "cProfile", "-o", str(path), "-m", "embedded_server"]


def run(kinds: list[str], repeat: int, quick: bool, only: str = WORKLOADS,
        profile: Path | None = None) -> list[dict]:
    from tqdm import tqdm

    n_a = 50_000 if quick else 200_000
    n_b = 200_000 if quick else 2_000_000
    n_c = 1_000 if quick else 5_000
    n_d = 50_000 if quick else 300_000
    n_f = 100_000 if quick else 800_000
    results: dict[str, dict] = {k: {} for k in kinds}
    steps = [(r, k) for r in range(repeat) for k in kinds]
    with tempfile.TemporaryDirectory() as tmp:
        for r, kind in tqdm(steps, desc="core bench", unit="run"):
            command = profiled_embedded(profile) if profile and kind == "embedded" else None
            srv = Server(kind, Path(tmp), command=command)
            res = results[kind]

            def keep(key: str, value) -> None:
                res.setdefault(key, []).append(value)

            def rate_and_cpu(key: str, per: int, work, *args, **kwargs) -> None:
                rate, cpu = srv.cpu_during(work, *args, **kwargs)
                keep(key, rate)
                keep(f"cpu_{key}", cpu / per * 1e6)

            try:
                keep("startup", srv.startup)
                time.sleep(0.3)
                keep("rss_idle", srv.rss_mib())
                if "a" in only:
                    rate_and_cpu("a", n_a, natspy_pubsub, srv.url, n_a)
                if "b" in only:
                    rate_and_cpu("b", n_b, raw_blast, srv.port, n_b)
                    for mix in ("sizes", "subjects"):
                        rate_and_cpu(f"b_{mix}", n_b // 4, raw_blast, srv.port, n_b // 4, mix=mix)
                if "c" in only:
                    # (the CPU also covers the 200 warm-up requests and the two connections)
                    rate_and_cpu("c", n_c + 200, natspy_request_reply, srv.url, n_c)
                if "d" in only:
                    rate_and_cpu("d", n_d, raw_blast, srv.port, n_d, subscribers=10)
                if "f" in only:
                    (rate, delivered), cpu = srv.cpu_during(honest_path, srv.port, n_f)
                    keep("f", rate)
                    keep("cpu_f", cpu / delivered * 1e6)
                if "g" in only:
                    (rate, delivered), cpu = srv.cpu_during(honest_path, srv.port, n_f // 2, queue=False)
                    keep("f_noq", rate)
                    keep("cpu_f_noq", cpu / delivered * 1e6)
                keep("rss_after", srv.rss_mib())
            finally:
                srv.stop()
    labels = [
        ("a", max, "(a) nats-py pub→sub 128 B, msgs/s"),
        ("cpu_a", statistics.median, "(a) server CPU per message, µs"),
        ("b", max, "(b) raw blast 16 B, delivered msgs/s"),
        ("cpu_b", statistics.median, "(b) server CPU per message, µs"),
        ("b_sizes", max, "(b) sizes 12-20 B vary, delivered msgs/s"),
        ("cpu_b_sizes", statistics.median, "(b) sizes vary: server CPU per message, µs"),
        ("b_subjects", max, "(b) 100 subjects in turn, delivered msgs/s"),
        ("cpu_b_subjects", statistics.median, "(b) 100 subjects: server CPU per message, µs"),
        ("c", lambda xs: min(x[0] for x in xs), "(c) request/reply p50 µs"),
        ("c", lambda xs: min(x[2] for x in xs), "(c) request/reply p90 µs"),
        ("c", lambda xs: min(x[1] for x in xs), "(c) request/reply p99 µs"),
        ("c", lambda xs: min(x[3] for x in xs), "(c) request/reply p99.9 µs"),
        ("cpu_c", statistics.median, "(c) server CPU per request and reply, µs"),
        ("d", max, "(d) 1→10 fan-out, delivered msgs/s"),
        ("cpu_d", statistics.median, "(d) server CPU per published message, µs"),
        ("f", max, "(f) honest path (sizes vary, 200 subjects, 4 pub/4 sub), delivered msgs/s"),
        ("cpu_f", statistics.median, "(f) server CPU per delivered message, µs"),
        ("f_noq", max, "(g) (f) without the queue group, delivered msgs/s"),
        ("cpu_f_noq", statistics.median, "(g) server CPU per delivered message, µs"),
        ("startup", statistics.median, "(e) start-up to ready, s"),
        ("rss_idle", statistics.median, "(e) RSS idle, MiB"),
        ("rss_after", max, "(e) RSS after the runs, MiB"),
    ]
    rows = []
    for kind in kinds:
        res = results[kind]
        rows.append({"server": kind, **{label: pick(res[key]) for key, pick, label in labels if key in res}})
    return rows


def hotspots(path: Path, top: int = 25) -> str:
    """The functions with the most own time in a cProfile file, with their share of the profile's total."""
    import io
    import pstats

    stats = pstats.Stats(str(path))
    total = stats.total_tt
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = io.StringIO()
    out.write(f"profile {path}: {total:.2f} s of own time in total\n")
    out.write(f"{'own %':>6} {'cum %':>6} {'calls':>10}  function\n")
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        out.write(f"{100 * tottime / total:6.1f} {100 * cumtime / total:6.1f} {ncalls:10d}  {name} ({where})\n")
    return out.getvalue()


def print_results(rows: list[dict], kinds: list[str], profile: Path | None) -> None:
    """The side-by-side table, then the embedded server's hot spots when it ran under cProfile."""
    print()
    print(table(rows))
    if profile and "embedded" in kinds:
        print()
        print(hotspots(profile))


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
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="workloads to run, of a,b,c,d,f,g (default: all; (e) is always measured)")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="run the embedded server under cProfile, write its statistics to FILE, print the top")
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    only = "".join(w for w in args.only.split(",") if w)
    if set(only) - set(WORKLOADS) or not only:
        p.error(f"--only takes workloads of {','.join(WORKLOADS)}, got {args.only!r}")
    print_results(run(kinds, max(args.repeat, 1), args.quick, only, args.profile), kinds, args.profile)
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
