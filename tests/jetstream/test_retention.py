"""Work-queue and interest retention: acknowledged messages leave the stream, and the consumer rules that
keep a work queue a work queue."""

from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType

from .helpers import api, connected, error_of, eventually, run


def test_workqueue_removes_acked_messages(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="WQ", subjects=["jobs.*"], retention=RetentionPolicy.WORK_QUEUE,
                                storage=StorageType.MEMORY)
            for i in range(4):
                await js.publish(f"jobs.{i}", b"job")
            psub = await js.pull_subscribe("jobs.*", durable="W", stream="WQ")
            msgs = await psub.fetch(4, timeout=3)
            for m in msgs[:3]:
                await m.ack_sync()
            return (await js.stream_info("WQ")).state

    st = run(scenario())
    assert st.messages == 1 and st.first_seq == 4


def test_workqueue_consumer_rules(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="WQ", subjects=["jobs.*"], retention=RetentionPolicy.WORK_QUEUE,
                                storage=StorageType.MEMORY)
            out = {}
            out["ack_none"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.A", {"stream_name": "WQ", "config": {
                "name": "A", "ack_policy": "none"}})
            out["not_all"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.B", {"stream_name": "WQ", "config": {
                "name": "B", "ack_policy": "explicit", "deliver_policy": "last"}})
            out["push_ack_none"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.C", {"stream_name": "WQ", "config": {
                "name": "C", "ack_policy": "none", "deliver_subject": "c.deliver"}})
            out["first"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.F1", {"stream_name": "WQ", "config": {
                "name": "F1", "ack_policy": "explicit", "filter_subject": "jobs.a"}})
            out["overlap"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.F2", {"stream_name": "WQ", "config": {
                "name": "F2", "ack_policy": "explicit", "filter_subject": "jobs.*"}})
            out["unfiltered"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.F3", {"stream_name": "WQ", "config": {
                "name": "F3", "ack_policy": "explicit"}})
            out["disjoint"] = await api(nc, "$JS.API.CONSUMER.CREATE.WQ.F4", {"stream_name": "WQ", "config": {
                "name": "F4", "ack_policy": "explicit", "filter_subject": "jobs.b"}})
            out["retention_change"] = await api(nc, "$JS.API.STREAM.UPDATE.WQ", {
                "name": "WQ", "subjects": ["jobs.*"], "storage": "memory", "retention": "limits"})
            return out

    out = run(scenario())
    assert error_of(out["ack_none"]) == (400, 10084, "consumer in pull mode requires explicit ack policy on "
                                                    "workqueue stream")
    assert error_of(out["not_all"]) == (400, 10101, "consumer must be deliver all on workqueue stream")
    assert error_of(out["push_ack_none"]) == (400, 10098, "workqueue stream requires explicit ack")
    assert "error" not in out["first"]
    assert error_of(out["overlap"]) == (400, 10100, "filtered consumer not unique on workqueue stream")
    assert error_of(out["unfiltered"]) == (400, 10099, "multiple non-filtered consumers not allowed on "
                                                      "workqueue stream")
    assert "error" not in out["disjoint"]
    assert error_of(out["retention_change"]) == (
        500, 10052, "stream configuration update can not change retention policy to/from workqueue")


def test_interest_retention_keeps_until_every_consumer_acked(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="IN", subjects=["in.*"], retention=RetentionPolicy.INTEREST,
                                storage=StorageType.MEMORY)
            ack = await js.publish("in.a", b"nobody listens")
            no_interest = (await js.stream_info("IN")).state
            a = await js.pull_subscribe("in.*", durable="A", stream="IN")
            b = await js.pull_subscribe("in.*", durable="B", stream="IN")
            await js.publish("in.a", b"for both")
            ma = (await a.fetch(1, timeout=3))[0]
            mb = (await b.fetch(1, timeout=3))[0]
            await ma.ack_sync()
            after_one = (await js.stream_info("IN")).state
            await mb.ack_sync()
            after_both = (await js.stream_info("IN")).state
            return ack, no_interest, after_one, after_both

    ack, no_interest, after_one, after_both = run(scenario())
    assert ack.seq == 1 and no_interest.messages == 0 and no_interest.last_seq == 1
    assert after_one.messages == 1
    assert after_both.messages == 0 and after_both.first_seq == 3


def test_interest_retention_drops_messages_when_last_consumer_goes(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="IN", subjects=["in.*"], retention=RetentionPolicy.INTEREST,
                                storage=StorageType.MEMORY)
            await js.add_consumer("IN", ConsumerConfig(durable_name="ONLY", ack_policy=AckPolicy.EXPLICIT))
            for _ in range(3):
                await js.publish("in.a", b"x")
            before = (await js.stream_info("IN")).state.messages
            await js.delete_consumer("IN", "ONLY")
            # nats-server drops what nobody is interested in any more after it has answered the delete.
            after = await eventually(lambda: js.stream_info("IN"), lambda info: info.state.messages == 0)
            return before, after.state.messages

    assert run(scenario()) == (3, 0)


def test_interest_filtered_consumers_only_keep_their_subjects(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            await js.add_stream(name="IN", subjects=["in.*"], retention=RetentionPolicy.INTEREST,
                                storage=StorageType.MEMORY)
            await js.add_consumer("IN", ConsumerConfig(durable_name="A", filter_subject="in.a",
                                                       ack_policy=AckPolicy.EXPLICIT))
            await js.publish("in.a", b"kept")
            await js.publish("in.b", b"dropped")
            return (await js.stream_info("IN")).state

    st = run(scenario())
    assert st.messages == 1 and st.last_seq == 2
