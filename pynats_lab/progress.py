"""Progress bars for long work (publishing many messages, a benchmark, a big pull or read): a tqdm bar,
a widget in a notebook and a line on stdout elsewhere, that appears only once the work has taken a second,
so short calls stay quiet. Never on stderr: a notebook would show it as an error."""
from __future__ import annotations

import asyncio
import sys
from typing import Callable

DELAY = 1.0  # seconds of work before a bar appears


def bar(total: int | None, desc: str, unit: str = "msg", *, enabled: bool | None = None):
    """A tqdm bar: `enabled` None shows it after DELAY seconds, True at once, False never."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, disable=enabled is False,
                delay=0 if enabled else DELAY, leave=True, dynamic_ncols=True)


async def follow(progress, read: Callable[[], int], every: float = 0.25) -> None:
    """Move `progress` to `read()` every `every` seconds until cancelled (the hot loop only counts)."""
    try:
        while True:
            await asyncio.sleep(every)
            progress.update(read() - progress.n)
    except asyncio.CancelledError:
        progress.update(read() - progress.n)
        raise


class Following:
    """`async with Following(bar, read):` keeps the bar at `read()` while the block runs, then closes it."""

    def __init__(self, progress, read: Callable[[], int]):
        self.progress, self.read, self.task = progress, read, None

    async def __aenter__(self):
        self.task = asyncio.ensure_future(follow(self.progress, self.read))
        return self.progress

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        self.progress.close()
