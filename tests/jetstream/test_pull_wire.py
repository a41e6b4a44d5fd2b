"""A pull batch byte for byte: the MSG/HMSG frames, ack subjects and pending counts a raw client receives, with
and without header support, and the consumer state after the batch, on both servers."""
import re

import pytest

from tests.raw import RawClient

from .helpers import api, connected, run

TS = re.compile(rb"(\$JS\.ACK\.S\.C\.\d+\.\d+\.\d+\.)\d+")


def _frames(raw: RawClient, count: int) -> list[bytes]:
    """The next `count` MSG/HMSG frames as sent (line and body), PINGs answered."""
    frames = []
    while len(frames) < count:
        line = raw.read_line().encode()
        if line == b"PING":
            raw.send("PONG\r\n")
            continue
        assert line.startswith((b"MSG ", b"HMSG ")), line
        size = int(line.split()[-1])
        while len(raw.buf) < size + 2:
            raw.buf += raw.sock.recv(65536)
        body, raw.buf = raw.buf[:size + 2], raw.buf[size + 2:]
        frames.append(TS.sub(rb"\1<ts>", line) + b"\r\n" + body)
    return frames


async def _prepare(server):
    async with connected(server) as (nc, js):
        await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "storage": "memory"})
        await api(nc, "$JS.API.CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
            "name": "C", "ack_policy": "explicit", "max_ack_pending": 4}})
        await js.publish("s.a", b"plain one")
        await js.publish("s.b.c", b"with headers", headers={"Trace": "t-1", "Nats-Msg-Id": "x"})
        await js.publish("s.a", b"")
        for i in range(3):
            await js.publish("s.d", b"more %d" % i)


async def _state(server):
    async with connected(server) as (nc, _):
        info = await api(nc, "$JS.API.CONSUMER.INFO.S.C")
    for seqs in (info["delivered"], info["ack_floor"]):
        seqs.pop("last_active", None)
    return {k: info[k] for k in ("delivered", "ack_floor", "num_ack_pending", "num_pending", "num_waiting")}


@pytest.mark.parametrize("headers", [True, False], ids=["headers", "no-headers"])
def test_a_pull_batch_is_the_same_bytes_and_state(js_server, headers):
    run(_prepare(js_server))
    with RawClient(js_server) as raw:
        raw.connect(headers=headers, no_responders=headers)
        raw.send("SUB inbox.1 7\r\nPUB $JS.API.CONSUMER.MSG.NEXT.S.C inbox.1 11\r\n{\"batch\":5}\r\n")
        # max_ack_pending 4 holds the batch at four messages until one is acknowledged.
        first = _frames(raw, 4)
        raw.send("PUB $JS.ACK.S.C.1.2.2.0.4 0\r\n\r\n")
        last = _frames(raw, 1)
    plain = b"MSG s.a 7 $JS.ACK.S.C.1.1.1.<ts>.5 9\r\nplain one\r\n"
    if headers:
        hdr = b"NATS/1.0\r\nTrace: t-1\r\nNats-Msg-Id: x\r\n\r\n"
        second = b"HMSG s.b.c 7 $JS.ACK.S.C.1.2.2.<ts>.4 %d %d\r\n%swith headers\r\n" % (
            len(hdr), len(hdr) + 12, hdr)
    else:
        second = b"MSG s.b.c 7 $JS.ACK.S.C.1.2.2.<ts>.4 12\r\nwith headers\r\n"
    assert first == [plain, second, b"MSG s.a 7 $JS.ACK.S.C.1.3.3.<ts>.3 0\r\n\r\n",
                     b"MSG s.d 7 $JS.ACK.S.C.1.4.4.<ts>.2 6\r\nmore 0\r\n"]
    assert last == [b"MSG s.d 7 $JS.ACK.S.C.1.5.5.<ts>.1 6\r\nmore 1\r\n"]
    assert run(_state(js_server)) == {
        "delivered": {"consumer_seq": 5, "stream_seq": 5},
        "ack_floor": {"consumer_seq": 0, "stream_seq": 0},
        "num_ack_pending": 4, "num_pending": 1, "num_waiting": 0}


@pytest.mark.parametrize("watch", ["$JS.ACK.>", "$JS.ACK.S.C.1.>", "$JS.*.S.C.>", ">"])
def test_acks_count_and_reach_whoever_else_listens(js_server, watch):
    """Ack subjects are routed like any other subject: a subscriber on a subject that covers them sees every
    ack, and the consumer still counts each one, while that subscriber is there and after it left."""
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="S", subjects=["s.>"], storage="memory")
            for i in range(6):
                await js.publish("s.a", b"%d" % i)
            psub = await js.pull_subscribe("s.>", durable="C", stream="S")
            async with connected(js_server) as (watcher, _):
                seen = await watcher.subscribe(watch)
                await watcher.flush()
                for m in await psub.fetch(3, timeout=2):
                    await m.ack()
                await nc.flush()
                acks = []
                while len(acks) < 3:
                    msg = await seen.next_msg(2)
                    if msg.subject.startswith("$JS.ACK."):
                        acks.append(msg.subject.split(".")[5])
                await seen.unsubscribe()
            for m in await psub.fetch(3, timeout=2):
                await m.ack_sync()
            info = await js.consumer_info("S", "C")
            return acks, info.ack_floor.stream_seq, info.num_ack_pending
    assert run(scenario()) == (["1", "2", "3"], 6, 0)
