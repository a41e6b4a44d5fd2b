"""A selector that polls briefly before it sleeps, so that a round trip can find the server awake.

A client sending one request at a time (a counter increment waiting for its PubAck, a request waiting for its
reply) leaves the server idle between them: the standard event loop blocks in `epoll_wait` and the kernel has
to wake it for the next request, which costs tens of microseconds when the wake-up crosses to another core
(measured on the project's 2-core VM: docs/performance.md, "Polling before sleeping"). Go's runtime spins a
little before it parks its threads. `SpinSelector` does that for the standard asyncio loop, adaptively: it
keeps a moving average of the idle gap that follows I/O (how long a blocking `select` waited until I/O came)
and, when that gap is shorter than `window`, polls with timeout 0 for up to twice the average before it
blocks. Between polls it yields the core (`sched_yield`): when the client runs on the same core, the client
gets it at once instead of waiting for the spin to end. A loop woken by nothing but timers, one whose gaps are
long, or one that has spun for nothing, sleeps at once, so an idle server uses no CPU; a spin never outlasts
the loop's own timeout (the next timer).
"""
from __future__ import annotations

import os
import selectors
import time

# The longest spin after I/O (seconds); `PYNATS_SERVER_SPIN_US` overrides it, 0 turns spinning off.
DEFAULT_WINDOW = 200e-6


class SpinSelector(selectors.DefaultSelector):
    """`selectors.DefaultSelector` (epoll on Linux) that, after I/O, polls for at most `window` seconds before
    blocking when the recent gaps between I/O were short enough for a spin to catch the next one."""

    def __init__(self, window: float = DEFAULT_WINDOW):
        super().__init__()
        self.window = window
        self._active = False      # the last select that returned anything returned I/O
        self._gap = window        # moving average of the wait for I/O after I/O, seconds

    def select(self, timeout: float | None = None):
        if timeout is not None and timeout <= 0:  # the loop has callbacks ready: a poll, never a spin
            ready = super().select(0)
            if ready:
                self._active = True
            return ready
        clock = time.monotonic
        start = clock()
        if self._active and self._gap < self.window:
            end = start + 2 * self._gap
            if end > start + self.window:
                end = start + self.window
            if timeout is not None and end > start + timeout:
                end = start + timeout
            poll = super().select
            nap = os.sched_yield
            now = start
            while now < end:
                ready = poll(0)
                if ready:
                    self._gap += (clock() - start - self._gap) * 0.25
                    return ready
                nap()
                now = clock()
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
