"""The one-line errors users see: every failure a magic reports goes through `describe`.

`LabError` is a mistake the user can fix (bad flag value, missing stream); `describe` turns it and the
errors of nats-py (JetStream API errors with their codes, timeouts, no responders) into one clear line.
"""
from __future__ import annotations

import asyncio


class LabError(Exception):
    """A problem the user caused or can fix; its message is shown as is, without a traceback."""


def describe(exc: BaseException) -> str:
    """One line for a user, e.g. 'stream not found (10059)'."""
    import nats.errors as ne
    import nats.js.errors as jse

    if isinstance(exc, LabError):
        return str(exc)
    if isinstance(exc, jse.APIError):
        desc = exc.description or type(exc).__name__
        if exc.err_code:
            return f"{desc} ({exc.err_code})"
        if exc.code:
            return f"{desc} (status {exc.code})"
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
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
