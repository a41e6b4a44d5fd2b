"""%stream add --mirror/--source, %stream edit --no-mirror, %nats pub --incr / --batch / --fast / --schedule through a
real IPython shell, on every JetStream server kind, with the one-line errors for bad input."""
from __future__ import annotations

from nats.js.api import StreamInfo

from tests.lab.conftest import assert_one_line_errors, eventually, magic


def _messages(shell, name: str) -> int:
    return magic(shell, f"%stream info {name}").state.messages


def test_a_mirror_and_an_aggregate_of_sources(lab_js, shell):
    magic(shell, "%stream add EU --subjects eu.>")
    magic(shell, "%stream add US --subjects us.>")
    magic(shell, "%nats pub eu.orders.{{Count}} x --count 3 --js")
    magic(shell, "%nats pub us.orders.{{Count}} y --count 2 --js")
    magic(shell, "%nats pub us.audit z --js")
    mirror = magic(shell, "%stream add EUCOPY --mirror EU")
    assert isinstance(mirror, StreamInfo) and mirror.config.mirror.name == "EU" and not mirror.config.subjects
    agg = magic(shell, "%stream add ALL --source EU 'eu.orders.*' 'all.eu.$1' --source US us.orders.>")
    assert [s.name for s in agg.config.sources] == ["EU", "US"]
    assert agg.config.sources[0].subject_transforms[0].dest == "all.eu.$1"
    assert agg.config.sources[1].filter_subject == "us.orders.>"
    eventually(lambda: _messages(shell, "EUCOPY") == 3 and _messages(shell, "ALL") == 5)
    view = magic(shell, "%stream view ALL")
    assert sorted(view["subject"]) == ["all.eu.1", "all.eu.2", "all.eu.3", "us.orders.1", "us.orders.2"]
    late = magic(shell, "%stream add LATE --source EU --start-seq 3")
    eventually(lambda: _messages(shell, "LATE") == 1)
    assert late.config.sources[0].opt_start_seq == 3
    promoted = magic(shell, "%stream edit EUCOPY --no-mirror --subjects copy.>")
    assert promoted.config.mirror is None and promoted.config.subjects == ["copy.>"]
    assert magic(shell, "%nats pub copy.x own --js")["stream"].tolist() == ["EUCOPY"]


def test_counters_with_pub_incr(lab_js, shell):
    info = magic(shell, "%stream add HITS --subjects hits.> --allow-msg-counter")
    assert info.config.allow_msg_counter is True
    first = magic(shell, "%nats pub hits.home --incr 5")
    again = magic(shell, "%nats pub hits.home --incr -2")
    assert first["val"].tolist() == ["5"] and again["val"].tolist() == ["3"]
    assert first["seq"].tolist() == [1] and again["seq"].tolist() == [2]


def test_bad_sourcing_and_counter_input_is_one_line(lab_js, shell, capsys):
    magic(shell, "%stream add ORIGIN --subjects o.>")
    magic(shell, "%stream add PLAIN --subjects p")
    assert_one_line_errors(shell, capsys, {
        "%stream add M --mirror ORIGIN --subjects m": "%stream add: stream mirrors can not contain subjects (10034)",
        "%stream add M --mirror ORIGIN a b c": "%stream add: --mirror wants STREAM [FILTER [DEST]]",
        "%stream add M --source ORIGIN --start-seq 0": "%stream add: --start-seq must be at least 1",
        "%stream add M --subjects m --start-seq 2": "%stream add: --start-seq and --start-time go with --mirror",
        "%nats pub p --incr x": "%nats pub: --incr wants a whole number",
        "%nats pub p body --incr 1": "%nats pub: a counter increment carries no payload",
        "%nats pub p --incr 1": "%nats pub: message counters is disabled (10168)",
    })


def test_atomic_batches_and_schedules(lab_js, shell):
    magic(shell, "%stream add JOBS --subjects jobs.> --allow-atomic --allow-msg-schedules")
    ack = magic(shell, "%nats pub jobs.step step-{{Count}} --count 3 --batch")
    assert ack["count"].tolist() == [3] and ack["seq"].tolist() == [3] and ack["stream"].tolist() == ["JOBS"]
    assert _messages(shell, "JOBS") == 3
    magic(shell, "%stream edit JOBS --allow-fast")
    fast = magic(shell, "%nats pub jobs.fast f-{{Count}} --count 25 --fast --flow 10")
    assert fast["count"].tolist() == [25] and fast["seq"].tolist() == [28] and fast["batch"].iloc[0]
    assert fast["flow_acks"].tolist() == [3] and fast["refused"].tolist() == [""]
    assert _messages(shell, "JOBS") == 28
    sched = magic(shell, "%nats pub jobs.sched.ping ping --schedule 1s --target jobs.ping")
    assert sched["seq"].tolist() == [29]
    eventually(lambda: magic(shell, "%stream get JOBS --last-for jobs.ping") is not None, 15)


def test_bad_batch_and_schedule_input_is_one_line(lab_js, shell, capsys):
    magic(shell, "%stream add PLAIN --subjects p.>")
    assert_one_line_errors(shell, capsys, {
        "%nats pub p.x y --count 2 --batch": "%nats pub: atomic publish is disabled (10174)",
        "%nats pub p.x y --count 2 --fast": "%nats pub: batch publish is disabled (10205)",
        "%nats pub p.x y --fast --flow 0": "%nats pub: --flow wants a number of messages from 1 to 65535",
        "%nats pub p.x y --schedule '@every 1m'": "%nats pub: --schedule and --target go together",
        "%nats pub p.x y --schedule soonish --target p.y": "%nats pub: invalid --schedule 'soonish'",
        "%nats pub p.x y --schedule '@every 1m' --target p.y": "%nats pub: message schedules is disabled (10188)",
    })


def test_durable_sourcing_through_a_flow_control_consumer(lab_js, shell, capsys):
    magic(shell, "%stream add JOBS --subjects jobs.> --retention workqueue")
    feed = magic(shell, "%consumer add JOBS FEED --push --target feed.jobs --ack flow_control --max-pending 50")
    assert feed.config.ack_policy == "flow_control" and feed.config.flow_control is True
    assert feed.config.idle_heartbeat == 1.0
    magic(shell, "%stream add LOG --subjects log.>")
    magic(shell, "%consumer add LOG TAIL --push --target feed.log --ack flow_control --max-pending 50")
    copy = magic(shell, "%stream add DONE --source JOBS --source-consumer FEED --source-deliver feed.jobs")
    consumer = copy.config.sources[0].consumer
    assert (consumer.name, consumer.deliver_subject) == ("FEED", "feed.jobs")
    mirror = magic(shell, "%stream add LOGCOPY --mirror LOG --source-consumer TAIL --source-deliver feed.log")
    assert mirror.config.mirror.consumer.name == "TAIL"
    magic(shell, "%nats pub jobs.{{Count}} j --count 4 --js")
    magic(shell, "%nats pub log.x l --count 3 --js")
    eventually(lambda: _messages(shell, "DONE") == 4 and _messages(shell, "LOGCOPY") == 3)
    assert sorted(magic(shell, "%stream view DONE")["subject"]) == ["jobs.1", "jobs.2", "jobs.3", "jobs.4"]
    # the copies acknowledge through flow control: the origin consumers' ack floors advance, the work queue empties
    eventually(lambda: magic(shell, "%consumer info JOBS FEED").ack_floor.stream_seq == 4
               and magic(shell, "%consumer info LOG TAIL").ack_floor.stream_seq == 3)
    eventually(lambda: _messages(shell, "JOBS") == 0)
    assert_one_line_errors(shell, capsys, {
        "%consumer add LOG P --ack flow_control": "%consumer add: --ack flow_control is for push consumers",
        "%stream add X --source LOG --source-consumer TAIL": "%stream add: --source-consumer NAME and "
                                                              "--source-deliver SUBJECT go together",
        "%stream add X --source LOG --source JOBS --source-consumer TAIL --source-deliver feed.log":
            "%stream add: --source-consumer goes with --mirror or one --source",
    })
