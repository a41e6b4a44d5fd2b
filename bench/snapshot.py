"""Stream snapshot and restore (`$JS.API.STREAM.SNAPSHOT/RESTORE`), both servers side by side, with ratios: a
file stream of N x 128-byte messages snapshotted as natscli does (every chunk acked, 128 KiB chunks), deleted,
and restored from the same bytes (64 KiB requests, as jsm.go sends them).

    python -m bench snapshot [--kinds nats-server,embedded] [--repeat 3] [--messages 100000] [--old-server PATH]

With `--old-server` (a nats-server before 2.15, e.g. the one `make old-nats-server` caches under build/cache)
the snapshot is taken once on that server (its tar of the store) and each run restores those bytes: the
restore of a production backup. Each run counts messages per second through the snapshot and through the restore (until the restored stream's
info comes back), and the snapshot's size. The best of `--repeat` runs per server counts. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.core import KINDS, Server, table  # noqa: E402
from bench.jetstream import _fill_raw  # noqa: E402


async def _snapshot(url: str) -> tuple[dict, bytes, float]:
    """Snapshot stream SNAP as natscli does and delete it: (the answer, the bytes, seconds)."""
    import nats

    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    js = nc.jetstream()
    data, done = bytearray(), asyncio.Event()

    async def on_chunk(m):
        if not m.data:
            done.set()
            return
        if m.reply:
            await nc.publish(m.reply, b"")
        data.extend(m.data)

    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=on_chunk, pending_msgs_limit=-1, pending_bytes_limit=-1)
    t0 = time.perf_counter()
    msg = await nc.request("$JS.API.STREAM.SNAPSHOT.SNAP", json.dumps(
        {"deliver_subject": inbox, "chunk_size": 128 * 1024}).encode(), timeout=30)
    resp = json.loads(msg.data)
    await asyncio.wait_for(done.wait(), 600)
    snap_secs = time.perf_counter() - t0
    await js.delete_stream("SNAP")
    await nc.close()
    return resp, bytes(data), snap_secs


async def _restore(url: str, resp: dict, data: bytes, count: int) -> float:
    """Messages per second restoring `data` (64 KiB requests) until the restored stream's info comes back."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    t0 = time.perf_counter()
    msg = await nc.request("$JS.API.STREAM.RESTORE.SNAP", json.dumps(
        {"config": resp["config"], "state": resp["state"]}).encode(), timeout=30)
    subject = json.loads(msg.data)["deliver_subject"]
    for i in range(0, len(data), 64 * 1024):
        await nc.request(subject, bytes(data[i:i + 64 * 1024]), timeout=30)
    final = json.loads((await nc.request(subject, b"", timeout=600)).data)
    restore_secs = time.perf_counter() - t0
    assert final["state"]["messages"] == count, final
    await js.delete_stream("SNAP")
    await nc.close()
    return count / restore_secs


def _snapshot_then_restore(url: str, count: int) -> dict:
    resp, data, snap_secs = asyncio.run(_snapshot(url))
    return {"snapshot": count / snap_secs, "restore": asyncio.run(_restore(url, resp, data, count)),
            "size": len(data) / 2**20}


def run_once(kind: str, count: int, command: list[str] | None = None, then=_snapshot_then_restore):
    """A server of `kind` (started with `command` when given) with a stream of `count` messages, then `then`."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(kind, Path(tmp), ("-js", "-sd", str(Path(tmp) / "store")), command=command)
        try:
            async def create():
                import nats

                nc = await nats.connect(srv.url)
                await nc.jetstream().add_stream(name="SNAP", subjects=["snap.x"])
                await nc.close()
            asyncio.run(create())
            _fill_raw(srv.port, b"snap.x", count)
            return then(srv.url, count)
        finally:
            srv.stop()


def _restore_only(kind: str, resp: dict, data: bytes, count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(kind, Path(tmp), ("-js", "-sd", str(Path(tmp) / "store")))
        try:
            return asyncio.run(_restore(srv.url, resp, data, count))
        finally:
            srv.stop()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench snapshot", description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default=",".join(KINDS), help="servers to compare (default: both)")
    p.add_argument("--repeat", type=int, default=3, help="runs per server; the best one counts (default 3)")
    p.add_argument("--messages", type=int, default=100_000, help="messages in the stream (default 100000)")
    p.add_argument("--old-server", metavar="PATH", help="restore the tar snapshot of this older nats-server")
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if args.old_server:
        resp, data, _ = run_once("nats-server", args.messages, [str(Path(args.old_server).resolve())],
                                 lambda url, count: asyncio.run(_snapshot(url)))
        count = resp["state"]["messages"]   # what the old server holds (its fill may have dropped some)
        best = {k: max(_restore_only(k, resp, data, count) for _ in range(max(args.repeat, 1))) for k in kinds}
        print(table([{"server": k, f"restore of an old server's {count:,} x 128 B tar, msgs/s": best[k],
                      "snapshot size, MiB": len(data) / 2**20} for k in kinds]))
        return 0
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(max(args.repeat, 1)):
        for kind in kinds:
            runs[kind].append(run_once(kind, args.messages))
    rows = [{"server": k,
             f"snapshot of {args.messages:,} x 128 B, msgs/s": max(r["snapshot"] for r in runs[k]),
             f"restore of {args.messages:,} x 128 B, msgs/s": max(r["restore"] for r in runs[k]),
             "snapshot size, MiB": min(r["size"] for r in runs[k])} for k in kinds]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
