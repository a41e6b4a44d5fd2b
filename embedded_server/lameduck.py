"""Lame duck mode (nats-server's lameDuckMode, `--signal ldm` / SIGUSR2): stop accepting clients, announce it
(`$SYS.SERVER.<id>.LAMEDUCK`, INFO with `ldm: true`), stop JetStream, wait `lame_duck_grace_period`, close the
clients spread over the rest of `lame_duck_duration` (at most one a second), then shut down."""
from __future__ import annotations

import asyncio
import json
import random

from embedded_server.errors import SERVER_SHUTDOWN
from embedded_server.gojson import compact_json


async def enter(server) -> None:
    if server.shutting_down or server.lame_duck or server._listener is None:
        return
    server.notice("Entering lame duck mode, stop accepting new clients")
    server.lame_duck = True
    events = server.events
    if events is not None:
        events.publish(f"$SYS.SERVER.{server.server_id}.LAMEDUCK", events.server_info())
    server._listener.close()
    server._listener = None
    opts = server.options
    grace = abs(opts.lame_duck_grace_period)
    duration = opts.lame_duck_duration
    if server.jetstream is not None:
        try:
            server.jetstream.shutdown()
        except Exception as e:
            server.error(f"JetStream shutdown failed: {e}")
        server.jetstream = None
    clients = [c for c in server.clients.values() if not c.closed]
    if server.shutting_down or not clients:
        await server.shutdown()
        return
    spread = duration - grace
    if spread <= 0:
        spread = 1.0
    interval = spread / len(clients)
    batch = 1
    if interval < 1e-9:
        interval = 1e-9
        batch = max(int(len(clients) / spread), 1)
    interval = min(interval, 1.0)
    _announce(server, clients)
    await asyncio.sleep(grace)
    if server.shutting_down:
        return
    server.notice("Closing existing clients")
    for i, client in enumerate(clients):
        client.close(SERVER_SHUTDOWN)
        if i == len(clients) - 1:
            break
        if batch == 1 or i % batch == 0:
            await asyncio.sleep(max(random.uniform(0, interval), interval / 2))
            if server.shutting_down:
                return
    await server.shutdown()


def _announce(server, clients) -> None:
    """INFO with `ldm: true` to every client that has sent CONNECT (nats-server's sendLDMToClients)."""
    base = json.loads(server.info_json(None)[5:].strip())
    base["ldm"] = True
    for client in clients:
        if client.closed or not client.connect_received or client.opts.get("protocol", 0) < 1:
            continue
        info = dict(base)
        info["client_id"] = client.cid
        if client.host:
            info["client_ip"] = client.host
        client.out.append(b"INFO " + compact_json(info) + b" \r\n")
        if not client.dirty:
            client.dirty = True
            server.dirty.append(client)
    server.flush()
