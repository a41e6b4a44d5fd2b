"""Core publish/subscribe through nats-py, on every server kind."""
import asyncio

import nats
import pytest


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_wildcard_subscriptions_see_matching_subjects(server):
    async def scenario():
        nc = await nats.connect(server.url)
        seen = {}
        star = await nc.subscribe("weather.us.*")
        gt = await nc.subscribe("weather.us.>")
        for subject in ("weather.us.pa", "weather.us.pa.philadelphia", "weather.eu.fr"):
            await nc.publish(subject, b"x")
        await nc.flush()
        seen["star"] = [(await star.next_msg(1)).subject]
        seen["gt"] = [(await gt.next_msg(1)).subject for _ in range(2)]
        with pytest.raises(nats.errors.TimeoutError):
            await star.next_msg(0.2)
        await nc.close()
        return seen

    seen = run(scenario())
    assert seen["star"] == ["weather.us.pa"]
    assert seen["gt"] == ["weather.us.pa", "weather.us.pa.philadelphia"]


def test_request_without_responders_fails_fast(server):
    async def scenario():
        nc = await nats.connect(server.url)
        try:
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request("nobody.home", b"?", timeout=5)
        finally:
            await nc.close()

    run(scenario())
