"""The embedded server with its pauses recorded, for `python -m bench tail`: `python -m bench._tailprobe ARGS`
runs `python -m embedded_server ARGS` and, at exit, writes to the file named by PYNATS_TAILPROBE (JSON) every
cyclic garbage collection (start on the monotonic clock, length, generation, objects collected) and every event
loop callback that ran longer than 100 µs (start, length, what it was), then the number of objects the
collector tracks and how long one full collection of them takes. Only a measuring aid: the server is
the same code, the recording costs a clock read per callback.
"""
from __future__ import annotations

import asyncio.events
import atexit
import gc
import json
import os
import sys
import time

OUT = os.environ.get("PYNATS_TAILPROBE", "")
LONG_NS = 100_000

clock = time.perf_counter_ns


class GcLog:
    """A `gc.callbacks` entry keeping each collection as (start ns, length ns, generation, objects collected)."""

    def __init__(self):
        self.events: list[tuple] = []
        self._start = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = clock()
        else:
            self.events.append((self._start, clock() - self._start, info["generation"], info["collected"]))


collections = GcLog()
long_callbacks: list[tuple] = []


def _name(handle) -> str:
    cb = getattr(handle, "_callback", None)
    name = getattr(cb, "__qualname__", None) or type(cb).__name__
    owner = getattr(cb, "__self__", None)
    if owner is not None and type(owner).__name__ == "Task":  # a task step: name the coroutine
        coro = owner.get_coro()
        name = f"task {getattr(coro, '__qualname__', coro)}"
    return name + (" (timer)" if isinstance(handle, asyncio.events.TimerHandle) else "")


_run = asyncio.events.Handle._run


def _timed_run(self) -> None:
    t = clock()
    _run(self)
    d = clock() - t
    if d > LONG_NS:
        long_callbacks.append((t, d, _name(self)))


def _dump() -> None:
    if OUT:
        tracked = len(gc.get_objects())
        t = time.perf_counter()
        gc.collect()  # what a full collection of the server's heap costs at the end of the run
        full = time.perf_counter() - t
        with open(OUT, "w") as f:
            json.dump({"gc": collections.events, "callbacks": long_callbacks, "threshold": gc.get_threshold(),
                       "frozen": gc.get_freeze_count(), "stats": gc.get_stats(), "tracked": tracked,
                       "full_ms": full * 1e3}, f)


if __name__ == "__main__":
    gc.callbacks.append(collections)
    asyncio.events.Handle._run = _timed_run
    atexit.register(_dump)
    from embedded_server.__main__ import main
    sys.exit(main(sys.argv[1:]))
