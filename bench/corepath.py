"""The embedded server's per-message path of bench core (f) and (g) in one process, without sockets: the same
subscriptions and publishes (200 subjects, payloads of 0-512 bytes, 4 publishers), fed to real `Server` and
`Client` objects whose transports only count the bytes written, read by read (`--read` bytes each, 256 KiB as
asyncio reads a busy socket). What it measures is the parser, the routing and the joining of each read's
output: the server's CPU per delivery without the kernel's share.

    python -m bench corepath [--rounds 30] [--read 262144] [--only f,g] [--against DIR]

`--against DIR` loads a second checkout of the repository (a `git worktree` of an older commit, say) into the
same process and alternates the rounds between the two: on a shared machine both then run under the same load,
which makes a before/after comparison steadier than two bench core runs. The process takes the server
process's malloc settings (`running.keep_freed_memory`) first, for both checkouts. Each round publishes 8,192 messages;
the table gives the best round and the mean, µs of process CPU per delivery. Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import HONEST_PUBLISHERS, HONEST_SUBJECTS, _honest_messages  # noqa: E402

WORKLOADS = {"f": True, "g": False}   # workload: with the queue group


class _Transport:
    """What a Client needs of an asyncio transport; writes are counted, never kept."""

    def __init__(self):
        self.written = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 0) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def write(self, data) -> None:
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def load(root: Path):
    """(Server, Options, Client) of the embedded_server package under `root`, imported afresh."""
    for name in [n for n in sys.modules if n == "embedded_server" or n.startswith("embedded_server.")]:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        server = importlib.import_module("embedded_server.server")
        options = importlib.import_module("embedded_server.options")
        client = importlib.import_module("embedded_server.client")
    finally:
        sys.path.remove(str(root))
    return server.Server, options.Options, client.Client


async def _setup(classes, queue: bool):
    """A server with bench core's four subscribers of (f) (or (g)) and four publishing connections."""
    server_cls, options_cls, client_cls = classes
    srv = server_cls(options_cls())
    srv.loop = asyncio.get_running_loop()

    def connect(ops: bytes = b""):
        c = client_cls(srv)
        c.connection_made(_Transport())
        c.data_received(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        if ops:
            c.data_received(ops)
        return c

    connect(b"SUB bench.h.> 1\r\n")
    connect(b"".join(b"SUB bench.h.%d %d\r\n" % (k, 100 + k // 2) for k in range(0, HONEST_SUBJECTS, 2)))
    for sid in (2, 3):
        connect(b"SUB bench.h.* %s%d\r\n" % (b"q " if queue else b"", sid))
    publishers = [connect() for _ in range(HONEST_PUBLISHERS)]
    for _ in range(20):   # a SUB storm's rest may wait for the next turn of the loop
        await asyncio.sleep(0)
    return srv, publishers


async def _measure(roots: list[Path], queue: bool, rounds: int, read: int) -> list[tuple[float, float]]:
    """(best, mean) µs of CPU per delivery for each checkout of `roots`, rounds alternating between them."""
    setups = [await _setup(load(root), queue) for root in roots]
    chunks = [b"".join(b"PUB %s %d\r\n%s\r\n" % (s, len(p), p) for s, p in _honest_messages(seed, 2048))
              for seed in range(HONEST_PUBLISHERS)]
    reads = [[c[i:i + read] for i in range(0, len(c), read)] for c in chunks]
    longest = max(len(r) for r in reads)
    per = [[] for _ in roots]
    for r in range(rounds):
        order = range(len(roots)) if r % 2 == 0 else reversed(range(len(roots)))
        for j in order:
            srv, publishers = setups[j]
            delivered = srv.out_msgs
            t0 = time.process_time()
            for k in range(longest):
                for c, pieces in zip(publishers, reads):
                    if k < len(pieces):
                        c.data_received(pieces[k])
            per[j].append((time.process_time() - t0) / (srv.out_msgs - delivered) * 1e6)
    return [(min(xs), sum(xs) / len(xs)) for xs in per]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench corepath", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=30, help="rounds per checkout (8,192 messages each)")
    p.add_argument("--read", type=int, default=256 * 1024, help="bytes per read (default 262144)")
    p.add_argument("--only", default="f,g", help="workloads of f,g")
    p.add_argument("--against", type=Path, help="another checkout to compare with, in the same process")
    args = p.parse_args(argv)
    only = [w for w in args.only.split(",") if w]
    if not only or any(w not in WORKLOADS for w in only):
        p.error(f"--only takes workloads of f,g, got {args.only!r}")
    if args.against is not None and not (args.against / "embedded_server" / "server.py").is_file():
        p.error(f"--against {args.against}: no embedded_server/server.py there")
    if args.rounds < 1 or args.read < 64:
        p.error("--rounds must be at least 1 and --read at least 64")
    roots = [REPO] + ([args.against.resolve()] if args.against is not None else [])
    # The server process's malloc settings (running.run), so that reads and joins cost here what they cost there.
    from embedded_server.running import keep_freed_memory
    keep_freed_memory()
    header = "workload, µs CPU per delivery (best / mean)"
    print(f"{header:<46} {'this checkout':>16}" + (f" {'--against':>16} {'ratio':>6}" if len(roots) > 1 else ""))
    for w in only:
        results = asyncio.run(_measure(roots, WORKLOADS[w], args.rounds, args.read))
        line = f"({w}) {'honest path' if WORKLOADS[w] else 'without the queue group':<41}"
        line += " ".join(f"{best:>8.3f} / {mean:.3f}" for best, mean in results)
        if len(results) > 1:
            line += f" {results[0][0] / results[1][0]:>5.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
