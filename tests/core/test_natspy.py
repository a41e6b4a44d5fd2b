"""The core protocol as a client library sees it (nats-py), on both servers: queue groups, headers, request and
reply, no responders, auto-unsubscribe, echo, payload limits and large messages."""
from __future__ import annotations

import asyncio
from collections import Counter

import nats
import pytest

from pynats_lab.session import flush


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_queue_group_gives_each_message_to_exactly_one_member(server):
    async def scenario():
        nc = await nats.connect(server.url)
        got = Counter()
        members = []
        for i in range(3):
            async def handler(msg, i=i):
                got[(i, msg.data)] += 1
            members.append(await nc.subscribe("work", queue="workers", cb=handler))
        plain = await nc.subscribe("work")
        for n in range(300):
            await nc.publish("work", b"%d" % n)
        await nc.flush()
        await asyncio.sleep(0.2)
        seen_plain = [(await plain.next_msg(1)).data for _ in range(300)]
        await nc.close()
        return got, seen_plain

    got, seen_plain = run(scenario())
    per_message = Counter(data for (_, data) in got.elements())
    assert set(per_message.values()) == {1} and len(per_message) == 300
    assert all(sum(n for (i, _), n in got.items() if i == member) > 30 for member in range(3))
    assert seen_plain == [b"%d" % n for n in range(300)]


def test_headers_travel_and_clients_without_headers_get_the_payload(server):
    async def scenario():
        nc = await nats.connect(server.url)
        sub = await nc.subscribe("h")
        await nc.publish("h", b"body", headers={"Trace-Id": "42", "Multi": "a"})
        msg = await sub.next_msg(1)
        await nc.close()
        return msg

    msg = run(scenario())
    assert msg.data == b"body" and msg.headers == {"Trace-Id": "42", "Multi": "a"}


def test_request_reply_and_no_responders(server):
    async def scenario():
        nc = await nats.connect(server.url)

        async def double(msg):
            await msg.respond(msg.data * 2)

        await nc.subscribe("svc.double", cb=double)
        answers = [(await nc.request("svc.double", b"ab", timeout=2)).data for _ in range(5)]
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("svc.nobody", b"?", timeout=2)
        await nc.close()
        return answers

    assert run(scenario()) == [b"abab"] * 5


def test_auto_unsubscribe_after_max_messages(server):
    async def scenario():
        nc = await nats.connect(server.url)
        sub = await nc.subscribe("limited", max_msgs=3)
        for n in range(6):
            await nc.publish("limited", b"%d" % n)
        await nc.flush()
        got = [(await sub.next_msg(1)).data for _ in range(3)]
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(0.2)
        await nc.close()
        return got

    assert run(scenario()) == [b"0", b"1", b"2"]


def test_no_echo_keeps_a_connections_own_messages_from_it(server):
    async def scenario():
        quiet = await nats.connect(server.url, no_echo=True)
        other = await nats.connect(server.url)
        mine = await quiet.subscribe("chat")
        theirs = await other.subscribe("chat")
        await flush(quiet)
        await flush(other)
        await quiet.publish("chat", b"from quiet")
        await other.publish("chat", b"from other")
        await quiet.flush()
        await other.flush()
        got_mine = [(await mine.next_msg(1)).data]
        with pytest.raises(nats.errors.TimeoutError):
            await mine.next_msg(0.2)
        got_theirs = sorted([(await theirs.next_msg(1)).data for _ in range(2)])
        await quiet.close()
        await other.close()
        return got_mine, got_theirs

    assert run(scenario()) == ([b"from other"], [b"from other", b"from quiet"])


def test_max_payload_is_announced_and_enforced(start_server):
    srv = start_server(config="max_payload: 1KB\n")

    async def scenario():
        nc = await nats.connect(srv.url)
        assert nc.max_payload == 1024
        sub = await nc.subscribe("big")
        await nc.publish("big", b"x" * 1024)
        assert len((await sub.next_msg(1)).data) == 1024
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish("big", b"x" * 1025)
        await nc.close()

    run(scenario())


def test_a_one_megabyte_message_arrives_whole(server):
    async def scenario():
        nc = await nats.connect(server.url)
        sub = await nc.subscribe("large")
        payload = bytes(range(256)) * 4096
        await nc.publish("large", payload)
        msg = await sub.next_msg(5)
        await nc.close()
        return msg.data == payload

    assert run(scenario())


def test_wildcards_and_many_subjects(server):
    async def scenario():
        nc = await nats.connect(server.url)
        gt = await nc.subscribe("sensors.>")
        star = await nc.subscribe("sensors.*.temp")
        for i in range(50):
            await nc.publish(f"sensors.s{i}.temp", b"t")
            await nc.publish(f"sensors.s{i}.hum", b"h")
        await nc.flush()
        n_gt = len([await gt.next_msg(1) for _ in range(100)])
        n_star = len({(await star.next_msg(1)).subject for _ in range(50)})
        with pytest.raises(nats.errors.TimeoutError):
            await star.next_msg(0.1)
        await nc.close()
        return n_gt, n_star

    assert run(scenario()) == (100, 50)
