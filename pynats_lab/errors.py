"""The one-line errors users see: every failure a magic reports goes through `describe`, and every failure
the Python API raises is a `LabError`.

`LabError` is a mistake the user can fix (bad flag value, missing stream); `describe` turns it and the
errors of nats-py (JetStream API errors with their codes, timeouts, no responders) into one clear line.
`as_lab_error` re-raises nats-py's errors as `NatsError`s that keep their own class too.
"""
from __future__ import annotations

import asyncio


class LabError(Exception):
    """A problem the user caused or can fix; its message is shown as is, without a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython asks an exception for this before drawing a traceback: a LabError raised by a function
        # or widget constructor in a cell shows as its one line, not as frames through the lab's internals.
        return [f"{type(self).__name__}: {self}"]


class NatsError(LabError):
    """What nats-py (or the network below it) raised: a server's refusal, a timeout, a lost connection.

    Each instance is also an instance of the original error's class, with its attributes (`err_code`,
    `description`, ...), so `except nats.js.errors.APIError` and `except LabError` both catch it. Its
    message is the one line a magic would print."""

    line: str = ""

    def __str__(self) -> str:
        return self.line


_KINDS: dict[type, type] = {}


def _kind(cls: type) -> type | None:
    """The NatsError subclass that is also `cls` (made once per class), or None if Python refuses."""
    if cls not in _KINDS:
        try:
            # nats-py's base class is plainly "Error"; shown from this module that name would say nothing.
            name = "NatsError" if cls.__name__ == "Error" else cls.__name__
            _KINDS[cls] = type(name, (NatsError, cls), {"__module__": __name__, "__qualname__": name})
        except TypeError:
            _KINDS[cls] = None
    return _KINDS[cls]


def is_nats_failure(exc: BaseException) -> bool:
    """An error from the NATS side (server answer, timeout, connection) rather than a bug in the lab."""
    import nats.errors as ne

    # nats-py checks names itself and says so with a ValueError("nats: invalid stream name: 'a.b'").
    said_by_nats = isinstance(exc, ValueError) and str(exc).startswith("nats: ")
    return said_by_nats or isinstance(exc, (ne.Error, asyncio.TimeoutError, TimeoutError, OSError))


def as_lab_error(exc: BaseException, line: str | None = None) -> BaseException:
    """`exc` as a LabError: itself if it is one already, a NatsError of its own class if it came from the
    NATS side, else unchanged (a bug should show as one). `line` replaces the message."""
    if isinstance(exc, LabError) or not is_nats_failure(exc):
        return exc
    kind = _kind(type(exc))
    if kind is None:
        wrapped: NatsError = NatsError()
        wrapped.__cause__ = exc
    else:
        wrapped = kind.__new__(kind, *exc.args)
        wrapped.__dict__.update(exc.__dict__)
        wrapped.args = exc.args
    wrapped.line = line or describe(exc)
    return wrapped.with_traceback(exc.__traceback__)


def reraise(exc: BaseException):
    """Raise `exc` as `as_lab_error` makes it (call from an `except` block)."""
    lab = as_lab_error(exc)
    if lab is exc:
        raise exc
    raise lab from None


def describe(exc: BaseException) -> str:
    """One line for a user, e.g. 'stream not found (10059)'."""
    import nats.errors as ne
    import nats.js.errors as jse

    if isinstance(exc, LabError):
        return str(exc)
    if isinstance(exc, jse.APIError):
        # Some nats-py subclasses (e.g. KeyWrongLastSequenceError) set only a description.
        desc = getattr(exc, "description", None) or type(exc).__name__
        err_code, code = getattr(exc, "err_code", None), getattr(exc, "code", None)
        if err_code:
            return f"{desc} ({err_code})"
        if code:
            return f"{desc} (status {code})"
        return desc
    if isinstance(exc, jse.NoStreamResponseError):
        return "no stream answered: is a stream listening on this subject, and is JetStream enabled?"
    if isinstance(exc, (ne.NoRespondersError,)):
        return "no responders: nobody is subscribed to that subject (is JetStream enabled?)"
    if isinstance(exc, (ne.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "timed out waiting for the server"
    if isinstance(exc, ne.NoServersError):
        return "could not connect: no server reachable at that address"
    if isinstance(exc, (ne.ConnectionClosedError,)):
        return "the connection is closed: use %nats connect"
    if isinstance(exc, ne.AuthorizationError) or "authorization" in str(exc).lower():
        return f"authorization failed: {exc}".rstrip(": ")
    if isinstance(exc, ne.Error):
        text = str(exc) or type(exc).__name__
        return text[len("nats: "):] if text.startswith("nats: ") else text
    if isinstance(exc, (OSError, ValueError)):
        text = str(exc) or type(exc).__name__
        return text[len("nats: "):] if text.startswith("nats: ") else text
    return f"{type(exc).__name__}: {exc}"
