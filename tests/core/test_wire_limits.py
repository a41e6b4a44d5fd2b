"""Limits and timers on the wire, on both servers: auth from flags, the auth timeout, stale connections,
limits from the config, split frames, and a slow consumer that is cut off while everyone else goes on."""
from __future__ import annotations

import socket
import time

from tests.core.wire import CLOSED, OPEN, run_table
from tests.raw import RawClient

HDR = b"NATS/1.0\r\nK: v\r\n\r\n"
PUBLISH = (b'CONNECT {"verbose":false,"headers":true}\r\nSUB foo 1\r\nSUB foo q 2\r\nPUB foo r 5\r\nhello\r\n'
           b"HPUB foo %d %d\r\n%shi\r\nUNSUB 1\r\nPUB foo 0\r\n\r\nPING\r\n" % (len(HDR), len(HDR) + 2, HDR))
PUBLISHED = (b"MSG foo 1 r 5\r\nhello\r\nMSG foo 2 r 5\r\nhello\r\n"
             b"HMSG foo 1 %d %d\r\n%shi\r\nHMSG foo 2 %d %d\r\n%shi\r\n" % ((len(HDR), len(HDR) + 2, HDR) * 2)
             + b"MSG foo 2 0\r\n\r\nPONG\r\n")


def test_a_stream_split_anywhere_gives_the_same_answers(server):
    byte_by_byte = [PUBLISH[i:i + 1] for i in range(len(PUBLISH))]
    in_threes = [PUBLISH[i:i + 3] for i in range(0, len(PUBLISH), 3)]
    problems = run_table(server.port, [(PUBLISH, PUBLISHED, OPEN), (byte_by_byte, PUBLISHED, OPEN),
                                       (in_threes, PUBLISHED, OPEN)], gap=0.002)
    assert not problems, "\n".join(problems)


USER_PASS = [
    (b"PING\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b"SUB foo 1\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b"XONNECT {}\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b"CONNECT {}\r\nPING\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b'CONNECT {"user":"u","pass":"x"}\r\nPING\r\n', b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b'CONNECT {"user":"u","pass":"p"}\r\nPING\r\n', b"+OK\r\nPONG\r\n", OPEN),
    (b'connect {"user":"u","pass":"p"}\r\nPING\r\n', b"+OK\r\nPONG\r\n", OPEN),
    (b'CONNECT {"user":"u","pass":"p"}\r\nCONNECT {}\r\nPING\r\n', b"+OK\r\n+OK\r\nPONG\r\n", OPEN),
    (b'CONNECT {"user":"u","pass":"p","account":"A"}\r\nPING\r\n', b"-ERR 'Authorization Violation'\r\n",
     CLOSED),
]
TOKEN = [
    (b"CONNECT {}\r\nPING\r\n", b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b'CONNECT {"auth_token":"s3cret"}\r\nPING\r\n', b"+OK\r\nPONG\r\n", OPEN),
    (b'CONNECT {"auth_token":"nope"}\r\nPING\r\n', b"-ERR 'Authorization Violation'\r\n", CLOSED),
    (b'CONNECT {"user":"s3cret"}\r\nPING\r\n', b"-ERR 'Authorization Violation'\r\n", CLOSED),
]


def test_user_and_password_from_flags(start_server):
    srv = start_server("--user", "u", "--pass", "p")
    with RawClient(srv) as c:
        assert c.info["auth_required"] is True
    problems = run_table(srv.port, USER_PASS)
    assert not problems, "\n".join(problems)


def test_token_from_flags(start_server):
    srv = start_server("--auth", "s3cret")
    problems = run_table(srv.port, TOKEN)
    assert not problems, "\n".join(problems)


def test_a_client_that_never_sends_connect_is_timed_out(start_server):
    srv = start_server(config="authorization { user: a, password: b, timeout: 0.3 }\n")
    problems = run_table(srv.port, [(b"", b"-ERR 'Authentication Timeout'\r\n", CLOSED)])
    assert not problems, "\n".join(problems)


def test_a_client_that_never_answers_pings_is_stale(start_server):
    srv = start_server(config='ping_interval: "150ms"\nping_max: 1\n')
    problems = run_table(srv.port, [(b'CONNECT {"verbose":false}\r\n',
                                     b"PING\r\n-ERR 'Stale Connection'\r\n", CLOSED)])
    assert not problems, "\n".join(problems)


def test_a_client_that_answers_pings_stays(start_server):
    srv = start_server(config='ping_interval: "100ms"\nping_max: 1\n')
    with RawClient(srv) as c:
        c.connect()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            assert c.read_line(2) == "PING"
            c.send("PONG\r\n")
        assert c.ping() == []


LIMITS = [
    (b'CONNECT {"verbose":false}\r\nPUB foo 101\r\n', b"-ERR 'Maximum Payload Violation'\r\n", CLOSED),
    (b'CONNECT {"verbose":false}\r\nSUB foo 1\r\nPUB foo 100\r\n' + b"x" * 100 + b"\r\nPING\r\n",
     b"MSG foo 1 100\r\n" + b"x" * 100 + b"\r\nPONG\r\n", OPEN),
    (b'CONNECT {"verbose":false}\r\nSUB ' + b"a" * 300 + b" 1\r\n", b"-ERR 'maximum control line exceeded'\r\n",
     CLOSED),
    (b'CONNECT {"verbose":false}\r\nSUB ' + b"a" * 250 + b" 1\r\nPING\r\n", b"PONG\r\n", OPEN),
    (b'CONNECT {"verbose":false}\r\nSUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n',
     b"-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n", OPEN),
]


def test_limits_from_the_config(start_server):
    srv = start_server(config="max_payload: 100\nmax_control_line: 256\nmax_subscriptions: 2\n")
    with RawClient(srv) as c:
        assert c.info["max_payload"] == 100
    problems = run_table(srv.port, LIMITS)
    assert not problems, "\n".join(problems)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_subscriber_that_stops_reading_is_cut_off_and_memory_stays_bounded(start_server):
    srv = start_server(config="max_pending: 262144\nmax_payload: 1024\n")
    before = rss_kib(srv.proc.pid)
    sub = socket.socket()
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.connect(("127.0.0.1", srv.port))
    sub.settimeout(5)
    sub.recv(4096)
    sub.sendall(b'CONNECT {"verbose":false}\r\nSUB slow 1\r\nPING\r\n')
    got = b""
    while b"PONG" not in got:
        got += sub.recv(4096)
    with RawClient(srv) as bystander, RawClient(srv) as pub:
        bystander.connect()
        bystander.send("SUB other 1\r\n")
        assert bystander.ping() == []
        pub.connect()
        burst = (b"PUB slow 1000\r\n" + b"x" * 1000 + b"\r\n") * 100
        for _ in range(120):  # 12 MB for a reader that takes nothing
            pub.send(burst)
        pub.send("PUB other 2\r\nok\r\n")
        assert bystander.read_msg(10) == ("other", b"ok")
        assert pub.ping() == []
    srv.wait_for_log(r"Slow Consumer Detected: MaxPending of 262144 Exceeded", timeout=10)
    received = 0
    try:
        while chunk := sub.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    sub.close()
    assert received < 8_000_000, "the slow subscriber was not cut off"
    assert rss_kib(srv.proc.pid) - before < 40_000


def test_connections_over_the_limit_are_refused(start_server):
    srv = start_server(config="max_connections: 2\n")
    with RawClient(srv) as a, RawClient(srv) as b:
        a.connect()
        b.connect()
        assert a.ping() == [] and b.ping() == []
        with RawClient(srv) as third:
            assert third.info["server_id"]
            assert third.expect_closed() == ["-ERR 'maximum connections exceeded'"]
        assert a.ping() == []
    deadline = time.monotonic() + 5
    while True:  # the server notices the two closes asynchronously
        with RawClient(srv) as later:
            try:
                later.connect()
                assert later.ping() == []
                break
            except (ConnectionError, AssertionError):
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def test_info_carries_nats_servers_fields(start_server, server_kind):
    """The INFO a client reads first: the same fields with the same types, and the values the client needs."""
    srv = start_server("--user", "u", "--pass", "p")
    with RawClient(srv) as c:
        info = c.info
    assert {"server_id", "server_name", "version", "proto", "go", "host", "port", "headers", "max_payload",
            "client_id", "client_ip", "auth_required", "api_lvl"} <= info.keys()
    assert info["proto"] == 1 and info["headers"] is True and info["auth_required"] is True
    assert info["port"] == srv.port and info["host"] == "127.0.0.1" and info["client_ip"] == "127.0.0.1"
    assert info["max_payload"] == 1048576 and isinstance(info["client_id"], int)
    assert len(info["server_id"]) == 56 and info["server_id"].startswith("N")
    assert tuple(int(x) for x in info["version"].split(".")[:2]) >= (2, 10)
    assert isinstance(info["api_lvl"], int) and info["api_lvl"] >= 2  # without JetStream too, as nats-server


def test_a_fast_producer_is_held_back_for_a_slower_reader(start_server):
    """A subscriber that reads, only more slowly than the publisher writes, is not cut off: the publisher is
    stalled while the subscriber's buffer is three quarters full, and every message arrives."""
    import threading

    srv = start_server(config="max_pending: 4MB\n")
    sub = socket.create_connection(("127.0.0.1", srv.port))
    sub.settimeout(10)
    sub.recv(4096)
    sub.sendall(b'CONNECT {"verbose":false}\r\nSUB s 1\r\nPING\r\n')
    got = b""
    while b"PONG" not in got:
        got += sub.recv(100)
    received = [0]

    def read_slowly():
        try:
            while chunk := sub.recv(65536):
                received[0] += len(chunk)
                time.sleep(0.002)
        except OSError:
            pass

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    one = b"PUB s 1000\r\n" + b"x" * 1000 + b"\r\n"
    with RawClient(srv) as pub:
        pub.connect()
        for _ in range(250):  # 25 MB, about six times max_pending
            pub.send(one * 100)
        assert pub.ping() == []
    expected = 25_000 * len(b"MSG s 1 1000\r\n" + b"x" * 1000 + b"\r\n")
    deadline = time.monotonic() + 20
    while received[0] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.close()
    assert received[0] == expected
    assert "Slow Consumer" not in srv.logs
