"""The feature level a server announces (INFO `version`, `api_lvl`), the level each stream and consumer needs
(`_nats.req.level`, written into its config as nats-server does) and the server's own (`_nats.ver`, `_nats.level`
in every answer), on both servers."""
import json

from embedded_server.version import API_LEVEL, PROTOCOL_VERSION

from .helpers import api, connected, error_of, run

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
