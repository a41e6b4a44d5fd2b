"""The feature level a server announces (INFO `version`, `api_lvl`), the level each stream and consumer needs
(`_nats.req.level`, written into its config as nats-server does) and the server's own (`_nats.ver`, `_nats.level`
in every answer), on both servers."""
import asyncio
import hashlib
import json
import urllib.request

from embedded_server.version import API_LEVEL, PROTOCOL_VERSION

from .helpers import api, connected, error_of, eventually, run

NS = 1_000_000_000
# name -> (stream config, the level it needs), the rules of nats-server's setStaticStreamMetadata
STREAMS = {
    "PLAIN": ({}, "0"),
    "TTL": ({"allow_msg_ttl": True}, "1"),
    "MARKERS": ({"allow_rollup_hdrs": True, "subject_delete_marker_ttl": 5 * NS}, "1"),
    "COUNTER": ({"allow_msg_counter": True}, "2"),
    "ATOMIC": ({"allow_atomic": True}, "2"),
    "SCHEDULES": ({"allow_msg_schedules": True}, "2"),
    "ASYNC": ({"persist_mode": "async"}, "2"),
    "BATCHED": ({"allow_batched": True}, "4"),
}
# consumer name -> (config, level), setStaticConsumerMetadata's rules
CONSUMERS = {
    "plain": ({"ack_policy": "explicit"}, "0"),
    "paused": ({"ack_policy": "explicit", "pause_until": "2099-01-01T00:00:00Z"}, "1"),
    "pinned": ({"ack_policy": "explicit", "priority_policy": "pinned_client", "priority_groups": ["jobs"],
                "priority_timeout": 60 * NS}, "1"),
    "overflow": ({"ack_policy": "explicit", "priority_policy": "overflow", "priority_groups": ["jobs"]}, "1"),
}


def test_feature_level_in_info_and_in_every_config(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            streams = {}
            for name, (cfg, _) in STREAMS.items():
                streams[name] = await api(nc, f"$JS.API.STREAM.CREATE.{name}",
                                          {"name": name, "subjects": [name.lower()], "storage": "file",
                                           "max_consumers": 10, **cfg})
            consumers = {}
            for name, (cfg, _) in CONSUMERS.items():
                consumers[name] = await api(nc, f"$JS.API.CONSUMER.CREATE.PLAIN.{name}",
                                            {"stream_name": "PLAIN", "config": {"durable_name": name, **cfg}})
            # An update that adds a feature raises the level it needs; info repeats what is stored. Raising
            # max_consumers is allowed from 2.12.5.
            updated = await api(nc, "$JS.API.STREAM.UPDATE.PLAIN",
                                {"name": "PLAIN", "subjects": ["plain"], "allow_msg_ttl": True, "max_consumers": 20})
            info = await api(nc, "$JS.API.CONSUMER.INFO.PLAIN.pinned")
            account = await api(nc, "$JS.API.INFO")
            levels = {}
            for n in range(API_LEVEL, API_LEVEL + 2):
                msg = await nc.request("$JS.API.STREAM.NAMES", b"", timeout=3,
                                       headers={"Nats-Required-Api-Level": str(n)})
                levels[n] = error_of(json.loads(msg.data))
            return nc._server_info, streams, consumers, updated, info, account, levels

    server_info, streams, consumers, updated, info, account, levels = run(scenario())
    version, level = server_info["version"], server_info["api_lvl"]
    assert server_info["jetstream"] is True and account["api"]["level"] == level
    if js_server.kind == "embedded":
        assert (version, level) == (PROTOCOL_VERSION, API_LEVEL)
    else:  # the embedded server never claims a level beyond the release whose features it has
        assert level >= API_LEVEL
    answers = [r["config"] for r in (*streams.values(), *consumers.values(), updated, info)]
    for cfg in answers:
        assert "error" not in cfg
        assert cfg["metadata"]["_nats.ver"] == version and cfg["metadata"]["_nats.level"] == str(level), cfg
    needed = {name: r["config"]["metadata"]["_nats.req.level"] for name, r in {**streams, **consumers}.items()}
    assert needed == {name: lvl for name, (_, lvl) in {**STREAMS, **CONSUMERS}.items()}
    assert updated["config"]["metadata"]["_nats.req.level"] == "1" and updated["config"]["max_consumers"] == 20
    assert info["config"]["metadata"]["_nats.req.level"] == "1"
    # A request that needs a newer API than the server's is refused with 10185; its own level is fine.
    assert levels[API_LEVEL] is None
    too_new = (412, 10185, "JetStream minimum api level required")
    assert levels[API_LEVEL + 1] == (too_new if js_server.kind == "embedded" else None)


def _hash(name: str) -> str:
    """nats-server's getHash (8 characters, base 62): an account's in v2 ack subjects, a stream's identity."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(digits[b % 62] for b in hashlib.sha256(name.encode()).digest()[:8])


async def _deliveries(nc, subject: str, count: int) -> list:
    got, enough = [], asyncio.Event()

    async def on_msg(msg):
        got.append(msg)
        if len(got) >= count:
            enough.set()

    sub = await nc.subscribe(subject, cb=on_msg)
    await asyncio.wait_for(enough.wait(), 10)
    await sub.unsubscribe()
    return got


def test_v2_ack_and_flow_control_subjects(start_server, tmp_path):
    """nats-server 2.14+: a consumer takes acks on `$JS.ACK.<domain or _>.<account hash>.<stream>.<consumer>.
    <delivered>.<sseq>.<cseq>.<ts>.<pending>` beside the v1 form it sends; with `feature_flags { js_ack_fc_v2:
    true }` its ack and flow control replies take that form (an unknown flag is accepted)."""
    plain = start_server("-js", "-sd", str(tmp_path / "plain"), "-m", "-1")
    flagged = start_server("-m", "-1", config='jetstream { store_dir: "%s", domain: hub }\n'
                                  'feature_flags { js_ack_fc_v2: true, not_a_flag: false, js_api_reply_v2: true, '
                                  'js_raft_delete_range: false }\n' % (tmp_path / "v2"))
    stream = {"name": "S", "subjects": ["s"], "storage": "memory"}

    async def scenario():
        async with connected(plain) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", stream)
            for i in range(3):
                await js.publish("s", b"%d" % i)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
                "durable_name": "C", "deliver_subject": "dc", "ack_policy": "explicit", "ack_wait": 60 * NS}})
            msgs = await _deliveries(nc, "dc", 3)
            first, third = (m.reply.split(".") for m in (msgs[0], msgs[2]))
            await nc.publish(".".join(["$JS", "ACK", "_", _hash("$G"), *first[2:], "extra"]), b"+ACK")
            await nc.publish(".".join(["$JS", "ACK", "_", _hash("$G"), *third[2:-1]]), b"+ACK")  # 10 tokens
            await msgs[1].ack()
            acked = await eventually(lambda: api(nc, "$JS.API.CONSUMER.INFO.S.C"),
                                     lambda i: i["ack_floor"]["stream_seq"] >= 2)
            plain_replies = [m.reply for m in msgs]
        async with connected(flagged) as (nc, js):
            await api(nc, "$JS.API.STREAM.CREATE.S", stream)
            for i in range(3):
                await js.publish("s", b"%d" % i)
            got, fc = [], asyncio.Queue()

            async def on_msg(msg):
                if msg.headers and msg.headers.get("Status") == "100" and msg.reply:
                    await fc.put(msg)
                elif not msg.headers or "Status" not in msg.headers:
                    got.append(msg)

            await nc.subscribe("df", cb=on_msg)
            await api(nc, "$JS.API.CONSUMER.CREATE.S.C", {"stream_name": "S", "config": {
                "durable_name": "C", "deliver_subject": "dc", "ack_policy": "explicit", "ack_wait": 60 * NS}})
            v2_msgs = await _deliveries(nc, "dc", 1)
            await v2_msgs[0].ack()
            v2_acked = await eventually(lambda: api(nc, "$JS.API.CONSUMER.INFO.S.C"),
                                        lambda i: i["ack_floor"]["stream_seq"] >= 1)
            # The flow_control ack policy: two outstanding ask for flow control, whose reply acks them.
            await api(nc, "$JS.API.CONSUMER.CREATE.S.F", {"stream_name": "S", "config": {
                "durable_name": "F", "deliver_subject": "df", "ack_policy": "flow_control", "max_ack_pending": 2}})
            request = await asyncio.wait_for(fc.get(), 10)
            await nc.publish(request.reply, b"", headers={"Nats-Last-Stream": "2", "Nats-Last-Consumer": "2"})
            fc_acked = await eventually(lambda: api(nc, "$JS.API.CONSUMER.INFO.S.F"),
                                        lambda i: i["ack_floor"]["stream_seq"] >= 2 and len(got) == 3)
            return acked, plain_replies, v2_acked, v2_msgs[0].reply, request.reply, fc_acked, len(got)

    acked, plain_replies, v2_acked, v2_reply, fc_reply, fc_acked, delivered = run(scenario())
    # The start-up log names the flags as nats-server does.
    assert ("Configured:    js_ack_fc_v2 (opt-in), js_api_reply_v2 (opt-in), js_raft_delete_range (opt-out)"
            in flagged.logs and "Unsupported:   not_a_flag" in flagged.logs)
    # /varz lists every flag of nats-server 2.15.1 with its value; a JSONP `callback` is ignored (removed in
    # nats-server 2.14.3).
    with urllib.request.urlopen(f"http://127.0.0.1:{flagged.http_port}/varz?callback=f", timeout=10) as r:
        assert r.headers["Content-Type"] == "application/json"
        assert json.loads(r.read())["feature_flags"] == {"js_ack_fc_v2": True, "js_api_reply_v2": True,
                                                         "js_raft_delete_range": False, "js_snapshot_sources": False}
    with urllib.request.urlopen(f"http://127.0.0.1:{plain.http_port}/varz", timeout=10) as r:
        varz = json.loads(r.read())
    assert varz["feature_flags"] == {"js_ack_fc_v2": False, "js_api_reply_v2": False, "js_raft_delete_range": True,
                                     "js_snapshot_sources": False}
    assert varz["jetstream"]["limits"] == {"default_max_consumers": 1000}  # nats-server 2.15's default
    assert all(r.startswith("$JS.ACK.S.C.") and r.count(".") == 8 for r in plain_replies)
    # The 11+-token v2 ack of the first counted, the 10-token one of the third did not, the v1 ack of the
    # second did.
    assert acked["ack_floor"]["stream_seq"] == 2 and acked["num_ack_pending"] == 1
    assert v2_reply.startswith(f"$JS.ACK.hub.{_hash('$G')}.S.C.1.1.1.") and v2_reply.count(".") == 10
    assert v2_acked["ack_floor"]["stream_seq"] == 1 and v2_acked["num_ack_pending"] == 2
    assert fc_reply.startswith(f"$JS.FC.hub.{_hash('$G')}.S.F.") and fc_reply.count(".") == 6
    assert fc_acked["ack_floor"]["stream_seq"] >= 2 and delivered == 3


def test_a_sourcing_consumer_create_names_the_stream_identity(js_server):
    """nats-server 2.15 (stream recreation detection): a `direct`/`sourcing` consumer's create answer carries
    `Nats-Stream-Identity` (the hash of the stream's `created`), a create expecting another identity (an earlier
    incarnation of the stream) gets 10225, other consumers ignore the header."""
    direct = {"ack_policy": "none", "direct": True, "mem_storage": True, "flow_control": True,
              "idle_heartbeat": NS, "deliver_subject": "d"}

    async def create(nc, cfg, identity=None):
        msg = await nc.request("$JS.API.CONSUMER.CREATE.S", json.dumps({"stream_name": "S", "config": cfg}).encode(),
                               timeout=3, headers=None if identity is None else {"Nats-Stream-Identity": identity})
        return (msg.headers or {}).get("Nats-Stream-Identity"), json.loads(msg.data)

    async def scenario():
        async with connected(js_server) as (nc, _):
            first = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
            answers = [await create(nc, direct), await create(nc, {**direct, "deliver_subject": "e"}, "x"),
                       await create(nc, {"ack_policy": "explicit", "deliver_subject": "f"}, "x")]
            await api(nc, "$JS.API.STREAM.DELETE.S")
            second = await api(nc, "$JS.API.STREAM.CREATE.S", {"name": "S", "subjects": ["s"]})
            answers.append(await create(nc, direct, _hash(first["created"])))
            answers.append(await create(nc, direct, _hash(second["created"])))
            return first, second, answers

    first, second, answers = run(scenario())
    (hdr1, ok), (hdr2, bad), (hdr3, plain), (hdr4, old), (hdr5, again) = answers
    assert hdr1 == _hash(first["created"]) and "error" not in ok
    assert hdr2 is None and error_of(bad) == (400, 10225, f"consumer's stream identity does not match: {hdr1}")
    assert hdr3 is None and "error" not in plain
    assert hdr4 is None and error_of(old) == (400, 10225, f"consumer's stream identity does not match: {hdr5}")
    assert hdr5 == _hash(second["created"]) != hdr1 and "error" not in again
