"""One client must not exhaust the server or stall the others (issue 11): a fan-out burst is bounded by
max_pending, a payload trickled in byte by byte costs about its bytes, and a storm of SUBs leaves other clients
served. Each runs on both servers; a healthy client meanwhile measures its worst round trip, which is reported
(not asserted: tests assert no times) while the test asserts that it was served.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="reads /proc")


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw(srv, connect: bytes = b'CONNECT {"verbose":false}\r\n') -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.recv(65536)  # INFO
    s.sendall(connect)
    return s


def ping(s: socket.socket) -> None:
    s.sendall(b"PING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf += data


class Healthy(threading.Thread):
    """Another client pinging the server all along; its worst round trip and how many it got."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.sock = raw(srv)
        ping(self.sock)
        self.stop = threading.Event()
        self.worst = 0.0
        self.served = 0

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            ping(self.sock)
            self.worst = max(self.worst, time.perf_counter() - t0)
            self.served += 1
            time.sleep(0.002)

    def finish(self, record_property, label: str) -> None:
        self.stop.set()
        self.join(60)
        self.sock.close()
        record_property(f"{label}_worst_rtt_ms", round(self.worst * 1000, 1))
        print(f"{label}: healthy client served {self.served} pings, worst round trip {self.worst * 1000:.1f} ms")
        assert self.served > 0 and not self.is_alive()


def test_a_fan_out_burst_to_one_client_is_bounded_by_max_pending(server, record_property):
    """1,000 subscriptions of one connection on one subject and one 1 MB publish: 1 GB of frames for that
    connection. nats-server writes what max_pending allows and cuts it as a slow consumer; memory stays
    about max_pending (nats-server ~90 MB, the embedded server once took 1 GB and more)."""
    healthy = Healthy(server)
    healthy.start()
    sub = raw(server)
    sub.sendall(b"".join(b"SUB big %d\r\n" % i for i in range(1000)))
    ping(sub)
    before = rss(server.proc.pid)
    pub = raw(server)
    pub.sendall(b"PUB big 1048576\r\n" + b"z" * 1048576 + b"\r\n")
    got, peak = 0, 0
    while True:
        data = sub.recv(1 << 20)
        if not data:
            break
        got += len(data)
        peak = max(peak, rss(server.proc.pid))
    server.wait_for_log("Slow Consumer Detected: MaxPending of 67108864 Exceeded", timeout=20)
    ping(pub)
    healthy.finish(record_property, "fan-out")
    growth = peak - before
    record_property("fan_out_rss_growth_mb", growth // 2 ** 20)
    print(f"fan-out: {got / 2 ** 20:.0f} MB delivered before the cut, server RSS grew {growth / 2 ** 20:.0f} MB")
    assert 0 < got < 1000 * 2 ** 20
    assert growth < 400 * 2 ** 20


def test_a_payload_trickled_byte_by_byte_costs_about_its_bytes(server, record_property):
    """A client declares a 1 MB payload and sends it one byte per TCP segment: each read is a separate
    buffer. nats-server holds ~1 byte per byte; the embedded server once kept a memory page per read."""
    healthy = Healthy(server)
    healthy.start()
    s = raw(server, b'CONNECT {"verbose":false}\r\nPUB x 1048576\r\n')
    time.sleep(0.2)
    before = rss(server.proc.pid)
    n = 10_000
    for _ in range(n):
        s.send(b"y")
        time.sleep(0.0002)
    time.sleep(0.3)
    growth = rss(server.proc.pid) - before
    healthy.finish(record_property, "trickle")
    s.close()
    record_property("trickle_bytes_per_byte", round(growth / n))
    print(f"trickle: server RSS grew {growth / n:.0f} bytes per byte received")
    assert growth < 400 * n


N_STORM = 20_000


def test_a_storm_of_subs_on_a_published_subject_leaves_other_clients_served(server, record_property):
    """20,000 SUBs on one connection to a subject whose match is cached: nats-server serves the others
    throughout; the embedded server once stalled them all (100,000 SUBs: ~40 s, a copy of the cached match per
    SUB; nats-server copies too, so its own storm is slow, but on other goroutines). The storm's own end is
    checked too: every subscription gets the next message."""
    publisher = raw(server)
    publisher.sendall(b"PUB storm.x 1\r\nx\r\n")  # the subject's match is now cached
    ping(publisher)
    storm = raw(server)
    payload = b"".join(b"SUB storm.x %d\r\n" % i for i in range(1, N_STORM + 1))
    healthy = Healthy(server)
    healthy.start()
    storm.sendall(payload)
    ping(storm)
    healthy.finish(record_property, "sub-storm")
    publisher.sendall(b"PUB storm.x 1\r\ny\r\n")
    got = b""
    while got.count(b"MSG storm.x") < N_STORM:
        data = storm.recv(1 << 20)
        assert data, "the storm connection was closed"
        got += data
    assert got.count(b"MSG storm.x") == N_STORM


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / __import__("os").sysconf("SC_CLK_TCK")


def test_a_server_left_idle_after_round_trips_uses_no_cpu(server, record_property):
    """Round trips one at a time (the embedded server polls briefly after I/O before it sleeps: spin.py), then
    the clients stay connected and quiet: the server must go to sleep, using next to no CPU meanwhile."""
    s = raw(server)
    s.sendall(b"SUB svc 1\r\n")
    for _ in range(300):  # a request to itself: PUB in, MSG out, one round trip at a time
        s.sendall(b"PUB svc 1\r\nx\r\n")
        buf = b""
        while b"MSG svc 1 1\r\nx\r\n" not in buf:
            buf += s.recv(65536)
    ping(s)
    before = cpu_seconds(server.proc.pid)
    time.sleep(0.6)  # the quiet period measured (no condition to wait for)
    used = cpu_seconds(server.proc.pid) - before
    record_property("idle_cpu_seconds", used)
    s.close()
    assert used < 0.05, f"{server.kind} used {used:.2f} s of CPU in 0.6 s of quiet"


def frozen_cycles_check() -> None:
    """The collector check below, in the interpreter that runs it (a fresh one)."""
    import gc
    import weakref

    from embedded_server import collector

    class Node:
        pass

    def cycles(n: int) -> list:
        out = []
        for _ in range(n):
            a, b = Node(), Node()
            a.other, b.other = b, a
            out.append(a)
        return out

    collector.SLOW = 0.0  # every full collection counts as slow here (this process is the check's own)
    settler = collector.Settler()
    enabled = gc.isenabled()
    gc.disable()  # only the collections below, in this order
    try:
        settler.settle()
        base = gc.get_freeze_count()
        assert base == settler.base > 0
        doomed = cycles(base // 8)           # few: frozen after the next full collection, then dropped
        probe = weakref.ref(doomed[0])
        gc.collect()
        assert gc.get_freeze_count() > base and not settler.unfrozen
        del doomed
        gc.collect()
        assert probe() is not None           # frozen garbage waits...
        kept = cycles(base)                  # ...until the frozen objects have doubled:
        gc.collect()                         # this collection freezes them and unfreezes everything,
        assert settler.unfrozen and gc.get_freeze_count() == 0
        gc.collect()                         # this one walks it all and freezes what survives
        assert probe() is None, "garbage in cycles among frozen objects was never freed"
        assert all(k.other.other is k for k in kept[:10]) and not settler.unfrozen
        assert settler.base == gc.get_freeze_count() >= 2 * len(kept)
    finally:
        settler.stop()
        gc.unfreeze()
        if enabled:
            gc.enable()


def test_the_server_process_collector_frees_frozen_cycles_once_the_frozen_heap_doubles():
    """embedded_server/collector.py freezes the heap of a server process after start-up and after slow full
    collections (gc.freeze: no pause walks it); garbage in reference cycles among frozen objects must still be
    freed, at the latest when the frozen objects have doubled, so that memory stays bounded. (The collector's
    bookkeeping, not a server; in a fresh interpreter, since the test process's background threads (spare
    servers starting, servers stopping) allocate and free objects between the collections and move the frozen
    counts the check compares.)"""
    import subprocess
    import sys

    from tests.servers import subprocess_env

    code = "from tests.core.test_resource_guards import frozen_cycles_check; frozen_cycles_check()"
    run = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
