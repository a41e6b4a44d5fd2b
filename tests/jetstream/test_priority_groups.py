"""Consumer priority groups on both servers: the configuration rules, the pull request checks, the `overflow`
policy (min_pending / min_ack_pending) and the `prioritized` policy (lower `priority` served first)."""
import asyncio
import json

import pytest

from .helpers import api, connected, error_of, run


async def _pull(nc, consumer: str, body: dict, timeout: float = 1.5) -> list[str]:
    """One pull request; the payloads it got, then the status that ended it (e.g. '408')."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.S.{consumer}", json.dumps(body).encode(), reply=inbox)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout)
            status = msg.headers.get("Status") if msg.headers else None
            if status:
                out.append(f"{status} {msg.headers.get('Description', '')}".strip())
                break
            out.append(msg.data.decode())
    except asyncio.TimeoutError:
        pass
    await sub.unsubscribe()
    return out


async def _setup(nc, name: str, policy: str, count: int = 5) -> dict:
    await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
    for i in range(count):
        await nc.request("s", b"m%d" % i, timeout=2)
    return await api(nc, f"$JS.API.CONSUMER.CREATE.S.{name}", {"stream_name": "S", "config": {
        "durable_name": name, "ack_policy": "explicit", "priority_policy": policy, "priority_groups": ["A"]}})


@pytest.mark.parametrize("config, expected", [
    ({"priority_policy": "overflow"}, (400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set")),
    ({"priority_policy": "overflow", "priority_groups": [""]}, (400, 10161, "Group name cannot be an empty string")),
    ({"priority_policy": "overflow", "priority_groups": ["a b"]},
     (400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters")),
    ({"priority_policy": "overflow", "priority_groups": ["A"], "deliver_subject": "d"},
     (400, 10178, "priority groups can not be used with push consumers")),
    ({"priority_groups": ["A"]}, (400, 10196, "consumer can not have priority groups when policy is none")),
    ({"priority_timeout": 1_000_000_000}, (400, 10197, "PinnedTTL cannot be set when PriorityPolicy is none")),
])
def test_priority_group_configs_get_nats_server_errors(js_server, config, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
            return await api(nc, "$JS.API.CONSUMER.CREATE.S.X", {"stream_name": "S",
                                                                  "config": {"durable_name": "X", **config}})

    assert error_of(run(scenario())) == expected


def test_overflow_serves_a_request_only_when_the_consumer_is_that_far_behind(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await _setup(nc, "C", "overflow")
            checks = [await _pull(nc, "C", body) for body in (
                {"batch": 1, "expires": 500_000_000},
                {"batch": 1, "expires": 500_000_000, "group": "B"},
                {"batch": 1, "expires": 500_000_000, "group": "A", "id": "x"},
                {"batch": 1, "expires": 500_000_000, "group": "A", "priority": 10})]
            flow = [await _pull(nc, "C", body) for body in (
                {"batch": 2, "expires": 800_000_000, "group": "A", "min_pending": 10},
                {"batch": 2, "expires": 800_000_000, "group": "A", "min_pending": 3},
                {"batch": 1, "expires": 800_000_000, "group": "A"},
                {"batch": 1, "expires": 800_000_000, "group": "A", "min_ack_pending": 5},
                {"batch": 1, "expires": 800_000_000, "group": "A", "min_ack_pending": 3})]
            return created, checks, flow, await api(nc, "$JS.API.CONSUMER.INFO.S.C")

    created, checks, flow, info = run(scenario())
    assert created["config"]["priority_groups"] == ["A"] and created["config"]["priority_policy"] == "overflow"
    assert checks == [["400 Bad Request - Priority Group missing"], ["400 Bad Request - Invalid Priority Group"],
                      ["400 Bad Request - Not a Pinned Client Priority consumer"],
                      ["400 Bad Request - Priority must be between 0 and 9"]]
    assert flow == [["408 Request Timeout"], ["m0", "m1"], ["m2"], ["408 Request Timeout"], ["m3"]]
    assert info["priority_groups"] == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]
    assert info["num_ack_pending"] == 4 and info["num_pending"] == 1


def test_prioritized_serves_the_lowest_priority_number_first(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _setup(nc, "P", "prioritized", count=0)
            low = asyncio.create_task(_pull(nc, "P", {"batch": 1, "expires": 3_000_000_000, "group": "A",
                                                      "priority": 5}, timeout=4))
            await asyncio.sleep(0.3)
            high = asyncio.create_task(_pull(nc, "P", {"batch": 1, "expires": 3_000_000_000, "group": "A",
                                                       "priority": 1}, timeout=4))
            while (await api(nc, "$JS.API.CONSUMER.INFO.S.P"))["num_waiting"] < 2:
                await asyncio.sleep(0.05)
            await nc.request("s", b"first", timeout=2)
            return await high, await low

    high, low = run(scenario())
    assert high == ["first"] and low == ["408 Request Timeout"]
