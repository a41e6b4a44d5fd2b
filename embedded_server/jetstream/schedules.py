"""Message schedules (`allow_msg_schedules`, ADR-51): a message with a `Nats-Schedule` header is a schedule; when
it is due the stream stores a new message on its `Nats-Schedule-Target` (the schedule's own payload, or the last
message of `Nats-Schedule-Source`), marked `Nats-Scheduler: <schedule subject>` and `Nats-Schedule-Next:` the
next time or `purge` (a one-off `@at` schedule is then removed).

Forms as nats-server 2.14 parses them: `@at <RFC 3339>`, `@every <Go duration ≥ 1s>`, six-field cron
(`sec min hour dom month dow`, names, ranges, lists, steps) and `@yearly`/`@monthly`/`@weekly`/`@daily`/
`@hourly`, with `Nats-Schedule-Time-Zone` for cron. Due times live in memory and are rebuilt from the stored
schedule messages when the stream starts, so schedules survive a restart; one missed several times fires once.
"""
from __future__ import annotations

import datetime as _dt
import heapq

from . import filters, headers
from .clock import now_ns, parse_rfc3339
from .errors import api_error

SCHEDULE = b"Nats-Schedule"
TIME_ZONE = b"Nats-Schedule-Time-Zone"
SCHEDULE_TTL = b"Nats-Schedule-TTL"
SCHEDULE_ROLLUP = b"Nats-Schedule-Rollup"
TARGET = b"Nats-Schedule-Target"
SOURCE = b"Nats-Schedule-Source"
SCHEDULER = b"Nats-Scheduler"
NEXT = b"Nats-Schedule-Next"
PURGE = b"purge"
SECOND = 1_000_000_000

_PREDEFINED = {"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
               "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
               "@hourly": "0 0 * * * *"}
_MONTHS = {n: i for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                        "dec"), 1)}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_BOUNDS = ((0, 59, None), (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_STAR = 1 << 63


# -- patterns ----------------------------------------------------------------------------------------

def _number(text: str, names) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.lstrip("+-").isdigit() or int(text) < 0:
        raise ValueError(text)
    return int(text)


def _field(text: str, low: int, high: int, names) -> int:
    bits = 0
    for expr in [e for e in text.split(",") if e]:
        parts = expr.split("/")
        bounds = parts[0].split("-")
        extra = 0
        if bounds[0] in ("*", "?"):
            start, end, extra = low, high, _STAR
        else:
            start = _number(bounds[0], names)
            if len(bounds) == 1:
                end = start
            elif len(bounds) == 2:
                end = _number(bounds[1], names)
            else:
                raise ValueError(expr)
        if len(parts) == 1:
            step = 1
        elif len(parts) == 2:
            step = _number(parts[1], None)
            if len(bounds) == 1:
                end = high
            if step > 1:
                extra = 0
        else:
            raise ValueError(expr)
        if start < low or end > high or start > end or step == 0:
            raise ValueError(expr)
        for i in range(start, end + 1, step):
            bits |= 1 << i
        bits |= extra
    return bits


def _cron_next(pattern: str, tz, ts: int) -> int:
    """robfig/cron's Next as nats-server uses it: the first second after `ts` the six fields allow."""
    fields = pattern.split()
    if len(fields) != 6:
        raise ValueError(pattern)
    sec, minute, hour, dom, month, dow = (_field(f, *b) for f, b in zip(fields, _BOUNDS))
    t = _dt.datetime.fromtimestamp(ts // SECOND, tz) + _dt.timedelta(seconds=1)
    limit = t.year + 5

    def day_matches(t):
        dm, wm = bool(1 << t.day & dom), bool(1 << ((t.weekday() + 1) % 7) & dow)
        return dm and wm if (dom & _STAR or dow & _STAR) else dm or wm

    truncated = False
    while True:
        if t.year > limit:
            raise ValueError("pattern exceeds maximum range")
        if not 1 << t.month & month:
            if not truncated:
                truncated, t = True, t.replace(day=1, hour=0, minute=0, second=0)
            t = (t.replace(day=28) + _dt.timedelta(days=4)).replace(day=1)
            continue
        if not day_matches(t):
            if not truncated:
                truncated, t = True, t.replace(hour=0, minute=0, second=0)
            t = (t + _dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
            continue
        if not 1 << t.hour & hour:
            if not truncated:
                truncated, t = True, t.replace(minute=0, second=0)
            t = t + _dt.timedelta(hours=1)
            continue
        if not 1 << t.minute & minute:
            if not truncated:
                truncated, t = True, t.replace(second=0)
            t = t + _dt.timedelta(minutes=1)
            continue
        if not 1 << t.second & sec:
            truncated = True
            t = t + _dt.timedelta(seconds=1)
            continue
        return int(t.timestamp()) * SECOND


def _zone(hdr: bytes):
    """The schedule's time zone (None: none given); raises 10223 for an empty or unknown one."""
    tz = headers.get(hdr, TIME_ZONE)
    if tz is None:
        return None
    try:
        from zoneinfo import ZoneInfo

        if not tz:
            raise ValueError
        return ZoneInfo(tz.decode("utf-8", "replace"))
    except Exception:  # ZoneInfoNotFoundError, ValueError, a missing tz database
        raise api_error("JSMessageSchedulesTimeZoneInvalidErr") from None


def next_time(pattern: str, tz, ts: int, parse_duration) -> tuple[int, bool]:
    """(when it fires next in ns, repeating) for a schedule stored at / last fired at `ts`; ValueError if invalid."""
    if pattern.startswith("@at "):
        if tz is not None:
            raise ValueError("no time zone with @at")
        return parse_rfc3339(pattern[4:]), False
    if pattern.startswith("@every "):
        if tz is not None:
            raise ValueError("no time zone with @every")
        dur = parse_duration(pattern[7:])
        if dur is None or dur < SECOND:
            raise ValueError(pattern)
        nxt = (ts + SECOND // 2) // SECOND * SECOND + dur
        now = now_ns()
        if nxt < now:
            nxt = (now + SECOND // 2) // SECOND * SECOND + dur
        return nxt, True
    pattern = _PREDEFINED.get(pattern, pattern)
    zone = tz or _dt.timezone.utc
    nxt = _cron_next(pattern, zone, ts)
    now = now_ns()
    if nxt < now:
        nxt = _cron_next(pattern, zone, (now + SECOND // 2) // SECOND * SECOND)
    return nxt, True


def schedule_of(hdr: bytes | None, ts: int, parse_duration):
    """(next ns, repeating) of a schedule message, None if it has none; raises the pattern or zone error."""
    if not hdr:
        return None
    value = headers.get(hdr, SCHEDULE)
    if not value:
        return None
    tz = _zone(hdr)
    try:
        return next_time(value.decode("utf-8", "replace"), tz, ts, parse_duration)
    except (ValueError, OverflowError):
        raise api_error("JSMessageSchedulesPatternInvalidErr") from None


# -- the publish checks ------------------------------------------------------------------------------

def check_publish(st, subject: str, hdr: bytes) -> bytes:
    """nats-server's checks of a published schedule (or of a request to purge one); the header to store (a
    schedule rolls its subject up). Raises ApiError."""
    cfg = st.cfg
    allowed = bool(cfg.get("allow_msg_schedules"))
    get = headers.get
    try:
        sched = schedule_of(hdr, now_ns(), st.parse_duration)
    except Exception as e:
        if not allowed:
            raise api_error("JSMessageSchedulesDisabledErr") from None
        raise e
    if sched is not None:
        if not allowed:
            raise api_error("JSMessageSchedulesDisabledErr")
        ttl = get(hdr, SCHEDULE_TTL)
        if ttl:
            try:
                st.parse_msg_ttl(ttl)
            except Exception:
                raise api_error("JSMessageSchedulesTTLInvalidErr") from None
        rollup = get(hdr, SCHEDULE_ROLLUP)
        if rollup and rollup != b"sub":
            raise api_error("JSMessageSchedulesRollupInvalidErr")
        if ttl and not cfg.get("allow_msg_ttl"):
            raise api_error("JSMessageTTLDisabledErr")
        target = (get(hdr, TARGET) or b"").decode("utf-8", "replace")
        if not target or not filters.is_valid_publish_subject(target) or target == subject:
            raise api_error("JSMessageSchedulesTargetInvalidErr")
        source = (get(hdr, SOURCE) or b"").decode("utf-8", "replace")
        if source and (source in (target, subject) or not filters.is_valid_publish_subject(source)):
            raise api_error("JSMessageSchedulesSourceInvalidErr")
        stream_subjects = cfg.get("subjects") or ()
        if not any(filters.collide(s, target) for s in stream_subjects):
            raise api_error("JSMessageSchedulesTargetInvalidErr")
        if source and not any(filters.collide(s, source) for s in stream_subjects):
            raise api_error("JSMessageSchedulesSourceInvalidErr")
        rollup = get(hdr, headers.ROLLUP)
        if rollup is None or rollup == b"":
            hdr = headers.append(hdr, [(headers.ROLLUP, b"sub")])
        elif rollup != b"sub":
            raise api_error("JSMessageSchedulesRollupInvalidErr")
    nxt = get(hdr, NEXT)
    if nxt:
        if nxt != PURGE:
            raise api_error("JSMessageSchedulesSchedulerInvalidErr")
        scheduler = (get(hdr, SCHEDULER) or b"").decode("utf-8", "replace")
        if not scheduler or scheduler == subject or not filters.is_valid_publish_subject(scheduler):
            raise api_error("JSMessageSchedulesSchedulerInvalidErr")
        if not allowed:
            raise api_error("JSMessageSchedulesDisabledErr")
        last = st.store.load_last_msg(scheduler)
        if last is not None and not (last.hdr and get(last.hdr, SCHEDULE)):
            raise api_error("JSMessageSchedulesSchedulerInvalidErr")
    elif get(hdr, SCHEDULER):
        raise api_error("JSMessageSchedulesSchedulerInvalidErr")
    return hdr


def check_config(cfg: dict, pedantic: bool) -> None:
    if not cfg.get("allow_msg_schedules"):
        return
    if cfg.get("discard") == "new":
        raise api_error("JSStreamInvalidConfigF", err="message scheduling cannot use discard new")
    if not cfg.get("allow_rollup_hdrs"):
        if pedantic:
            raise api_error("JSStreamInvalidConfigF",
                            err="message scheduling cannot be set if roll-ups are disabled")
        cfg["allow_rollup_hdrs"], cfg["deny_purge"] = True, False


def after_store(st, hdr: bytes) -> None:
    """A stored message that ends a schedule (`Nats-Schedule-Next: purge` with its `Nats-Scheduler`) removes
    the schedule message, as nats-server's processJetStreamMsgWithRollup does."""
    if headers.get(hdr, NEXT) == PURGE:
        scheduler = headers.get(hdr, SCHEDULER)
        if scheduler:
            name = scheduler.decode("utf-8", "replace")
            st.purge(name)
            if st.scheduler is not None:
                st.scheduler.due.pop(name, None)


# -- firing ------------------------------------------------------------------------------------------

class Scheduler:
    """The due times of one stream's schedules and the timer that fires them."""

    def __init__(self, stream):
        self.stream = stream
        self.due: dict[str, tuple[int, int]] = {}  # schedule subject -> (seq, next ns)
        self._heap: list[tuple[int, str, int]] = []
        self._timer = None
        self._at = 0

    def rebuild(self) -> None:
        """At start: every stored schedule message (the last on its subject) becomes due again."""
        st = self.stream
        seq = st.store.first_seq
        while seq and seq <= st.store.last_seq:
            sm = st.store.load_next_msg((), seq)
            if sm is None:
                break
            seq = sm.seq + 1
            self.stored(sm.seq, sm.subject, sm.hdr, sm.ts)

    def stored(self, seq: int, subject: str, hdr: bytes | None, ts: int) -> None:
        """A message was stored: a schedule becomes due, a fired message moves or ends its schedule."""
        try:
            sched = schedule_of(hdr, ts, self.stream.parse_duration)
        except Exception:
            sched = None
        if sched is not None:
            self._set(subject, seq, sched[0])
        elif not (hdr and headers.get(hdr, SCHEDULER)):
            self.due.pop(subject, None)
        if hdr:
            nxt = headers.get(hdr, NEXT)
            scheduler = headers.get(hdr, SCHEDULER)
            if nxt and scheduler and nxt != PURGE:
                name = scheduler.decode("utf-8", "replace")
                entry = self.due.get(name)
                if entry is not None:
                    try:
                        self._set(name, entry[0], parse_rfc3339(nxt.decode()))
                    except ValueError:
                        pass

    def _set(self, subject: str, seq: int, at: int) -> None:
        self.due[subject] = (seq, at)
        heapq.heappush(self._heap, (at, subject, seq))
        self._arm()

    def _arm(self) -> None:
        while self._heap and self.due.get(self._heap[0][1]) != (self._heap[0][2], self._heap[0][0]):
            heapq.heappop(self._heap)
        if not self._heap:
            return
        at = self._heap[0][0]
        if self._timer is not None:
            if self._at <= at:
                return
            self._timer.cancel()
        self._at = at
        loop = self.stream.js.loop
        self._timer = loop.call_later(max(0.0, (at - now_ns()) / 1e9), self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        st = self.stream
        if st.closed:
            return
        now = now_ns()
        ready = []
        while self._heap and self._heap[0][0] <= now:
            at, subject, seq = heapq.heappop(self._heap)
            if self.due.get(subject) == (seq, at):
                ready.append((seq, subject, at))
        for seq, subject, at in sorted(ready):
            self._produce(seq, subject, at)
        self._arm()

    def _produce(self, seq: int, subject: str, at: int) -> None:
        st = self.stream
        sm = st.store.load_msg(seq)
        if sm is None or not sm.hdr:
            self.due.pop(subject, None)
            return
        hdr = sm.hdr
        get = headers.get
        try:
            nxt, repeat = next_time(get(hdr, SCHEDULE).decode("utf-8", "replace"), _zone(hdr), at,
                                    st.parse_duration)
        except Exception:
            self.due.pop(subject, None)
            return
        ttl = get(hdr, SCHEDULE_TTL)
        target = get(hdr, TARGET)
        if not target:
            self.due.pop(subject, None)
            return
        rollup = get(hdr, SCHEDULE_ROLLUP)
        body_hdr, data = hdr, sm.data
        source = get(hdr, SOURCE)
        if source:
            src = st.store.load_last_msg(source.decode("utf-8", "replace"))
            if src is not None:
                body_hdr, data = src.hdr, src.data
        out = _strip(body_hdr)
        pairs = [(SCHEDULER, subject.encode()),
                 (NEXT, PURGE if not repeat else _rfc3339_nano(nxt).encode())]
        if ttl:
            pairs.append((headers.TTL, ttl))
        if rollup:
            pairs.append((headers.ROLLUP, rollup))
        if not repeat:
            self.due.pop(subject, None)
        st._process_checked(target.decode("utf-8", "replace"), "", headers.append(out, pairs), data,
                            sourced=True)


def _strip(hdr: bytes | None) -> bytes | None:
    """The produced message's headers: no Nats-Schedule*, Nats-Expected-*, Nats-Msg-Id, Nats-TTL, Nats-Rollup."""
    if not hdr:
        return None
    lines = [ln for ln in hdr.split(b"\r\n")[1:] if ln]
    kept = [ln for ln in lines if not ln.startswith((b"Nats-Schedule", b"Nats-Expected-"))
            and ln.partition(b":")[0] not in (headers.MSG_ID, headers.TTL, headers.ROLLUP)]
    if not kept:
        return None
    return b"NATS/1.0\r\n" + b"\r\n".join(kept) + b"\r\n\r\n"


def _rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped)."""
    secs, frac = divmod(ns, SECOND)
    base = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return (f"{base}.{frac:09d}".rstrip("0") if frac else base) + "Z"
