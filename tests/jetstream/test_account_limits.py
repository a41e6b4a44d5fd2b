"""Account JetStream limits from the configuration, on both servers: reported by $JS.API.INFO, and every limit
enforced with nats-server's error (max bytes required, per-stream bytes, streams, consumers per stream,
max_ack_pending default and ceiling, memory/storage reservations, storage used by publishes), and the server-wide
`jetstream { limits {} }`."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import nats

LIMITS = """
jetstream { store_dir: "%s" }
accounts {
  A: { users: [{user: a, password: pw}], jetstream: { max_mem: 64MB, max_file: 32MB, max_streams: 2,
       max_consumers: 1, max_ack_pending: 100, memory_max_stream_bytes: 2048, store_max_stream_bytes: 4096,
       max_bytes_required: true } }
  B: { users: [{user: b, password: pw}], jetstream: { max_mem: 0, max_file: 2000 } }
  C: { users: [{user: c, password: pw}], jetstream: enabled }
}
"""

STEPS = [
    ("a", "$JS.API.STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1"]}),
    ("a", "$JS.API.STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1"], "max_bytes": 8192}),
    ("a", "$JS.API.STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1"], "max_bytes": 4096}),
    ("a", "$JS.API.STREAM.CREATE.M1", {"name": "M1", "subjects": ["m1"], "max_bytes": 4096, "storage": "memory"}),
    ("a", "$JS.API.STREAM.CREATE.S2", {"name": "S2", "subjects": ["s2"], "max_bytes": 100}),
    ("a", "$JS.API.STREAM.CREATE.S3", {"name": "S3", "subjects": ["s3"], "max_bytes": 100}),
    ("a", "$JS.API.CONSUMER.CREATE.S1.C1", {"stream_name": "S1", "config": {"durable_name": "C1",
                                                                           "ack_policy": "explicit"}}),
    ("a", "$JS.API.CONSUMER.CREATE.S1.C2", {"stream_name": "S1", "config": {"durable_name": "C2",
                                                                           "ack_policy": "explicit"}}),
    ("a", "$JS.API.CONSUMER.CREATE.S2.C3", {"stream_name": "S2", "config": {"durable_name": "C3",
                                                                           "ack_policy": "explicit",
                                                                           "max_ack_pending": 200}}),
    ("b", "$JS.API.STREAM.CREATE.B1", {"name": "B1", "subjects": ["b1"], "max_bytes": 4000}),
    ("b", "$JS.API.STREAM.CREATE.B1", {"name": "B1", "subjects": ["b1"]}),
    ("b", "$JS.API.STREAM.CREATE.BM", {"name": "BM", "subjects": ["bm"], "storage": "memory"}),
]


def _summary(doc: dict):
    if "error" in doc:
        return doc["error"]
    if "config" in doc:
        return {k: doc["config"].get(k) for k in ("name", "max_bytes", "max_ack_pending")}
    return doc


async def _scenario(srv) -> list:
    conns = {u: await nats.connect(f"nats://{u}:pw@127.0.0.1:{srv.port}", allow_reconnect=False) for u in "abc"}
    out = []
    try:
        for user in "abc":
            info = json.loads((await conns[user].request("$JS.API.INFO", b"", timeout=5)).data)
            out.append(info["limits"])
        for user, subject, body in STEPS:
            msg = await conns[user].request(subject, json.dumps(body).encode(), timeout=5)
            out.append(_summary(json.loads(msg.data)))
        for i in range(30):
            ack = json.loads((await conns["b"].request("b1", b"x" * 100, timeout=5)).data)
            if "error" in ack:
                out.append((i, ack))
                break
        info = json.loads((await conns["b"].request("$JS.API.INFO", b"", timeout=5)).data)
        out.append({k: info[k] for k in ("storage", "memory", "streams")})
        return out
    finally:
        for nc in conns.values():
            await nc.close()


def test_account_limits_are_reported_and_enforced_as_nats_server(start_server, tmp_path):
    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=LIMITS % (tmp_path / kind), kind=kind)
        results[kind] = asyncio.run(_scenario(srv))
    assert results["embedded"] == results["nats-server"]
    ours = results["embedded"]
    assert ours[0]["max_streams"] == 2 and ours[2]["max_streams"] == -1
    assert ours[3]["err_code"] == 10113 and ours[-2][1]["error"]["err_code"] == 10002


DOMAIN = """
jetstream { store_dir: "%s", domain: "lab-domain" }
"""


def test_jetstream_domain_and_per_account_api_counts(start_server, tmp_path):
    """`jetstream { domain }`: the API answers on $JS.<domain>.API.> too, INFO and PubAcks name the domain; the
    API counts of INFO leave out the INFO request itself, as nats-server."""
    async def scenario(srv):
        nc = await nats.connect(srv.url, allow_reconnect=False)
        try:
            out = []
            for subject in ("$JS.API.INFO", "$JS.lab-domain.API.INFO"):
                info = json.loads((await nc.request(subject, b"", timeout=5)).data)
                out.append((info.get("domain"), info["api"]["total"], info["api"]["errors"]))
            await nc.request("$JS.lab-domain.API.STREAM.CREATE.D", json.dumps({"name": "D", "subjects": ["d"]})
                             .encode(), timeout=5)
            out.append(json.loads((await nc.request("d", b"x", timeout=5)).data))
            out.append(nc._server_info.get("domain"))  # the connection's INFO names it too
            return out
        finally:
            await nc.close()

    results = {}
    for kind in ("nats-server", "embedded"):
        srv = start_server(config=DOMAIN % (tmp_path / kind), kind=kind)
        results[kind] = asyncio.run(scenario(srv))
    assert results["embedded"] == results["nats-server"] == [
        ("lab-domain", 0, 0), ("lab-domain", 1, 0), {"stream": "D", "domain": "lab-domain", "seq": 1}, "lab-domain"]


CONSUMER_DEFAULT = """
http: "127.0.0.1:-1"
jetstream { store_dir: "%s", limits { default_max_consumers: 2 } }
accounts {
  D: { users: [{user: d, password: pw}], jetstream: enabled }
  A: { users: [{user: a, password: pw}], jetstream: { max_consumers: 3 } }
}
"""


def test_default_max_consumers_limits_streams_that_set_no_limit(start_server, tmp_path):
    """nats-server 2.15: a stream whose config and account set no `max_consumers` takes at most
    `jetstream { limits { default_max_consumers } }` consumers (1,000 unless set), shown in /varz and /jsz; the
    stream's own limit, or else its account's, wins over the default either way; a stream may not ask for more
    than its account allows (10026)."""
    srv = start_server(config=CONSUMER_DEFAULT % tmp_path)

    async def consumers(nc, stream, cfg) -> tuple[dict, int, dict | None]:
        made = await _request(nc, f"$JS.API.STREAM.CREATE.{stream}", {"name": stream, "subjects": [stream], **cfg})
        if "error" in made:
            return made["error"], 0, None
        for n in range(6):
            answer = await _request(nc, f"$JS.API.CONSUMER.CREATE.{stream}.c{n}",
                                    {"stream_name": stream, "config": {"durable_name": f"c{n}"}})
            if "error" in answer:
                return made["config"]["max_consumers"], n, answer["error"]
        return made["config"]["max_consumers"], 6, None

    async def scenario():
        out = {}
        for user, streams in (("d", {"S": {}, "T": {"max_consumers": 4}}),
                              ("a", {"A1": {}, "A2": {"max_consumers": 4}, "A3": {"max_consumers": 2}})):
            nc = await nats.connect(f"nats://{user}:pw@127.0.0.1:{srv.port}", allow_reconnect=False)
            try:
                for stream, cfg in streams.items():
                    out[stream] = await consumers(nc, stream, cfg)
                if user == "a":  # an update asking for more than the account allows is refused too
                    out["A1 update"] = (await _request(nc, "$JS.API.STREAM.UPDATE.A1", {
                        "name": "A1", "subjects": ["A1"], "max_consumers": 5})).get("error")
            finally:
                await nc.close()
        return out

    out = run_async(scenario())
    limit = {"code": 400, "err_code": 10026, "description": "maximum consumers limit reached"}
    assert out == {
        "S": (-1, 2, limit),     # the server's default, the stream's config still saying -1
        "T": (4, 4, limit),      # the stream's own limit, above the default
        "A1": (-1, 3, limit),    # the account's limit, above the default
        "A2": (limit, 0, None),  # more than the account allows
        "A3": (2, 2, limit),
        "A1 update": limit,
    }
    for endpoint in ("varz", "jsz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/{endpoint}", timeout=10) as r:
            doc = json.loads(r.read())
        assert (doc["jetstream"] if endpoint == "varz" else doc)["limits"] == {"default_max_consumers": 2}


async def _request(nc, subject: str, body: dict) -> dict:
    return json.loads((await nc.request(subject, json.dumps(body).encode(), timeout=5)).data)


def run_async(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


SERVER_LIMITS = """
http: "127.0.0.1:-1"
jetstream {
  store_dir: "%s"
  limits { max_ack_pending: 100, max_request_batch: 50, duplicate_window: "1m", batch { max_msgs: 3, timeout: "5s" } }
}
accounts {
  D: { users: [{user: d, password: pw}], jetstream: enabled }
  A: { users: [{user: a, password: pw}], jetstream: { max_ack_pending: 40 } }
}
"""
LOWERED_LIMITS = (SERVER_LIMITS.replace("max_ack_pending: 100, max_request_batch: 50, duplicate_window: \"1m\"",
                                        "max_ack_pending: 50, max_request_batch: 45, duplicate_window: \"20s\", "
                                        "default_max_consumers: 1")
                  .replace("{ max_ack_pending: 40 }", "{ max_ack_pending: 30 }")
                  .replace("jetstream: enabled", "jetstream: { max_consumers: 1 }"))


def test_server_limits_cap_consumers_and_streams(start_server, tmp_path):
    """`jetstream { limits { max_ack_pending, max_request_batch, duplicate_window } }`: defaults lowered to them
    and anything above them refused, as nats-server (the server's limit is checked before the account's).
    Lowered after streams and consumers exist, the server still starts: what is now above a limit is not
    loaded, with nats-server's log lines, and comes back once the limits are raised again."""
    srv = start_server(config=SERVER_LIMITS % tmp_path)

    def consumer(stream: str, name: str, **cfg) -> tuple[str, dict]:
        return (f"CONSUMER.CREATE.{stream}.{name}",
                {"stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit", **cfg}})

    def shown(answer: dict, *fields: str):
        if "error" in answer:
            return answer["error"]
        return tuple(answer["config"].get(f) for f in fields)

    async def scenario():
        out = []
        for user, steps in (("d", [
            ("STREAM.CREATE.S", {"name": "S", "subjects": ["s"]}),
            ("STREAM.CREATE.T", {"name": "T", "subjects": ["t"], "duplicate_window": 120_000_000_000}),
            ("STREAM.CREATE.U", {"name": "U", "subjects": ["u"], "max_age": 30_000_000_000}),
            ("STREAM.CREATE.V", {"name": "V", "subjects": ["v"], "pedantic": True}),
            ("STREAM.UPDATE.S", {"name": "S", "subjects": ["s"], "duplicate_window": 90_000_000_000}),
            consumer("S", "C1"), consumer("S", "C2", max_ack_pending=200), consumer("S", "C3", max_batch=60),
            consumer("S", "C4", deliver_subject="push.c4"), consumer("S", "C5", max_ack_pending=-1),
            ("CONSUMER.CREATE.S.C6", {"stream_name": "S", "config": {"durable_name": "C6"}, "pedantic": True}),
            ("STREAM.CREATE.W", {"name": "W", "subjects": ["w"], "duplicate_window": 10_000_000_000}),
            consumer("W", "K1", max_ack_pending=80, max_batch=10), consumer("W", "K2", max_ack_pending=20, max_batch=48),
            consumer("W", "K3", max_ack_pending=20, max_batch=10), consumer("W", "K4", max_ack_pending=20, max_batch=10),
            consumer("U", "UC", max_ack_pending=10, max_batch=10),
        ]), ("a", [
            ("STREAM.CREATE.A", {"name": "A", "subjects": ["a"]}),
            consumer("A", "C1"), consumer("A", "C2", max_ack_pending=60), consumer("A", "C3", max_ack_pending=200),
            ("STREAM.CREATE.A2", {"name": "A2", "subjects": ["a2"], "duplicate_window": 10_000_000_000}),
            consumer("A2", "K", max_ack_pending=35, max_batch=10),
            consumer("A2", "L", max_ack_pending=10, max_batch=10),
        ])):
            nc = await nats.connect(f"nats://{user}:pw@127.0.0.1:{srv.port}", allow_reconnect=False)
            try:
                for subject, body in steps:
                    answer = await _request(nc, "$JS.API." + subject, body)
                    fields = ("duplicate_window",) if subject.startswith("STREAM") else ("max_ack_pending",
                                                                                         "max_batch")
                    out.append(shown(answer, *fields))
                if user == "d":   # a message in U, delivered to UC and not acknowledged
                    await nc.request("u", b"kept", timeout=5)
                    pull = await nc.jetstream().pull_subscribe_bind("UC", "U")
                    assert len(await pull.fetch(1, timeout=5)) == 1
            finally:
                await nc.close()
        return out

    out = run_async(scenario())
    ack_pending = {"code": 400, "err_code": 10121, "description": "consumer max ack pending exceeds system limit of %d"}
    window = {"code": 500, "err_code": 10052,
              "description": "duplicates window can not be larger then server limit of 1m0s"}
    assert out == [
        (60_000_000_000,), window, (30_000_000_000,),
        {"code": 400, "err_code": 10157,
         "description": "pedantic mode: duplicate window limits are higher than current limits"},
        window,
        (100, 50),
        dict(ack_pending, description=ack_pending["description"] % 100),
        {"code": 400, "err_code": 10125, "description": "consumer max request batch exceeds server limit of 50"},
        (100, None),   # a push consumer has no max_batch
        (-1, 50),
        {"code": 400, "err_code": 10157,
         "description": "pedantic mode: max_request_batch must be set if it's JetStream limits are set"},
        (10_000_000_000,), (80, 10), (20, 48), (20, 10), (20, 10), (10, 10),
        (60_000_000_000,), (40, 50),
        dict(ack_pending, description=ack_pending["description"] % 40),
        dict(ack_pending, description=ack_pending["description"] % 100),
        (10_000_000_000,), (35, 10), (10, 10),
    ]
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/varz", timeout=10) as r:
        assert json.loads(r.read())["jetstream"]["limits"] == {
            "max_request_batch": 50, "max_ack_pending": 100, "max_duplicate_window": 60_000_000_000,
            "max_batch_size": 3, "max_batch_timeout": 5_000_000_000, "default_max_consumers": 1000}

    async def loaded(recreate: bool = False):
        seen = {}
        for user in ("d", "a"):
            nc = await nats.connect(f"nats://{user}:pw@127.0.0.1:{srv.port}", allow_reconnect=False)
            try:
                if recreate and user == "d":  # a name left on disk is free; its messages are taken over
                    made = await _request(nc, "$JS.API.STREAM.CREATE.U",
                                          {"name": "U", "subjects": ["u"], "duplicate_window": 15_000_000_000})
                    seen["U again"] = made.get("error") or (made["config"]["duplicate_window"],
                                                            made["state"]["messages"])
                for stream in (await _request(nc, "$JS.API.STREAM.NAMES", {}))["streams"] or []:
                    info = await _request(nc, f"$JS.API.STREAM.INFO.{stream}", {})
                    names = await _request(nc, f"$JS.API.CONSUMER.NAMES.{stream}", {})
                    seen[stream] = (info["config"]["duplicate_window"], info["state"]["messages"],
                                    names["consumers"])
                if user == "d":
                    seen["S info"] = (await _request(nc, "$JS.API.STREAM.INFO.S", {})).get("error")
                    seen["K1 info"] = (await _request(nc, "$JS.API.CONSUMER.INFO.W.K1", {})).get("error")
                if recreate and user == "d":  # and a consumer's: it takes over the delivery state left
                    for stream, name in (("W", "K1"), ("U", "UC")):
                        made = await _request(nc, f"$JS.API.CONSUMER.CREATE.{stream}.{name}", {
                            "stream_name": stream, "config": {"durable_name": name, "ack_policy": "explicit",
                                                              "max_ack_pending": 5, "max_batch": 10}})
                        seen[f"{name} again"] = made.get("error") or (
                            made["config"]["max_ack_pending"], made["delivered"]["stream_seq"],
                            made["num_ack_pending"], made["num_pending"])
            finally:
                await nc.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/jsz", timeout=10) as r:
            jsz = json.loads(r.read())
        seen["jsz"] = (jsz["streams"], jsz["consumers"], jsz["messages"])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/healthz", timeout=10)
            seen["healthz"] = 200
        except urllib.error.HTTPError as e:
            seen["healthz"] = (e.code, json.loads(e.read()))
        return seen

    conf = srv.args[srv.args.index("-c") + 1]
    with open(conf, "w") as f:
        f.write(LOWERED_LIMITS % tmp_path)
    srv.restart()
    logged = sorted(line[line.index("[WRN]"):] for line in srv.logs.splitlines()
                    if "Error recreating stream" in line or "Error adding consumer" in line)
    assert logged == sorted([
        '[WRN]   Error recreating stream "%s": duplicates window can not be larger then server limit of 20s (10052)'
        % name for name in ("A", "S", "U")] + [
        "[WRN]     Error adding consumer 'A > A2 > K': consumer max ack pending exceeds system limit of 30 (10121)",
        "[WRN]     Error adding consumer 'D > W > K1': consumer max ack pending exceeds system limit of 50 (10121)",
        "[WRN]     Error adding consumer 'D > W > K2': consumer max request batch exceeds server limit of 45 (10125)",
    ])
    not_found = {"code": 404, "err_code": 10059, "description": "stream not found"}
    # more consumers than the lowered default_max_consumers (and D's max_consumers) still load, as on nats-server
    assert run_async(loaded(recreate=True)) == {
        "U again": (15_000_000_000, 1), "UC again": (5, 1, 1, 0),
        "K1 again": {"code": 400, "err_code": 10026, "description": "maximum consumers limit reached"},
        "W": (10_000_000_000, 0, ["K3", "K4"]), "U": (15_000_000_000, 1, []), "A2": (10_000_000_000, 0, ["L"]),
        "S info": not_found,
        "K1 info": {"code": 404, "err_code": 10014, "description": "consumer not found"},
        "jsz": (3, 4, 1),
        "healthz": (503, {"status": "unavailable", "error": "JetStream stream 'A > A' could not be recovered"}),
    }
    with open(conf, "w") as f:
        f.write(SERVER_LIMITS % tmp_path)
    srv.restart()
    # Nothing was lost: raised again, every stream and consumer is back. nats-server took over U's directory
    # without writing the new config, so it loads U's old one (docs/differences.md)
    u_window = 30_000_000_000 if srv.kind == "nats-server" else 15_000_000_000
    assert run_async(loaded()) == {
        "S": (60_000_000_000, 0, ["C1", "C4", "C5"]), "U": (u_window, 1, ["UC"]),
        "W": (10_000_000_000, 0, ["K1", "K2", "K3", "K4"]),
        "A": (60_000_000_000, 0, ["C1"]), "A2": (10_000_000_000, 0, ["K", "L"]),
        "S info": None, "K1 info": None, "jsz": (5, 11, 1), "healthz": 200,
    }
