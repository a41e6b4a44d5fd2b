"""JetStream in the monitoring endpoints: /jsz totals and detail, the jetstream section of /varz."""
import json
import urllib.request

from .helpers import connected, run


def _get(server, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def test_jsz_and_varz(start_server, tmp_path):
    server = start_server("-js", "-sd", str(tmp_path / "store"), "-m", "-1")

    async def fill():
        async with connected(server) as (nc, js):
            await js.add_stream(name="MON", subjects=["mon.*"])
            for i in range(3):
                await js.publish(f"mon.{i}", b"payload")
            await js.pull_subscribe("mon.*", durable="C", stream="MON")

    run(fill())
    jsz = _get(server, "/jsz")
    assert (jsz["streams"], jsz["consumers"], jsz["messages"]) == (1, 1, 3)
    assert jsz["storage"] == jsz["bytes"] > 0 and jsz["memory"] == 0
    assert jsz["config"]["store_dir"] == str(tmp_path / "store" / "jetstream")
    assert jsz["config"]["sync_interval"] == 120_000_000_000
    assert jsz["api"]["level"] == 5 and jsz["api"]["total"] >= 2
    detail = _get(server, "/jsz?accounts=true&streams=true&consumers=true&config=true")
    account = detail["account_details"][0]
    assert account["name"] == "$G"
    stream = account["stream_detail"][0]
    assert stream["name"] == "MON" and stream["state"]["messages"] == 3
    assert stream["config"]["subjects"] == ["mon.*"]
    assert stream["consumer_detail"][0]["name"] == "C"
    varz = _get(server, "/varz")["jetstream"]
    assert varz["config"]["max_storage"] > 0 and varz["stats"]["storage"] == jsz["storage"]
