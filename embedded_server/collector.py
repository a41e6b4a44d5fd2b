"""Short pauses from Python's cyclic garbage collector in a server process (`running.run`, not the thread mode).

A full (generation 2) collection stops the server for as long as it takes to walk every container object the
process holds: about 0.4 µs each, and a server's heap is mostly long-lived objects (the modules, and JetStream
state: a file stream recovered with a subject per message holds two such objects a message, 200,000 messages
about 420,000 objects, a 156 ms pause). The interpreter starts a full collection whenever the objects promoted
since the last one reach a quarter of the heap, and a server promotes objects all the time without growing
(a request's unique reply subject gets a cached match that lives for a few hundred requests), so on a big store
a stream of requests met such a pause every few thousand of them (docs/performance.md, "Where the tail of a
round trip comes from").

`settle()` (once the server is ready) collects once and moves what survives to the collector's permanent
generation (`gc.freeze`), which no collection walks; `gc.callbacks` then does the same after any full
collection that took longer than `SLOW` (the heap has grown: a big load), so the next full collections walk
only what came after. Reference counting frees frozen objects as usual; only garbage in reference cycles among
them waits: when the frozen objects have doubled since the collector last walked them all, they are unfrozen
for the next full collection, which frees such cycles and freezes what survives again. So frozen garbage never
outgrows the heap the server held at that last walk (memory stays bounded), and a full pause of the whole heap
comes once per doubling instead of once per quarter of promotions. `PYNATS_SERVER_GC_FREEZE=0` turns it off.
"""
from __future__ import annotations

import gc
import os
import time

SLOW = 0.005  # a full collection that took longer than this (seconds) freezes what survived it


class Settler:
    def __init__(self):
        self.base = 0        # frozen objects right after the collector last walked them all
        self.started = 0.0
        self.unfrozen = False

    def settle(self) -> None:
        gc.collect()
        gc.freeze()
        self.base = gc.get_freeze_count()
        gc.callbacks.append(self.on_gc)

    def on_gc(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
            return
        if self.unfrozen or time.perf_counter() - self.started > SLOW:
            gc.freeze()
            frozen = gc.get_freeze_count()
            if self.unfrozen:
                self.base, self.unfrozen = frozen, False
            elif frozen > 2 * self.base:
                # Frozen garbage (cycles among frozen objects) may be up to half of these: let the next full
                # collection walk them all.
                gc.unfreeze()
                self.unfrozen = True

    def stop(self) -> None:
        if self.on_gc in gc.callbacks:
            gc.callbacks.remove(self.on_gc)


def settle_after_start() -> Settler | None:
    """Freeze the start-up heap and keep large heaps frozen (see the module); None when turned off."""
    if os.environ.get("PYNATS_SERVER_GC_FREEZE", "").strip() == "0":
        return None
    settler = Settler()
    settler.settle()
    return settler
