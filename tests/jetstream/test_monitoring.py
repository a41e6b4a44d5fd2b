"""JetStream in the monitoring endpoints: /jsz totals and detail, the jetstream section of /varz."""
import json
import urllib.error
import urllib.request

from embedded_server.version import API_LEVEL

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
    assert jsz["api"]["level"] == (API_LEVEL if server.kind == "embedded" else 5) and jsz["api"]["total"] >= 2
    detail = _get(server, "/jsz?accounts=true&streams=true&consumers=true&config=true")
    account = detail["account_details"][0]
    assert account["name"] == "$G"
    stream = account["stream_detail"][0]
    assert stream["name"] == "MON" and stream["state"]["messages"] == 3
    assert stream["config"]["subjects"] == ["mon.*"]
    assert stream["consumer_detail"][0]["name"] == "C"
    varz = _get(server, "/varz")["jetstream"]
    assert varz["config"]["max_storage"] > 0 and varz["stats"]["storage"] == jsz["storage"]


def _status(server, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


HEALTH_QUERIES = ["/healthz", "/healthz?js-enabled-only=1", "/healthz?js-server-only=1", "/healthz?stream=S",
                  "/healthz?stream=S&details=1", "/healthz?account=$G&stream=S", "/healthz?account=$G&stream=M",
                  "/healthz?account=$G&stream=NOPE", "/healthz?account=NOPE", "/healthz?account=$G&stream=S&consumer=D",
                  "/healthz?account=$G&stream=S&consumer=X&details=1", "/healthz?consumer=X",
                  "/healthz?details=maybe", "/jsz?accounts=1&offset=5&limit=1", "/jsz?accounts=1&limit=1"]


def test_healthz_options_and_jsz_paging_answer_as_nats_server(start_server, tmp_path):
    """Every health query answers with nats-server's status code and body (a memory stream has no directory,
    so a lone server reports it not found, as nats-server does)."""
    answers = {}
    for kind in ("nats-server", "embedded"):
        server = start_server("-js", "-sd", str(tmp_path / kind), "-m", "-1", kind=kind)

        async def fill(server=server):
            async with connected(server) as (nc, js):
                await js.add_stream(name="S", subjects=["s.>"])
                await js.add_stream(name="M", subjects=["m.>"], storage="memory")
                await js.pull_subscribe("s.>", durable="D", stream="S")

        run(fill())
        answers[kind] = [_status(server, q) for q in HEALTH_QUERIES]
    ours, theirs = answers["embedded"], answers["nats-server"]
    for query, mine, real in zip(HEALTH_QUERIES, ours, theirs):
        if query.startswith("/jsz"):
            mine = (mine[0], [a["name"] for a in json.loads(mine[1]).get("account_details", [])])
            real = (real[0], [a["name"] for a in json.loads(real[1]).get("account_details", [])])
        assert mine == real, query
