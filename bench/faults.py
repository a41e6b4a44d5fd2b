"""The fault-injection suite (tests/faults/) at a larger scale: more kill -9 cycles per workload and random bit
flips over every file of the store, on both servers where the case exists on both.

    python -m bench faults [--scale N]      # N=5 by default: 27 kills per workload, 50 random flip cases

`make test` runs the same suite at scale 0 (two kills per workload, the fixed damage catalogue). The result is
pass/fail with the counts; nothing here is timed against nats-server.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5, help="kills per workload are 2 + 5*SCALE (default 5)")
    args = parser.parse_args(argv)
    env = dict(os.environ, FAULTS_SCALE=str(args.scale))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests" / "faults"), "-q",
                           "-p", "no:cacheprovider", "-o", "timeout=3600"], cwd=REPO, env=env)
    print(f"faults at scale {args.scale}: {2 + 5 * args.scale} kill -9 per workload and server, "
          f"{args.scale * 10} random flip cases per closing; {time.monotonic() - started:.0f} s; "
          f"{'passed' if proc.returncode == 0 else 'FAILED'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
