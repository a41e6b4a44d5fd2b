"""The event loop's pause while a sync writes the file store's index checkpoint (embedded server only: it is the
embedded store's own work, nats-server has no such step to compare with), in-process:

  a FileStore of N messages (1,000,000 by default) on 100 subjects, every 97th removed; a 1 ms asyncio ticker
  runs while `flush()` (what the sync timer calls) writes a checkpoint: the longest gap between two ticks,
  per checkpoint, in ms. `--against DIR` measures the code of another checkout (e.g. a worktree at main) the same
  way, right after, for an A/B on the same load.

    python -m bench ckpstall [--messages N] [--rounds 5] [--against DIR]

Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MEASURE = r'''
import asyncio, os, shutil, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from embedded_server.jetstream.store.file import FileStore
n, rounds = int(sys.argv[2]), int(sys.argv[3])
d = tempfile.mkdtemp(prefix="ckpstall-")
fs = FileStore(d, {"max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": -1, "discard": "old"})
subjects = [f"s.{i}" for i in range(100)]
for i in range(n):
    fs.store_msg(subjects[i % 100], None, b"x" * 50)
for s in range(1, n, 97):
    fs.remove_msg(s)

async def main():
    gaps = []
    for _ in range(rounds):
        fs._ckp_seq = 0
        if os.path.exists(fs.checkpoint_path):
            os.unlink(fs.checkpoint_path)
        done, worst = False, [0.0]
        async def ticker():
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst[0] = max(worst[0], now - last)
                last = now
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        worst[0] = 0.0
        fs.flush()
        while not os.path.exists(fs.checkpoint_path):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        done = True
        await task
        gaps.append(round(worst[0] * 1000, 1))
    return sorted(gaps)

try:
    print(asyncio.run(main()))
finally:
    fs.stop()
    shutil.rmtree(d)
'''


def measure(code_dir: str, n: int, rounds: int) -> str:
    out = subprocess.run([sys.executable, "-c", MEASURE, code_dir, str(n), str(rounds)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=code_dir))
    return out.stdout.strip() if out.returncode == 0 else f"failed: {out.stderr.strip().splitlines()[-1:]}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench ckpstall", description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--against", help="another checkout whose store to measure the same way")
    args = ap.parse_args(argv)
    print(f"longest event-loop gap per sync checkpoint, {args.messages:,} messages, ms (load "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  this checkout: {measure(str(REPO), args.messages, args.rounds)}")
    if args.against:
        print(f"  {args.against}: {measure(str(Path(args.against).resolve()), args.messages, args.rounds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
