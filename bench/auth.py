"""`python -m bench auth`: what permissions cost on the hot path.

(a) the permission checker alone (cached publish decision, uncached, subscribe check), in ns per call;
(b) a raw pipelined PUB blast of small messages to one subscriber, delivered msgs/s, for a user without
    permissions and one with publish/subscribe allow+deny lists, on the embedded server and nats-server.
"""
from __future__ import annotations

import argparse
import socket
import tempfile
import time
import timeit
from pathlib import Path

import pandas as pd

from embedded_server.auth.permissions import ClientPermissions, Permissions, SubjectPermission
from tests.servers import RunningServer

CONFIG = """
authorization {
  users = [
    {user: free, password: pw}
    {user: limited, password: pw, permissions: {
      publish: {allow: ["bench.>", "orders.*"], deny: ["bench.secret", "orders.x"]}
      subscribe: {allow: ["bench.>"], deny: ["bench.secret.>"]}
    }}
  ]
}
"""


def checker_costs() -> pd.DataFrame:
    perms = ClientPermissions(Permissions(publish=SubjectPermission(["bench.>", "orders.*"], ["bench.secret"]),
                                          subscribe=SubjectPermission(["bench.>"], ["bench.secret.>"])))
    perms.can_publish("bench.a")
    subjects = [f"bench.{i}" for i in range(100_000)]
    it = iter(subjects)
    rows = []
    for name, fn, n in (("publish, cached", lambda: perms.can_publish("bench.a"), 1_000_000),
                        ("publish, uncached", lambda: perms.can_publish(next(it)), 100_000),
                        ("subscribe", lambda: perms.can_subscribe("bench.*", None), 200_000)):
        seconds = timeit.timeit(fn, number=n)
        rows.append({"check": name, "ns per call": round(seconds / n * 1e9)})
    return pd.DataFrame(rows)


def _blast(srv: RunningServer, user: str, count: int) -> float:
    sub = socket.create_connection((srv.host, srv.port))
    pub = socket.create_connection((srv.host, srv.port))
    for s in (sub, pub):
        s.recv(4096)
        s.sendall(f'CONNECT {{"user":"{user}","pass":"pw","verbose":false}}\r\nPING\r\n'.encode())
        _read_until(s, b"PONG\r\n")
    sub.sendall(b"SUB bench.x 1\r\nPING\r\n")
    _read_until(sub, b"PONG\r\n")
    msg = b"PUB bench.x 16\r\n0123456789abcdef\r\n"
    line = b"MSG bench.x 1 16\r\n0123456789abcdef\r\n"
    start = time.perf_counter()
    batch = msg * 1000
    for _ in range(count // 1000):
        pub.sendall(batch)
    pub.sendall(b"PING\r\n")
    _read_until(sub, b"", expect=len(line) * count)
    elapsed = time.perf_counter() - start
    sub.close()
    pub.close()
    return count / elapsed


def _read_until(s: socket.socket, marker: bytes, expect: int = 0) -> None:
    got = b""
    total = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        if expect:
            total += len(chunk)
            if total >= expect:
                return
        else:
            got += chunk
            if marker in got:
                return


def blast(count: int) -> pd.DataFrame:
    rows = []
    for kind in ("embedded", "nats-server"):
        workdir = Path(tempfile.mkdtemp())
        (workdir / "s.conf").write_text(CONFIG)
        srv = RunningServer(kind, ["-c", str(workdir / "s.conf")], workdir).start()
        try:
            for user in ("free", "limited"):
                _blast(srv, user, count // 10)  # warm up
                rows.append({"server": kind, "user": user, "msgs/s": round(_blast(srv, user, count))})
        finally:
            srv.stop()
    df = pd.DataFrame(rows).pivot(index="user", columns="server", values="msgs/s")
    df["embedded / nats-server"] = (df["embedded"] / df["nats-server"]).round(2)
    return df


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench auth", description=__doc__)
    parser.add_argument("--count", type=int, default=200_000, help="messages per blast (default 200000)")
    args = parser.parse_args(argv)
    print(checker_costs().to_string(index=False))
    print()
    print(blast(args.count).to_string())
    return 0
