"""Ack metrics ($JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>): a consumer with sample_freq 100% publishes
one per acknowledged delivery of an explicit-ack consumer, shaped as nats-server's JSConsumerAckMetric; +TERM,
a second ack, ack policy all and a consumer without sample_freq publish none."""
import json

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType

from .helpers import api, connected, run

FIELDS = ["type", "id", "timestamp", "stream", "consumer", "consumer_seq", "stream_seq", "ack_time", "deliveries"]


def test_ack_metrics_are_sampled_as_nats_server_samples_them(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            metrics = await nc.subscribe("$JS.EVENT.METRIC.CONSUMER.ACK.S.*")
            await js.add_stream(name="S", subjects=["s.*"], storage=StorageType.MEMORY)
            for i in range(1, 5):
                await js.publish(f"s.{i}", b"x")
            sampled = await js.pull_subscribe("s.*", durable="C", stream="S",
                                              config=ConsumerConfig(ack_wait=30, sample_freq="100%"))
            quiet = await js.pull_subscribe("s.*", durable="N", stream="S", config=ConsumerConfig(ack_wait=30))
            ack_all = await js.pull_subscribe("s.*", durable="A", stream="S", config=ConsumerConfig(
                ack_policy=AckPolicy.ALL, ack_wait=30, sample_freq="100%"))
            m1, m2, m3, m4 = await sampled.fetch(4, timeout=5)
            await m1.nak()
            await m2.term()
            await m3.ack_sync()
            await nc.request(m3.reply, b"+ACK")    # a second ack of the same message: nothing pending, no metric
            await m4.ack_sync()
            [again] = await sampled.fetch(1, timeout=5)
            assert again.metadata.sequence.stream == 1
            await nc.publish(again.reply, b"+NXT")    # an ack that asks for more is sampled too
            for m in await quiet.fetch(4, timeout=5):
                await m.ack_sync()
            for m in await ack_all.fetch(4, timeout=5):
                await m.ack_sync()
            # N gets sample_freq "100" (no "%"), then C's is removed: nats-server keeps sampling C until it is
            # loaded again (its update parses "" as no number and keeps the old value).
            for name, freq in (("N", "100"), ("C", "")):
                cfg = (await api(nc, f"$JS.API.CONSUMER.INFO.S.{name}"))["config"]
                cfg["sample_freq"] = freq
                answer = await api(nc, f"$JS.API.CONSUMER.CREATE.S.{name}", {"stream_name": "S", "config": cfg})
                assert "error" not in answer, answer
            await js.publish("s.5", b"x")
            [n5] = await quiet.fetch(1, timeout=5)
            await n5.ack_sync()
            # The last ack of C: everything published before it is in by then (one stream, one queue out).
            [c5] = await sampled.fetch(1, timeout=5)
            await c5.ack_sync()
            got = []
            while not got or (got[-1].subject, json.loads(got[-1].data)["stream_seq"]) != (
                    "$JS.EVENT.METRIC.CONSUMER.ACK.S.C", 5):
                got.append(await metrics.next_msg(10))
            try:
                got.append(await metrics.next_msg(0.3))
            except nats.errors.TimeoutError:
                pass
            return got

    got = run(scenario())
    docs = [(m.subject.rsplit(".", 2)[-2:], json.loads(m.data)) for m in got]
    assert all(list(doc) == FIELDS for _, doc in docs), "nats-server's field order, no domain"
    for (stream, consumer), doc in docs:
        assert doc["type"] == "io.nats.jetstream.metric.v1.consumer_ack" and len(doc["id"]) == 22
        assert (doc["stream"], doc["consumer"]) == (stream, consumer) == ("S", doc["consumer"])
        assert isinstance(doc["ack_time"], int) and doc["ack_time"] > 0, doc
        assert doc["timestamp"].endswith("Z")
    seen = sorted((d["consumer"], d["stream_seq"], d["consumer_seq"], d["deliveries"]) for _, d in docs)
    # C: seq 3 and 4 at their first delivery, seq 1 at its second (consumer seq 5) by +NXT, seq 5 after the
    # edit; not seq 2 (+TERM), not seq 3 twice. A (ack all) none. N: only its ack after the edit.
    assert seen == [("C", 1, 5, 2), ("C", 3, 3, 1), ("C", 4, 4, 1), ("C", 5, 6, 1), ("N", 5, 5, 1)], seen
