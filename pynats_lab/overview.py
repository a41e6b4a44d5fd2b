"""The servers at a glance, as `nats server ls/report/check` show them, in DataFrames: one row per server,
per connection, per account; health; and who would receive a message on a subject (`%nats subs`).

Every function only reads (monitoring documents through `monitoring.Source`); none changes a server.
"""
from __future__ import annotations

import time
from typing import Any

import pandas as pd

from .errors import LabError
from .monitoring import Source, source
from .session import Session, in_session
from .units import at_least_one


def _time(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")
    except ValueError:
        return None


def uptime(seconds: float | None) -> str | None:
    """nats-server's way: 3d4h5m6s, leading zero units left out."""
    if seconds is None:
        return None
    secs = max(int(seconds), 0)
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    mins, secs = divmod(rem, 60)
    out = ""
    if days:
        out += f"{days}d"
    if days or hours:
        out += f"{hours}h"
    if days or hours or mins:
        out += f"{mins}m"
    return out + f"{secs}s"


def _age(start: pd.Timestamp | None, now: pd.Timestamp | None = None) -> float | None:
    if start is None:
        return None
    now = now or pd.Timestamp.now(tz="UTC")
    return (now - start).total_seconds()


LS_COLUMNS = ["server", "id", "version", "cluster", "connections", "subscriptions", "in_msgs", "out_msgs",
              "in_bytes", "out_bytes", "slow_consumers", "mem", "cpu", "uptime", "streams", "consumers",
              "js_storage", "js_memory"]


def _from_statsz(server: dict, st: dict) -> dict:
    start = _time(st.get("start"))
    return {"server": server.get("name"), "id": server.get("id"), "version": server.get("ver"),
            "cluster": server.get("cluster") or "", "connections": st.get("connections"),
            "subscriptions": st.get("subscriptions"),
            "in_msgs": (st.get("received") or {}).get("msgs"), "out_msgs": (st.get("sent") or {}).get("msgs"),
            "in_bytes": (st.get("received") or {}).get("bytes"), "out_bytes": (st.get("sent") or {}).get("bytes"),
            "slow_consumers": st.get("slow_consumers"), "mem": st.get("mem"), "cpu": st.get("cpu"),
            "uptime": uptime(_age(start)), "start": start}


def _from_varz(server: dict, v: dict) -> dict:
    start = _time(v.get("start"))
    return {"server": v.get("server_name") or server.get("name"), "id": v.get("server_id"),
            "version": v.get("version"), "cluster": (v.get("cluster") or {}).get("name", ""),
            "connections": v.get("connections"), "subscriptions": v.get("subscriptions"),
            "in_msgs": v.get("in_msgs"), "out_msgs": v.get("out_msgs"), "in_bytes": v.get("in_bytes"),
            "out_bytes": v.get("out_bytes"), "slow_consumers": v.get("slow_consumers"), "mem": v.get("mem"),
            "cpu": v.get("cpu"), "uptime": v.get("uptime") or uptime(_age(start)), "start": start}


def _jetstream(jsz: dict | None) -> dict:
    if not jsz or jsz.get("disabled"):
        return {"streams": None, "consumers": None, "js_storage": None, "js_memory": None}
    return {"streams": jsz.get("streams"), "consumers": jsz.get("consumers"),
            "js_storage": jsz.get("storage"), "js_memory": jsz.get("memory")}


async def _servers(src: Source, timeout: float = 2.0) -> list[dict]:
    kind = "STATSZ" if src.kind == "system" else "VARZ"
    stats = await src.gather(kind, timeout=timeout)
    jsz = {server.get("id") or doc.get("server_id"): doc for server, doc in await src.gather("JSZ", timeout=timeout)}
    rows = []
    for server, doc in stats:
        row = _from_statsz(server, doc or {}) if kind == "STATSZ" else _from_varz(server, doc or {})
        row.update(_jetstream(jsz.get(row["id"])))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["cluster"] or "", r["server"] or ""))


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


_LS_SORTS = {"name": ("server", True), "cluster": ("cluster", True), "conns": ("connections", False),
             "subs": ("subscriptions", False), "mem": ("mem", False), "cpu": ("cpu", False),
             "slow": ("slow_consumers", False), "uptime": ("start", True), "in-msgs": ("in_msgs", False),
             "out-msgs": ("out_msgs", False), "streams": ("streams", False), "storage": ("js_storage", False)}


@in_session
async def server_ls(s: Session, *, sort: str | None = None, monitor: Any = None) -> pd.DataFrame:
    """One row per server (every server of a cluster): name, id, version, cluster, connections,
    subscriptions, messages and bytes in/out, slow consumers, memory, cpu %, uptime, JetStream streams,
    consumers and storage. Through `$SYS.REQ.SERVER.PING` for a system-account user, else the monitoring
    port(s) (`monitor=`, remembered; the embedded default's own is known). `sort` as `nats server ls
    --sort`: name, cluster (default: cluster then name), conns, subs, mem, cpu, slow, uptime, in-msgs,
    out-msgs, streams, storage; counters largest first."""
    key = (sort or "cluster").replace("_", "-")
    if key not in _LS_SORTS:
        raise LabError(f"invalid --sort {sort!r}: use one of {', '.join(_LS_SORTS)}")
    src = await source(s, monitor)
    rows = await _servers(src)
    frame = pd.DataFrame(rows, columns=LS_COLUMNS + ["start"])
    column, ascending = _LS_SORTS[key]
    frame = frame.sort_values([column, "server"], ascending=[ascending, True], kind="stable", na_position="last")
    return frame[LS_COLUMNS].reset_index(drop=True)


_CONN_COLUMNS = ["server", "cid", "name", "account", "user", "ip", "port", "lang", "version", "uptime", "idle",
                 "rtt", "subs", "pending_bytes", "in_msgs", "out_msgs", "in_bytes", "out_bytes"]
_CONN_SORTS = {"subs": ("subs", False), "cid": ("cid", True), "in-msgs": ("in_msgs", False),
               "out-msgs": ("out_msgs", False), "in-bytes": ("in_bytes", False), "out-bytes": ("out_bytes", False),
               "uptime": ("start", True), "pending": ("pending_bytes", False), "name": ("name", True),
               "account": ("account", True), "idle": ("last_activity", True), "rtt": ("rtt_s", False),
               "server": ("server", True)}
_PAGE = 1024


def _go_seconds(text: str | None) -> float | None:
    """Go's duration text (1.5ms, 872µs, 2m3s) in seconds."""
    if not text:
        return None
    from .units import parse_duration
    try:
        return parse_duration(text.replace("µ", "u"))
    except LabError:
        return None


_STATES = {"open": 0, "closed": 1, "all": 2}  # nats-server's ConnState, as $SYS requests take it


async def _connections(src: Source, account: str | None = None, state: str = "open") -> list[dict]:
    rows: list[dict] = []
    offset = 0
    while True:
        options: dict = {"auth": True, "offset": offset, "limit": _PAGE}
        if account:
            options["acc"] = account
        if state != "open":
            options["state"] = _STATES[state] if src.kind == "system" else state
        more = False
        for server, doc in await src.gather("CONNZ", options):
            doc = doc or {}
            for c in doc.get("connections") or []:
                rows.append({"server": server.get("name"), "cid": c.get("cid"), "name": c.get("name", ""),
                             # connz leaves the global account unnamed
                             "account": c.get("account") or "$G", "user": c.get("authorized_user", ""),
                             "ip": c.get("ip"), "port": c.get("port"), "lang": c.get("lang", ""),
                             "version": c.get("version", ""), "uptime": c.get("uptime"), "idle": c.get("idle"),
                             "rtt": c.get("rtt"), "subs": c.get("subscriptions"),
                             "pending_bytes": c.get("pending_bytes"), "in_msgs": c.get("in_msgs"),
                             "out_msgs": c.get("out_msgs"), "in_bytes": c.get("in_bytes"),
                             "out_bytes": c.get("out_bytes"), "start": _time(c.get("start")),
                             "last_activity": _time(c.get("last_activity")), "rtt_s": _go_seconds(c.get("rtt")),
                             "stop": _time(c.get("stop")), "reason": c.get("reason", "")})
            if doc.get("total", 0) > offset + _PAGE:
                more = True
        if not more:
            return rows
        offset += _PAGE


@in_session
async def server_report_connections(s: Session, *, sort: str = "subs", top: int | None = 1000,
                                    account: str | None = None, state: str = "open",
                                    monitor: Any = None) -> pd.DataFrame:
    """Every client connection of every server, one row each (server, cid, name, account, user, ip, uptime,
    rtt, subs, pending, msgs and bytes in/out), sorted as `nats server report connections --sort` (subs,
    in-msgs, out-msgs, in-bytes, out-bytes, uptime, cid, plus name, account, pending, idle, rtt, server),
    the `top` N, only `account`'s if given. `state` closed or all adds the connections the servers remember
    as closed, with `stop` and `reason`."""
    key = (sort or "subs").replace("_", "-")
    if key not in _CONN_SORTS:
        raise LabError(f"invalid --sort {sort!r}: use one of {', '.join(_CONN_SORTS)}")
    if state not in _STATES:
        raise LabError(f"invalid --state {state!r}: use open, closed or all")
    at_least_one(top, "--top")
    src = await source(s, monitor)
    rows = await _connections(src, account, state)
    columns = _CONN_COLUMNS + (["stop", "reason"] if state != "open" else [])
    frame = pd.DataFrame(rows, columns=columns + ["start", "last_activity", "rtt_s"])
    column, ascending = _CONN_SORTS[key]
    frame = frame.sort_values([column, "cid"], ascending=[ascending, True], kind="stable", na_position="last")
    if top:
        frame = frame.head(top)
    return frame[columns].reset_index(drop=True)


_JS_COLUMNS = ["server", "cluster", "domain", "streams", "consumers", "messages", "bytes", "memory", "storage",
               "max_memory", "max_storage", "api_requests", "api_errors", "meta_leader"]


@in_session
async def server_report_jetstream(s: Session, *, monitor: Any = None) -> pd.DataFrame:
    """One row per server with JetStream: streams, consumers, messages, bytes, memory and file storage used
    against their limits, API requests and errors, and which server is the meta leader (clusters)."""
    src = await source(s, monitor)
    rows = []
    for server, doc in await src.gather("JSZ"):
        doc = doc or {}
        if doc.get("disabled"):
            continue
        config, api, meta = doc.get("config") or {}, doc.get("api") or {}, doc.get("meta_cluster") or {}
        name = server.get("name")
        rows.append({"server": name, "cluster": server.get("cluster") or meta.get("name", ""),
                     "domain": config.get("domain", ""), "streams": doc.get("streams"),
                     "consumers": doc.get("consumers"), "messages": doc.get("messages"), "bytes": doc.get("bytes"),
                     "memory": doc.get("memory"), "storage": doc.get("storage"),
                     "max_memory": config.get("max_memory"), "max_storage": config.get("max_storage"),
                     "api_requests": api.get("total"), "api_errors": api.get("errors"),
                     "meta_leader": bool(meta) and meta.get("leader") == name})
    if not rows:
        raise LabError("%server report jetstream: JetStream is not enabled on any server")
    return pd.DataFrame(rows, columns=_JS_COLUMNS).sort_values("server", ignore_index=True)


_ACC_COLUMNS = ["account", "connections", "subs", "in_msgs", "out_msgs", "in_bytes", "out_bytes"]
_ACC_SORTS = {"subs": "subs", "conns": "connections", "in-msgs": "in_msgs", "out-msgs": "out_msgs",
              "in-bytes": "in_bytes", "out-bytes": "out_bytes", "account": "account"}


@in_session
async def server_report_accounts(s: Session, *, sort: str = "subs", top: int | None = 1000,
                                 monitor: Any = None) -> pd.DataFrame:
    """One row per account across all servers (as `nats server report accounts`): connections,
    subscriptions, messages and bytes in/out of its connections; accounts without connections too."""
    key = (sort or "subs").replace("_", "-")
    if key not in _ACC_SORTS:
        raise LabError(f"invalid --sort {sort!r}: use one of {', '.join(_ACC_SORTS)}")
    at_least_one(top, "--top")
    src = await source(s, monitor)
    conns = await _connections(src)
    names: set[str] = set()
    for _, doc in await src.gather("ACCOUNTZ"):
        names.update((doc or {}).get("accounts") or [])
    totals = {n: dict.fromkeys(_ACC_COLUMNS[1:], 0) for n in names}
    for c in conns:
        t = totals.setdefault(c["account"], dict.fromkeys(_ACC_COLUMNS[1:], 0))
        t["connections"] += 1
        for k in ("subs", "in_msgs", "out_msgs", "in_bytes", "out_bytes"):
            t[k] += c[k] or 0
    frame = pd.DataFrame([{"account": n, **t} for n, t in totals.items()], columns=_ACC_COLUMNS)
    column = _ACC_SORTS[key]
    frame = frame.sort_values([column, "account"], ascending=[column == "account", True], kind="stable")
    return (frame.head(top) if top else frame).reset_index(drop=True)


_HEALTH_COLUMNS = ["server", "cluster", "status", "status_code", "error"]


@in_session
async def server_health(s: Session, *, js_enabled_only: bool = False, monitor: Any = None) -> pd.DataFrame:
    """Each server's health check (`/healthz`, `$SYS.REQ.SERVER.PING.HEALTHZ`): status ok / unavailable /
    error with the server's reasons (JetStream not current, streams or consumers not recovered …)."""
    src = await source(s, monitor)
    rows = []
    for server, doc in await src.gather("HEALTHZ", {"js-enabled-only": js_enabled_only} if js_enabled_only else {}):
        doc = doc or {}
        errors = [e.get("error") or e.get("description") for e in doc.get("errors") or [] if isinstance(e, dict)]
        error = doc.get("error") or "; ".join(e for e in errors if e)
        rows.append({"server": server.get("name"), "cluster": server.get("cluster") or "",
                     "status": doc.get("status"), "status_code": doc.get("status_code", 200 if doc.get("status") == "ok" else None),
                     "error": error or ""})
    return pd.DataFrame(rows, columns=_HEALTH_COLUMNS).sort_values("server", ignore_index=True)


def check_publish_subject(subject: str) -> str:
    """A subject a message can be published on: tokens not empty, no spaces, no wildcards."""
    tokens = (subject or "").split(".")
    if not subject or any(not t or any(ch.isspace() for ch in t) for t in tokens):
        raise LabError(f"invalid subject {subject!r}: dot-separated tokens, none empty, no spaces")
    if any(t in ("*", ">") for t in tokens):
        raise LabError(f"invalid subject {subject!r}: a message is published on a subject without wildcards")
    return subject


_SUBS_COLUMNS = ["server", "account", "cid", "client", "ip", "subscription", "queue", "msgs", "sid"]


@in_session
async def interest(s: Session, subject: str, *, account: str | None = None, monitor: Any = None) -> pd.DataFrame:
    """Who would receive a message published on `subject` (no message is sent): every matching subscription
    of every server with its client (id, name, IP), queue group and the messages it got so far. Within a
    queue group only one member receives each message."""
    check_publish_subject(subject)
    src = await source(s, monitor)
    options: dict = {"subscriptions": True, "test": subject, "limit": 100000}
    if account:
        options["account"] = account
    matches = await src.gather("SUBSZ", options)
    wanted = {(server.get("name"), sub.get("cid")) for server, doc in matches
              for sub in (doc or {}).get("subscriptions_list") or []}
    clients: dict[tuple, dict] = {}
    if wanted:
        for c in await _connections(src, account):
            clients[(c["server"], c["cid"])] = c
    rows = []
    for server, doc in matches:
        for sub in (doc or {}).get("subscriptions_list") or []:
            if account and sub.get("account") not in (None, account):
                continue
            c = clients.get((server.get("name"), sub.get("cid")))
            # A subscription of no client connection is the server's own: a stream, a service import …
            client = c.get("name", "") if c else "(internal)"
            c = c or {}
            rows.append({"server": server.get("name"), "account": sub.get("account", c.get("account", "")),
                         "cid": sub.get("cid"), "client": client, "ip": c.get("ip"),
                         "subscription": sub.get("subject"), "queue": sub.get("qgroup", ""),
                         "msgs": sub.get("msgs"), "sid": sub.get("sid")})
    frame = pd.DataFrame(rows, columns=_SUBS_COLUMNS)
    return frame.sort_values(["server", "account", "cid", "subscription"], kind="stable", ignore_index=True)


# -- sampling for %server watch and the ServerMonitor widget ----------------------------------------------
SAMPLE_COLUMNS = ["time", "server", "in_msgs_s", "out_msgs_s", "in_bytes_s", "out_bytes_s", "connections",
                  "slow_consumers"]


class ServerSampler:
    """Counters of every server read again and again, turned into rates between two reads."""

    def __init__(self, session: Session, monitor: Any = None):
        self.session = session
        self._monitor = monitor
        self._src: Source | None = None
        self._last: dict[str, tuple[float, dict]] = {}
        self.rows: list[dict] = []

    async def sample(self) -> list[dict]:
        """One read of every server; rows of rates since the previous read (none on the first read)."""
        if self._src is None:
            self._src = await source(self.session, self._monitor)
        kind = "STATSZ" if self._src.kind == "system" else "VARZ"
        now = time.time()
        got = []
        for server, doc in await self._src.gather(kind, timeout=2.0):
            row = _from_statsz(server, doc or {}) if kind == "STATSZ" else _from_varz(server, doc or {})
            got.append(row)
        out = []
        for row in got:
            name = row["server"]
            before = self._last.get(name)
            self._last[name] = (now, row)
            if before is None:
                continue
            dt = max(now - before[0], 1e-6)
            prev = before[1]
            out.append({"time": pd.Timestamp(now, unit="s", tz="UTC"), "server": name,
                        **{f"{k}_s": max(((row[k] or 0) - (prev[k] or 0)) / dt, 0.0)
                           for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")},
                        "connections": row["connections"], "slow_consumers": row["slow_consumers"]})
        self.rows.extend(out)
        return out

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=SAMPLE_COLUMNS)


def server_watch(*, interval: Any = "1s", timeout: Any = "10s", monitor: Any = None,
                 session: Session | None = None) -> pd.DataFrame:
    """Print every server's rates each `interval` for `timeout` (or until Ctrl-C), as `%server watch` does
    outside Jupyter; returns all of them (the ServerMonitor widget's DataFrame)."""
    from .session import get_session
    from .units import parse_duration, parse_interval

    s = (session or get_session()).ensure()
    every = parse_interval(interval)
    limit = parse_duration(timeout, "--timeout")
    if limit is None or limit <= 0:
        raise LabError(f"invalid --timeout {timeout!r}: it must be more than 0")
    sampler = ServerSampler(s, monitor)
    s.run(sampler.sample())
    end = time.monotonic() + limit
    try:
        while time.monotonic() + every <= end + 1e-9:
            time.sleep(every)
            rows = s.run(sampler.sample())
            if rows:
                frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
                frame = frame.round({c: 1 for c in frame.columns if c.endswith("_s")})
                frame["time"] = frame["time"].dt.strftime("%H:%M:%S")
                print(frame.to_string(index=False) + "\n", flush=True)
    except KeyboardInterrupt:
        pass
    return sampler.frame
