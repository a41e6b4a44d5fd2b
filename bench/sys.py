"""`python -m bench sys`: the system account's services under load.

With N client connections open (1,000 by default, each a raw socket that sent CONNECT and one SUB), a system
user requests `$SYS.REQ.SERVER.PING.CONNZ` (the full document of every connection) and `$SYS.REQ.SERVER.PING`
(statsz) repeatedly; the median and worst round trip, and the size of the CONNZ answer, on the embedded server
and nats-server. The issue's bar: CONNZ with 1,000 connections answers in under 100 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import nats
import pandas as pd

from tests.servers import RunningServer

CONFIG = """
accounts {
  SYS: { users: [{user: sys, password: pw}] }
  APP: { users: [{user: app, password: pw}] }
}
system_account: SYS
"""


def _open_connections(srv: RunningServer, n: int) -> list[socket.socket]:
    socks = []
    for i in range(n):
        s = socket.create_connection((srv.host, srv.port))
        s.recv(4096)
        s.sendall(b'CONNECT {"user":"app","pass":"pw","verbose":false,"name":"bench-%d","lang":"raw"}\r\n'
                  b"SUB bench.%d 1\r\nPING\r\n" % (i, i))
        socks.append(s)
    for s in socks:
        got = b""
        while b"PONG\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("a benchmark connection was closed")
            got += chunk
    return socks


async def _time_requests(srv: RunningServer, subject: str, rounds: int) -> tuple[list[float], int]:
    nc = await nats.connect(f"nats://sys:pw@{srv.host}:{srv.port}", allow_reconnect=False)
    try:
        await nc.request(subject, b"", timeout=30)   # warm up
        times, size = [], 0
        for _ in range(rounds):
            start = time.perf_counter()
            msg = await nc.request(subject, b"", timeout=30)
            times.append(time.perf_counter() - start)
            size = len(msg.data)
        return times, size
    finally:
        await nc.close()


def run(connections: int, rounds: int) -> pd.DataFrame:
    rows = []
    for kind in ("embedded", "nats-server"):
        workdir = Path(tempfile.mkdtemp())
        (workdir / "s.conf").write_text(CONFIG)
        srv = RunningServer(kind, ["-c", str(workdir / "s.conf")], workdir).start()
        socks = []
        try:
            socks = _open_connections(srv, connections)
            for subject in ("$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.SERVER.PING"):
                times, size = asyncio.run(_time_requests(srv, subject, rounds))
                rows.append({"request": subject, "server": kind, "median ms": round(statistics.median(times) * 1e3, 1),
                             "max ms": round(max(times) * 1e3, 1), "answer bytes": size})
        finally:
            for s in socks:
                s.close()
            srv.stop()
    df = pd.DataFrame(rows).pivot(index="request", columns="server", values=["median ms", "max ms", "answer bytes"])
    df[("median ms", "embedded / nats-server")] = (df[("median ms", "embedded")] /
                                                   df[("median ms", "nats-server")]).round(1)
    return df


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sys", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000, help="client connections (default 1000)")
    parser.add_argument("--rounds", type=int, default=20, help="requests timed per kind (default 20)")
    args = parser.parse_args(argv)
    print(f"{args.connections} connections, {args.rounds} requests each")
    with pd.option_context("display.width", 200):
        print(run(args.connections, args.rounds).to_string())
    return 0
