"""PriorityGroups: clients pulling from one consumer with a priority policy, and which of them receives each
message as the busiest one leaves halfway: a pinned client keeps everything until its pin times out, overflow
helpers join only once the backlog reaches their `min_pending`, prioritized requests are served lowest number
first."""
from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import LabError, describe
from ..session import Session, get_session
from ..units import parse_duration
from .base import LabWidget, error_html, table_html

POLICIES = ("pinned_client", "overflow", "prioritized")
GROUP = "demo"
LESSONS = {
    "pinned_client": "One client holds the pin and gets every message (each carries its <code>Nats-Pin-Id</code>); "
                     "the others wait. When it leaves, nobody gets anything until <code>priority_timeout</code> "
                     "has passed; then the next client is pinned.",
    "overflow": "c1 pulls without conditions; the other clients ask with <code>min_pending</code>, so they get "
                "messages only when c1 is gone and the backlog reaches that size: what stays below it waits.",
    "prioritized": "Each client's requests carry a priority (c1: 0, c2: 1, ...): the lowest number waiting gets "
                   "the messages; when c1 leaves, c2 takes over.",
}


class PriorityGroups(LabWidget):
    """`PriorityGroups("pinned_client")` (or "overflow", "prioritized"): `clients` pull from a temporary
    stream's consumer while `messages` are published one every `interval`; the client that received most
    leaves after half of them. `.df`: seq, client, pin; `.summary()`: messages per client before/after."""

    def __init__(self, policy: str = "pinned_client", *, clients: int = 3, messages: int = 12,
                 interval: Any = "150ms", priority_timeout: Any = "1s", min_pending: int = 3,
                 wait: bool = False, session: Session | None = None):
        if policy not in POLICIES:
            raise LabError(f"invalid policy {policy!r}: use {', '.join(POLICIES)}")
        if clients < 2 or messages < 2:
            raise LabError("PriorityGroups needs at least 2 clients and 2 messages")
        self.session = (session or get_session()).ensure()
        self.policy, self.clients, self.messages, self.min_pending = policy, clients, messages, min_pending
        self.interval = parse_duration(interval, "interval") or 0.15
        self.timeout = parse_duration(priority_timeout, "priority_timeout") or 1.0
        self.rows: list[dict] = []
        self.left: str | None = None
        self._lock = threading.Lock()
        self.status = widgets.HTML("pulling…")
        self.table = widgets.HTML()
        super().__init__([widgets.HTML(f"<b>Priority groups: {policy}</b>"), self.status, self.table,
                          widgets.HTML(f"<p><small>{LESSONS[policy]}</small></p>")])
        self.add_class("pynats-priority-groups")
        self._job = self.session.submit(self._run())
        if wait:
            self.wait()

    def _fields(self, index: int) -> dict:
        if self.policy == "overflow" and index > 0:
            return {"min_pending": self.min_pending}
        if self.policy == "prioritized":
            return {"priority": min(index, 9)}
        return {}

    async def _run(self) -> None:
        s = self.session
        nc = s.nc
        tag = secrets.token_hex(3)
        stream, subject = f"PRIORITY_DEMO_{tag}", f"priority.demo.{tag}"
        try:
            await _api(nc, f"$JS.API.STREAM.CREATE.{stream}",
                       {"name": stream, "subjects": [subject], "storage": "memory"})
            config = {"durable_name": "demo", "ack_policy": "none", "priority_policy": self.policy,
                      "priority_groups": [GROUP]}
            if self.policy == "pinned_client":
                config["priority_timeout"] = int(self.timeout * 1e9)
            await _api(nc, f"$JS.API.CONSUMER.CREATE.{stream}.demo", {"stream_name": stream, "config": config})
            subs = {}
            for i in range(self.clients):
                name = f"c{i + 1}"
                subs[name] = await nc.subscribe(nc.new_inbox(), cb=self._receiver(name))
                body = {"batch": self.messages, "expires": 60_000_000_000, "group": GROUP, **self._fields(i)}
                await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.demo", json.dumps(body).encode(),
                                 reply=subs[name].subject)
            await nc.flush()
            for n in range(1, self.messages + 1):
                if n == self.messages // 2 + 1:
                    self.left = self._busiest()
                    await subs.pop(self.left).unsubscribe()  # the server drops its request: no interest
                    await nc.flush()
                await nc.request(subject, b"message %d" % n, timeout=5)
                await asyncio.sleep(self.interval)
            end = time.monotonic() + self.timeout + 3
            while len(self.rows) < self.messages and time.monotonic() < end:
                await asyncio.sleep(0.05)
            for sub in subs.values():
                await sub.unsubscribe()
            got = len(self.rows)
            self.status.value = (f"done: {got} of {self.messages} messages delivered; {self.left} left after "
                                 f"message {self.messages // 2}" + ("" if got == self.messages else
                                                                     f"; {self.messages - got} waiting for nobody"))
            await self._drawn()
        except Exception as exc:
            self.status.value = error_html(describe(exc))
            raise
        finally:
            try:
                await nc.request(f"$JS.API.STREAM.DELETE.{stream}", b"", timeout=5)
            except Exception:
                pass

    def _receiver(self, name: str):
        async def on_msg(msg) -> None:
            if (msg.headers or {}).get("Status"):
                return
            seq = msg.metadata.sequence.stream if msg.reply else None
            with self._lock:
                self.rows.append({"seq": seq, "client": name, "pin": (msg.headers or {}).get("Nats-Pin-Id"),
                                  "after_leave": self.left is not None, "received": time.time()})
            self._draw_soon()
        return on_msg

    def _busiest(self) -> str:
        counts = self.summary()
        if not len(counts):
            return "c1"
        return str(counts.sort_values(["messages", "client"], ascending=[False, True])["client"].iloc[0])

    @property
    def df(self) -> pd.DataFrame:
        with self._lock:
            frame = pd.DataFrame(list(self.rows), columns=["seq", "client", "pin", "after_leave", "received"])
        frame["received"] = pd.to_datetime(frame["received"], unit="s", utc=True)
        return frame.sort_values("seq").reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Messages per client, before and after the busiest one left; every client, those that got nothing
        too (waiting is what a stand-by does)."""
        df = self.df
        names = [f"c{i + 1}" for i in range(self.clients)]
        out = pd.DataFrame({"client": names})
        if len(df):
            after = df["after_leave"].astype(bool)
            out["messages"] = out["client"].map(df["client"].value_counts()).fillna(0).astype(int)
            out["before"] = out["client"].map(df.loc[~after, "client"].value_counts()).fillna(0).astype(int)
            out["after"] = out["client"].map(df.loc[after, "client"].value_counts()).fillna(0).astype(int)
        else:
            out["messages"] = out["before"] = out["after"] = 0
        return out

    def _render(self) -> None:
        self.table.value = self._tables_html()  # the title and the lesson are widgets of their own

    def _tables_html(self) -> str:
        df = self.df
        rows = df[["seq", "client", "pin", "after_leave"]] if len(df) else df
        gone = f"after {self.left} left" if self.left else "after the busiest left"
        rows = rows.rename(columns={"pin": "Nats-Pin-Id", "after_leave": gone})
        return ("<p><small>messages per client</small></p>" + table_html(self.summary())
                + "<p><small>who received each message</small></p>" + table_html(rows))

    def static_html(self) -> str:
        return (f"<b>Priority groups: {self.policy}</b>" + self._tables_html()
                + f"<p><small>{LESSONS[self.policy]}</small></p>")


async def _api(nc, subject: str, body: dict) -> dict:
    resp = json.loads((await nc.request(subject, json.dumps(body).encode(), timeout=5)).data)
    if "error" in resp:
        raise LabError(f"{subject}: {resp['error'].get('description')} ({resp['error'].get('err_code')})")
    return resp
