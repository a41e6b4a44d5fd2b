"""The embedded server's JetStream publish path alone, for profiling (h)-(j) of `bench jetstream`: a server in
this process (thread mode, memory streams, or file streams with `--storage file`), `Stream.process_msg` called on its loop with the bytes a client's
PUB/HPUB would hand it, and the loop thread's CPU µs per message (best of `--repeat`). No socket, no parser, no
nats-py: what is left is stream.py, headers.py, counters.py, batch.py, fastbatch.py, the memory store and the
routing of the answers. nats-server has no counterpart to call; compare its server CPU per message in
`python -m bench jetstream --only h`.

  counter   Nats-Incr: 1 on one subject, a PubAck (with `val`) to a reply nobody listens on
  atomic    batches of 100 x 128 B (Nats-Batch-Id/-Sequence, the last with Nats-Batch-Commit: 1)
  fast      one fast batch of 20,000 x 128 B (reply `<inbox>.<id>.100.fail.<seq>.<op>.$FI`), no headers, each
            message handed over as client.py does (Stream._inbound_raw first), what a read queued let out
            (Server.run_before_output: a file store's held records written) every 64 messages
  wire      atomic's batches as the bytes nats-py writes for (i) of `bench jetstream` (the first message and the
            commit as requests, the 98 between without reply in the commit's read), fed to a client connection
            whose transport only counts what is written: the parser and the client's dispatch as well
  fastwire  fast's batch as the bytes nats-py writes for (j) of `bench jetstream`, 64 PUBs a read, fed to that
            client connection (subscribed to the batch's inbox: the flow acks are delivered to it)

    python -m bench jspath [--repeat 5] [--storage memory|file] [--profile FILE]   (FILE: cProfile output of every run)
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import tempfile
import threading
import time

PAYLOAD = b"x" * 128
N = 20_000


def _on_loop(loop, fn):
    done, out = threading.Event(), []

    def call():
        try:
            out.append(fn())
        finally:
            done.set()
    loop.call_soon_threadsafe(call)
    if not done.wait(600):
        raise TimeoutError(fn.__name__)
    return out[0]


async def _create(url: str, storage: str) -> None:
    import nats

    nc = await nats.connect(url)
    for name, extra in (("CTR", {"allow_msg_counter": True}), ("BAT", {"allow_atomic": True, "allow_batched": True})):
        await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps({
            "name": name, "subjects": [f"{name.lower()}.>"], "storage": storage, **extra}).encode(), timeout=10)
    await nc.close()


def run(repeat: int, profile: str = "", storage: str = "memory") -> dict:
    from embedded_server.embedded import EmbeddedServer

    prof = cProfile.Profile() if profile else None
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        srv = EmbeddedServer(jetstream=True, store_dir=tmp).start()
        try:
            asyncio.run(_create(srv.client_url, storage))
            streams = next(iter(srv.server.jetstream.accounts.values())).streams
            ctr, bat = streams["CTR"], streams["BAT"]
            incr = b"NATS/1.0\r\nNats-Incr: 1\r\n\r\n"
            runs = [0]

            def connect():
                from bench.corepath import _Transport
                from embedded_server.client import Client

                c = Client(srv.server)
                c.connection_made(_Transport())
                c.data_received(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}'
                                b'\r\nSUB _INBOX.wire.* 1\r\nSUB _INBOX.fw.> 2\r\n')
                return c
            conn = _on_loop(srv._loop, connect)

            def hpub(bid: bytes, seq: int, reply: bytes, commit: bool = False) -> bytes:
                h = b"NATS/1.0\r\nNats-Batch-Id: %s\r\nNats-Batch-Sequence: %d\r\n" % (bid, seq)
                h += b"Nats-Batch-Commit: 1\r\n\r\n" if commit else b"\r\n"
                return b"HPUB bat.w %s %d %d\r\n%s%s\r\n" % (reply, len(h), len(h) + len(PAYLOAD), h, PAYLOAD)

            def wire_reads(r: int) -> list[bytes]:
                reads = []
                for b in range(N // 100):
                    bid = b"w%db%d" % (r, b)
                    reads.append(hpub(bid, 1, b"_INBOX.wire.%d" % (2 * b)))
                    reads.append(b"".join(hpub(bid, seq, b"") for seq in range(2, 100))
                                 + hpub(bid, 100, b"_INBOX.wire.%d" % (2 * b + 1), True))
                return reads
            wire_in: list[bytes] = []

            def fastwire_reads(r: int) -> list[bytes]:
                pubs = []
                for seq in range(1, N + 1):
                    op = 0 if seq == 1 else (2 if seq == N else 1)
                    pubs.append(b"PUB bat.g _INBOX.fw.r%d.100.fail.%d.%d.$FI %d\r\n%s\r\n" % (
                        r, seq, op, len(PAYLOAD), PAYLOAD))
                return [b"".join(pubs[i:i + 64]) for i in range(0, N, 64)]
            fastwire_in: list[bytes] = []

            def fastwire():
                for data in fastwire_in:
                    conn.data_received(data)

            def wire():
                for data in wire_in:
                    conn.data_received(data)

            def counter():
                for _ in range(N):
                    ctr.process_msg("ctr.a", "_INBOX.none.1", incr, b"")

            def atomic():
                for b in range(N // 100):
                    head = b"NATS/1.0\r\nNats-Batch-Id: r%db%d\r\n" % (runs[0], b)
                    for seq in range(1, 101):
                        h = head + b"Nats-Batch-Sequence: %d\r\n" % seq
                        h += b"Nats-Batch-Commit: 1\r\n\r\n" if seq == 100 else b"\r\n"
                        bat.process_msg("bat.a", "_INBOX.none.2" if seq in (1, 100) else "", h, PAYLOAD)

            def fast():
                # As a client's PUB reaches the stream (client.py): the batch's next message by _inbound_raw
                # (fastbatch.append_raw), anything else by process_msg.
                raw, process, server = bat._inbound_raw, bat.process_msg, srv.server
                for seq in range(1, N + 1):
                    op = 0 if seq == 1 else (2 if seq == N else 1)
                    reply = f"_INBOX.none.r{runs[0]}.100.fail.{seq}.{op}.$FI"
                    if not raw(b"bat.f", reply.encode(), PAYLOAD):
                        process("bat.f", reply, None, PAYLOAD)
                    if not seq % 64 and server.before_output:
                        server.run_before_output()  # the end of a read
                if server.before_output:
                    server.run_before_output()

            def timed(work):
                def call():
                    if prof is not None:
                        prof.enable()
                    t0 = time.thread_time()
                    work()
                    spent = time.thread_time() - t0
                    if prof is not None:
                        prof.disable()
                    return spent * 1e6 / N
                return call

            for r in range(repeat):
                runs[0] = r
                wire_in[:] = wire_reads(r)
                fastwire_in[:] = fastwire_reads(r)
                for name, work in (("counter", counter), ("atomic", atomic), ("fast", fast), ("wire", wire),
                                   ("fastwire", fastwire)):
                    us = _on_loop(srv._loop, timed(work))
                    best[name] = min(best.get(name, us), us)
                _on_loop(srv._loop, bat.purge)
        finally:
            srv.stop()
    if prof is not None:
        prof.dump_stats(profile)
    return best


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench jspath", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="runs; the least CPU per message counts (default 5)")
    p.add_argument("--storage", choices=("memory", "file"), default="memory", help="the streams' storage")
    p.add_argument("--profile", default="", help="write a cProfile of the runs to this file")
    args = p.parse_args(argv)
    best = run(max(args.repeat, 1), args.profile, args.storage)
    print(f"JetStream publish path, loop thread CPU per message (embedded server, {args.storage} streams):")
    for name, us in best.items():
        print(f"  {name:8} {us:6.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
