"""A raw-socket NATS client for tests that must see the exact bytes a server sends (-ERR texts, closes)."""
from __future__ import annotations

import base64
import json
import socket
import time


class RawClient:
    def __init__(self, server, timeout: float = 5.0):
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buf = b""
        self.info: dict = {}
        line = self.read_line()
        assert line.startswith("INFO "), line
        self.info = json.loads(line[5:])

    # -- sending ------------------------------------------------------------------------------------
    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def connect(self, **fields) -> None:
        opts = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True, "no_responders": True}
        opts.update(fields)
        self.send(f"CONNECT {json.dumps(opts)}\r\n")

    def connect_nkey(self, seed: str, as_key: str | None = None, **fields) -> None:
        """CONNECT as an nkey user, signing the INFO nonce with the seed (claiming `as_key` if given)."""
        import nkeys
        kp = nkeys.from_seed(seed.encode())
        sig = base64.urlsafe_b64encode(kp.sign(self.info["nonce"].encode())).decode().rstrip("=")
        self.connect(nkey=as_key or kp.public_key.decode(), sig=sig, **fields)

    def connect_jwt(self, jwt: str, seed: str, **fields) -> None:
        """CONNECT with a user JWT, proving the user's key by signing the INFO nonce with its seed."""
        import nkeys
        sig = base64.urlsafe_b64encode(nkeys.from_seed(seed.encode()).sign(self.info["nonce"].encode()))
        self.connect(jwt=jwt, sig=sig.decode().rstrip("="), **fields)

    # -- receiving ----------------------------------------------------------------------------------
    def read_line(self, timeout: float = 5.0) -> str:
        """The next protocol line; INFOs after the first (nats-server sends one after CONNECT) are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" not in self.buf:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed by server; unread: {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if not (self.info and line.startswith(b"INFO ")):
                return line.decode()

    def read_msg(self, timeout: float = 5.0) -> tuple[str, bytes]:
        """The next MSG (skipping PINGs, which it answers): (subject, payload)."""
        while True:
            line = self.read_line(timeout)
            if line == "PING":
                self.send("PONG\r\n")
                continue
            assert line.startswith("MSG "), line
            parts = line.split()
            size = int(parts[-1])
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            payload, self.buf = self.buf[:size], self.buf[size + 2:]
            return parts[1], payload

    def ping(self) -> list[str]:
        """Send PING; return the lines received before the PONG (PINGs left out)."""
        self.send("PING\r\n")
        lines = []
        while (line := self.read_line()) != "PONG":
            if line != "PING":
                lines.append(line)
        return lines

    def expect_closed(self, timeout: float = 5.0) -> list[str]:
        """Read until the server closes the connection; return the lines it sent first."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines.append(self.read_line(max(0.01, deadline - time.monotonic())))
            except ConnectionError:
                return lines
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"connection still open after {timeout}s; got {lines}") from None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
