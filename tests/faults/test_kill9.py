"""kill -9 at random moments while the server publishes, acknowledges, purges, compacts and writes consumer
state, on both servers. After every kill the server starts again and must hold every acknowledged message that
no acknowledged removal took away (with its payload), hand out sequences after every acknowledged one (never
back), and redeliver whatever a consumer had not had its acknowledgement recorded for (at-least-once: nothing is
skipped). The default run kills each workload twice; `FAULTS_SCALE=N` (or `python -m bench faults`) kills it
2 + 5·N times.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import urllib.request

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from tests.jetstream.helpers import api, connected, run

ROUNDS = 2 + 5 * int(os.environ.get("FAULTS_SCALE", "0"))


async def _client(server):
    nc = await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)
    return nc, nc.jetstream()


def _kill_during(server, workload, seed: int) -> None:
    """Run `workload(nc, js)` and SIGKILL the server at a random moment in it; then start the server again."""
    rng = random.Random(seed)

    async def go():
        nc, js = await _client(server)
        task = asyncio.create_task(workload(nc, js))
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        server.kill()
        try:
            await asyncio.wait_for(task, 10)
        except Exception:
            pass
        try:
            await nc.close()
        except Exception:
            pass

    run(go(), timeout=30)
    server.start()


async def _check_messages(server, stream: str, acked: dict, must_have) -> dict:
    """Every acknowledged sequence in `must_have` is readable with its payload; whatever else is readable is what
    was published under that sequence. Returns the stream state."""
    async with connected(server) as (nc, js):
        state = (await api(nc, f"$JS.API.STREAM.INFO.{stream}"))["state"]
        for seq in range(state["first_seq"], state["last_seq"] + 1):
            reply = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq})
            if "message" in reply:
                data = base64.b64decode(reply["message"].get("data", ""))
                assert seq not in acked or acked[seq] == data, f"sequence {seq} holds another message"
            elif seq in must_have:
                raise AssertionError(f"acknowledged sequence {seq} is gone ({reply.get('error')})")
        missing = [s for s in must_have if s < state["first_seq"] or s > state["last_seq"]]
        assert not missing, f"acknowledged sequences outside the stream: {missing[:10]}"
        assert "lost" not in state, f"a kill -9 lost data: {state['lost']}"
        return state


async def _next_seq(server, subject: str) -> int:
    async with connected(server) as (nc, js):
        return (await js.publish(subject, b"after")).seq


def test_kill_during_publish(js_server):
    acked: dict[int, bytes] = {}
    run(_create(js_server, {"name": "P", "subjects": ["p"]}))

    async def publish(nc, js):
        i = len(acked)
        while True:
            payload = b"p-%d" % i
            acked[(await js.publish("p", payload, timeout=2)).seq] = payload
            i += 1

    _kill_and_check_publishes(js_server, "P", "p", publish, acked)
    assert len(acked) > ROUNDS


def _kill_and_check_publishes(server, stream: str, subject: str, publish, acked: dict) -> None:
    """ROUNDS kills during `publish`, which fills `acked` (sequence -> payload): after each, every acknowledged
    message is there and the next publish gets a later sequence."""
    for r in range(ROUNDS):
        _kill_during(server, publish, r)
        top = max(acked, default=0)
        run(_check_messages(server, stream, acked, set(acked)), timeout=120)
        seq = run(_next_seq(server, subject))
        assert seq > top, f"sequence {seq} handed out again (acknowledged up to {top})"
        acked[seq] = b"after"


def test_kill_during_fast_batch(js_server):
    """A fast batch's messages that a flow ack said were stored survive the kill (the embedded server writes a
    batch's messages once per read, before anything it answers leaves)."""
    acked: dict[int, bytes] = {}
    run(_create(js_server, {"name": "FB", "subjects": ["fb"], "allow_batched": True}))

    async def publish(nc, js):
        base = (await api(nc, "$JS.API.STREAM.INFO.FB"))["state"]["last_seq"]
        inbox = nc.new_inbox()
        answers = await nc.subscribe(inbox + ".>")
        sent, upto, flow = {}, 0, 10
        for seq in range(1, 601):  # spread over the time the kill may come in (each is read back)
            if seq % flow == 0:
                await asyncio.sleep(0.003)
            sent[seq] = b"f-%d-%d" % (base, seq)
            await nc.publish("fb", sent[seq], reply=f"{inbox}.b{base}.{flow}.fail.{seq}.{0 if seq == 1 else 1}.$FI")
            while seq - upto >= 2 * flow:
                answer = json.loads((await answers.next_msg(2)).data)
                assert answer.get("type") == "ack", answer
                for k in range(upto + 1, answer["seq"] + 1):
                    acked[base + k] = sent[k]
                upto = max(upto, answer["seq"])

    _kill_and_check_publishes(js_server, "FB", "fb", publish, acked)
    assert len(acked) > 10 * ROUNDS


async def _create(server, cfg: dict, consumers: tuple[str, ...] = ()) -> None:
    async with connected(server) as (nc, js):
        reply = await api(nc, f"$JS.API.STREAM.CREATE.{cfg['name']}", cfg)
        assert "error" not in reply, reply
        for name in consumers:
            await js.add_consumer(cfg["name"], ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                                                              ack_wait=1, max_ack_pending=-1))


def _consume_until_killed(stream: str, durables: tuple[str, ...], acked_by: dict):
    async def consume(nc, js):
        async def one(durable):
            psub = await js.pull_subscribe_bind(durable, stream=stream)
            while True:
                for m in await psub.fetch(5, timeout=2):
                    await m.ack_sync()
                    acked_by[durable].add(m.metadata.sequence.stream)
        await asyncio.gather(*(one(d) for d in durables))
    return consume


async def _drain(server, stream: str, durable: str, want: set[int]) -> set[int]:
    """What the consumer delivers (acknowledged as it comes) until `want` is covered or it has been quiet for
    longer than its ack wait thrice (a message delivered before the kill comes back after its ack wait)."""
    got = set()
    quiet = 0
    async with connected(server) as (nc, js):
        psub = await js.pull_subscribe_bind(durable, stream=stream)
        while not want <= got and quiet < 3:
            try:
                msgs = await psub.fetch(50, timeout=1.5)
            except nats.errors.TimeoutError:
                quiet += 1
                continue
            quiet = 0
            for m in msgs:
                await m.ack_sync()
                got.add(m.metadata.sequence.stream)
    return got


@pytest.mark.parametrize("consumers", [1, 4], ids=["ack", "consumer state writes of 4 consumers"])
def test_kill_during_acks(js_server, consumers):
    durables = tuple(f"C{i}" for i in range(consumers))
    run(_create(js_server, {"name": "A", "subjects": ["a"]}, durables))

    async def fill():
        async with connected(js_server) as (nc, js):
            for i in range(400):
                await js.publish("a", b"a-%d" % i)

    run(fill())
    acked_by = {d: set() for d in durables}
    for r in range(ROUNDS):
        _kill_during(js_server, _consume_until_killed("A", durables, acked_by), 100 + r)
        assert "[ERR]" not in js_server.logs, js_server.logs
    for d in durables:
        rest = run(_drain(js_server, "A", d, set(range(1, 401)) - acked_by[d]), timeout=120)
        skipped = set(range(1, 401)) - acked_by[d] - rest
        assert not skipped, f"{d}: never delivered after the kills: {sorted(skipped)[:10]}"
        assert acked_by[d], f"{d}: no acknowledgement before the kills (the kills came too early)"


def test_kill_during_purge(js_server):
    acked: dict[int, bytes] = {}
    fence = [0]  # the last acknowledged sequence when the latest purge was asked for
    run(_create(js_server, {"name": "U", "subjects": ["u.*"]}))

    async def publish_and_purge(nc, js):
        i = 0
        while True:
            for _ in range(20):
                payload = b"u-%d" % i
                acked[(await js.publish(f"u.{i % 3}", payload, timeout=2)).seq] = payload
                i += 1
            fence[0] = max(acked)
            body = random.choice([{"keep": 5}, {"seq": fence[0] - 3}, {"filter": "u.1"}, {}])
            await nc.request("$JS.API.STREAM.PURGE.U", json.dumps(body).encode(), timeout=2)

    for r in range(ROUNDS):
        _kill_during(js_server, publish_and_purge, 200 + r)
        must = {s for s in acked if s > fence[0]}
        state = run(_check_messages(js_server, "U", acked, must), timeout=120)
        assert state["last_seq"] >= max(acked)
        seq = run(_next_seq(js_server, "u.0"))
        assert seq > max(acked)
        acked[seq] = b"after"
        fence[0] = seq - 1


def test_kill_during_compaction(js_server):
    """Limits keep removing the oldest messages of small blocks (nats-server's 32 kB blocks under max_bytes), so
    blocks are released and the removal journal rewritten while the kill comes; PURGE by sequence (nats-server's
    Compact) runs too."""
    acked: dict[int, bytes] = {}
    run(_create(js_server, {"name": "K", "subjects": ["k"], "max_bytes": 100_000}))

    async def churn(nc, js):
        i = 0
        while True:
            payload = b"k-%d-" % i + b"x" * 900
            acked[(await js.publish("k", payload, timeout=2)).seq] = payload
            i += 1
            if i % 150 == 0:
                await nc.request("$JS.API.STREAM.PURGE.K", b'{"seq": %d}' % (max(acked) - 20), timeout=2)

    for r in range(ROUNDS):
        _kill_during(js_server, churn, 300 + r)
        top = max(acked)
        state = run(_check_messages(js_server, "K", acked, {top}), timeout=120)
        assert state["last_seq"] >= top and state["bytes"] <= 100_000
        seq = run(_next_seq(js_server, "k"))
        assert seq > top
        acked[seq] = b"after"


def _jsz(server) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/jsz", timeout=5) as resp:
        return json.loads(resp.read())


def test_kill_during_cache_eviction(start_server, server_kind, tmp_path):
    """A reader scanning the stream (STREAM.MSG.GET next_by_subj reads whole blocks through the block cache)
    forces evictions from a 40 kB cache (one of the 32 kB blocks a max_bytes stream gets) while a publisher
    writes; kill -9 comes once evictions are under way. Every acknowledged message the limit keeps is there
    after the restart, and the cache never held more than its limit (read from /jsz, the embedded server's)."""
    if server_kind != "embedded":
        pytest.skip("the block cache is the embedded server's own")
    server = start_server("-m", "-1", config=f'jetstream {{ store_dir: "{tmp_path}", block_cache: 40K }}\n')
    acked: dict[int, bytes] = {}
    run(_create(server, {"name": "E", "subjects": ["e"], "max_bytes": 120_000}))

    async def publish(nc, js):
        i = 0
        while True:
            payload = b"e-%d-" % i + b"y" * 1000
            acked[(await js.publish("e", payload, timeout=2)).seq] = payload
            i += 1

    async def read(nc, js):
        # Reads 45, 60 and 75 messages behind the newest in turn: two or three of the ~30-message blocks, never
        # the one being written (not cached) nor, mostly, the oldest (which the limit releases).
        for i in itertools.count():
            top = max(acked, default=0)
            if top > 80:
                await api(nc, "$JS.API.STREAM.MSG.GET.E", {"seq": top - 45 - 15 * (i % 3), "next_by_subj": "e"})
            else:
                await asyncio.sleep(0.01)

    loop_evictions = []
    for r in range(ROUNDS):
        rng = random.Random(400 + r)

        async def go():
            nc, js = await _client(server)
            tasks = [asyncio.create_task(publish(nc, js)), asyncio.create_task(read(nc, js))]
            start = (await asyncio.to_thread(_jsz, server))["block_cache"]["evictions"]
            for _ in range(200):
                cache = (await asyncio.to_thread(_jsz, server))["block_cache"]
                if cache["evictions"] >= start + 3:
                    break
                await asyncio.sleep(0.05)
            for t in tasks:
                if t.done():
                    t.result()
            assert cache["peak"] <= cache["limit"] == 40_000, cache  # 40K in a config is 40,000
            loop_evictions.append(cache["evictions"] - start)
            await asyncio.sleep(rng.uniform(0, 0.2))
            server.kill()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await nc.close()
            except Exception:
                pass

        run(go(), timeout=60)
        server.start()
        top = max(acked)
        # The limit (120 kB) keeps at least the newest 100 messages of about 1 kB.
        state = run(_check_messages(server, "E", acked, {s for s in acked if s > top - 100}), timeout=120)
        assert state["last_seq"] >= top
        seq = run(_next_seq(server, "e"))
        assert seq > top
        acked[seq] = b"after"
    assert all(n >= 3 for n in loop_evictions), f"the kills came before evictions: {loop_evictions}"
