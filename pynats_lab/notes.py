"""Connection notes ("nats: disconnected from …", "nats: error: …"): printed where the user is.

nats-py reports connection events on the session's loop thread, inside tasks that inherited the context of
the cell that connected; a kernel files whatever they print under that old cell. So in a kernel a note is
printed under the cell that is running when it happens, or, when none is, at the top of the next cell.
Outside a kernel (a script, a terminal IPython) notes go straight to stderr.

In a kernel a note is a quiet line on stdout ("started the embedded server …"); only a problem (the
server's error about something the user did, a lost connection) goes to stderr, which a notebook shows as
an error box. A cell that worked shows nothing on stderr.
"""
from __future__ import annotations

import contextvars
import sys
import threading

_lock = threading.Lock()
_pending: list[tuple[str, bool]] = []
_shell = None          # the kernel's shell, once the cell hooks are registered with it
_cell_running = False


def note(text: str, *, problem: bool = False) -> None:
    """Show `nats: text` under the cell where the user is: on stdout, or on stderr if it is a `problem`."""
    line = f"nats: {text}"
    with _lock:
        if _shell is None:
            print(line, file=sys.stderr, flush=True)
        elif _cell_running:
            # An empty context carries no cell of its own, so the kernel files the line under the cell
            # that is executing now.
            contextvars.Context().run(print, line, file=_stream(problem), flush=True)
        else:
            _pending.append((line, problem))


def _stream(problem: bool):
    return sys.stderr if problem else sys.stdout


def pending() -> list[str]:
    """Notes waiting for the next cell."""
    with _lock:
        return [line for line, _ in _pending]


def install() -> None:
    """In a kernel, follow which cell runs (idempotent). Called from the main thread while a cell runs, so
    that cell counts as running until it ends."""
    global _shell, _cell_running
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None or ip is _shell:
        return
    ip.events.register("pre_run_cell", _cell_starts)
    ip.events.register("post_run_cell", _cell_ends)
    with _lock:
        _shell = ip
        _cell_running = threading.current_thread() is threading.main_thread()


def _cell_starts(info=None) -> None:
    global _cell_running
    with _lock:
        _cell_running = True
        waiting = _pending[:]
        _pending.clear()
    for line, problem in waiting:
        print(line, file=_stream(problem), flush=True)


def _cell_ends(result=None) -> None:
    global _cell_running
    with _lock:
        _cell_running = False
