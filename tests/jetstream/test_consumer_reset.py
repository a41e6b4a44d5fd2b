"""`$JS.API.CONSUMER.RESET` (nats-server 2.15) on both servers: back to the ack floor or to a sequence, what
deliver policies allow, the errors, the stream identity header, and no answer for a missing consumer."""
import asyncio
import json

from .helpers import api, connected, error_of, run


def _position(resp: dict) -> tuple:
    return (resp.get("reset_seq"), resp["delivered"]["consumer_seq"], resp["delivered"]["stream_seq"],
            resp["ack_floor"]["consumer_seq"], resp["ack_floor"]["stream_seq"], resp["num_ack_pending"],
            resp["num_pending"])


def test_reset_moves_a_consumer_back_or_forward_and_refuses_what_nats_server_refuses(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="S", subjects=["s.>"])
            for i in range(1, 11):
                await js.publish(f"s.{i}", b"m%d" % i)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.D", {"stream_name": "S", "config": {
                "durable_name": "D", "ack_policy": "explicit"}})
            sub = await js.pull_subscribe_bind("D", "S")
            got = await sub.fetch(6, timeout=2)
            for m in got[:3] + got[4:5]:
                await m.ack_sync()
            out = {"floor": await api(nc, "$JS.API.CONSUMER.RESET.S.D")}
            out["after_floor"] = [m.data for m in await sub.fetch(2, timeout=2)]
            out["to_seq"] = await api(nc, "$JS.API.CONSUMER.RESET.S.D", {"seq": 8})
            out["after_seq"] = [m.data for m in await sub.fetch(5, timeout=2)]
            msg = await nc.request("$JS.API.CONSUMER.RESET.S.D", b'{"seq":2}', timeout=2,
                                   headers={"Nats-Stream-Identity": ""})
            out["identity"] = (msg.headers or {}).get("Nats-Stream-Identity"), json.loads(msg.data)
            out["bad_json"] = await api(nc, "$JS.API.CONSUMER.RESET.S.D", b"{x")
            await api(nc, "$JS.API.CONSUMER.CREATE.S.B", {"stream_name": "S", "config": {
                "durable_name": "B", "ack_policy": "explicit", "deliver_policy": "by_start_sequence",
                "opt_start_seq": 5}})
            out["below_start"] = await api(nc, "$JS.API.CONSUMER.RESET.S.B", {"seq": 3})
            out["at_start"] = await api(nc, "$JS.API.CONSUMER.RESET.S.B", {"seq": 5})
            await api(nc, "$JS.API.CONSUMER.CREATE.S.L", {"stream_name": "S", "config": {
                "durable_name": "L", "ack_policy": "explicit", "deliver_policy": "last"}})
            out["not_allowed"] = await api(nc, "$JS.API.CONSUMER.RESET.S.L", {"seq": 3})
            out["last_to_floor"] = await api(nc, "$JS.API.CONSUMER.RESET.S.L")
            before = (await api(nc, "$JS.API.INFO"))["api"]["total"]
            try:
                await nc.request("$JS.API.CONSUMER.RESET.S.NOPE", b"", timeout=0.5)
                out["missing"] = "answered"
            except (asyncio.TimeoutError, Exception) as e:  # nats-server lets it time out
                out["missing"] = type(e).__name__
            out["api_counted"] = (await api(nc, "$JS.API.INFO"))["api"]["total"] - before
            return out

    out = run(scenario())
    floor = out["floor"]
    assert floor["type"] == "io.nats.jetstream.api.v1.consumer_reset_response"
    assert floor["name"] == "D" and floor["config"]["durable_name"] == "D"
    assert _position(floor) == (4, 0, 3, 0, 3, 0, 7)
    assert out["after_floor"] == [b"m4", b"m5"]
    assert _position(out["to_seq"]) == (8, 0, 7, 0, 7, 0, 3)
    assert out["after_seq"] == [b"m8", b"m9", b"m10"]
    identity, resp = out["identity"]
    assert resp["reset_seq"] == 2 and len(identity) == 8 and identity.isalnum()
    assert error_of(out["bad_json"])[:2] == (400, 10025)
    assert out["bad_json"]["type"] == "io.nats.jetstream.api.v1.consumer_reset_response"
    assert error_of(out["below_start"]) == (400, 10204, "invalid reset: below start seq")
    assert out["at_start"]["reset_seq"] == 5
    assert error_of(out["not_allowed"]) == (400, 10204, "invalid reset: not allowed")
    assert out["last_to_floor"]["reset_seq"] == 10
    assert out["missing"] == "TimeoutError"
    assert out["api_counted"] == 1   # the INFO request itself; resets are not API requests
