"""Message tracing on both servers: Nats-Trace-Dest through a subject mapping, a stream, a queue group, a stream
export and a service import with allow_trace; Nats-Trace-Only traces without delivering or storing; a sampled
traceparent in an account with msg_trace. The trace events are compared field by field with nats-server's
(only times and connection ids differ, and nats-server's envelope has its build's feature flags)."""
from __future__ import annotations

import asyncio
import json

import nats

from pynats_lab.session import flush

CONFIG = """
jetstream { store_dir: "%s" }
accounts {
  APP { jetstream: enabled, users [{user: app, password: app}]
        mappings = { "orders.new": "orders.created" }
        msg_trace: { dest: "trace.sampled", sampling: 100 }
        exports [{stream: "public.>"}, {service: "svc.>", allow_trace: true}] }
  OTHER { users [{user: other, password: other}]
          imports [{stream: {account: APP, subject: "public.>"}, allow_trace: true},
                   {service: {account: APP, subject: "svc.>"}}] }
}
"""

CASES = [
    ("app", "orders.new", {"Nats-Trace-Dest": "trace.dest"}, "trace.dest"),
    ("app", "public.news", {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "true"}, "trace.dest"),
    ("other", "svc.ping", {"Nats-Trace-Dest": "trace.other"}, "trace.other"),
    ("app", "orders.new", {"Nats-Trace-Dest": "trace.dest", "Nats-Trace-Only": "true"}, "trace.dest"),
    ("app", "plain.subject", {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
     "trace.sampled"),
]


async def _scenario(srv):
    app = await nats.connect(f"nats://app:app@127.0.0.1:{srv.port}", name="tracer", allow_reconnect=False)
    other = await nats.connect(f"nats://other:other@127.0.0.1:{srv.port}", name="other-side",
                               allow_reconnect=False)
    conns = {"app": app, "other": other}
    try:
        js = app.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        got = []

        async def keep(msg):
            got.append(msg.subject)

        async def serve(msg):
            await msg.respond(b"pong")

        await app.subscribe("orders.created", queue="billing", cb=keep)
        await other.subscribe("public.news", cb=keep)
        await app.subscribe("svc.ping", cb=serve)
        dests = {"trace.dest": await app.subscribe("trace.dest"),
                 "trace.sampled": await app.subscribe("trace.sampled"),
                 "trace.other": await other.subscribe("trace.other")}
        await flush(app)
        await flush(other)
        traces = []
        for user, subject, headers, dest in CASES:
            nc = conns[user]
            await nc.publish(subject, b"hello", headers=headers, reply=nc.new_inbox() if user == "other" else "")
            doc = json.loads((await dests[dest].next_msg(timeout=5)).data)
            for event in doc["events"]:
                assert event.pop("ts") and isinstance(event.pop("cid", 0), int)
            doc["server"] = sorted(doc["server"].keys() - {"feature_flags"})
            traces.append(doc)
        await flush(app)
        await flush(other)
        stored = (await js.stream_info("ORDERS")).state.messages
        return traces, sorted(got), stored
    finally:
        await app.close()
        await other.close()


def test_trace_events_match_nats_server(start_server, tmp_path):
    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=CONFIG % (tmp_path / kind), kind=kind)
        results[kind] = asyncio.run(_scenario(srv))
    assert results["embedded"] == results["nats-server"]
    traces, delivered, stored = results["embedded"]
    assert [e["type"] for e in traces[0]["events"]] == ["in", "sm", "js", "eg"]
    assert [e["type"] for e in traces[2]["events"]] == ["in", "si", "eg"]
    # Trace-only messages were neither delivered nor stored.
    assert delivered == ["orders.created"]
    assert stored == 1
