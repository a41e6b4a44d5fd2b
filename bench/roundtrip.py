"""The embedded server's own code per round trip, for profiling (c) of `bench core` and the one-at-a-time counter
increments of `bench jetstream` (h): a server in this process (thread mode), two client connections on a
transport that only counts writes, and `Client.data_received` called on the loop with the bytes nats-py sends
for one round trip; the loop thread's CPU µs per round trip (best of `--repeat`). No socket, no event loop turn,
no system call: what is left is the read, parse, route, JetStream and answer of each message. The same work
through a socket adds the event loop's turn and the system calls, measured here as `echo floor`: the server CPU
per round trip of an asyncio Protocol that writes back what it reads (the least any stdlib asyncio server spends).

  counter   HPUB ctr.a <unique reply> with `Nats-Incr: 1` on a memory stream; the PubAck (with `val`) goes to
            the publisher's `_INBOX.<id>.*` subscription (as js.publish through nats-py)
  request   PUB svc <unique reply> from the requester, then the responder's PUB to that reply (bench core (c))

    python -m bench roundtrip [--repeat 5] [--profile FILE]   (FILE: cProfile output of the in-process runs)
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import socket
import subprocess
import sys
import tempfile
import time

from bench.jspath import _create, _on_loop  # _create: the CTR counter stream (and BAT)

N = 20_000
CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\n'
INBOX = b"_INBOX.abcdefghijklmnopqrstuv"
INCR = b"NATS/1.0\r\nNats-Incr: 1\r\n\r\n"


class _Transport:
    """What a Client needs of its transport; writes are counted and dropped."""

    def __init__(self):
        self.writes = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 0) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def write(self, data):
        self.writes += 1

    def get_write_buffer_size(self):
        return 0

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def close(self):
        pass

    def is_closing(self):
        return False


def in_process(repeat: int, profile: str = "") -> dict:
    from embedded_server.client import Client
    from embedded_server.embedded import EmbeddedServer

    prof = cProfile.Profile() if profile else None
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        srv = EmbeddedServer(jetstream=True, store_dir=tmp).start()
        try:
            asyncio.run(_create(srv.client_url))

            def connect():
                requester = Client(srv.server)
                requester.connection_made(_Transport())
                requester.data_received(CONNECT + b"SUB " + INBOX + b".* 1\r\n")
                responder = Client(srv.server)
                responder.connection_made(_Transport())
                responder.data_received(CONNECT + b"SUB svc 1\r\n")
                return requester, responder

            requester, responder = _on_loop(srv._loop, connect)

            def timed(kind: str, run: int):
                def call():
                    reads = []
                    for i in range(N):
                        reply = b"%s.r%dn%d" % (INBOX, run, i)
                        if kind == "counter":
                            reads.append((requester, b"HPUB ctr.a %s %d %d\r\n%s\r\n" % (
                                reply, len(INCR), len(INCR), INCR)))
                        else:
                            reads.append((requester, b"PUB svc %s 1\r\nx\r\n" % reply))
                            reads.append((responder, b"PUB %s 1\r\nx\r\n" % reply))
                    if prof is not None:
                        prof.enable()
                    t0 = time.thread_time()
                    for client, data in reads:
                        client.data_received(data)
                    spent = time.thread_time() - t0
                    if prof is not None:
                        prof.disable()
                    return spent * 1e6 / N
                return call

            for r in range(repeat):
                for kind in ("counter", "request"):
                    us = _on_loop(srv._loop, timed(kind, r))
                    best[kind] = min(best.get(kind, us), us)
            if requester.transport.writes < N or responder.transport.writes < N:
                raise RuntimeError("the answers were not written")
        finally:
            srv.stop()
    if prof is not None:
        prof.dump_stats(profile)
    return best


_ECHO = """
import asyncio, sys
class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def _cpu_s(pid: int) -> float:
    return sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
               for t in os.listdir(f"/proc/{pid}/task")) / 1e9


def echo_floor(repeat: int, n: int = 5_000) -> float | None:
    """Server CPU µs per round trip of an asyncio echo server (one 40-byte write and read); None off Linux."""
    if not os.path.exists(f"/proc/{os.getpid()}/schedstat"):
        return None
    best = None
    proc = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for r in range(repeat + 1):
                c0 = _cpu_s(proc.pid)
                for _ in range(n):
                    s.sendall(b"x" * 40)
                    got = 0
                    while got < 40:
                        got += len(s.recv(100))
                us = (_cpu_s(proc.pid) - c0) * 1e6 / n
                if r:  # (the first run warms up)
                    best = us if best is None else min(best, us)
    finally:
        proc.kill()
        proc.wait()
    return best


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench roundtrip", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="runs; the least CPU per round trip counts (default 5)")
    p.add_argument("--profile", default="", help="write a cProfile of the in-process runs to this file")
    args = p.parse_args(argv)
    best = in_process(max(args.repeat, 1), args.profile)
    print("Embedded server code per round trip, loop thread CPU (in-process, no socket):")
    for name, us in best.items():
        print(f"  {name:8} {us:6.2f} µs")
    floor = echo_floor(max(args.repeat, 1))
    if floor is not None:
        print(f"  echo floor {floor:6.2f} µs  (an asyncio echo server's CPU per round trip through a socket)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
