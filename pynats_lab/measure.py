"""Measurements against the connected server: latency samples (pub->sub, request/reply, JetStream
publish-ack), throughput in the spirit of `nats bench`, and the de-duplication experiment DedupChart draws.
"""
from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import numpy as np
import pandas as pd

from . import progress, tables
from .errors import LabError
from .session import Session, flush, in_session
from .units import at_least_one, parse_duration, parse_size

KINDS = ("pub-sub", "request-reply", "js-publish")
PERCENTILES = (50, 90, 99, 99.9)


async def _has_jetstream(s: Session) -> bool:
    try:
        await s.js.account_info()
        return True
    except Exception:
        return False


async def temporary_stream(s: Session, prefix: str, **config: Any) -> tuple[str, str]:
    """A memory stream with a unique name and subject for a measurement; (name, subject)."""
    from nats.js.api import StorageType, StreamConfig

    token = s.nc.new_inbox().rsplit(".", 1)[-1]
    name, subject = f"{prefix}_{token}", f"_lab.{prefix.lower()}.{token}"
    await s.js.add_stream(StreamConfig(name=name, subjects=[subject + ".>"], storage=StorageType.MEMORY,
                                       allow_direct=True, **config))
    return name, subject


async def sample_latency(s: Session, kind: str, count: int, size: int) -> list[float]:
    """`count` round trips of one kind, one at a time (no queueing), in microseconds."""
    payload = b"x" * size
    out: list[float] = []
    token = s.nc.new_inbox().rsplit(".", 1)[-1]
    if kind == "pub-sub":
        subject = f"_lab.latency.{token}"
        arrived = asyncio.Queue()

        async def on_msg(msg) -> None:
            arrived.put_nowait(time.perf_counter())

        sub = await s.nc.subscribe(subject, cb=on_msg)
        await s.nc.flush()
        try:
            for _ in range(count):
                t0 = time.perf_counter()
                await s.nc.publish(subject, payload)
                t1 = await asyncio.wait_for(arrived.get(), 5)
                out.append((t1 - t0) * 1e6)
        finally:
            await sub.unsubscribe()
    elif kind == "request-reply":
        subject = f"_lab.latency.{token}"

        async def respond(msg) -> None:
            await s.nc.publish(msg.reply, msg.data)

        sub = await s.nc.subscribe(subject, cb=respond)
        await s.nc.flush()
        try:
            for _ in range(count):
                t0 = time.perf_counter()
                await s.nc.request(subject, payload, timeout=5)
                out.append((time.perf_counter() - t0) * 1e6)
        finally:
            await sub.unsubscribe()
    elif kind == "js-publish":
        name, subject = await temporary_stream(s, "LAB_LATENCY")
        try:
            for i in range(count):
                t0 = time.perf_counter()
                await s.js.publish(f"{subject}.x", payload, timeout=5)
                out.append((time.perf_counter() - t0) * 1e6)
        finally:
            await s.js.delete_stream(name)
    else:
        raise LabError(f"unknown latency kind {kind!r}: use {', '.join(KINDS)}")
    return out


def latency_frame(samples: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(k, i, v) for k, vals in samples.items() for i, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=["kind", "n", "latency_us"]).astype({"n": "int64", "latency_us": "float64"})


@in_session
async def latency(s: Session, count: int = 200, size: Any = 128, jetstream: bool = True,
                  kinds: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Latency samples (microseconds) for pub->sub, request/reply and, with JetStream, publish-ack.
    One row per sample: kind, n, latency_us. `latency_percentiles(df)` summarises it."""
    nbytes = parse_size(size, "--size") or 0
    at_least_one(count, "--count")
    wanted = list(kinds or KINDS)
    if "js-publish" in wanted and (not jetstream or not await _has_jetstream(s)):
        wanted.remove("js-publish")
    samples = latency_frame({k: await sample_latency(s, k, count, nbytes) for k in wanted})
    return tables.lab_frame(samples, f"{len(samples):,} latency samples ({count:,} per kind, {nbytes} B "
                            "payloads), summarised in µs below; the samples themselves are this DataFrame's rows",
                            body=latency_percentiles)


def latency_percentiles(df: pd.DataFrame) -> pd.DataFrame:
    """p50 / p90 / p99 / p99.9, mean and max per kind, in microseconds: only the percentiles the number of
    samples supports (p99 needs 100, p99.9 1,000); a column no kind supports is left out."""
    from .charts import supported_percentiles

    rows = []
    for kind, g in df.groupby("kind", sort=False):
        v = g["latency_us"].to_numpy()
        row = {"kind": kind, "samples": len(v)}
        shown = supported_percentiles(len(v))
        row.update({f"p{p:g}": float(np.percentile(v, p)) if p in shown else float("nan") for p in PERCENTILES})
        row.update({"mean": float(v.mean()), "max": float(v.max())})
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


async def _bench_connection(s: Session):
    return await s.open_connection(name="pynats-lab bench")


def _stamped(payload: bytearray) -> bytes:
    """The payload with the send time in its first 8 bytes (when it has room), for latency at the other end."""
    if len(payload) >= 8:
        payload[:8] = struct.pack("<d", time.perf_counter())
    return bytes(payload)


def _latency_columns(samples: list[float]) -> dict:
    if not samples:
        return {f"p{p:g}_us": float("nan") for p in BENCH_PERCENTILES}
    v = np.asarray(samples) * 1e6
    return {f"p{p:g}_us": float(np.percentile(v, p)) for p in BENCH_PERCENTILES}


BENCH_PERCENTILES = (50, 90, 99)


@in_session
async def bench(s: Session, subject: str = "bench", *, pubs: int = 1, subs: int = 1, msgs: int = 10_000,
                size: Any = 128, js: bool = False, timeout: float = 30.0) -> pd.DataFrame:
    """Throughput like `nats bench`: `pubs` publishers share `msgs` messages, each of `subs` subscribers
    should see all of them. Each client has its own connection. One row per client and one per role
    total: role, client, msgs, bytes, seconds, msgs_per_s, mb_per_s, p50_us, p90_us, p99_us.

    Percentiles are per message: publish-to-receive for subscribers (the send time travels in the first
    8 bytes; a `size` under 8 leaves them NaN), publish-to-ack for JetStream publishers; under full load they
    include queueing, as in `nats bench`."""
    nbytes = parse_size(size, "--size") or 0
    if pubs < 1:
        raise LabError("--pub must be at least 1 (a subscriber alone would wait for nothing)")
    at_least_one(msgs, "--msgs")
    if subs < 0:
        raise LabError("--sub must be 0 or more")
    stream = None
    if js:
        stream, base = await temporary_stream(s, "LAB_BENCH")
        subject = f"{base}.{subject}"
    conns = [await _bench_connection(s) for _ in range(pubs + subs)]
    rows = []
    try:
        sub_conns, pub_conns = conns[:subs], conns[subs:]
        counters = []
        for nc in sub_conns:
            state = {"n": 0, "last": None, "lat": [], "done": asyncio.get_running_loop().create_future()}

            async def on_msg(msg, state=state) -> None:
                now = time.perf_counter()
                state["n"] += 1
                state["last"] = now
                if len(msg.data) >= 8:
                    state["lat"].append(now - struct.unpack_from("<d", msg.data)[0])
                if state["n"] >= msgs and not state["done"].done():
                    state["done"].set_result(None)

            await nc.subscribe(subject, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
            await flush(nc)
            counters.append(state)
        shares = [msgs // pubs + (1 if i < msgs % pubs else 0) for i in range(pubs)]
        published = [0] * pubs

        async def publisher(nc, n: int, me: int) -> tuple[float, float, list[float]]:
            buf = bytearray(nbytes)
            acks: list[float] = []
            t0 = time.perf_counter()
            if js:
                jsx = nc.jetstream()

                async def one() -> None:
                    sent = time.perf_counter()
                    await jsx.publish(subject, _stamped(buf), timeout=10)
                    acks.append(time.perf_counter() - sent)

                for start in range(0, n, 256):
                    await asyncio.gather(*(one() for _ in range(min(256, n - start))))
                    published[me] = start + min(256, n - start)
            else:
                for i in range(n):
                    await nc.publish(subject, _stamped(buf))
                    published[me] = i + 1
                await flush(nc, timeout)
            return t0, time.perf_counter(), acks

        # The bar counts what was published and what every subscriber received (sampled, off the hot path).
        shown = progress.bar(msgs * (1 + subs), f"bench {subject}")
        async with progress.Following(shown, lambda: sum(published) + sum(st["n"] for st in counters)):
            spans = await asyncio.gather(*(publisher(nc, n, i) for i, (nc, n) in enumerate(zip(pub_conns, shares))))
            for st in counters:
                try:
                    await asyncio.wait_for(asyncio.shield(st["done"]), timeout)
                except asyncio.TimeoutError:
                    pass

        def row(role: str, client: str, n: int, seconds: float, latencies: list[float]) -> dict:
            seconds = max(seconds, 1e-9)
            return {"role": role, "client": client, "msgs": n, "bytes": n * nbytes, "seconds": seconds,
                    "msgs_per_s": n / seconds, "mb_per_s": n * nbytes / seconds / 1e6,
                    **_latency_columns(latencies)}

        for i, ((t0, t1, acks), n) in enumerate(zip(spans, shares)):
            rows.append(row("pub", f"pub {i + 1}", n, t1 - t0, acks))
        if pubs > 1:
            rows.append(row("pub", "all publishers", sum(shares), max(t1 for _, t1, _ in spans) -
                            min(t0 for t0, _, _ in spans), [a for *_, acks in spans for a in acks]))
        start = min(t0 for t0, _, _ in spans)
        for i, st in enumerate(counters):
            rows.append(row("sub", f"sub {i + 1}", st["n"], (st["last"] or start) - start, st["lat"]))
        if subs > 1:
            rows.append(row("sub", "all subscribers", sum(st["n"] for st in counters),
                            max((st["last"] or start) for st in counters) - start,
                            [x for st in counters for x in st["lat"]]))
    finally:
        for nc in conns:
            await nc.close()
        if stream:
            await s.js.delete_stream(stream)
    frame = pd.DataFrame(rows)
    frame.attrs.update(subject=subject, size=nbytes, js=js)
    return frame


@in_session
async def dedup_series(s: Session, stream: str | None = None, *, window: Any = "2s", ids: int = 4,
                       at: tuple[float, ...] | None = None, subjects: tuple[str, ...] = ("a", "b"),
                       on_ack=None) -> pd.DataFrame:
    """Publish rounds of the same Nats-Msg-Ids (id-1..id-`ids`) at offsets `at` (seconds from the start;
    default: 0, a quarter window later, and after the window has passed). Each round sends an id on a
    different subject than the round before, so the result shows that the id is per stream, not per
    subject, and that the window still applies after an ack.

    Rows: sent, offset_s, round, subject, msg_id, accepted, duplicate, seq; `attrs['window_s']`. Without
    `stream` a temporary memory stream with duplicate window `window` is used and removed afterwards."""
    temp = None
    if stream is None:
        win = parse_duration(window, "window") or 2.0
        temp, prefix = await temporary_stream(s, "LAB_DEDUP", duplicate_window=win)
        stream = temp
    else:
        info = await s.js.stream_info(stream)
        win = info.config.duplicate_window
        prefix = (info.config.subjects or [stream])[0].rstrip(".>*").rstrip(".")
    offsets = list(at) if at is not None else [0.0, win * 0.25, win * 1.25]
    rows = []
    t_start = time.time()
    try:
        for r, offset in enumerate(offsets):
            delay = t_start + offset - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for i in range(1, ids + 1):
                subject = f"{prefix}.{subjects[(i + r) % len(subjects)]}"
                msg_id = f"id-{i}"
                sent = time.time()
                ack = await s.js.publish(subject, f"round {r + 1} id {i}".encode(),
                                         headers={"Nats-Msg-Id": msg_id}, timeout=5)
                row = {"sent": sent, "offset_s": sent - t_start, "round": r + 1, "subject": subject,
                       "msg_id": msg_id, "accepted": not ack.duplicate, "duplicate": bool(ack.duplicate),
                       "seq": ack.seq}
                rows.append(row)
                if on_ack:
                    on_ack(row)
    finally:
        if temp:
            await s.js.delete_stream(temp)
    frame = pd.DataFrame(rows)
    frame["sent"] = pd.to_datetime(frame["sent"], unit="s", utc=True)
    frame.attrs.update(window_s=win, stream=stream)
    return frame
