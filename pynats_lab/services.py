"""Answering requests from a notebook: a responder on a subject (alone or in a queue group), a service built
with nats-py's `micro` API, and discovery of the services on a server ($SRV.PING / INFO / STATS).

Both run on the session's connection, so `%nats req` in the next cell reaches them, and keep a DataFrame of
what they answered. Handlers are plain functions: the request's text in; text, bytes, a dict or a list out
(sent as JSON). An exception in a handler becomes an error reply (`Nats-Service-Error` headers), not a crash.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Callable

import pandas as pd

from . import frames
from .errors import LabError
from .messaging import encode_payload
from .session import Session, flush, get_session
from .units import parse_duration

Handler = Callable[[str], Any]
ERROR_HEADER, ERROR_CODE_HEADER = "Nats-Service-Error", "Nats-Service-Error-Code"
HANDLED_COLUMNS = ["received", "responder", "subject", "request", "reply", "error", "handler_ms"]


def _answer(handler: Handler, data: bytes) -> tuple[bytes, str | None, float]:
    """Run the handler; (reply bytes, error text or None, milliseconds it took)."""
    t0 = time.perf_counter()
    try:
        reply, error = encode_payload(handler(frames.decode(data))), None
    except Exception as exc:  # the requester gets the error; the responder keeps serving
        reply, error = b"", f"{type(exc).__name__}: {exc}"
    return reply, error, (time.perf_counter() - t0) * 1000


class _Handled:
    """A thread-safe log of answered requests, shown as a DataFrame."""

    def __init__(self) -> None:
        self._rows: list[dict] = []
        self._lock = threading.Lock()

    def add(self, **row: Any) -> None:
        with self._lock:
            self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def df(self) -> pd.DataFrame:
        with self._lock:
            frame = pd.DataFrame(list(self._rows), columns=HANDLED_COLUMNS)
        frame["received"] = pd.to_datetime(frame["received"], unit="s", utc=True)
        return frame


class Responder:
    """Answers requests on `subject` with `handler`; with `queue`, shares them with the group's other
    members (each request goes to one of them). `.df` lists what this responder answered."""

    def __init__(self, subject: str, handler: Handler, *, queue: str | None = None, name: str | None = None,
                 session: Session | None = None):
        self.session = (session or get_session()).ensure()
        self.subject, self.queue, self.name = subject, queue, name or subject
        self.handled = _Handled()
        nc = self.session.nc

        async def on_request(msg) -> None:
            received = time.time()
            reply, error, ms = _answer(handler, msg.data)
            if msg.reply:
                headers = {ERROR_HEADER: error, ERROR_CODE_HEADER: "500"} if error else None
                await nc.publish(msg.reply, reply, headers=headers)
            self.handled.add(received=received, responder=self.name, subject=msg.subject,
                             request=frames.decode(msg.data), reply=frames.decode(reply), error=error,
                             handler_ms=ms)

        async def start():
            sub = await nc.subscribe(subject, queue=queue or "", cb=on_request)
            await flush(nc)
            return sub

        self._sub = self.session.run(start())

    @property
    def df(self) -> pd.DataFrame:
        return self.handled.df

    def __len__(self) -> int:
        return len(self.handled)

    def stop(self) -> pd.DataFrame:
        """Unsubscribe; returns what it answered."""
        if self._sub is not None:
            self.session.run(self._sub.unsubscribe())
            self._sub = None
        return self.df

    def __repr__(self) -> str:
        group = f" in queue group {self.queue}" if self.queue else ""
        state = "answering" if self._sub is not None else "stopped"
        return f"<responder {self.name} on {self.subject}{group} ({state}): {len(self)} requests answered>"


def respond(subject: str, handler: Handler, *, queue: str | None = None, name: str | None = None,
            session: Session | None = None) -> Responder:
    """Answer requests on `subject` with `handler(text) -> reply` until `.stop()`."""
    return Responder(subject, handler, queue=queue, name=name, session=session)


class Service:
    """A nats-py `micro` service on the session's connection: each endpoint answers on `<prefix>.<name>`
    (prefix defaults to the service name) in the queue group `q`, and the service answers discovery
    ($SRV.PING, $SRV.INFO, $SRV.STATS) as every NATS service does."""

    def __init__(self, name: str, endpoints: dict[str, Handler], *, version: str = "0.1.0",
                 description: str | None = None, prefix: str | None = None, queue_group: str | None = None,
                 metadata: dict[str, str] | None = None, session: Session | None = None):
        from nats import micro
        from nats.micro.request import ServiceError

        if not endpoints:
            raise LabError("a service needs at least one endpoint: endpoints={'name': handler}")
        self.session = (session or get_session()).ensure()
        self.name = name
        self.handled = _Handled()
        prefix = name if prefix is None else prefix

        def endpoint_handler(endpoint: str, handler: Handler):
            async def handle(req) -> None:
                received = time.time()
                reply, error, ms = _answer(handler, req.data)
                self.handled.add(received=received, responder=f"{name}/{endpoint}", subject=req.subject,
                                 request=frames.decode(req.data), reply=frames.decode(reply), error=error,
                                 handler_ms=ms)
                if error:
                    # micro answers with the error headers and counts it in the endpoint's stats
                    raise ServiceError("500", error)
                await req.respond(reply)
            return handle

        async def start():
            svc = await micro.add_service(self.session.nc, name=name, version=version, description=description,
                                          metadata=metadata, queue_group=queue_group)
            for endpoint, handler in endpoints.items():
                subject = f"{prefix}.{endpoint}" if prefix else endpoint
                await svc.add_endpoint(name=endpoint, subject=subject, handler=endpoint_handler(endpoint, handler))
            await flush(self.session.nc)
            return svc

        try:
            self.service = self.session.run(start())
        except ValueError as exc:  # micro's checks of names and versions
            raise LabError(f"invalid service: {exc}") from None

    @property
    def id(self) -> str:
        return self.service.id

    def info(self) -> pd.DataFrame:
        """One row per endpoint: service, id, version, endpoint, subject, queue group."""
        info = self.service.info()
        return pd.DataFrame([{"service": info.name, "id": info.id, "version": info.version,
                              "endpoint": e.name, "subject": e.subject, "queue_group": e.queue_group}
                             for e in info.endpoints])

    def stats(self) -> pd.DataFrame:
        """One row per endpoint: requests, errors, last error, total and average processing time (ms)."""
        stats = self.service.stats()
        return pd.DataFrame([{"endpoint": e.name, "subject": e.subject, "requests": e.num_requests,
                              "errors": e.num_errors, "last_error": e.last_error or None,
                              "processing_ms": e.processing_time / 1e6,
                              "average_ms": e.average_processing_time / 1e6} for e in stats.endpoints])

    @property
    def df(self) -> pd.DataFrame:
        """Every request the service answered, in order."""
        return self.handled.df

    def stop(self) -> pd.DataFrame:
        """Stop answering (drains the endpoints); returns what it answered."""
        if not self.service.stopped.is_set():
            self.session.run(self.service.stop())
        return self.df

    def __repr__(self) -> str:
        state = "stopped" if self.service.stopped.is_set() else "running"
        return f"<service {self.name} {self.id} ({state}): {len(self.handled)} requests answered>"


def add_service(name: str, endpoints: dict[str, Handler], **options: Any) -> Service:
    """Start a `micro` service: `add_service("greeter", {"hello": lambda who: f"hello {who}"})` answers
    on `greeter.hello`. Options: version, description, prefix, queue_group, metadata, session."""
    return Service(name, endpoints, **options)


def discover(verb: str = "PING", name: str | None = None, *, timeout: Any = "500ms",
             session: Session | None = None) -> pd.DataFrame:
    """Ask every service (or those called `name`) on the server: PING (who is there), INFO (their
    endpoints) or STATS (their counters). Waits `timeout` for answers; one row per answer."""
    verb = verb.upper()
    if verb not in ("PING", "INFO", "STATS"):
        raise LabError(f"invalid verb {verb!r}: use PING, INFO or STATS")
    s = (session or get_session()).ensure()
    limit = parse_duration(timeout, "--timeout") or 0.5
    subject = f"$SRV.{verb}" + (f".{name}" if name else "")

    async def gather() -> list[dict]:
        answers: list[dict] = []

        async def on_reply(msg) -> None:
            try:
                answers.append(json.loads(msg.data))
            except ValueError:
                pass

        inbox = s.nc.new_inbox()
        sub = await s.nc.subscribe(inbox, cb=on_reply)
        await s.nc.publish(subject, b"", reply=inbox)
        await asyncio.sleep(limit)
        await sub.unsubscribe()
        return answers

    rows = []
    for a in s.run(gather()):
        row = {"name": a.get("name"), "id": a.get("id"), "version": a.get("version")}
        if verb == "INFO":
            row.update(description=a.get("description"),
                       endpoints=[e.get("subject") for e in a.get("endpoints") or []])
        elif verb == "STATS":
            row.update(requests=sum(e.get("num_requests", 0) for e in a.get("endpoints") or []),
                       errors=sum(e.get("num_errors", 0) for e in a.get("endpoints") or []),
                       started=a.get("started"))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["name", "id"], ignore_index=True) if rows else \
        pd.DataFrame(columns=["name", "id", "version"])
