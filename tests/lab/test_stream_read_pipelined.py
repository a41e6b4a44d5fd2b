"""Reading a stream without allow_direct: pipelined STREAM.MSG.GET gives exactly what direct get gives, on
every server kind, in pages, filtered, from a time, across deleted messages, and takes nothing from a work
queue (no consumer is ever made). Bulk reads of limits streams go through an ordered consumer that gives the
same rows and is gone after the read."""
from __future__ import annotations

import asyncio
import gc
import json
import re

import pytest

import pynats_lab
from pynats_lab.errors import LabError
from pynats_lab import reader
from pynats_lab.session import get_session
from tests.lab.conftest import eventually, magic


def _store(stream: str, subjects, count: int) -> None:
    s = get_session()

    async def go():
        for start in range(0, count, 500):
            await asyncio.gather(*(s.js.publish(subjects(i), f"m{i}".encode(), headers={"n": str(i)})
                                   for i in range(start, min(start + 500, count))))

    s.run(go())


def _twin(name: str, retention: str = "limits", count: int = 3000):
    """The same messages in a stream with direct get (D...) and one without (N...)."""
    for direct in (True, False):
        stream = ("D" if direct else "N") + name
        pynats_lab.stream_add(stream, f"{stream.lower()}.>", allow_direct=direct, retention=retention)
    subject = lambda p: (lambda i: f"{p}.{'rare' if i % 97 == 0 else 'x' + str(i % 7)}")
    for p in ("d", "n"):
        _store(p.upper() + name, subject(p + name.lower()), count)
    # Holes: deleted messages the pipelined read must step over, in both.
    for seq in (1, 2, 500, 501, 502, count - 1):
        for p in "DN":
            get_session().run(get_session().js.delete_msg(p + name, seq))


def _comparable(df):
    return list(zip(df["seq"], df["subject"].str.split(".", n=1).str[1], df["data"], df["headers"].map(
        lambda h: (h or {}).get("n"))))


def test_without_direct_the_whole_stream_and_its_pages_are_the_same(lab_js):
    _twin("ORD")
    whole_d, whole_n = pynats_lab.stream_frame("DORD"), pynats_lab.stream_frame("NORD")
    assert len(whole_n) == 3000 - 6 and whole_n["seq"].is_monotonic_increasing
    assert _comparable(whole_n) == _comparable(whole_d)
    for kwargs in ({"id": 499, "page_size": 10}, {"page_size": 100, "last": True}, {"id": 2990, "page_size": 50},
                   {"subject": "{p}ord.rare", "page_size": 5}, {"subject": "{p}ord.rare", "last": True, "page_size": 4},
                   {"subject": "{p}ord.x3", "id": 1000, "page_size": 30}, {"subject": "{p}ord.*", "page_size": 7}):
        got = {p: pynats_lab.stream_view(p.upper() + "ORD", **{k: v.format(p=p) if isinstance(v, str) else v
                                                                 for k, v in kwargs.items()}) for p in "dn"}
        assert len(got["n"]) and _comparable(got["n"]) == _comparable(got["d"]), kwargs
    rare = pynats_lab.stream_frame("NORD", subject="nord.rare")
    assert rare["seq"].tolist() == [i + 1 for i in range(3000) if i % 97 == 0 and i + 1 not in (1, 2, 500, 501, 502, 2999)]


def test_without_direct_the_fast_answer_path_reads_what_the_public_path_reads(lab_js, monkeypatch):
    """The pipelined read's fast path (answers taken from nats-py's parser as bytes, requests written as one
    block, answers decoded by their exact shape) gives the same DataFrame as nats-py's public callback and
    publish with json.loads, on a work queue, with headers, holes and subjects JSON escapes; nothing consumed."""
    pynats_lab.stream_add("FAST", "fast.>", allow_direct=False, retention="workqueue")
    _store("FAST", lambda i: ["fast.a", "fast.<b>", "fast.\u00e9t\u00e9", "fast.d"][i % 4], 1500)
    s = get_session()
    s.run(s.js.publish("fast.e", b""))  # no data field
    s.run(s.js.publish("fast.e", b"\xff\x00bin", headers={"Nats-Msg-Id": "x1"}))

    async def plain():  # no character JSON escapes: whole chunks of answers go through _AnswerRun
        for i in range(1200):
            await s.nc.publish(f"fast.p{i % 3}", b"p%d" % i, headers={"k": "v"} if i % 5 == 0 else None)
        await s.nc.flush()

    s.run(plain())
    eventually(lambda: pynats_lab.stream_info("FAST").state.messages == 2702)
    for seq in (3, 700, 701, 2000):
        s.run(s.js.delete_msg("FAST", seq))
    used, runs = [], []
    subscribe, decode = reader._StripeWalk._subscribe, reader._AnswerRun.decode

    def decoding(self):
        runs.append(self.count)
        return decode(self)

    monkeypatch.setattr(reader._AnswerRun, "decode", decoding)

    async def spying(self, nc):
        sub = await subscribe(self, nc)
        used.append((self.fast, self.raw is not None, gc.isenabled()))
        return sub

    monkeypatch.setattr(reader._StripeWalk, "_subscribe", spying)
    fast = pynats_lab.stream_frame("FAST", page_size=400)
    monkeypatch.setattr(reader, "FAST_ANSWERS", False)
    slow = pynats_lab.stream_frame("FAST", page_size=400)
    assert used and set(used[:len(used) // 2]) == {(True, True, False)} and \
        set(used[len(used) // 2:]) == {(False, False, False)}  # the collector paused during a bulk read
    assert "_process_msg" not in vars(s.nc)  # the raw hook is gone with the last read that used it
    assert gc.isenabled()  # and the collector is on again after it
    gc.disable()  # a user's own choice stays as it was
    try:
        assert len(pynats_lab.stream_frame("FAST")) == len(fast) and not gc.isenabled()
    finally:
        gc.enable()
    assert len(fast) == 2702 - 4 and fast["seq"].is_monotonic_increasing
    assert fast.equals(slow)
    assert sum(runs) >= 500  # most of the plain answers came whole chunks at a time; the rest one by one
    assert set(fast["subject"]) == {"fast.a", "fast.<b>", "fast.\u00e9t\u00e9", "fast.d", "fast.e", "fast.p0",
                                    "fast.p1", "fast.p2"}
    by_seq = fast.set_index("seq")
    assert by_seq.loc[1502, "msg_id"] == "x1" and by_seq.loc[1501, "data"] == ""
    assert by_seq.loc[2702, "data"] == "p1199" and by_seq.loc[2698, "headers"] == {"k": "v"}
    # The decoders against json.loads, on this server's own answers (with and without hdrs/data): one by one
    # (_answer_record) and as a chunk (_AnswerRun), which takes a chunk only if every answer in it is one of
    # those it decodes exactly (no escape in a string, no error, sizes right).
    matched, bodies = 0, {}
    for seq in (1, 2, 3, 4, 7, 1501, 1502, 1503, 1505):
        raw = s.run(s.nc.request("$JS.API.STREAM.MSG.GET.FAST", b'{"seq":%d}' % seq)).data
        bodies[seq] = raw
        if seq == 3:  # deleted: "no message found"
            assert reader._ANSWER.match(raw) is None and reader._answer_record(raw) is None
            continue
        matched += reader._ANSWER.match(raw) is not None
        assert reader._answer_record(raw) == reader._stored_record(json.loads(raw)["message"])
    assert matched >= 6  # the plain subjects take the fast shape on this server
    handle = object()

    def run_of(seqs, size=len):
        wire = b"".join(b"MSG _INBOX.t.%d 9 %d\r\n%s\r\n" % (i, size(bodies[q]), bodies[q]) for i, q in enumerate(seqs))
        return reader._AnswerRun.take(wire + b'MSG _INBOX.t.9 9 50\r\n{"type"', {b"9": handle})

    plain = [q for q in (1, 2, 4, 7, 1501, 1502, 1503, 1505) if b"\\" not in bodies[q]]
    escaped = [q for q in (2, 7) if q not in plain]  # "<b>" and "\u00e9t\u00e9" as this server writes them
    assert {1, 4, 1501, 1502, 1503, 1505} <= set(plain)
    chunk = run_of(plain)
    assert chunk is not None and chunk.handle is handle and len(chunk) == len(plain)
    slots, records = chunk.decode()
    assert slots == list(range(len(plain)))
    assert [(q, t, subj, h or {}, d) for q, t, subj, h, d in records] == \
        [reader._stored_record(json.loads(bodies[q])["message"]) for q in plain]
    got = dict(zip(plain, records))
    assert got[1501][3:] == (None, b"") and got[1502][3] == {"Nats-Msg-Id": "x1"} and got[1502][4] == b"\xff\x00bin"
    assert got[1503][3] == {"k": "v"} and got[1505][3:] == (None, b"p2") and got[1][3] == {"n": "0"}
    assert run_of([1, 3, 4]) is None  # an error answer among them
    assert all(run_of([1, q]) is None for q in escaped)  # a string with an escape
    assert run_of([1, 4], size=lambda body: len(body) + 1) is None  # a size that is not the body's
    assert run_of([1, 4]) is not None and reader._AnswerRun.take(b"PING\r\n", {b"9": handle}) is None
    info = pynats_lab.stream_info("FAST")
    assert info.state.messages == 2702 - 4 and info.state.consumer_count == 0


def test_without_direct_since_a_time_and_past_the_end(lab_js):
    pynats_lab.stream_add("TIMED", "timed.>", allow_direct=False)
    _store("TIMED", lambda i: "timed.a", 20)
    stored = pynats_lab.stream_frame("TIMED")["time"]
    _store("TIMED", lambda i: "timed.b", 5)
    since = stored.iloc[10].floor("us")
    got = pynats_lab.stream_view("TIMED", since=since.to_pydatetime(), page_size=100)
    first = int((stored < since).sum()) + 1  # the first stored at or after that time
    assert got["seq"].tolist() == list(range(first, 26))
    assert pynats_lab.stream_view("TIMED", id=26).empty
    assert pynats_lab.stream_view("TIMED", id=21, subject="timed.a").empty


def test_without_direct_a_work_queue_is_read_and_keeps_everything(lab_js):
    _twin("JOB", retention="workqueue", count=1200)
    for _ in range(2):
        assert len(pynats_lab.stream_frame("NJOB")) == 1200 - 6
    assert _comparable(pynats_lab.stream_frame("NJOB", subject="njob.x2")) == \
        _comparable(pynats_lab.stream_frame("DJOB", subject="djob.x2"))
    info = pynats_lab.stream_info("NJOB")
    assert info.state.messages == 1200 - 6 and info.state.consumer_count == 0


def test_without_direct_a_read_keeps_many_requests_in_flight(lab_js, monkeypatch):
    """The read is pipelined: the most requests outstanding at once is the window, not one."""
    pynats_lab.stream_add("WIDE", "wide.>", allow_direct=False)
    _store("WIDE", lambda i: "wide.x", 2000)
    most = []
    take = reader._StripeWalk._take

    def counting(self):
        got = take(self)
        most.append(len(self.outstanding))
        return got

    walks = []  # (requests sent, reply subjects made) of each read
    run = reader._StripeWalk.run

    async def running(self):
        got = await run(self)
        walks.append((self.sent, len(set(self.replies))))
        return got

    monkeypatch.setattr(reader._StripeWalk, "_take", counting)
    monkeypatch.setattr(reader._StripeWalk, "run", running)
    assert len(pynats_lab.stream_frame("WIDE")) == 2000
    assert max(most) == reader.WINDOW
    # Reply subjects are reused (the servers match each one once): a read of 2,000 asks a window's worth.
    assert sum(sent for sent, _ in walks) >= 2000
    assert {made for _, made in walks} == {reader.WINDOW}
    most.clear()
    assert len(pynats_lab.stream_view("WIDE", id=100, page_size=10)) == 10
    assert max(most) <= 11  # a small page asks for about its size, not a window
    # Answers lost on a live connection (dropped here from the 500th on, until the read asks again): after 2 s
    # without one the read asks every stripe again, to a new inbox, and still ends with every message once.
    answers, asked_again = reader._StripeWalk._answers, []

    def losing(self, got, chunk=False):
        if len(self.found) >= 500 and not self.asks_again:
            return
        asked_again.append(self.asks_again)
        answers(self, got, chunk)

    monkeypatch.setattr(reader._StripeWalk, "_answers", losing)
    assert pynats_lab.stream_frame("WIDE")["seq"].tolist() == list(range(1, 2001))
    assert asked_again[0] == 0 and max(asked_again) >= 1  # the walk asked again


def test_a_large_read_shows_progress_on_stdout(lab_js, capsys, monkeypatch):
    from pynats_lab import progress, streams

    pynats_lab.stream_add("PROG", "prog.>", allow_direct=False)
    _store("PROG", lambda i: "prog.x", 300)
    capsys.readouterr()
    assert len(pynats_lab.stream_frame("PROG", progress=True, page_size=100)) == 300
    shown = capsys.readouterr()
    assert "reading PROG" in shown.out and "300/300" in shown.out and shown.err == ""
    assert len(pynats_lab.stream_frame("PROG")) == 300  # small: no bar
    assert "reading PROG" not in capsys.readouterr().out
    # A page as large as a bulk read (%stream view --page-size 100000) shows one too, once it takes a second.
    monkeypatch.setattr(streams, "_PROGRESS_FROM", 250)
    monkeypatch.setattr(progress, "DELAY", 0)
    assert len(pynats_lab.stream_view("PROG", page_size=280)) == 280
    shown = capsys.readouterr()
    assert "reading PROG" in shown.out and "280/280" in shown.out and shown.err == ""
    assert len(pynats_lab.stream_view("PROG", page_size=200)) == 200  # smaller than that: none
    assert "reading PROG" not in capsys.readouterr().out


def test_a_bulk_read_of_a_limits_stream_goes_through_a_consumer_that_is_gone_after(lab_js, monkeypatch):
    """Whole-stream reads of a limits stream use an ordered consumer (from reader.CONSUMER_FROM messages on,
    lowered here): the same rows as direct get, whole, filtered and in small pages, over deleted messages; the
    consumer exists during the read only; work-queue streams are never read that way."""
    monkeypatch.setattr(reader, "CONSUMER_FROM", 500)
    _twin("BULK", count=1500)
    seen = []  # consumers of the stream seen in the middle of a read
    take = reader.OrderedRead.take

    async def spying(self, count):
        seen.append([ci.name for ci in await get_session().js.consumers_info(self.stream)])
        return await take(self, count)

    monkeypatch.setattr(reader.OrderedRead, "take", spying)
    direct = pynats_lab.stream_frame("DBULK", consumer=False)
    got = pynats_lab.stream_frame("DBULK")
    assert seen and all(len(names) == 1 and names[0].startswith("lab_read_") for names in seen)
    assert len(got) == 1500 - 6 and got["seq"].is_monotonic_increasing
    cols = ["seq", "time", "subject", "data", "headers", "size", "msg_id"]
    assert got[cols].equals(direct[cols])
    assert _comparable(pynats_lab.stream_frame("NBULK")) == _comparable(direct)  # without allow_direct too
    paged = pynats_lab.stream_frame("DBULK", subject="dbulk.x3", page_size=7)
    assert paged[cols].equals(pynats_lab.stream_frame("DBULK", subject="dbulk.x3", consumer=False)[cols])
    assert pynats_lab.stream_frame("DBULK", subject="dbulk.none").empty
    seen.clear()  # a page as large as a bulk read is one; a small one is not
    page = pynats_lab.stream_view("NBULK", id=100, page_size=600)
    assert seen and _comparable(page) == _comparable(direct[direct["seq"] >= 100].head(600))
    seen.clear()
    assert len(pynats_lab.stream_view("NBULK", id=100, page_size=50)) == 50 and not seen
    # An abandoned read (a search that found enough) deletes its consumer too.
    seen.clear()
    pages = pynats_lab.StreamPager("DBULK", page_size=100).pages()
    assert len(next(pages)) == 100 and seen[-1]
    pages.close()
    for stream in ("DBULK", "NBULK"):
        info = pynats_lab.stream_info(stream)
        assert info.state.consumer_count == 0 and info.state.messages == 1500 - 6
    # A work queue: read as pages, never by a consumer, and a consumer asked for is refused in one line.
    _twin("WQ", retention="workqueue", count=600)
    seen.clear()
    assert len(pynats_lab.stream_frame("NWQ")) == 600 - 6 and not seen
    with pytest.raises(LabError, match="workqueue retention: a consumer would change what it keeps"):
        pynats_lab.stream_frame("NWQ", consumer=True)
    assert pynats_lab.stream_info("NWQ").state.consumer_count == 0


def test_a_consumer_lost_in_the_middle_of_a_read_is_replaced(lab_js, monkeypatch):
    """Ordered: when the reading consumer vanishes, a new one continues from the next sequence; nothing is
    missed or repeated, and none is left behind."""
    pynats_lab.stream_add("LOST", "lost.>", allow_direct=False)
    _store("LOST", lambda i: f"lost.{i % 3}", 1200)
    monkeypatch.setattr(reader, "_MAX_BATCH", 50)  # 200 in flight: most of the stream is still to come
    monkeypatch.setattr(reader, "_QUIET", 0.5)  # where no status says the consumer is gone, ask sooner
    take = reader.OrderedRead.take
    made = []

    async def deleting(self, count):
        made.append(self.name)
        if len(made) == 2:  # after the first page, as if the server had lost it
            await get_session().js.delete_consumer(self.stream, self.name)
        return await take(self, count)

    monkeypatch.setattr(reader.OrderedRead, "take", deleting)
    got = pynats_lab.stream_frame("LOST", page_size=300, consumer=True)
    assert got["seq"].tolist() == list(range(1, 1201))
    assert got["data"].tolist() == [f"m{i}" for i in range(1200)]
    assert len(set(made)) >= 2  # a second consumer finished the read
    assert pynats_lab.stream_info("LOST").state.consumer_count == 0


READER_CONFIG = """
authorization { users: [
  {user: admin, password: admin},
  {user: reader, password: reader, permissions: {
    publish: {allow: ["$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*"]},
    subscribe: {allow: ["_INBOX.>"]}}}
]}
"""


def test_a_user_who_may_not_make_consumers_reads_the_whole_stream_without_one(start_server, tmp_path_factory,
                                                                              shell, monkeypatch, tmp_path, capfd):
    monkeypatch.setattr(reader, "CONSUMER_FROM", 100)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    srv = start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), config=READER_CONFIG)
    pynats_lab.connect(f"nats://admin:admin@127.0.0.1:{srv.port}")
    try:
        pynats_lab.stream_add("PERM", "perm.>", allow_direct=False)
        _store("PERM", lambda i: "perm.x", 300)
    finally:
        get_session().close()
    pynats_lab.connect(f"nats://reader:reader@127.0.0.1:{srv.port}")
    try:
        capfd.readouterr()
        got = pynats_lab.stream_frame("PERM")  # the consumer is refused (dropped): read by STREAM.MSG.GET
        assert got["seq"].tolist() == list(range(1, 301)) and got["data"].tolist() == [f"m{i}" for i in range(300)]
        assert capfd.readouterr().err == ""  # the read worked: the refused create is no error of the user's
        with pytest.raises(LabError, match=r"^PERM: no consumer to read it with: a consumer create went unanswered "
                                           r"on this connection before; read it with consumer=False$"):
            pynats_lab.stream_frame("PERM", consumer=True)
        assert len(pynats_lab.stream_frame("PERM")) == 300  # not tried again on this connection
        assert pynats_lab.stream_info("PERM").state.consumer_count == 0
        pynats_lab.publish("perm.x", "x")  # anything else refused is still said
        get_session().run(get_session().nc.flush())
        assert "permissions violation" in capfd.readouterr().err.lower()
    finally:
        get_session().close()


IMPORTS_CONFIG = """
accounts {
  APP { jetstream: enabled, users [{user: app, password: app}]
        exports [{service: "$JS.API.INFO"}, {service: "$JS.API.STREAM.INFO.*"}] }
  OTHER { users [{user: other, password: other}]
          imports [{service: {account: APP, subject: "$JS.API.INFO"}},
                   {service: {account: APP, subject: "$JS.API.STREAM.INFO.*"}}] }
}
"""


def test_a_read_nobody_answers_says_so_in_one_line(start_server, tmp_path_factory, shell, monkeypatch, tmp_path):
    """An account that reaches a stream's info through imports but not its STREAM.MSG.GET: every request gets
    the no-responders status; the read stops with one line saying why, not a JSON decoding error."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    srv = start_server("-js", "-sd", str(tmp_path_factory.mktemp("js")), config=IMPORTS_CONFIG)
    pynats_lab.connect(f"nats://app:app@127.0.0.1:{srv.port}")
    try:
        pynats_lab.stream_add("WQ", "wq.>", allow_direct=False, retention="workqueue")
        _store("WQ", lambda i: "wq.x", 50)
    finally:
        get_session().close()
    pynats_lab.connect(f"nats://other:other@127.0.0.1:{srv.port}")
    try:
        with pytest.raises(LabError, match=r"^stream WQ: STREAM\.MSG\.GET got no responders \(this account cannot "
                                           r"reach the stream's STREAM\.MSG\.GET"):
            pynats_lab.stream_frame("WQ")
    finally:
        get_session().close()


def test_the_fast_parse_hands_each_answer_over_once_in_order_wherever_the_bytes_are_cut():
    """The read's hook on nats-py's parser (`_RawAnswers._parse`), fed a read's answers as the server writes
    them with other traffic between (an answer with a reply subject, one with headers, another subscription's
    message, an unknown subscription's, a PONG), cut into chunks at every place: the read gets each of its
    answers once, in order, another read's go to it, the rest to nats-py; nats-py's counts as without the hook."""
    from nats.aio.client import Client

    class Sub:
        def __init__(self, sid):
            self._id = sid

    answer = (b'{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"s.a","seq":%d,'
              b'"data":"eA==","time":"2026-12-02T10:00:00.5Z"}}')
    wire = [b"MSG _INBOX.r.%d 5 %d\r\n%s\r\n" % (slot, len(answer % seq), answer % seq) for slot, seq in ((7, 10), (8, 11))]
    wire += [b'MSG _INBOX.r.1 5 13\r\n{"seq":1,"a"}\r\n', b"MSG _INBOX.r.2 5 3\r\nabc\r\n",
             b"MSG _INBOX.r.3 5 _INBOX.back 4\r\nwith\r\n", b"MSG _INBOX.q.0 9 5\r\nother\r\n",
             b"HMSG _INBOX.r.4 5 16 20\r\nNATS/1.0 503\r\n\r\nbody\r\n", b"MSG x.y 11 2\r\nno\r\n", b"PONG\r\n",
             b"MSG _INBOX.r.5 5 0\r\n\r\n", b"MSG  _INBOX.r.6\t5  4\r\ntabs\r\n", b"MSG _INBOX.q.1 9 1\r\nz\r\n"]
    stream = b"".join(wire)
    mine = [(b"_INBOX.r.7", answer % 10), (b"_INBOX.r.8", answer % 11),
            (b"_INBOX.r.1", b'{"seq":1,"a"}'), (b"_INBOX.r.2", b"abc"), (b"_INBOX.r.3", b"with"),
            (b"_INBOX.r.5", b""), (b"_INBOX.r.6", b"tabs")]
    theirs = [(b"_INBOX.q.0", b"other"), (b"_INBOX.q.1", b"z")]

    runs = []

    def pairs(answers):
        """What the read was handed, as (subject, body) pairs: a whole run of answers as its slots and bodies."""
        if isinstance(answers, reader._AnswerRun):
            runs.append(len(answers))
            return [(b"_INBOX.r." + slot, body) for slot, body in zip(answers.pieces[1::10], answers.pieces[4::10])]
        return answers

    async def feed(cuts, hooked):
        nc = Client()
        got, other = [], []
        nc._process_pong = lambda: asyncio.sleep(0)  # no ping was sent by this unconnected client
        hook = reader._RawAnswers.take(nc, Sub(5), lambda answers, chunk=False: got.extend(pairs(answers)))
        reader._RawAnswers.take(nc, Sub(9), lambda answers, chunk=False: other.extend(answers))
        assert ("parse" in vars(nc._ps)) == hooked
        at = 0
        for cut in cuts + [len(stream)]:
            await nc._ps.parse(stream[at:cut])
            at = cut
        hook.release(Sub(5))
        hook.release(Sub(9))
        assert "parse" not in vars(nc._ps) and "_process_msg" not in vars(nc)
        return [(bytes(s), bytes(d)) for s, d in got], [(bytes(s), bytes(d)) for s, d in other], nc.stats

    async def every_cut():
        plain = await feed([], False)
        assert plain[:2] == (mine, theirs) and plain[2]["in_msgs"] == 11 and not runs
        reader._FAST_PARSE = True
        for cuts in [[i] for i in range(1, len(stream))] + [list(range(1, len(stream))), list(range(7, len(stream), 7))]:
            assert await feed(cuts, True) == plain, cuts
        assert runs and max(runs) == 2  # the two answers at the front were taken as one run when cut after them

    fast = reader._FAST_PARSE
    reader._FAST_PARSE = False
    try:
        asyncio.run(every_cut())
    finally:
        reader._FAST_PARSE = fast


def _store_fast(stream: str, subject: str, count: int, slice_: int = 10_000) -> None:
    """`count` small messages published without waiting for acks, in slices each waited for until stored (past
    its ingest queue nats-server drops core publishes)."""
    s = get_session()

    async def publish(start, end):
        for i in range(start, end):
            await s.nc.publish(subject, b"m%d" % i)
        await s.nc.flush()

    for start in range(0, count, slice_):
        end = min(start + slice_, count)
        s.run(publish(start, end))
        eventually(lambda: pynats_lab.stream_info(stream).state.messages == end)


# Where each read's answers arrive, how far it is, and what changes when it asks again (what was asked before is
# then not heard): the STREAM.MSG.GET walk, direct get, the ordered consumer.
_ARRIVE = {"msgget": (reader._StripeWalk, reader._StripeWalk._answers, lambda read: read.reader.received,
                      lambda read: (read, read.epoch)),
           "direct": (reader._DirectGet, reader._DirectGet._on_msg, lambda read: read.reader.received,
                      lambda read: (read, read.epoch)),
           "consumer": (reader.OrderedRead, reader.OrderedRead._on_msg, lambda read: read.last_seq,
                        lambda read: read.name)}


def _gate(monkeypatch, after: int, mode: str = "msgget"):
    """Once a read (of `mode`) has `after` messages, every further answer to what it asked so far is dropped, as
    on a dying connection (a suffix is lost, never a middle); from `opened` on, answers to what it asks again
    pass: the read is certainly in the middle when it is stopped, its requests in flight."""
    import threading

    held, opened = threading.Event(), threading.Event()
    kind, arrive, progress, asked = _ARRIVE[mode]
    lost = []  # what the read had asked when the gate closed

    def passes(read) -> bool:
        if held.is_set():
            return opened.is_set() and asked(read) not in lost
        if progress(read) >= after:
            lost.append(asked(read))
            held.set()
        return True

    if asyncio.iscoroutinefunction(arrive):
        async def gated(self, *args):
            if passes(self):
                await arrive(self, *args)
    else:
        def gated(self, *args):
            if passes(self):
                arrive(self, *args)

    monkeypatch.setattr(kind, arrive.__name__, gated)
    return held, opened


def test_every_read_goes_on_across_a_server_restart(lab_js, shell, capsys, monkeypatch):
    """Each of the three reads while its server stops and starts again (same port and store): a file work queue
    by STREAM.MSG.GET, then by direct get, and a limits stream through an ordered consumer. What was asked on the
    old connection is asked again, from the first sequence not yet received, once nats-py has reconnected (the
    consumer made again from there), and each read ends with every message once, in order, the same as a read
    after. A connection closed under any of them, a direct get nobody answers, direct get turned off, and a
    server that does not come back each end the read with one line saying which."""
    import threading

    srv, count, bulk = lab_js, 50_000, 20_000
    pynats_lab.stream_add("FLAKY", "flaky.>", allow_direct=False, retention="workqueue", storage="file")
    _store_fast("FLAKY", "flaky.x", count)
    pynats_lab.stream_add("BULKY", "bulky.>", storage="file")
    _store_fast("BULKY", "bulky.x", bulk)

    def across_a_restart(mode: str, stream: str, after: int):
        held, opened = _gate(monkeypatch, after=after, mode=mode)
        got, failed = [], []

        def read():
            try:
                got.append(pynats_lab.stream_frame(stream, progress=False))
            except Exception as exc:  # the test says what it was
                failed.append(exc)

        reading = threading.Thread(target=read)
        reading.start()
        assert held.wait(30), mode
        reconnects = get_session().nc.stats["reconnects"]
        srv.stop()
        opened.set()
        srv.start()
        reading.join(60)
        assert not reading.is_alive() and not failed, (mode, failed)
        assert get_session().nc.stats["reconnects"] > reconnects, mode  # the read really crossed a reconnect
        return got[0]

    df = across_a_restart("msgget", "FLAKY", 25_000)  # in the third page of 10,000
    assert df["seq"].tolist() == list(range(1, count + 1))
    assert df["data"].iloc[[0, 24_999, -1]].tolist() == ["m0", "m24999", f"m{count - 1}"]
    after = pynats_lab.stream_frame("FLAKY", progress=False)
    assert df.equals(after)
    pynats_lab.stream_edit("FLAKY", allow_direct=True)
    assert across_a_restart("direct", "FLAKY", 25_000).equals(after)  # the third batch of 10,000
    df = across_a_restart("consumer", "BULKY", bulk // 2)
    assert df["seq"].tolist() == list(range(1, bulk + 1)) and df["data"].iloc[-1] == f"m{bulk - 1}"
    assert df.equals(pynats_lab.stream_frame("BULKY", consumer=False))
    for stream, messages in (("FLAKY", count), ("BULKY", bulk)):
        info = pynats_lab.stream_info(stream)  # nothing taken from the work queue, no consumer left behind
        assert info.state.messages == messages and info.state.consumer_count == 0

    def one_line_when(stop, after: int, mode: str, stream: str = "FLAKY", reopen: bool = True,
                      page: int = 20_000) -> str:
        """`%stream view` of a large page (read by `mode`) while `stop()` runs in its middle: its one line on
        stderr. `reopen=False`: the read's answers stay dropped after `stop()`."""
        held, opened = _gate(monkeypatch, after=after, mode=mode)
        stopping = threading.Thread(target=lambda: held.wait(30) and (stop(), reopen and opened.set()))
        stopping.start()
        capsys.readouterr()
        try:
            assert magic(shell, f"%stream view {stream} --page-size {page}") is None
        finally:
            opened.set()
        stopping.join(30)
        err = capsys.readouterr().err
        mine = [line for line in err.splitlines() if not line.startswith("nats: ")]
        assert "Traceback" not in err and len(mine) == 1, err
        return mine[0]

    # The connection closed under the read (by the user, elsewhere): said in one line, at once, by each read.
    s = get_session()
    for mode, stream in (("direct", "FLAKY"), ("consumer", "BULKY")):
        assert one_line_when(lambda: s.run(s.nc.close()), 3_000, mode, stream).startswith(
            f"%stream view: stream {stream}: the connection closed during the read (after "), mode
        pynats_lab.connect(srv.url)
        s = get_session()
    # Direct get unanswered on a live connection: asked again, then said as it is; allow_direct is not blamed.
    monkeypatch.setattr(reader, "_STALL", 1.0)
    monkeypatch.setattr(reader, "_ASK_AGAIN", 0.5)
    assert re.fullmatch(r"%stream view: stream FLAKY: no answer to a direct get for 1s, though the stream has "
                        r"allow_direct on \(after 3,0\d\d messages\); is the server overloaded\?",
                        one_line_when(lambda: None, 3_000, "direct", reopen=False))
    # Direct get turned off in the middle of a read, or its stream deleted: its answers stop; the stream's own
    # state, looked at after the silence, says why (not asked again: a slow batch would start its scan again).
    monkeypatch.setattr(reader, "_STALL", 10.0)
    assert one_line_when(lambda: pynats_lab.stream_edit("FLAKY", allow_direct=False), 3_000, "direct") == \
        "%stream view: stream FLAKY: no answer to a direct get: allow_direct was turned off during the read; " \
        "read again (it reads by STREAM.MSG.GET then)"
    assert one_line_when(lambda: pynats_lab.stream_rm("BULKY"), 3_000, "direct", "BULKY", page=5_000) == \
        "%stream view: stream BULKY: no answer to a direct get: the stream was deleted during the read"
    assert one_line_when(lambda: s.run(s.nc.close()), 3_000, "msgget").startswith(
        "%stream view: stream FLAKY: the connection closed during the read (after ")
    pynats_lab.connect(srv.url)
    # The server gone for good: the read waits a while for it (60 s; 1 s here), then says so in one line.
    monkeypatch.setattr(reader, "_RECONNECT_WAIT", 1.0)
    assert one_line_when(srv.stop, 5_000, "msgget").startswith(
        "%stream view: stream FLAKY: the connection was lost and is not back after 1s (the read had ")
