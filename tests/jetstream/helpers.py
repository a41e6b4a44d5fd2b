"""Small helpers shared by the JetStream tests: run a scenario with a deadline, talk raw JetStream API JSON."""
from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib

import nats


def run(coro, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def connected(server, **kw):
    nc = await nats.connect(server.url, **kw)
    try:
        yield nc, nc.jetstream()
    finally:
        await nc.close()


async def api(nc, subject: str, body=None, timeout: float = 2.0) -> dict:
    """A raw `$JS.API` request; the parsed JSON answer."""
    payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    msg = await nc.request(subject, payload, timeout=timeout)
    return json.loads(msg.data)


async def publish_raw(nc, subject: str, data: bytes = b"", headers: dict | None = None) -> dict:
    """Publish expecting a PubAck (or its error) and return it parsed, errors included."""
    msg = await nc.request(subject, data, timeout=2.0, headers=headers)
    return json.loads(msg.data)


async def eventually(probe, done, timeout: float = 10.0):
    """Ask `await probe()` again and again until `done(answer)`; the last answer. For what a server does in its
    own time (expiry, cleanup after a delete); the deadline only stops a hang, the caller asserts the answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(answer := await probe()) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return answer


def error_of(answer: dict) -> tuple[int, int, str] | None:
    err = answer.get("error")
    return (err["code"], err["err_code"], err["description"]) if err else None


def streams_dir(server, account: str = "$G") -> pathlib.Path:
    """Where a server started with `-sd DIR` keeps the file streams of `account`."""
    return pathlib.Path(server.args[server.args.index("-sd") + 1]) / "jetstream" / account / "streams"
