"""Message schedules (`allow_msg_schedules`) on both servers: `@at` fires once and removes its schedule, `@every`
keeps firing with `Nats-Schedule-Next`, cron forms and time zones are accepted, a schedule survives a restart,
and bad schedules get nats-server's errors."""
import base64
import datetime
import json

import pytest

from .helpers import api, connected, error_of, eventually, run


def _in(seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _pub(nc, subject: str, headers: dict, data: bytes = b"") -> dict:
    return json.loads((await nc.request(subject, data, headers=headers, timeout=3)).data)


async def _subjects(nc) -> dict:
    info = await api(nc, "$JS.API.STREAM.INFO.S", {"subjects_filter": ">"})
    return info["state"].get("subjects") or {}


async def _last(nc, subject: str) -> dict:
    return await api(nc, "$JS.API.STREAM.MSG.GET.S", {"last_by_subj": subject})


def _hdrs(answer: dict) -> dict:
    out = {}
    for line in base64.b64decode(answer["message"].get("hdrs", "")).decode().split("\r\n")[1:]:
        if line:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _create(nc):
    return api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s.>"], "allow_msg_schedules": True,
                                                "allow_msg_ttl": True})


def test_an_at_schedule_fires_once_and_goes_away(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            created = await _create(nc)
            ack = await _pub(nc, "s.sched.a", {"Nats-Schedule": f"@at {_in(1)}", "Nats-Schedule-Target": "s.out",
                                               "k": "v"}, b"hello")
            stored = await _last(nc, "s.sched.a")
            subjects = await eventually(lambda: _subjects(nc), lambda s: "s.out" in s and "s.sched.a" not in s, 15)
            return created, ack, stored, subjects, await _last(nc, "s.out")

    created, ack, stored, subjects, fired = run(scenario())
    cfg = created["config"]
    assert cfg["allow_msg_schedules"] and cfg["allow_rollup_hdrs"] and cfg["metadata"]["_nats.req.level"] == "2"
    assert ack["seq"] == 1
    assert _hdrs(stored)["Nats-Rollup"] == "sub"
    assert subjects == {"s.out": 1}
    assert base64.b64decode(fired["message"]["data"]) == b"hello"
    assert _hdrs(fired) == {"k": "v", "Nats-Scheduler": "s.sched.a", "Nats-Schedule-Next": "purge"}


def test_an_every_schedule_keeps_firing_until_purged(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _create(nc)
            await _pub(nc, "s.sched.e", {"Nats-Schedule": "@every 1s", "Nats-Schedule-Target": "s.tick",
                                         "Nats-Schedule-TTL": "1m"}, b"tick")
            subjects = await eventually(lambda: _subjects(nc), lambda s: s.get("s.tick", 0) >= 2, 15)
            last = await _last(nc, "s.tick")
            purge = await _pub(nc, "s.control", {"Nats-Schedule-Next": "purge", "Nats-Scheduler": "s.sched.e"})
            after = await _subjects(nc)
            return subjects, last, purge, after

    subjects, last, purge, after = run(scenario())
    assert subjects["s.sched.e"] == 1 and subjects["s.tick"] >= 2
    hdrs = _hdrs(last)
    assert hdrs["Nats-Scheduler"] == "s.sched.e" and hdrs["Nats-TTL"] == "1m"
    assert datetime.datetime.fromisoformat(hdrs["Nats-Schedule-Next"].replace("Z", "+00:00"))
    assert "error" not in purge and "s.sched.e" not in after


def test_a_schedule_survives_a_restart(js_server):
    async def before():
        async with connected(js_server) as (nc, js):
            await _create(nc)
            await _pub(nc, "s.sched.later", {"Nats-Schedule": f"@at {_in(4)}", "Nats-Schedule-Target": "s.later"},
                       b"after the restart")
            return await _subjects(nc)

    async def after():
        async with connected(js_server) as (nc, js):
            return await eventually(lambda: _subjects(nc), lambda s: "s.later" in s, 20)

    waiting = run(before())
    js_server.restart()
    subjects = run(after(), timeout=40)
    assert waiting == {"s.sched.later": 1}
    assert subjects == {"s.later": 1}


@pytest.mark.parametrize("headers", [
    {"Nats-Schedule": "0 0 12 * * mon-fri", "Nats-Schedule-Target": "s.x"},
    {"Nats-Schedule": "@hourly", "Nats-Schedule-Target": "s.x"},
    {"Nats-Schedule": "*/5 * * 1,15 jan-jun *", "Nats-Schedule-Target": "s.x"},
    {"Nats-Schedule": "0 30 9 * * *", "Nats-Schedule-Target": "s.x", "Nats-Schedule-Time-Zone": "Europe/Amsterdam"},
])
def test_cron_forms_are_accepted(js_server, headers):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _create(nc)
            return await _pub(nc, "s.sched", headers)

    assert run(scenario()) == {"stream": "S", "seq": 1}


@pytest.mark.parametrize("headers, expected", [
    ({"Nats-Schedule": "@every 10ms", "Nats-Schedule-Target": "s.x"}, (400, 10189, "message schedules pattern is invalid")),
    ({"Nats-Schedule": "* * * *", "Nats-Schedule-Target": "s.x"}, (400, 10189, "message schedules pattern is invalid")),
    ({"Nats-Schedule": "0 0 12 * * *", "Nats-Schedule-Target": "s.x", "Nats-Schedule-Time-Zone": "Mars/Base"},
     (400, 10223, "message schedules time zone is invalid")),
    ({"Nats-Schedule": "@at 2030-01-01T00:00:00Z", "Nats-Schedule-Target": "s.x", "Nats-Schedule-Time-Zone": "UTC"},
     (400, 10189, "message schedules pattern is invalid")),
    ({"Nats-Schedule": "@every 1m"}, (400, 10190, "message schedules target is invalid")),
    ({"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "s.q"}, (400, 10190, "message schedules target is invalid")),
    ({"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "other"}, (400, 10190, "message schedules target is invalid")),
    ({"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "s.x", "Nats-Schedule-TTL": "abc"},
     (400, 10191, "message schedules invalid per-message TTL")),
    ({"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "s.x", "Nats-Rollup": "all"},
     (400, 10192, "message schedules invalid rollup")),
    ({"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "s.x", "Nats-Schedule-Source": "s.x"},
     (400, 10203, "message schedules source is invalid")),
    ({"Nats-Scheduler": "s.sched"}, (400, 10212, "message schedules invalid scheduler")),
    ({"Nats-Schedule-Next": "soon", "Nats-Scheduler": "s.sched"}, (400, 10212, "message schedules invalid scheduler")),
])
def test_bad_schedules_get_nats_server_errors(js_server, headers, expected):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _create(nc)
            return await _pub(nc, "s.q", headers), await _subjects(nc)

    answer, subjects = run(scenario())
    assert error_of(answer) == expected and subjects == {}


def test_schedules_need_the_stream_setting_which_stays(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await _create(nc)
            await api(nc, "$JS.API.STREAM.CREATE.P", {"name": "P", "subjects": ["p.>"]})
            disabled = await _pub(nc, "p.q", {"Nats-Schedule": "@every 1m", "Nats-Schedule-Target": "p.x"})
            off = await api(nc, "$JS.API.STREAM.UPDATE.S", {"name": "S", "subjects": ["s.>"], "allow_msg_ttl": True})
            discard = await api(nc, "$JS.API.STREAM.CREATE.D", {"name": "D", "subjects": ["d"],
                                                               "allow_msg_schedules": True, "discard": "new"})
            return disabled, off, discard

    disabled, off, discard = run(scenario())
    assert error_of(disabled) == (400, 10188, "message schedules is disabled")
    assert error_of(off) == (500, 10052, "message schedules can not be disabled")
    assert error_of(discard) == (500, 10052, "message scheduling cannot use discard new")
