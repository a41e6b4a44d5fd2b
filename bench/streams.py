"""Creating and deleting file streams one after the other (issue 16 item 2 follow-up), both servers side by side:

  N file streams (300 by default, what nats.py's test_jsm_stream_management_with_offset creates) created with
  nats-py's js.add_stream, then deleted with js.delete_stream, each answered before the next is sent:
  creates/s, deletes/s and the server's CPU seconds over each loop (start-up excluded)

    python -m bench streams [--kinds nats-server,embedded] [--count 300] [--repeat 1] [--dir PATH]

The embedded server fsyncs a new stream's meta files and directories before answering; nats-server does that
only with `sync_interval: always` (see docs/performance.md). The store directories are deleted at the end.
Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import KINDS, Server, table  # noqa: E402


async def _loop(url: str, count: int, delete: bool) -> float:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    t0 = time.perf_counter()
    for i in range(count):
        if delete:
            await js.delete_stream(f"S{i}")
        else:
            await js.add_stream(StreamConfig(name=f"S{i}", subjects=[f"s{i}.>"], storage=StorageType.FILE))
    elapsed = time.perf_counter() - t0
    await nc.close()
    return elapsed


def run_kind(kind: str, count: int, base: Path) -> dict:
    store = Path(tempfile.mkdtemp(prefix=f"bench-streams-{kind}-", dir=base))
    try:
        srv = Server(kind, store, ("-js", "-sd", str(store)))
        try:
            created, create_cpu = srv.cpu_during(lambda: asyncio.run(_loop(srv.url, count, False)))
            deleted, delete_cpu = srv.cpu_during(lambda: asyncio.run(_loop(srv.url, count, True)))
        finally:
            srv.stop()
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return {"server": kind, "creates/s": count / created, "deletes/s": count / deleted,
            "server CPU per create, ms": create_cpu / count * 1000,
            "server CPU per delete, ms": delete_cpu / count * 1000}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench streams", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dir", default=None, help="where the stores go (deleted after)")
    args = ap.parse_args(argv)
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    for _ in range(args.repeat):
        print(f"{args.count} file streams created then deleted; load {os.getloadavg()[0]:.1f}")
        rows = [run_kind(kind, args.count, base) for kind in args.kinds.split(",")]
        print(table(rows))
        print(f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
