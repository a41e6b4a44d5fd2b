"""Raw-socket helpers for protocol tests: send exact bytes, read back exact bytes, see whether the server closed.

Many exchanges run concurrently (asyncio), so a table of cases costs about one settle time in total.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

OPEN, CLOSED = "open", "closed"
_INFO = re.compile(rb"INFO \{.*?\} \r\n")


def mask_info(data: bytes) -> bytes:
    """INFO carries ids, ports and versions that differ between servers: compare everything else."""
    return _INFO.sub(b"INFO {...} \r\n", data)


@dataclass
class Exchange:
    info: bytes
    out: bytes
    state: str

    @property
    def masked(self) -> bytes:
        return mask_info(self.out)


async def exchange(port: int, chunks, expect: bytes = b"", settle: float = 0.25, timeout: float = 5.0,
                   gap: float = 0.02, host: str = "127.0.0.1", pongs: int = 0) -> Exchange:
    """Connect, read INFO, send `chunks` (bytes or a list, `gap` seconds apart), and read the answer.

    Reading stops at EOF, or `settle` seconds after as many bytes as `expect` has (masked) and `pongs` PONGs
    have been received.
    """
    if isinstance(chunks, (bytes, bytearray)):
        chunks = [bytes(chunks)]
    reader, writer = await asyncio.open_connection(host, port)
    info = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
    try:
        for i, chunk in enumerate(chunks):
            if i and gap:
                await asyncio.sleep(gap)
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
        out = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle_at = None
        while True:
            now = loop.time()
            if settle_at is None and len(mask_info(out)) >= len(expect) and out.count(b"PONG\r\n") >= pongs:
                settle_at = now + settle
            end = min(deadline, settle_at) if settle_at is not None else deadline
            if now >= end:
                return Exchange(info, out, OPEN)
            try:
                data = await asyncio.wait_for(reader.read(65536), end - now)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                return Exchange(info, out, CLOSED)
            if not data:
                return Exchange(info, out, CLOSED)
            out += data
    finally:
        writer.close()


def isolate(data, i: int):
    """Give case `i` subjects of its own (same lengths, so sizes in the bytes stay right): cases run at once."""
    if isinstance(data, list):
        # Replace across the parts, then cut at the same places (the replacements keep lengths).
        whole = isolate(b"".join(data), i)
        parts, at = [], 0
        for d in data:
            parts.append(whole[at:at + len(d)])
            at += len(d)
        return parts
    return data.replace(b"foo", b"f%02d" % i).replace(b"inbox", b"i%04d" % i).replace(b"nobody", b"n%05d" % i)


def run_table(port: int, cases, gap: float = 0.02) -> list[str]:
    """Run (send, expected_out, expected_state) cases concurrently; return a description of each mismatch.

    Cases must not subscribe to wildcards that could catch another case's subjects (see `isolate`).
    """
    cases = [(isolate(send, i), isolate(expect, i), state) for i, (send, expect, state) in enumerate(cases)]

    async def all_cases():
        return await asyncio.gather(*(exchange(port, send, expect, gap=gap) for send, expect, _ in cases))

    results = asyncio.run(asyncio.wait_for(all_cases(), 60))
    problems = []
    for (send, expect, state), got in zip(cases, results):
        if got.masked != expect or got.state != state:
            shown = send if isinstance(send, bytes) else b"|".join(send)
            problems.append(f"sent {shown[:120]!r}\n   expected {expect[:300]!r} ({state})\n"
                            f"   got      {got.masked[:300]!r} ({got.state})")
    return problems
