"""Hostile or broken clients cost only their own connection (issue 2 §8): a thousand idle connections, garbage,
a control line that never ends, a huge declared payload, a payload that never completes. Meanwhile a normal
client keeps publishing and receiving, and the server's memory stays bounded."""
from __future__ import annotations

import os
import resource
import socket
import time

from tests.raw import RawClient


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def still_works(srv) -> None:
    with RawClient(srv) as c:
        c.connect()
        c.send("SUB alive 1\r\nPUB alive 3\r\nyes\r\n")
        assert c.read_msg() == ("alive", b"yes")
        assert c.ping() == []


def test_a_thousand_idle_connections(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    before = rss_kib(server.proc.pid)
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        assert idle[-1].recv(4096).startswith(b"INFO ")
        still_works(server)
        grown_mib = (rss_kib(server.proc.pid) - before) / 1024
        assert grown_mib < 100, f"1000 idle connections cost {grown_mib:.0f} MiB"
    finally:
        for s in idle:
            s.close()
    still_works(server)


def test_garbage_costs_only_its_connection(server):
    with RawClient(server) as bystander:
        bystander.connect()
        bystander.send("SUB news 1\r\n")
        assert bystander.ping() == []
        for junk in (os.urandom(4096), b"\x00" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff\xfe PUB"):
            with RawClient(server) as bad:
                bad.send(junk)
                assert bad.expect_closed() in (["-ERR 'Unknown Protocol Operation'"], [])
        with RawClient(server) as pub:
            pub.connect()
            pub.send("PUB news 5\r\nstill\r\n")
            assert bystander.read_msg() == ("news", b"still")


def test_a_control_line_that_never_ends(server):
    before = rss_kib(server.proc.pid)
    with RawClient(server) as bad:
        bad.send('CONNECT {"verbose":false}\r\nPUB ')
        try:
            for _ in range(64):
                bad.send(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert bad.expect_closed() == ["-ERR 'maximum control line exceeded'"]
    assert rss_kib(server.proc.pid) - before < 20_000
    still_works(server)


def test_a_huge_declared_payload_is_refused_before_it_is_read(server):
    with RawClient(server) as bad:
        bad.send('CONNECT {"verbose":false}\r\nPUB foo 999999999\r\n')
        assert bad.expect_closed() == ["-ERR 'Maximum Payload Violation'"]
    still_works(server)


def test_a_payload_that_never_completes_holds_only_its_connection(server):
    with RawClient(server) as slow:
        slow.connect()
        slow.send("PUB foo 1000\r\n" + "x" * 500)
        time.sleep(0.1)
        still_works(server)
        slow.send("x" * 500 + "\r\nPING\r\n")
        assert slow.read_line() == "PONG"
