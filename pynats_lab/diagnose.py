"""`consumer_why`: why a consumer delivers nothing (or too much twice), explained from what the server says.

Read-only, from the consumer's and stream's info (plus the stream's other consumers on interest and work-queue
streams, subject counts through `subjects_filter`, and kept MAX_DELIVERIES / MSG_TERMINATED advisories when a
stream captures them). Each check looks at one cause and, when it applies, says what it sees in numbers and
what to do, naming the magic that does it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .reports import API, _time, api_request, paged_list
from .session import Session, in_session
from .units import format_duration, parse_duration

COLUMNS = ["finding", "severity", "detail", "what to do"]
SEVERITIES = ("stuck", "warning", "info", "ok")  # worst first
_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER"


@dataclass
class Facts:
    """Everything the checks read, gathered once."""
    stream: str
    name: str
    ci: dict
    si: dict
    now: pd.Timestamp
    idle: float
    processing: float | None
    filter_counts: dict            # filter -> stored messages matching it (None: not asked)
    others: list                   # the stream's other consumers (interest / work-queue streams only)
    kept: dict                     # advisory kind -> (count, stream that keeps them)
    left_behind: tuple | None = None      # (count, seqs) stored at or below the ack floor, nobody acked them
    extra_deliveries: int | None = None   # deliveries beyond one per message (limits streams)

    @property
    def cfg(self) -> dict:
        return self.ci.get("config") or {}

    @property
    def state(self) -> dict:
        return self.si.get("state") or {}

    @property
    def who(self) -> str:
        return f"{self.stream} > {self.name}"

    @property
    def pull(self) -> bool:
        return not self.cfg.get("deliver_subject")

    @property
    def filters(self) -> list[str]:
        c = self.cfg
        return [c["filter_subject"]] if c.get("filter_subject") else list(c.get("filter_subjects") or [])

    def n(self, key: str) -> int:
        return int(self.ci.get(key) or 0)

    def seq(self, which: str, kind: str = "stream_seq") -> int:
        return int((self.ci.get(which) or {}).get(kind) or 0)

    def ago(self, which: str) -> float | None:
        """Seconds since the consumer's last delivery ("delivered") or last ack ("ack_floor"); None: never."""
        when = _time((self.ci.get(which) or {}).get("last_active"))
        return None if when is None else max((self.now - when).total_seconds(), 0.0)


def _ago_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return "just now" if seconds < 1 else f"{format_duration(round(seconds, 1))} ago"


def _collide(a: str, b: str) -> bool:
    """Whether some subject matches both patterns (`*` one token, `>` the rest)."""
    ta, tb = a.split("."), b.split(".")
    for i, (x, y) in enumerate(zip(ta, tb)):
        if x == ">" or y == ">":
            return True
        if x != y and x != "*" and y != "*":
            return False
    return len(ta) == len(tb)  # '>' needs a token of its own, so otherwise the lengths must agree


# -- the checks: each returns a list of (finding, severity, detail, what to do) ----------------------------
def check_paused(f: Facts) -> list:
    if not f.ci.get("paused"):
        return []
    until = _time(f.cfg.get("pause_until"))
    left = int(f.ci.get("pause_remaining") or 0) / 1e9
    return [("paused", "stuck",
             f"{f.who} is paused until {until:%Y-%m-%d %H:%M:%S} UTC ({format_duration(round(left))} from now): "
             f"the server delivers nothing to it until then; {f.n('num_pending'):,} messages wait.",
             f"%consumer resume {f.stream} {f.name} (or wait until the pause ends)")]


def check_max_ack_pending(f: Facts) -> list:
    limit = int(f.cfg.get("max_ack_pending") or 0)
    acking = f.cfg.get("ack_policy") not in (None, "none")
    pending, outstanding = f.n("num_pending"), f.n("num_ack_pending")
    if not acking or limit <= 0 or outstanding == 0:
        return []
    last_ack = f.ago("ack_floor")
    if outstanding >= limit:
        behind = f", and {pending:,} more are waiting behind them" if pending else ""
        return [("max_ack_pending reached", "stuck" if pending else "warning",
                 f"{outstanding:,} messages were delivered and not acknowledged, which is max_ack_pending "
                 f"({limit:,}){behind}: the server delivers nothing new until some are acknowledged, or their "
                 f"ack_wait ({format_duration(int(f.cfg.get('ack_wait') or 0) / 1e9)}) runs out and they are "
                 f"delivered again. Last acknowledgement: {_ago_text(last_ack)}.",
                 "make the workers acknowledge each message (msg.ack(); %consumer next acks by default), add "
                 f"workers, or raise the limit: %consumer edit {f.stream} {f.name} --max-pending "
                 f"{max(limit * 4, 1000)}")]
    if outstanding >= 0.8 * limit and pending:
        return [("max_ack_pending nearly reached", "warning",
                 f"{outstanding:,} of max_ack_pending {limit:,} messages are delivered and not acknowledged; "
                 f"at the limit delivery stops. Last acknowledgement: {_ago_text(last_ack)}.",
                 f"acknowledge faster or raise it: %consumer edit {f.stream} {f.name} --max-pending {limit * 4}")]
    return []


def check_pull_idle(f: Facts) -> list:
    if not f.pull or f.ci.get("paused"):
        return []
    pending, waiting, last = f.n("num_pending"), f.n("num_waiting"), f.ago("delivered")
    if waiting or not pending:
        return []
    limit = int(f.cfg.get("max_ack_pending") or 0)
    if limit > 0 and f.n("num_ack_pending") >= limit:
        return []  # pulling would not help: max_ack_pending is the cause
    if last is not None and last < f.idle:
        return [("no pull request right now", "info",
                 f"nothing is waiting on {f.who} at this moment, but its last delivery was {_ago_text(last)}; "
                 f"{pending:,} messages are left. Workers that fetch in batches look like this between batches.",
                 "nothing, if a worker fetches again soon")]
    when = "it has never delivered a message" if last is None else f"its last delivery was {_ago_text(last)}"
    return [("nobody is pulling", "stuck",
             f"{f.who} is a pull consumer with {pending:,} messages to deliver, no pull request waiting "
             f"(num_waiting 0), and {when}: a pull consumer delivers only to fetch requests, so nothing "
             "reads it.",
             f"start (or fix) the worker that fetches from it; to read by hand: %consumer next {f.stream} "
             f"{f.name} --count 10")]


def check_max_waiting(f: Facts) -> list:
    limit, waiting = int(f.cfg.get("max_waiting") or 0), f.n("num_waiting")
    if not f.pull or limit <= 0 or waiting < limit:
        return []
    return [("max_waiting reached", "warning",
             f"{waiting:,} pull requests are waiting on {f.who}, which is its max_waiting ({limit:,}): a further "
             "fetch is refused (409 Exceeded MaxWaiting) until one of them is answered or expires.",
             "fetch with an expiry (nats-py's fetch(timeout=...)) so requests do not pile up, use fewer workers, "
             f"or raise the limit: %consumer edit {f.stream} {f.name} --max-waiting {limit * 4}")]


def check_push_interest(f: Facts) -> list:
    if f.pull or f.ci.get("push_bound"):
        return []
    subject, group = f.cfg.get("deliver_subject"), f.cfg.get("deliver_group")
    pending = f.n("num_pending")
    listener = f"a queue subscription in group {group!r} on {subject}" if group else f"a subscription on {subject}"
    return [("push consumer without subscriber", "stuck" if pending else "warning",
             f"{f.who} is a push consumer that delivers to {subject}, and nothing subscribes there: the "
             f"server sends nothing while nobody listens; {pending:,} messages wait.",
             f"subscribe with {listener} (the application, or %consumer sub {f.stream} {f.name}); if the "
             "subject is wrong, make a consumer with the right --target")]


def _storable_subjects(cfg: dict) -> list[str] | None:
    """Patterns a stored message's subject can have; None when that cannot be told (mirrors, sources)."""
    if cfg.get("mirror") or cfg.get("sources"):
        return None
    subjects = list(cfg.get("subjects") or [])
    transform = cfg.get("subject_transform") or {}
    if transform.get("dest"):
        # a transform stores messages under its destination: {{wildcard(1)}}-style tokens become '*'
        subjects.append(".".join("*" if "{{" in t else t for t in transform["dest"].split(".")))
    return subjects or None


def check_filter(f: Facts) -> list:
    out = []
    stream_subjects = list((f.si.get("config") or {}).get("subjects") or [])
    storable = _storable_subjects(f.si.get("config") or {})
    for flt in f.filters:
        if storable and not any(_collide(flt, s) for s in storable):
            out.append(("filter outside the stream's subjects", "stuck",
                        f"filter {flt!r} matches none of the stream's subjects ({', '.join(stream_subjects)}): "
                        "no message can ever be stored there for this consumer.",
                        f"fix the filter: %consumer edit {f.stream} {f.name} --filter SUBJECT (see %stream "
                        f"subjects {f.stream})"))
            continue
        count = f.filter_counts.get(flt)
        if count == 0 and f.state.get("messages"):
            out.append(("filter matches no stored subject", "warning",
                        f"filter {flt!r} matches none of the {int(f.state.get('num_subjects') or 0):,} subjects "
                        f"holding the stream's {int(f.state['messages']):,} messages: nothing to deliver until a "
                        "message on it is stored (a typo, or the wrong token?).",
                        f"compare with %stream subjects {f.stream}; fix it with %consumer edit {f.stream} "
                        f"{f.name} --filter SUBJECT"))
    return out


def check_start_past_end(f: Facts) -> list:
    cfg, st = f.cfg, f.state
    last = int(st.get("last_seq") or 0)
    policy = cfg.get("deliver_policy")
    if policy == "by_start_sequence":
        start = int(cfg.get("opt_start_seq") or 0)
        if start > last + 1 and f.seq("delivered") < start:
            return [("start sequence past the stream's end", "stuck",
                     f"{f.who} starts at sequence {start:,} (deliver by_start_sequence), but the stream's last "
                     f"message is {last:,}: it skips the messages there and the next {start - last - 1:,} to be "
                     "stored, and delivers nothing until then.",
                     f"make the consumer again with --deliver all or --deliver {max(last, 1)} (a start sequence "
                     "cannot be edited)")]
    if policy == "by_start_time":
        start = _time(cfg.get("opt_start_time"))
        last_ts = _time(st.get("last_ts"))
        if start is not None and start > f.now and not f.n("num_pending"):
            return [("start time in the future", "stuck",
                     f"{f.who} starts at messages stored from {start:%Y-%m-%d %H:%M:%S} UTC, which is "
                     f"{format_duration(round((start - f.now).total_seconds()))} from now: nothing stored so far "
                     "is delivered.", "make the consumer again with an earlier --deliver time")]
        if start is not None and last_ts is not None and start > last_ts and not f.n("num_pending"):
            return [("start time after the last message", "info",
                     f"{f.who} starts at {start:%Y-%m-%d %H:%M:%S} UTC, after the stream's last message "
                     f"({last_ts:%Y-%m-%d %H:%M:%S} UTC): only messages stored from then on are delivered.",
                     "nothing, if only new messages are wanted; else --deliver all")]
    if policy in ("new", "last", "last_per_subject") and not f.n("num_pending") and not f.seq("delivered", "consumer_seq") \
            and int(st.get("messages") or 0):
        return [(f"deliver policy {policy}", "info",
                 f"{f.who} was made with deliver policy {policy!r}: the {int(st['messages']):,} messages stored "
                 "before it are not delivered" + (" (except the last)" if policy != "new" else "") + ".",
                 "nothing, if only new messages are wanted; else make it again with --deliver all")]
    return []


def check_max_deliver(f: Facts) -> list:
    max_deliver = int(f.cfg.get("max_deliver") or 0)
    if max_deliver <= 0 or f.cfg.get("ack_policy") == "none":
        return []
    out = []
    kept = f.kept.get("MAX_DELIVERIES")
    retention = (f.si.get("config") or {}).get("retention")
    left_behind = f.left_behind
    if kept and kept[0]:
        out.append(("messages exhausted max_deliver", "warning",
                    f"{kept[0]:,} message{'s' if kept[0] != 1 else ''} of {f.who} "
                    f"{'were' if kept[0] != 1 else 'was'} delivered {max_deliver} times (max_deliver) without "
                    f"an acknowledgement and are not delivered again (MAX_DELIVERIES advisories kept in stream "
                    f"{kept[1]}).", f"%stream view {kept[1]} --subject {_ADVISORY}.MAX_DELIVERIES.{f.stream}."
                    f"{f.name} shows which: fix what fails on them, then republish them, or raise --max-deliver"))
    elif left_behind:
        count, seqs = left_behind
        shown = ", ".join(str(s) for s in seqs[:10]) + (" …" if len(seqs) > 10 else "")
        some = "1 message" if count == 1 else f"{count:,} messages"
        out.append(("messages exhausted max_deliver", "warning",
                    f"{some} of this {retention} stream {'is' if count == 1 else 'are'} still stored behind "
                    f"{f.who}'s ack floor (sequence {f.seq('ack_floor'):,}), so nobody acknowledged "
                    f"{'it' if count == 1 else 'them'}: delivered {max_deliver} times (max_deliver) or "
                    f"terminated, and not delivered again. Sequences: {shown}.",
                    f"look at them (%stream get {f.stream} {seqs[0]}), fix what fails on them, then remove "
                    f"(%stream rmm {f.stream} SEQ) or republish them; or raise --max-deliver"))
    redelivered = f.n("num_redelivered")
    if redelivered and f.n("num_ack_pending"):  # with nothing pending the count is of messages already gone
        out.append(("messages being redelivered", "warning" if max_deliver > 1 else "info",
                    f"{redelivered:,} unacknowledged messages of {f.who} were delivered more than once; each is "
                    f"given up after {max_deliver} deliveries (max_deliver).",
                    "find out why they are not acknowledged (errors, naks, too short ack_wait)"))
    return out


def check_ack_wait(f: Facts) -> list:
    ack_wait = int(f.cfg.get("ack_wait") or 0) / 1e9
    if f.cfg.get("ack_policy") == "none" or not ack_wait:
        return []
    if f.processing is not None and f.processing > ack_wait:
        return [("ack_wait shorter than processing", "warning",
                 f"a message takes about {format_duration(f.processing)} to process but ack_wait is "
                 f"{format_duration(ack_wait)}: each one is delivered again while it is still being worked on.",
                 f"%consumer edit {f.stream} {f.name} --ack-wait {format_duration(max(f.processing * 2, 1))}, "
                 "or have the worker report progress (msg.in_progress()) while it works")]
    extra = f.extra_deliveries
    last_ack = f.ago("ack_floor")
    if extra and last_ack is not None and last_ack < max(f.idle, ack_wait * 4):
        return [("ack_wait shorter than processing", "warning",
                 f"{f.who} made {extra:,} deliveries more than it has messages (consumer sequence "
                 f"{f.seq('delivered', 'consumer_seq'):,} for {f.seq('delivered', 'consumer_seq') - extra:,} "
                 f"messages) while its workers are alive and acknowledging (last ack {_ago_text(last_ack)}): "
                 f"messages are delivered again after ack_wait ({format_duration(ack_wait)}) while still being "
                 "worked on, so they are processed twice (or they were nak'd).",
                 f"raise ack_wait above the slowest processing time: %consumer edit {f.stream} {f.name} "
                 f"--ack-wait {format_duration(max(ack_wait * 4, 30))}, or have the worker report progress "
                 "(msg.in_progress()) while it works")]
    return []


def check_removed_by_others(f: Facts) -> list:
    cfg = f.si.get("config") or {}
    retention = cfg.get("retention")
    if retention not in ("interest", "workqueue") or f.seq("delivered", "consumer_seq"):
        return []
    st = f.state
    gone_to = int(st.get("first_seq") or 1) - 1 if int(st.get("messages") or 0) else int(st.get("last_seq") or 0)
    if gone_to <= 0:
        return []
    mine = f.filters or [">"]

    def overlaps(o: dict) -> bool:
        c = o.get("config") or {}
        theirs = [c["filter_subject"]] if c.get("filter_subject") else list(c.get("filter_subjects") or []) or [">"]
        return any(_collide(a, b) for a in mine for b in theirs)

    others = [o for o in f.others if overlaps(o)]
    if f.filters and f.others and not others:
        return []  # the removed messages were other consumers' subjects, not this one's
    acked = [o for o in others if int((o.get("ack_floor") or {}).get("stream_seq") or 0) > 0]
    names = ", ".join(f"{o['name']} (acknowledged up to {int(o['ack_floor']['stream_seq']):,})" for o in acked)
    created = _time(f.ci.get("created"))
    why = {"interest": "an interest stream keeps a message only until the consumers that existed when it was "
                       "stored have acknowledged it",
           "workqueue": "a work-queue stream removes a message as soon as one consumer acknowledges it"}[retention]
    by = f"by {names}" if names else "by consumers no longer there (or they went by the stream's limits)"
    return [(f"messages removed by another consumer ({retention})", "warning" if not f.n("num_pending") else "info",
             f"sequences 1..{gone_to:,} are gone from {f.stream} and {f.who} (made {created:%Y-%m-%d %H:%M:%S} "
             f"UTC) has delivered none of them: {why}; they were acknowledged {by}. It delivers only messages "
             f"stored from now on{' (' + format(f.n('num_pending'), ',') + ' are there)' if f.n('num_pending') else ''}.",
             "make every consumer that must see a message before the message is published (durable consumers "
             "made at deploy time); if late readers must see history, use a limits stream (or one that sources "
             "this one)")]


def check_pinned(f: Facts) -> list:
    """pinned_client: a group pinned to a client that stopped asking leaves its stand-bys waiting until the pin
    times out (priority_timeout, 2 minutes unless set)."""
    if f.cfg.get("priority_policy") != "pinned_client" or f.ci.get("paused"):
        return []
    pending, waiting, last = f.n("num_pending"), f.n("num_waiting"), f.ago("delivered")
    timeout = int(f.cfg.get("priority_timeout") or 120_000_000_000) / 1e9
    rows = []
    for group in f.ci.get("priority_groups") or []:
        pin, name = group.get("pinned_client_id"), group.get("group")
        if not pin:
            continue
        since = _time(group.get("pinned_ts"))
        held = f" since {since:%H:%M:%S} UTC" if since is not None else ""
        if pending and waiting and (last is None or last >= f.idle):
            rows.append(("pinned client stopped asking", "stuck",
                         f"group {name} of {f.who} is pinned to client {pin}{held}; {waiting:,} pull request(s) "
                         f"and {pending:,} messages wait, but the last delivery was "
                         f"{_ago_text(last)}: the pinned client no longer asks, and the others are stand-bys "
                         f"until the pin times out after {format_duration(timeout)} without its requests.",
                         f"%consumer unpin {f.stream} {f.name} --group {name} (the next request takes the pin); "
                         f"for a quicker hand-over: --priority-timeout on a new consumer"))
        else:
            rows.append(("pinned client", "info",
                         f"group {name} of {f.who} is pinned to client {pin}{held}: it gets every message, "
                         f"requests without its Nats-Pin-Id wait as stand-bys (priority_timeout "
                         f"{format_duration(timeout)}).", "nothing"))
    return rows


CHECKS = (check_paused, check_max_ack_pending, check_pull_idle, check_max_waiting, check_push_interest, check_filter,
          check_start_past_end, check_max_deliver, check_ack_wait, check_removed_by_others, check_pinned)


# -- gathering -------------------------------------------------------------------------------------------
async def _kept_advisories(s: Session, stream: str, name: str) -> dict:
    """MAX_DELIVERIES / MSG_TERMINATED advisories of this consumer kept in some stream: (count, that stream)."""
    out = {}
    for kind in ("MAX_DELIVERIES", "MSG_TERMINATED"):
        subject = f"{_ADVISORY}.{kind}.{stream}.{name}"
        try:
            names = await api_request(s, f"{API}.STREAM.NAMES", {"subject": subject})
        except Exception:
            continue
        for keeper in names.get("streams") or []:
            info = await api_request(s, f"{API}.STREAM.INFO.{keeper}", {"subjects_filter": subject})
            count = sum(((info.get("state") or {}).get("subjects") or {}).values())
            out[kind] = (count, keeper)
            break
    return out


async def _left_behind(s: Session, f: Facts, limit: int = 10_000) -> tuple[int, list] | None:
    """Messages still stored at or below the ack floor of an interest / work-queue stream (nobody acked them)."""
    from .reader import StreamReader

    floor, first = f.seq("ack_floor"), int(f.state.get("first_seq") or 0)
    if not floor or first > floor or not int(f.state.get("messages") or 0):
        return None
    reader = StreamReader(s, f.stream, direct=bool((f.si.get("config") or {}).get("allow_direct")))
    seqs: list = []
    for flt in f.filters or [None]:
        got = await reader.fetch(first, limit, flt, up_to_seq=floor)
        seqs += got.seqs
    seqs = sorted(set(seqs))
    return (len(seqs), seqs) if seqs else None


def _extra_deliveries(f: Facts) -> int | None:
    """Deliveries beyond one per message, on a limits stream whose messages are all still there."""
    cfg = f.si.get("config") or {}
    if cfg.get("retention") not in (None, "limits") or f.cfg.get("deliver_policy") not in ("all", None):
        return None
    if int(f.state.get("first_seq") or 0) > 1 or int(f.state.get("num_deleted") or 0):
        return None
    total = sum(f.filter_counts.values()) if f.filters else int(f.state.get("messages") or 0)
    distinct = total - f.n("num_pending")
    extra = f.seq("delivered", "consumer_seq") - distinct
    return extra if distinct > 0 and extra > 0 else None


@in_session
async def consumer_why(s: Session, stream: str, name: str, *, idle: Any = "30s",
                       processing: Any = None) -> pd.DataFrame:
    """Why `stream > name` delivers nothing, or delivers twice: a DataFrame of findings (`finding`, `severity`
    stuck/warning/info/ok, `detail` with the numbers, `what to do`), worst first; `healthy` when nothing is
    wrong. `idle`: how long without a delivery counts as nobody pulling (default 30s); `processing`: how long
    a message takes to process, if known (checked against ack_wait). Read-only: no consumer is made, nothing
    acknowledged. `df.attrs["explanation"]` is the same as a short text."""
    idle_s = parse_duration(idle, "--idle") or 0.0
    processing_s = parse_duration(processing, "--processing") if processing is not None else None
    ci, si = await asyncio.gather(api_request(s, f"{API}.CONSUMER.INFO.{stream}.{name}"),
                                  api_request(s, f"{API}.STREAM.INFO.{stream}"))
    cfg = ci.get("config") or {}
    filters = [cfg["filter_subject"]] if cfg.get("filter_subject") else list(cfg.get("filter_subjects") or [])
    counts = {}
    for flt in filters:
        info = await api_request(s, f"{API}.STREAM.INFO.{stream}", {"subjects_filter": flt})
        counts[flt] = sum(((info.get("state") or {}).get("subjects") or {}).values())
    retention = (si.get("config") or {}).get("retention")
    others = []
    if retention in ("interest", "workqueue"):
        listed, _missing = await paged_list(s, f"{API}.CONSUMER.LIST.{stream}", "consumers")
        others = [o for o in listed if o.get("name") != name]
    now = pd.Timestamp(ci.get("ts") or pd.Timestamp.now(tz="UTC"))
    now = now.tz_convert("UTC") if now.tzinfo else now.tz_localize("UTC")
    facts = Facts(stream, name, ci, si, now, idle_s, processing_s, counts, others,
                  await _kept_advisories(s, stream, name) if int(cfg.get("max_deliver") or 0) > 0 else {})
    if retention in ("interest", "workqueue") and int(cfg.get("max_deliver") or 0) > 0:
        facts.left_behind = await _left_behind(s, facts)
    facts.extra_deliveries = _extra_deliveries(facts)
    rows = [row for check in CHECKS for row in check(facts)]
    if not any(sev in ("stuck", "warning") for _, sev, _, _ in rows):
        pending, acks = facts.n("num_pending"), facts.n("num_ack_pending")
        rows.insert(0, ("healthy", "ok",
                        f"{facts.who} delivers: {pending:,} messages to deliver, {acks:,} delivered and not yet "
                        f"acknowledged, last delivery {_ago_text(facts.ago('delivered'))}, last ack "
                        f"{_ago_text(facts.ago('ack_floor'))}.", "nothing"))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["severity"] = pd.Categorical(frame["severity"], categories=list(SEVERITIES), ordered=True)
    frame = frame.sort_values("severity", kind="stable", ignore_index=True)
    frame.attrs.update(stream=stream, consumer=name, explanation=explain(frame, facts.who))
    return frame


def explain(frame: pd.DataFrame, who: str) -> str:
    """A few lines of Markdown: the verdict, then each finding that matters with what to do."""
    worst = str(frame["severity"].iloc[0]) if len(frame) else "ok"
    verdict = {"stuck": "is stuck", "warning": "needs attention", "info": "is healthy", "ok": "is healthy"}[worst]
    lines = [f"**{who} {verdict}.**", ""]
    for row in frame.itertuples(index=False):
        if row.severity == "ok":
            lines.append(row.detail)
            continue
        lines.append(f"- **{row.finding}** ({row.severity}): {row.detail}  \n  *What to do:* {row[3]}")
    return "\n".join(lines)
