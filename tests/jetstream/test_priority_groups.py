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


async def _pull_pinned(nc, consumer: str, body: dict, timeout: float = 1.5) -> tuple[list[str], set, str]:
    """One pull request on a pinned_client consumer: the payloads, the Nats-Pin-Id values they carried, and
    the status that ended the request ('' if none came)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.S.{consumer}", json.dumps(body).encode(), reply=inbox)
    payloads, pins, status = [], set(), ""
    try:
        while len(payloads) < body.get("batch", 1):
            msg = await sub.next_msg(timeout=timeout)
            hdrs = msg.headers or {}
            if hdrs.get("Status"):
                status = f"{hdrs['Status']} {hdrs.get('Description', '')}".strip()
                break
            payloads.append(msg.data.decode())
            pins.add(hdrs.get("Nats-Pin-Id"))
    except asyncio.TimeoutError:
        pass
    await sub.unsubscribe()
    return payloads, pins, status


async def _pinned_setup(nc, timeout_ns: int, count: int) -> dict:
    await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
    for i in range(count):
        await nc.request("s", b"m%d" % i, timeout=2)
    return await api(nc, "$JS.API.CONSUMER.CREATE.S.PC", {"stream_name": "S", "config": {
        "durable_name": "PC", "ack_policy": "explicit", "priority_policy": "pinned_client",
        "priority_groups": ["A"], "priority_timeout": timeout_ns}})


async def _advisory(sub) -> dict:
    """The next pin/unpin advisory (others, such as CONSUMER.CREATED, are skipped)."""
    while True:
        msg = await sub.next_msg(timeout=5)
        if ".PINNED." in msg.subject or ".UNPINNED." in msg.subject:
            return json.loads(msg.data)


def test_pinned_client_serves_only_the_pinned_id_until_unpinned(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            events = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.S.PC")
            created = await _pinned_setup(nc, 30_000_000_000, 10)
            first = await _pull_pinned(nc, "PC", {"batch": 2, "expires": 2_000_000_000, "group": "A"})
            pinned = await _advisory(events)
            pin = pinned["pinned_id"]
            info = await api(nc, "$JS.API.CONSUMER.INFO.S.PC")
            other = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 500_000_000, "group": "A"})
            wrong = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 500_000_000, "group": "A", "id": "nope"})
            again = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A", "id": pin})
            bad_unpins = [await api(nc, subject, body) for subject, body in (
                ("$JS.API.CONSUMER.UNPIN.S.PC", b""),
                ("$JS.API.CONSUMER.UNPIN.S.PC", {}),
                ("$JS.API.CONSUMER.UNPIN.S.PC", {"group": "a b"}),
                ("$JS.API.CONSUMER.UNPIN.S.PC", {"group": "B"}),
                ("$JS.API.CONSUMER.UNPIN.S.NONE", {"group": "A"}),
                ("$JS.API.CONSUMER.UNPIN.NONE.PC", {"group": "A"}))]
            unpinned = await api(nc, "$JS.API.CONSUMER.UNPIN.S.PC", {"group": "A"})
            admin = await _advisory(events)
            info_after = await api(nc, "$JS.API.CONSUMER.INFO.S.PC")
            stale = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A", "id": pin})
            new = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A"})
            repinned = await _advisory(events)
            return (created, first, pinned, info, other, wrong, again, bad_unpins, unpinned, admin, info_after,
                    stale, new, repinned)

    (created, first, pinned, info, other, wrong, again, bad_unpins, unpinned, admin, info_after, stale, new,
     repinned) = run(scenario())
    assert created["config"]["priority_policy"] == "pinned_client"
    assert created["config"]["priority_timeout"] == 30_000_000_000
    pin = pinned["pinned_id"]
    assert len(pin) == 22
    assert {k: pinned[k] for k in ("type", "account", "stream", "consumer", "group")} == {
        "type": "io.nats.jetstream.advisory.v1.consumer_group_pinned", "account": "$G", "stream": "S",
        "consumer": "PC", "group": "A"}
    assert first == (["m0", "m1"], {pin}, "")
    [state] = info["priority_groups"]
    assert state["group"] == "A" and state["pinned_client_id"] == pin
    assert state["pinned_ts"] != "0001-01-01T00:00:00Z"
    # Another client waits while the pin holds; a wrong id is refused at once.
    assert other == ([], set(), "408 Request Timeout")
    assert wrong == ([], set(), "423 Nats-Pin-Id mismatch")
    assert again == (["m2"], {pin}, "")
    assert [error_of(a) for a in bad_unpins] == [
        (400, 10025, "invalid JSON: unexpected end of JSON input"),
        (400, 10025, "invalid JSON: consumer group not specified"),
        (400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters"),
        (400, 10160, "Provided priority group does not exist for this consumer"),
        (404, 10014, "consumer not found"),
        (404, 10059, "stream not found")]
    assert unpinned == {"type": "io.nats.jetstream.api.v1.consumer_unpin_response"}
    assert {k: admin[k] for k in ("type", "account", "stream", "consumer", "group", "reason")} == {
        "type": "io.nats.jetstream.advisory.v1.consumer_group_unpinned", "account": "$G", "stream": "S",
        "consumer": "PC", "group": "A", "reason": "admin"}
    assert info_after["priority_groups"] == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]
    # The old id is told so once a message is there for it; a request without an id takes a new pin.
    assert stale == ([], set(), "423 Nats-Wrong-Pin-Id")
    assert repinned["pinned_id"] != pin
    assert new == (["m3"], {repinned["pinned_id"]}, "")


async def _first_pin(nc, timeout_ns: int):
    """A pinned_client consumer PC on 4 messages, one pulled by a request that takes the pin: the advisory
    subscription, what that request got, and the pinned advisory."""
    events = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.S.PC")
    await _pinned_setup(nc, timeout_ns, 4)
    first = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A"})
    return events, first, await _advisory(events)


def test_pinned_client_loses_the_pin_after_priority_timeout_without_requests(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            events, first, pinned = await _first_pin(nc, 300_000_000)
            timed_out = await _advisory(events)
            second = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A"})
            repinned = await _advisory(events)
            return first, pinned, timed_out, second, repinned

    first, pinned, timed_out, second, repinned = run(scenario())
    assert first == (["m0"], {pinned["pinned_id"]}, "")
    assert timed_out["type"] == "io.nats.jetstream.advisory.v1.consumer_group_unpinned"
    assert timed_out["reason"] == "timeout" and timed_out["group"] == "A"
    assert repinned["pinned_id"] != pinned["pinned_id"]
    assert second == (["m1"], {repinned["pinned_id"]}, "")


def test_pinned_client_priority_timeout_defaults_to_two_minutes(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await _pinned_setup(nc, 0, 0)
            return created, await api(nc, "$JS.API.CONSUMER.INFO.S.PC")

    created, info = run(scenario())
    assert created["config"]["priority_timeout"] == 120_000_000_000
    assert info["priority_groups"] == [{"group": "A", "pinned_ts": "0001-01-01T00:00:00Z"}]


@pytest.mark.parametrize("policy", ["overflow", "prioritized"])
def test_waiting_requests_of_a_priority_consumer_take_turns(js_server, policy):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _setup(nc, "T", policy, count=0)
            body = {"batch": 2, "expires": 4_000_000_000, "group": "A"}
            first = asyncio.create_task(_pull(nc, "T", body, timeout=5))
            while (await api(nc, "$JS.API.CONSUMER.INFO.S.T"))["num_waiting"] < 1:
                await asyncio.sleep(0.05)
            second = asyncio.create_task(_pull(nc, "T", body, timeout=5))
            while (await api(nc, "$JS.API.CONSUMER.INFO.S.T"))["num_waiting"] < 2:
                await asyncio.sleep(0.05)
            for i in range(4):
                await nc.request("s", b"m%d" % i, timeout=2)
            return await first, await second

    first, second = run(scenario())
    assert first == ["m0", "m2"] and second == ["m1", "m3"]


def test_a_pin_outlives_an_update_away_from_pinned_client_until_unpinned(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            _events, first, pinned = await _first_pin(nc, 30_000_000_000)
            pin = pinned["pinned_id"]
            updated = await api(nc, "$JS.API.CONSUMER.CREATE.S.PC", {"stream_name": "S", "action": "update", "config": {
                "durable_name": "PC", "ack_policy": "explicit", "priority_policy": "overflow",
                "priority_groups": ["A"]}})
            with_id = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 1_000_000_000, "group": "A", "id": pin})
            blocked = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 500_000_000, "group": "A"})
            await api(nc, "$JS.API.CONSUMER.UNPIN.S.PC", {"group": "A"})
            plain = await _pull_pinned(nc, "PC", {"batch": 1, "expires": 2_000_000_000, "group": "A"})
            return first, pin, updated, with_id, blocked, plain

    first, pin, updated, with_id, blocked, plain = run(scenario())
    assert first == (["m0"], {pin}, "")
    assert updated["config"]["priority_policy"] == "overflow" and "priority_timeout" not in updated["config"]
    assert with_id == ([], set(), "400 Bad Request - Not a Pinned Client Priority consumer")
    # The old pin still holds back requests without its id (nats-server keeps it until timeout or UNPIN) ...
    assert blocked == ([], set(), "408 Request Timeout")
    # ... and once it is gone, messages come without a Nats-Pin-Id.
    assert plain == (["m1"], {None}, "")
