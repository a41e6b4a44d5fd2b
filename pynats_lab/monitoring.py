"""Where the lab reads a server's own view of itself: `$SYS.REQ.SERVER.PING…` when the session's user is in
the system account (every server of a cluster answers), else the monitoring HTTP port (`/varz`, `/connz` …,
one URL per server). Both give nats-server's JSON documents; `gather` returns them per server.
"""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable

from .errors import LabError

if TYPE_CHECKING:
    from .session import Session

# A reply that comes later than this after the previous one is not waited for when the number of servers
# is not known yet (natscli waits the same way for an unknown cluster's answers).
GAP = 0.3

NEEDS = ("no way to read the servers: connect as a system-account user (%nats connect --creds/--user of "
         "the system account) or give the monitoring port (--monitor http://HOST:8222, comma-separated for a "
         "cluster)")

# $SYS request options (nats-server's *EventOptions JSON) to the HTTP query of the same endpoint.
_HTTP_NAMES = {"subscriptions": "subs", "account": "acc", "accounts": "accounts", "test": "test",
               "auth": "auth", "sort": "sort", "offset": "offset", "limit": "limit", "state": "state",
               "acc": "acc", "streams": "streams", "consumers": "consumers", "config": "config"}


def monitor_urls(text: str | list | tuple | None) -> list[str] | None:
    """`http://h:8222,http://h2:8222` (or a list) as a list of base URLs, each checked."""
    if not text:
        return None
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    urls = []
    for item in items:
        u = str(item).strip().rstrip("/")
        if not u:
            continue
        if "://" not in u:
            u = "http://" + u
        parsed = urllib.parse.urlparse(u)
        try:
            parsed.port
        except ValueError as exc:
            raise LabError(f"invalid monitoring URL {item!r}: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise LabError(f"invalid monitoring URL {item!r}: use e.g. http://127.0.0.1:8222")
        urls.append(u)
    if not urls:
        raise LabError(f"invalid monitoring URL {text!r}: use e.g. http://127.0.0.1:8222")
    return urls


class Source:
    """One way to ask every server of the session's connection for a monitoring document."""

    def __init__(self, session: Session, kind: str, urls: list[str] | None = None, nc=None):
        self.session, self.kind, self.urls, self.nc = session, kind, urls or [], nc

    def __repr__(self) -> str:
        where = "$SYS requests" if self.kind == "system" else "monitoring " + ", ".join(self.urls)
        return f"<server data through {where}>"

    async def gather(self, what: str, options: dict | None = None, timeout: float = 2.0) -> list[tuple[dict, Any]]:
        """[(server, document)] for every server that answered; `what` is STATSZ, VARZ, CONNZ, SUBSZ, JSZ,
        HEALTHZ or ACCOUNTZ. `server` has at least `name` and `id`."""
        if self.kind == "system":
            return await self._system(what, options or {}, timeout)
        return await asyncio.gather(*(self._http(u, what, options or {}, timeout) for u in self.urls))

    # -- $SYS ---------------------------------------------------------------------------------------
    async def _system(self, what: str, options: dict, timeout: float) -> list[tuple[dict, Any]]:
        subject = "$SYS.REQ.SERVER.PING" if what == "STATSZ" else f"$SYS.REQ.SERVER.PING.{what}"
        replies = await system_request(self.session, subject, options, timeout, nc=self.nc)
        out = []
        for doc in replies:
            server = doc.get("server") or {}
            if "error" in doc:
                err = doc["error"]
                raise LabError(f"{server.get('name', '?')} refused {subject}: "
                               f"{err.get('description', err)}" + (f" ({err['code']})" if err.get("code") else ""))
            data = doc.get("statsz") if what == "STATSZ" else doc.get("data")
            if what == "STATSZ" and data and data.get("active_servers"):
                self.session._server_count = data["active_servers"]
            out.append((server, data))
        return out

    # -- HTTP ---------------------------------------------------------------------------------------
    async def _http(self, base: str, what: str, options: dict, timeout: float) -> tuple[dict, Any]:
        endpoint = "varz" if what == "STATSZ" else what.lower()
        query = {}
        for key, value in options.items():
            if value in (None, False, ""):
                continue
            query[_HTTP_NAMES.get(key, key)] = "true" if value is True else value
        url = f"{base}/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        doc = await asyncio.to_thread(http_json, url, timeout)
        server = await self._identity(base, doc, timeout)
        return server, doc

    async def _identity(self, base: str, doc: dict, timeout: float) -> dict:
        names = self.session._monitor_names
        if base not in names:
            varz = doc if "server_name" in doc else await asyncio.to_thread(http_json, base + "/varz", timeout)
            names[base] = {"name": varz.get("server_name") or varz.get("server_id"), "id": varz.get("server_id"),
                           "cluster": (varz.get("cluster") or {}).get("name", ""), "ver": varz.get("version"),
                           "host": varz.get("host"), "monitor": base}
        return dict(names[base])


def http_json(url: str, timeout: float = 2.0) -> dict:
    """GET a monitoring endpoint; its JSON, also for 503 answers (e.g. /healthz when not healthy)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace").strip() or exc.reason
            raise LabError(f"monitoring {url} answered {exc.code}: {text}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = "connection refused (is the monitoring port right?)" if isinstance(reason, ConnectionRefusedError) \
            else str(reason)
        raise LabError(f"monitoring {url.split('?')[0]} not reachable: {why}") from None
    except (TimeoutError, OSError) as exc:
        raise LabError(f"monitoring {url.split('?')[0]} not reachable: {exc or 'timed out'}") from None
    except ValueError:
        raise LabError(f"monitoring {url.split('?')[0]} did not answer JSON: is it a nats-server monitoring "
                       "port?") from None


async def wait_until(changed: asyncio.Event, enough: Callable[[], bool], deadline: Callable[[], float]) -> None:
    """Wait until `enough()` or the loop's clock passes `deadline()`; both are asked again each time `changed`
    is set (by the callback that collects answers)."""
    loop = asyncio.get_running_loop()
    while not enough():
        left = deadline() - loop.time()
        if left <= 0:
            return
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), left)
        except asyncio.TimeoutError:
            pass


async def system_request(s: Session, subject: str, body: dict | bytes | None = None, timeout: float = 2.0,
                         expect: int | None = None, nc=None) -> list[dict]:
    """Send a `$SYS` request and collect every server's JSON answer: until `expect` answers (default: as many
    servers as the last STATSZ counted), or GAP seconds without a new one, or `timeout`."""
    import nats.errors

    nc = nc or s.nc
    expect = expect or s._server_count
    answers: list[dict] = []
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    state = {"no_responders": False, "last": 0.0}

    async def on_msg(msg) -> None:
        if msg.headers and msg.headers.get("Status") == "503":
            state["no_responders"] = True
        else:
            try:
                answers.append(json.loads(msg.data))
            except ValueError:
                pass
        state["last"] = loop.time()
        changed.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_msg)
    payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    start = loop.time()
    try:
        await nc.publish(subject, payload, reply=inbox)

        def deadline() -> float:
            end = start + timeout
            return min(end, state["last"] + GAP) if answers else end

        await wait_until(changed, lambda: state["no_responders"] or bool(expect and len(answers) >= expect),
                         deadline)
        if state["no_responders"] and not answers:
            raise nats.errors.NoRespondersError
    finally:
        await sub.unsubscribe()
    if not answers:
        raise LabError(f"no server answered {subject} within {timeout:g}s")
    return answers


async def is_system_user(s: Session) -> bool:
    """Whether the session's connection may ask `$SYS.REQ.SERVER.PING` (answered once per connection)."""
    import nats.errors

    key = id(s.nc)
    cached = s._system_user
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        answers = await system_request(s, "$SYS.REQ.SERVER.PING", {}, timeout=1.0)
        count = max((a.get("statsz") or {}).get("active_servers") or 0 for a in answers)
        s._server_count = count or len(answers)
        system = True
    except (nats.errors.NoRespondersError, LabError):
        system = False
    s._system_user = (key, system)
    return system


async def system_connection(s: Session):
    """A connection that may ask `$SYS`: the session's own if its user is in the system account, else the
    embedded default's system user's; None when there is neither."""
    if await is_system_user(s):
        return s.nc
    nc = await s.system_connection()
    if nc is not None and s._server_count is None:
        answers = await system_request(s, "$SYS.REQ.SERVER.PING", {}, timeout=1.0, nc=nc)
        s._server_count = max((a.get("statsz") or {}).get("active_servers") or 0 for a in answers) or len(answers)
    return nc


async def source(s: Session, monitor: Any = None) -> Source:
    """The way to reach the servers: `monitor` URLs when given (remembered for the session), else `$SYS` for a
    system-account user (or the embedded default's own system user), else the monitoring URLs the session
    knows."""
    given = monitor_urls(monitor)
    if given:
        if given != s.monitor_urls:
            s._monitor_names.clear()
        s.monitor_urls = given
        return Source(s, "monitor", given)
    nc = await system_connection(s)
    if nc is not None:
        return Source(s, "system", nc=nc)
    if s.monitor_urls:
        return Source(s, "monitor", s.monitor_urls)
    raise LabError(NEEDS)
