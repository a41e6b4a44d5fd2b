"""A selector that polls briefly before it sleeps, so that a round trip can find the server awake.

A client sending one request at a time (a counter increment waiting for its PubAck, a request waiting for its
reply) leaves the server idle between them: the standard event loop blocks in `epoll_wait` and the kernel has
to wake it for the next request, which costs tens of microseconds when the wake-up crosses to another core
(measured on the project's 2-core VM: docs/performance.md, "Polling before sleeping"). Go's runtime spins a
little before it parks its threads. `SpinSelector` does that for the standard asyncio loop, adaptively: it
keeps a moving average of the idle gap that follows I/O (how long a blocking `select` waited until I/O came)
and, when that gap is shorter than `window`, polls with timeout 0 for up to twice the average before it
blocks. Between polls it yields the core (`sched_yield`): when the client runs on the same core, the client
gets it at once instead of waiting for the spin to end; and when several spins in a row gave the core away so,
spinning pauses for a thousand sleeps (on a shared core it only adds its polls to each round trip). A loop woken by nothing but timers, one whose gaps are
long, or one that has spun for nothing, sleeps at once, so an idle server uses no CPU; a spin never outlasts
the loop's own timeout (the next timer).
"""
from __future__ import annotations

import os
import selectors
import time

# The longest spin after I/O (seconds); `PYNATS_SERVER_SPIN_US` overrides it, 0 turns spinning off.
DEFAULT_WINDOW = 200e-6
_GAVE_CORE = 20e-6   # a yield that took this long let another task run on this core
_SHARED_SPINS = 8    # spins in a row that gave the core away before spinning pauses...
_PAUSE = 1000        # ...for this many blocking selects


class SpinSelector(selectors.DefaultSelector):
    """`selectors.DefaultSelector` (epoll on Linux) that, after I/O, polls for at most `window` seconds before
    blocking when the recent gaps between I/O were short enough for a spin to catch the next one."""

    def __init__(self, window: float = DEFAULT_WINDOW):
        super().__init__()
        self.window = window
        self._active = False      # the last select that returned anything returned I/O
        self._gap = window        # moving average of the wait for I/O after I/O, seconds
        self._shared = 0          # spins in a row whose yield gave the core away (the client runs on ours)
        self._pause = 0           # blocking selects left to make without spinning

    def select(self, timeout: float | None = None):
        if timeout is not None and timeout <= 0:  # the loop has callbacks ready: a poll, never a spin
            ready = super().select(0)
            if ready:
                self._active = True
            return ready
        clock = time.monotonic
        start = clock()
        if self._pause:
            self._pause -= 1
        elif self._active and self._gap < self.window:
            end = start + 2 * self._gap
            if end > start + self.window:
                end = start + self.window
            if timeout is not None and end > start + timeout:
                end = start + timeout
            poll = super().select
            nap = os.sched_yield
            now = start
            gave = False
            while now < end:
                ready = poll(0)
                if ready:
                    self._gap += (clock() - start - self._gap) * 0.25
                    self._shared_spin(gave)
                    return ready
                before = now
                nap()
                now = clock()
                gave = gave or now - before > _GAVE_CORE
            self._shared_spin(gave)
            if timeout is not None:
                timeout = max(0.0, timeout - (now - start))
        ready = super().select(timeout)
        if ready:
            if self._active:
                self._gap += (clock() - start - self._gap) * 0.25
            self._active = True
        else:
            self._active = False
        return ready

    def _shared_spin(self, gave: bool) -> None:
        """Count spins whose yield let another task run on this core: when the client shares the core, the
        spin only adds its polls to each round trip, so after a few in a row, pause spinning for a while."""
        if not gave:
            self._shared = 0
            return
        self._shared += 1
        if self._shared >= _SHARED_SPINS:
            self._shared, self._pause = 0, _PAUSE
