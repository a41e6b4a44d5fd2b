"""The cost of removing the file store's emptied blocks (embedded server only: the embedded store's own work), in
process:

  a limits file stream (max_bytes) stored into with N messages of 1 KB (30,000 by default) on 100 subjects, so
  that its oldest block goes every block's worth of messages; per block size (32 kB, the smallest, which a
  `max_bytes` of 128 kB or less gives; and 4 MB): wall and CPU µs per message, and how many blocks went.
  Each block removed costs an fsync of the journal first (power-loss safety: the block's sequences stay
  accounted for). `--against DIR` measures the code of another checkout (e.g. a worktree at main) the same way,
  alternating with this one, `--rounds` times, for an A/B on the same load.

    python -m bench release [--messages N] [--rounds 3] [--against DIR]

The store goes in a temporary directory under /tmp (a real file system: tmpfs makes fsync free). Nothing here is
asserted.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MEASURE = r'''
import os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from embedded_server.jetstream.store.file import FileStore
n, block = int(sys.argv[2]), int(sys.argv[3])
cfg = {"max_msgs": -1, "max_bytes": 128_000, "max_msgs_per_subject": -1, "discard": "old"}
with tempfile.TemporaryDirectory(prefix="release-", dir="/tmp" if os.path.isdir("/tmp") else None) as tmp:
    fs = FileStore(os.path.join(tmp, "S"), cfg, block_size=block)
    released = [0]
    release = fs._release_blocks
    def counted():
        before = len(fs._blocks)
        release()
        released[0] += before - len(fs._blocks)
    fs._release_blocks = counted
    data = bytes(1024)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fs.store_msg(f"s.{i % 100}", None, data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    fs.stop()
print(f"{wall / n * 1e6:.1f} {cpu / n * 1e6:.1f} {released[0]}")
'''


def _measure(code_dir: str, n: int, block: int) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, code_dir, str(n), str(block)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench release")
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", default=None, help="another checkout to measure the same way (A/B)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"release: {args.messages} x 1 KB into a max_bytes stream, load {load:.1f}")
    print(f"{'code':<40} {'block':>8} {'wall us/msg':>12} {'cpu us/msg':>11} {'blocks gone':>12}")
    for block in (32_000, 4 * 1024 * 1024):
        for _ in range(args.rounds):
            for code in [str(REPO)] + ([args.against] if args.against else []):
                wall, cpu, gone = _measure(code, args.messages, block)
                print(f"{code[-40:]:<40} {block:>8} {wall:>12.1f} {cpu:>11.1f} {gone:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
