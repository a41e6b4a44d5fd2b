"""The lab's targets, on each server kind: a 100-message `stream_view` page from a 1,000,000-message stream
(< 200 ms) and a 100,000-message stream into one DataFrame (< 3 s); plus the filtered and backwards moves;
each with and without allow_direct. Whole-stream reads (`stream_frame`) three ways: through the ordered
consumer (the default for a large limits stream), and without one by batched direct get and by pipelined
STREAM.MSG.GET (how work-queue and interest streams are read); the `bulk` suite reads the 1,000,000-message
stream whole the same three ways (< 30 s). And `%stream report` over 1,000 streams, `%consumer report` over
1,000 consumers, `%stream subjects` on a 1,000,000-message stream with 10,000 subjects (< 1 s each). And one
`%server watch` refresh (read every server, redraw the ServerMonitor's charts and table) with 120 readings
already charted, through the monitoring port and through $SYS (< 100 ms).

    python -m bench lab [--messages 1000000] [--frame-messages 100000] [--kinds nats-server,embedded]
                        [--suites view,frame,bulk,reports,watch] [--streams 1000] [--consumers 1000] [--subjects 10000]
                        [--reads consumer,direct,msgget] [--quick] [--profile FILE]

`--suites frame` times only the whole-stream reads of --frame-messages (no 1,000,000-message stream is filled):
`python -m bench lab --suites frame --reads msgget --repeat 2` is the pipelined STREAM.MSG.GET read alone.
`--quick` makes everything small (100,000 and 20,000 messages, 100 streams and consumers, 3 repeats), for a
smoke run; its figures are not the targets'.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _kinds() -> list[str]:
    kinds = ["nats-server"]
    if importlib.util.find_spec("embedded_server.jetstream") is not None:
        kinds.append("embedded")
    return kinds


def fill(session, stream: str, subject_of, count: int, size: int = 64) -> float:
    """Store `count` messages; seconds taken. Core publishes in slices, each waited for until stored: the
    server drops what exceeds its ingest queue ("excessive stream ingest rate"), so never run ahead of it."""
    payload = b'{"v": "' + b"x" * max(size - 10, 0) + b'"}'
    step = 20_000

    from pynats_lab.reports import api_request

    async def go():
        nc = session.nc
        base = (await session.js.stream_info(stream)).state.messages
        for start in range(0, count, step):
            for i in range(start, min(start + step, count)):
                await nc.publish(subject_of(i), payload)
            await nc.flush(timeout=60)
            want = base + min(start + step, count)
            while True:
                try:  # a server busy storing may answer late: ask again rather than give up
                    info = await api_request(session, f"$JS.API.STREAM.INFO.{stream}", timeout=30)
                    if info["state"]["messages"] >= want:
                        break
                except asyncio.TimeoutError:
                    pass
                await asyncio.sleep(0.02)

    t0 = time.perf_counter()
    session.run(go())
    return time.perf_counter() - t0


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


# How a whole-stream read is made: stream_frame's `consumer` argument and the stream's allow_direct.
READS = (("ordered consumer", None, False), ("direct get", False, True), ("STREAM.MSG.GET", False, False))
WAYS = {how for how, _consumer, _direct in READS}  # the ones to time (--reads)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_whole(kind: str, stream: str, messages: int, repeat: int, target: str, server_pid: int) -> list[dict]:
    """`stream_frame(stream)` the three ways of READS; a row for each, with the CPU the lab's process and the
    server's spent per message (what the machine's load disturbs least)."""
    import pynats_lab as lab
    from pynats_lab import reader

    rows = []
    for how, consumer, direct in READS:
        if how not in WAYS:
            continue
        lab.stream_edit(stream, allow_direct=direct)
        made = []
        opened = reader.OrderedRead.open

        async def counting(self):
            made.append(self)
            return await opened(self)

        reader.OrderedRead.open = counting
        lab_cpu, server_cpu = time.process_time(), _cpu_seconds(server_pid)
        try:
            ms = timed(lambda: _check_len(lab.stream_frame(stream, consumer=consumer, progress=False), messages),
                       repeat)
        finally:
            reader.OrderedRead.open = opened
        per = 1e6 / (messages * repeat)
        lab_cpu, server_cpu = (time.process_time() - lab_cpu) * per, (_cpu_seconds(server_pid) - server_cpu) * per
        assert bool(made) == (consumer is None), how  # the read went the way it says
        rows.append({"server": kind, "read": how, "workload": f"{messages:,} messages into one DataFrame",
                     "stream messages": messages, "median ms": statistics.median(ms), "p90 ms": max(ms),
                     "target": target, "lab CPU us/msg": round(lab_cpu, 1), "server CPU us/msg": round(server_cpu, 1)})
        print(f"[{kind}] {messages:,} into a DataFrame, {how}: median {statistics.median(ms):,.0f} ms, CPU per "
              f"message {lab_cpu:.1f} us lab, {server_cpu:.1f} us server", flush=True)
    return rows


def _check_len(frame, messages: int) -> None:
    assert len(frame) == messages, (len(frame), messages)


def run_kind(kind: str, messages: int, frame_messages: int, repeat: int, suites: set[str],
             profile: Path | None = None) -> list[dict]:
    import pynats_lab as lab
    from bench.core import profiled_embedded
    from tests.servers import RunningServer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        command = profiled_embedded(profile) if profile and kind == "embedded" else None
        srv = RunningServer(kind, ["-js", "-sd", str(Path(tmp) / "js")], Path(tmp),
                            command=command).start(timeout=60)
        try:
            s = lab.get_session().connect(srv.url)
            pid = srv._process.pid
            if suites & {"view", "bulk"}:
                lab.stream_add("BIG", "big.>", storage="file")
                secs = fill(s, "BIG", lambda i: f"big.{i % 10}", messages)
                print(f"[{kind}] stored {messages:,} messages in {secs:.1f}s", flush=True)
            if "view" in suites:
                rows += _views(kind, messages, frame_messages, repeat, pid)
            elif "frame" in suites:
                rows += _frame(kind, frame_messages, repeat, pid)
            if "bulk" in suites:
                rows += read_whole(kind, "BIG", messages, 1, "< 30000 ms", pid)
        finally:
            lab.get_session().close()
            srv.stop()
    return rows


def _views(kind: str, messages: int, frame_messages: int, repeat: int, pid: int) -> list[dict]:
    import pynats_lab as lab

    rows = []
    mid = messages // 2
    cases = {
        "view: 100-message page at the middle": lambda: lab.stream_view("BIG", id=mid, page_size=100),
        "view: first page": lambda: lab.stream_view("BIG", page_size=100),
        "view: last page (--last)": lambda: lab.stream_view("BIG", page_size=100, last=True),
        "view: filtered page (--subject big.3, middle)":
            lambda: lab.stream_view("BIG", id=mid, subject="big.3", page_size=100),
        "view: filtered last page": lambda: lab.stream_view("BIG", subject="big.3", page_size=100, last=True),
    }
    # Pages are read the same way whatever the size: batched direct get with allow_direct, pipelined
    # STREAM.MSG.GET without it (what streams made by nats-py and nats.go get by default).
    for direct in (True, False):
        lab.stream_edit("BIG", allow_direct=direct)
        how = "allow_direct" if direct else "no allow_direct"
        for name, fn in cases.items():
            assert len(fn()) == 100, name
            ms = timed(fn, repeat)
            rows.append({"server": kind, "read": how, "workload": name, "stream messages": messages,
                         "median ms": statistics.median(ms), "p90 ms": sorted(ms)[int(len(ms) * 0.9) - 1],
                         "target": "< 200 ms" if "middle" in name and "filtered" not in name else ""})
    return rows + _frame(kind, frame_messages, repeat, pid)


def _frame(kind: str, frame_messages: int, repeat: int, pid: int) -> list[dict]:
    import pynats_lab as lab

    lab.stream_add("FRAME", "frame.>", storage="file")
    fill(lab.get_session(), "FRAME", lambda i: "frame.x", frame_messages)
    # the targets: 100,000 messages in under 3 s, 1,000,000 in under 30 s; other sizes have none
    target = {100_000: "< 3000 ms", 1_000_000: "< 30000 ms"}.get(frame_messages, "")
    return read_whole(kind, "FRAME", frame_messages, max(repeat // 5, 3), target, pid)


def run_reports(kind: str, streams: int, consumers: int, messages: int, subjects: int,
                repeat: int) -> list[dict]:
    """`%stream report` over many streams, `%consumer report` over many consumers, `%stream subjects` on a
    large stream with many subjects: each should answer in under 1 s."""
    import pynats_lab as lab
    from pynats_lab.reports import api_request
    from tests.servers import RunningServer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        srv = RunningServer(kind, ["-js", "-sd", str(Path(tmp) / "js")], Path(tmp)).start(timeout=60)
        try:
            s = lab.get_session().connect(srv.url)

            async def make():
                for start in range(0, streams, 100):
                    await asyncio.gather(*(api_request(s, f"$JS.API.STREAM.CREATE.R{i:04d}", {
                        "name": f"R{i:04d}", "subjects": [f"r.{i}"], "storage": "memory", "num_replicas": 1})
                        for i in range(start, min(start + 100, streams))))
                for start in range(0, consumers, 100):
                    await asyncio.gather(*(api_request(s, f"$JS.API.CONSUMER.CREATE.R0000.c{i:04d}", {
                        "stream_name": "R0000", "config": {"durable_name": f"c{i:04d}", "ack_policy": "explicit"}})
                        for i in range(start, min(start + 100, consumers))))

            s.run(make(), timeout=600)
            lab.stream_add("SUBJ", "subj.>", storage="file")
            secs = fill(s, "SUBJ", lambda i: f"subj.{i % subjects}", messages)
            print(f"[{kind}] {streams:,} streams, {consumers:,} consumers, {messages:,} messages on "
                  f"{subjects:,} subjects stored in {secs:.1f}s", flush=True)
            cases = {
                f"stream report, {streams + 1:,} streams": (lambda: lab.stream_report(), streams + 1),
                f"consumer report, {consumers:,} consumers": (lambda: lab.consumer_report("R0000"), consumers),
                f"stream subjects, {messages:,} messages on {subjects:,} subjects":
                    (lambda: lab.stream_subjects("SUBJ"), subjects),
            }
            for name, (fn, rows_expected) in cases.items():
                assert len(fn()) == rows_expected, name
                ms = timed(fn, repeat)
                rows.append({"server": kind, "read": "", "workload": name, "stream messages": None,
                             "median ms": statistics.median(ms), "p90 ms": sorted(ms)[int(len(ms) * 0.9) - 1],
                             "target": "< 1000 ms"})
                print(f"[{kind}] {name}: median {statistics.median(ms):.1f} ms", flush=True)
        finally:
            lab.get_session().close()
            srv.stop()
    return rows


def run_decode(repeat: int) -> None:
    """The embedded server's request decoding, CPU µs per body (best of `repeat` x 20,000), printed as its own
    table: the fast path for simple bodies (what `decode` does) against the general Go-rules decoder
    (`decode_full`). In process, no server."""
    import timeit

    import pandas as pd

    from embedded_server.jetstream import requests as r

    rows = []
    for name, typ, body in (("STREAM.MSG.GET / DIRECT.GET {seq, next_by_subj}", r.MSG_GET_REQUEST,
                             b'{"seq":12345,"next_by_subj":"orders.>"}'),
                            ("DIRECT.GET {last_by_subj}", r.MSG_GET_REQUEST, b'{"last_by_subj":"orders.new"}'),
                            ("DIRECT.GET batch {seq, batch, next_by_subj}", r.MSG_GET_REQUEST,
                             b'{"batch": 10000, "next_by_subj": "orders.>", "seq": 1}'),
                            ("CONSUMER.MSG.NEXT {batch, expires}", r.CONSUMER_NEXT_REQUEST,
                             b'{"batch":2000,"expires":30000000000}')):
        assert r.decode(body, typ) == r.decode_full(body, typ)
        us = {how: min(timeit.repeat(lambda: fn(body, typ), number=20_000, repeat=max(repeat, 3),
                                     timer=time.process_time)) / 20_000 * 1e6
              for how, fn in (("fast path us", r.decode), ("general decoder us", r.decode_full))}
        rows.append({"body": name, **{k: round(v, 2) for k, v in us.items()},
                     "ratio": round(us["general decoder us"] / us["fast path us"], 1)})
    df = pd.DataFrame(rows)
    print(df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False))


WATCH_CONFIG = """
accounts { SYS { users [{user: sys, password: sys}] }, APP { users [{user: app, password: app}] } }
system_account: SYS
"""


def run_watch(kind: str, repeat: int, history: int = 120) -> list[dict]:
    """One ServerMonitor refresh as the widget does it: a reading of every server and the redraw."""
    import pynats_lab as lab
    from pynats_lab.overview import ServerSampler
    from pynats_lab.widgets.server_monitor import live_view
    from tests.servers import RunningServer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "server.conf"
        conf.write_text(WATCH_CONFIG)
        srv = RunningServer(kind, ["-m", "-1", "-c", str(conf)], Path(tmp)).start(timeout=60)
        try:
            for how, url, monitor in (("monitoring", f"nats://app:app@127.0.0.1:{srv.port}",
                                       f"http://127.0.0.1:{srv.http_port}"),
                                      ("$SYS", f"nats://sys:sys@127.0.0.1:{srv.port}", None)):
                s = lab.get_session().connect(url)
                sampler = ServerSampler(s, monitor)
                for _ in range(history + 1):
                    s.run(sampler.sample())

                def refresh():
                    s.run(sampler.sample())
                    live_view(sampler.frame)

                assert sampler.frame["server"].nunique() == 1
                ms = timed(refresh, repeat)
                rows.append({"server": kind, "read": how, "workload": f"%server watch refresh, {history} readings "
                             "charted", "stream messages": None, "median ms": statistics.median(ms),
                             "p90 ms": sorted(ms)[int(len(ms) * 0.9) - 1], "target": "< 100 ms"})
        finally:
            lab.get_session().close()
            srv.stop()
    return rows


def main(argv: list[str]) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(prog="python -m bench lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--frame-messages", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(_kinds()), help="server kinds, comma-separated")
    ap.add_argument("--suites", default="view,bulk,reports,watch", help="view (stream_view pages, stream_frame "
                    "of --frame-messages), frame (only the stream_frame of --frame-messages: no --messages stream "
                    "is filled), bulk (stream_frame of --messages), reports (stream/consumer report, "
                    "stream subjects), watch (%%server watch), decode (the embedded server's request decoding, "
                    "in process); comma-separated")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run (not the targets' sizes)")
    ap.add_argument("--reads", default="consumer,direct,msgget", help="whole-stream reads to time: consumer "
                    "(ordered consumer), direct (batched direct get), msgget (pipelined STREAM.MSG.GET)")
    ap.add_argument("--streams", type=int, default=1000, help="reports: streams for %%stream report")
    ap.add_argument("--consumers", type=int, default=1000, help="reports: consumers for %%consumer report")
    ap.add_argument("--subjects", type=int, default=10_000, help="reports: subjects for %%stream subjects")
    ap.add_argument("--profile", type=Path, metavar="FILE", help="run the embedded server under cProfile, write "
                    "its profile to FILE and print its hot spots")
    a = ap.parse_args(argv)
    if a.quick:
        a.messages, a.frame_messages, a.repeat = 100_000, 20_000, 3
        a.streams, a.consumers, a.subjects = 100, 100, 1000
    suites = set(a.suites.split(","))
    names = {"consumer": "ordered consumer", "direct": "direct get", "msgget": "STREAM.MSG.GET"}
    WAYS.clear()
    WAYS.update(names[w] for w in a.reads.split(",") if w in names)
    rows = []
    for kind in filter(None, a.kinds.split(",")):
        if suites & {"view", "frame", "bulk"}:
            rows += run_kind(kind, a.messages, a.frame_messages, a.repeat, suites, a.profile)
        if "reports" in suites:
            rows += run_reports(kind, a.streams, a.consumers, a.messages, a.subjects, max(a.repeat // 2, 3))
        if "watch" in suites:
            rows += run_watch(kind, a.repeat)
    if "decode" in suites:
        run_decode(a.repeat)
    if not rows:
        return 0
    df = pd.DataFrame(rows)
    df["median ms"] = df["median ms"].round(1)
    df["p90 ms"] = df["p90 ms"].round(1)
    print(df.to_markdown(index=False) if _has_tabulate() else df.to_string(index=False))
    if a.profile and "embedded" in a.kinds.split(",") and a.profile.exists():
        from bench.core import hotspots

        print()
        print(hotspots(a.profile))
    return 0


def _has_tabulate() -> bool:
    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
