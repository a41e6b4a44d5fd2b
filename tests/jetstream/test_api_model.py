"""The same random sequence of JetStream API calls against nats-server and the embedded server, answer by answer.

A hypothesis state machine (as fakeredis proves itself against Redis) creates, updates and deletes streams and
consumers, publishes with and without the Nats-* headers, purges, gets and deletes messages and pulls with
acks. Both servers must answer alike once ids and timestamps are masked.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os

import nats
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.fuzz.differential import Loop
from tests.servers import KINDS, RunningServer

pytestmark = pytest.mark.skipif(
    "embedded" not in KINDS or importlib.util.find_spec("embedded_server.jetstream") is None,
    reason="needs both servers with JetStream")

MASKED_KEYS = {"created", "ts", "first_ts", "last_ts", "time", "last_active", "_nats.ver", "_nats.level",
               "cluster", "pause_remaining"}
STREAMS = ["A", "B"]
SUBJECTS = ["a.1", "a.2", "b.1", "b.x.y"]
STREAM_SUBJECTS = {"A": [["a.*"], ["a.1", "a.2"], ["a.>"]], "B": [["b.>"], ["b.*"], ["a.1"]]}


def mask(value, names: dict):
    """Replace what legitimately differs (times, server ids, random consumer names) by placeholders."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in MASKED_KEYS:
                out[k] = "<masked>"
            elif k == "name" and isinstance(v, str) and v in names:
                out[k] = names[v]
            else:
                out[k] = mask(v, names)
        return out
    if isinstance(value, list):
        return [mask(v, names) for v in value]
    if isinstance(value, str) and value in names:
        return names[value]
    return value


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    servers = []
    for kind in ("nats-server", "embedded"):
        workdir = tmp_path_factory.mktemp(f"model-{kind}")
        srv = RunningServer(kind, ["-js", "-sd", str(workdir / "store")], workdir)
        servers.append(srv.start())
    loop = Loop()
    conns = [loop.run(nats.connect(s.url)) for s in servers]
    yield loop, conns
    for nc in conns:
        loop.run(nc.close())
    loop.close()
    for srv in servers:
        srv.stop()


async def _request(nc, subject: str, body, headers=None):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        msg = await nc.request(subject, payload, timeout=2, headers=headers)
    except nats.errors.NoRespondersError:
        return "no responders"
    except nats.errors.TimeoutError:
        return "timeout"
    if msg.headers and "Status" in msg.headers:
        return {"status": msg.headers["Status"], "description": msg.headers.get("Description")}
    try:
        return json.loads(msg.data)
    except ValueError:
        return {"raw": msg.data, "headers": dict(msg.headers or {})}


async def _create_stream(nc, name: str, body: dict):
    """Create, retrying once on 10049: nats-server may still be removing the files of a stream of that name that
    was deleted a moment before ("error creating store for stream")."""
    answer = await _request(nc, f"$JS.API.STREAM.CREATE.{name}", body)
    if isinstance(answer, dict) and answer.get("error", {}).get("err_code") == 10049:
        await asyncio.sleep(0.1)
        answer = await _request(nc, f"$JS.API.STREAM.CREATE.{name}", body)
    return answer


async def _direct(nc, subject: str, payload: bytes):
    """A direct get: every message and status until the answer is complete (one message, or a batch and EOB)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, payload, reply=inbox)
    out = []
    try:
        while True:
            msg = await sub.next_msg(1)
            hdrs = {k: v for k, v in (msg.headers or {}).items() if k != "Nats-Time-Stamp"}
            out.append((msg.data, hdrs))
            if "Status" in hdrs or "Nats-Num-Pending" not in hdrs:
                break
    except nats.errors.TimeoutError:
        out.append("timeout" if out else "no answer")
    await sub.unsubscribe()
    return out


async def _pull(nc, stream: str, consumer: str, batch: int, ack: str):
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                     json.dumps({"batch": batch, "no_wait": True}).encode(), reply=inbox)
    out = []
    try:
        while len(out) < batch + 1:
            msg = await sub.next_msg(1)
            if msg.headers and "Status" in msg.headers:
                out.append(("status", msg.headers["Status"], msg.headers.get("Description")))
                break
            # The pending count in the reply (last token) races with consumer creation inside nats-server
            # (it may count a message twice right after a create); consumer info checks num_pending instead.
            tokens = msg.reply.split(".")
            out.append((msg.subject, msg.data, tokens[:7]))
            if ack != "none":
                # A request, so the ack is processed before the next operation (nats-server acks async).
                try:
                    await nc.request(msg.reply, ack.encode(), timeout=1)
                except nats.errors.TimeoutError:
                    out.append("no ack reply")
    except nats.errors.TimeoutError:
        out.append("quiet")
    await sub.unsubscribe()
    await nc.flush()
    return out


class JetStreamModel(RuleBasedStateMachine):
    """Every rule sends one operation to both servers and compares the masked answers."""

    loop: Loop = None
    conns: list = None

    def __init__(self):
        super().__init__()
        self.streams: set[str] = set()
        self.consumers: dict[tuple[str, str], str] = {}

    def both(self, coro_fn):
        answers = [self.loop.run(coro_fn(nc)) for nc in self.conns]
        names = [{}, {}]
        for i, a in enumerate(answers):
            if isinstance(a, dict) and isinstance(a.get("name"), str) and len(a["name"]) == 8 and \
                    a.get("config", {}).get("durable_name") is None and a.get("stream_name"):
                names[i][a["name"]] = "<ephemeral>"
        masked = [mask(a, n) for a, n in zip(answers, names)]
        assert masked[0] == masked[1], f"nats-server: {masked[0]}\nembedded:    {masked[1]}"
        return answers

    @initialize()
    def reset(self):
        for nc in self.conns:
            names = self.loop.run(_request(nc, "$JS.API.STREAM.NAMES", b""))
            for name in names.get("streams") or []:
                self.loop.run(_request(nc, f"$JS.API.STREAM.DELETE.{name}", b""))

    # -- streams -----------------------------------------------------------------------------------
    @rule(name=st.sampled_from(STREAMS), variant=st.integers(0, 2), storage=st.sampled_from(["file", "memory"]),
          max_msgs=st.sampled_from([0, 3, 10]), per_subject=st.sampled_from([0, 1, 2]),
          discard=st.sampled_from(["old", "new"]), retention=st.sampled_from(["limits", "interest", "workqueue"]),
          rollup=st.booleans(), deny_delete=st.booleans(), direct=st.booleans())
    def create_stream(self, name, variant, storage, max_msgs, per_subject, discard, retention, rollup, deny_delete,
                      direct):
        body = {"name": name, "subjects": STREAM_SUBJECTS[name][variant], "storage": storage,
                "max_msgs": max_msgs, "max_msgs_per_subject": per_subject, "discard": discard,
                "retention": retention, "allow_rollup_hdrs": rollup, "deny_delete": deny_delete,
                "duplicate_window": 60_000_000_000, "allow_direct": direct}
        answers = self.both(lambda nc: _create_stream(nc, name, body))
        if "error" not in answers[0]:
            self.streams.add(name)

    @precondition(lambda self: self.streams)
    @rule(data=st.data(), max_msgs=st.sampled_from([0, 2, 5]), deny_delete=st.booleans())
    def update_stream(self, data, max_msgs, deny_delete):
        name = data.draw(st.sampled_from(sorted(self.streams)))
        current = self.loop.run(_request(self.conns[0], f"$JS.API.STREAM.INFO.{name}", b""))["config"]
        current.update({"max_msgs": max_msgs, "deny_delete": deny_delete})
        current.pop("metadata", None)
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.UPDATE.{name}", current))

    @rule(name=st.sampled_from(STREAMS))
    def delete_stream(self, name):
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.DELETE.{name}", b""))
        self.streams.discard(name)
        self.consumers = {c: a for c, a in self.consumers.items() if c[0] != name}

    @rule(name=st.sampled_from(STREAMS), details=st.booleans(), subjects=st.sampled_from(["", ">", "a.*"]))
    def stream_info(self, name, details, subjects):
        body = {"deleted_details": details, "subjects_filter": subjects} if details or subjects else b""
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.INFO.{name}", body))

    @rule(kind=st.sampled_from(["NAMES", "LIST"]), subject=st.sampled_from(["", "a.1", "b.>"]))
    def stream_names(self, kind, subject):
        body = {"subject": subject} if subject else b""
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.{kind}", body))

    # -- publishing --------------------------------------------------------------------------------
    @rule(subject=st.sampled_from(SUBJECTS), payload=st.binary(max_size=20),
          msg_id=st.sampled_from([None, "x", "y"]), header=st.sampled_from([
              None, ("Nats-Expected-Last-Sequence", "0"), ("Nats-Expected-Last-Sequence", "3"),
              ("Nats-Expected-Last-Subject-Sequence", "0"), ("Nats-Expected-Last-Subject-Sequence", "2"),
              ("Nats-Expected-Stream", "A"), ("Nats-Expected-Last-Msg-Id", "x"), ("Nats-Rollup", "sub"),
              ("Nats-Rollup", "all")]))
    def publish(self, subject, payload, msg_id, header):
        hdrs = {}
        if msg_id:
            hdrs["Nats-Msg-Id"] = msg_id
        if header:
            hdrs[header[0]] = header[1]
        self.both(lambda nc: _request(nc, subject, payload, headers=hdrs or None))

    @rule(name=st.sampled_from(STREAMS), subject=st.sampled_from(["", "a.1", "a.*", "b.>"]),
          seq=st.sampled_from([0, 1, 3, 8]), keep=st.sampled_from([0, 1, 2]))
    def purge(self, name, subject, seq, keep):
        body = {k: v for k, v in (("filter", subject), ("seq", seq), ("keep", keep)) if v}
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.PURGE.{name}", body or b""))

    @rule(name=st.sampled_from(STREAMS), seq=st.integers(0, 12),
          how=st.sampled_from(["seq", "last", "next"]), subject=st.sampled_from(SUBJECTS + ["a.*"]))
    def msg_get(self, name, seq, how, subject):
        body = {"seq": seq} if how == "seq" else {"last_by_subj": subject} if how == "last" else \
            {"next_by_subj": subject, "seq": seq}
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.MSG.GET.{name}", body))

    @rule(name=st.sampled_from(STREAMS), seq=st.integers(1, 12), no_erase=st.booleans())
    def msg_delete(self, name, seq, no_erase):
        self.both(lambda nc: _request(nc, f"$JS.API.STREAM.MSG.DELETE.{name}", {"seq": seq, "no_erase": no_erase}))

    @rule(name=st.sampled_from(STREAMS), how=st.sampled_from(["seq", "last", "batch", "by_subject"]),
          seq=st.integers(1, 10), subject=st.sampled_from(SUBJECTS + ["a.*"]), batch=st.integers(1, 4))
    def direct_get(self, name, how, seq, subject, batch):
        if how == "by_subject":
            self.both(lambda nc: _direct(nc, f"$JS.API.DIRECT.GET.{name}.{subject}", b""))
            return
        body = {"seq": seq} if how == "seq" else {"last_by_subj": subject} if how == "last" else \
            {"seq": seq, "next_by_subj": subject, "batch": batch}
        self.both(lambda nc: _direct(nc, f"$JS.API.DIRECT.GET.{name}", json.dumps(body).encode()))

    # -- consumers ---------------------------------------------------------------------------------
    @rule(stream=st.sampled_from(STREAMS), name=st.sampled_from(["C1", "C2"]),
          ack=st.sampled_from(["explicit", "all", "none"]),
          deliver=st.sampled_from(["all", "last", "new", "last_per_subject"]),
          filter_subject=st.sampled_from(["", "a.1", "a.*", "b.>"]), max_ack_pending=st.sampled_from([0, 2]))
    def create_consumer(self, stream, name, ack, deliver, filter_subject, max_ack_pending):
        cfg = {"durable_name": name, "ack_policy": ack, "deliver_policy": deliver, "ack_wait": 30_000_000_000}
        if filter_subject:
            cfg["filter_subject"] = filter_subject
        if max_ack_pending:
            cfg["max_ack_pending"] = max_ack_pending
        body = {"stream_name": stream, "config": cfg}
        answers = self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.CREATE.{stream}.{name}", body))
        if "error" not in answers[0]:
            self.consumers[(stream, name)] = ack

    @precondition(lambda self: self.consumers)
    @rule(data=st.data(), batch=st.integers(1, 4), ack=st.sampled_from(["+ACK", "-NAK", "+TERM", "none"]))
    def fetch(self, data, batch, ack):
        stream, name = data.draw(st.sampled_from(sorted(self.consumers)))
        if self.consumers[(stream, name)] == "none":
            ack = "none"
        self.both(lambda nc: _pull(nc, stream, name, batch, ack))
        self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.INFO.{stream}.{name}", b""))

    @rule(stream=st.sampled_from(STREAMS), name=st.sampled_from(["C1", "C2", "nope"]),
          until=st.sampled_from([None, "2099-01-01T00:00:00Z"]))
    def consumer_pause(self, stream, name, until):
        body = {"pause_until": until} if until else b""
        self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.PAUSE.{stream}.{name}", body))

    @rule(stream=st.sampled_from(STREAMS), name=st.sampled_from(["C1", "C2", "nope"]))
    def consumer_info(self, stream, name):
        self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.INFO.{stream}.{name}", b""))

    @rule(stream=st.sampled_from(STREAMS), name=st.sampled_from(["C1", "C2"]))
    def consumer_delete(self, stream, name):
        self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.DELETE.{stream}.{name}", b""))
        self.consumers.pop((stream, name), None)

    @rule(stream=st.sampled_from(STREAMS), kind=st.sampled_from(["NAMES", "LIST"]))
    def consumer_names(self, stream, kind):
        self.both(lambda nc: _request(nc, f"$JS.API.CONSUMER.{kind}.{stream}", b""))

    @invariant()
    def account_info_agrees(self):
        answers = [self.loop.run(_request(nc, "$JS.API.INFO", b"")) for nc in self.conns]
        for a in answers:
            a.pop("api", None)
            a.pop("memory", None)
            a.pop("storage", None)
        assert answers[0] == answers[1]


def test_random_api_sequences_agree(pair):
    loop, conns = pair
    JetStreamModel.loop, JetStreamModel.conns = loop, conns
    run_state_machine = JetStreamModel.TestCase
    examples = int(os.environ.get("JS_MODEL_EXAMPLES", "30"))
    run_state_machine.settings = settings(max_examples=examples, stateful_step_count=25, deadline=None,
                                          suppress_health_check=list(HealthCheck))
    run_state_machine().runTest()
