"""Streams: add, list, inspect, edit, remove, purge, get one message, and view as DataFrames.

Every function returns what its magic shows: a nats-py `StreamInfo`, a DataFrame, or a `Done`. Viewing is
lazy and read-only (see reader.py): `StreamPager` fetches one page at a time, by sequence or time.
"""
from __future__ import annotations

import dataclasses
import numbers
import datetime as _dt
from typing import Any, Iterable

import nats.js.errors as jse
import pandas as pd
from nats.js.api import (DiscardPolicy, RePublish, RetentionPolicy, StorageType, StreamConfig, StreamInfo,
                         StreamConsumerSource, StreamSource, SubjectTransform)

from . import frames, tables
from . import reader as _reader
from .done import Done
from .errors import LabError, as_lab_error
from .reader import Batch, OrderedRead, StreamReader
from .session import Session, get_session, in_session
from .subjects import check_subject
from .tutorials import mark_config
from .units import parse_duration, parse_size, since_to_time

_ENUMS = {"storage": StorageType, "retention": RetentionPolicy, "discard": DiscardPolicy}
# natscli's names for the options a user types -> StreamConfig fields
_ALIASES = {"dupe_window": "duplicate_window", "replicas": "num_replicas", "max_msgs_per_subject":
            "max_msgs_per_subject", "max_msg_size": "max_msg_size", "allow_rollup": "allow_rollup_hdrs"}


def _enum(kind: str, value: Any):
    if value is None or isinstance(value, _ENUMS[kind]):
        return value
    try:
        return _ENUMS[kind](str(value).lower())
    except ValueError:
        choices = "|".join(e.value for e in _ENUMS[kind])
        raise LabError(f"invalid {kind} {value!r}: use {choices}") from None


def _pair(value: Any, flag: str) -> tuple[str, str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(value):
        raise LabError(f"{flag} wants a source and a destination subject, e.g. {flag} orders.* copy.orders.*")
    return str(value[0]), str(value[1])


def metadata_dict(value: Any) -> dict:
    """--metadata K=V (repeatable), or a dict, -> {K: V}."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value)
    out = {}
    for item in items:
        k, sep, v = str(item).partition("=")
        if not sep or not k.strip():
            raise LabError(f"invalid --metadata {item!r}: use KEY=VALUE")
        out[k.strip()] = v
    return out


def stream_source(spec: Any, flag: str = "--source", start_seq: int | None = None,
                  start_time: Any = None) -> StreamSource:
    """A mirror or source: "NAME", [NAME], [NAME, FILTER] or [NAME, FILTER, DEST] (FILTER stored as DEST, the
    wildcards carried over as in a subject transform), or a nats-py StreamSource taken as it is."""
    if isinstance(spec, StreamSource):
        return spec
    parts = spec.split() if isinstance(spec, str) else [str(p) for p in spec]
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise LabError(f"{flag} wants STREAM [FILTER [DEST]], e.g. {flag} ORDERS 'orders.eu.*' 'eu.$1'")
    if start_seq is not None and start_time is not None:
        raise LabError("give --start-seq or --start-time, not both")
    if start_seq is not None and start_seq < 1:
        raise LabError("--start-seq must be at least 1")
    src = StreamSource(name=parts[0], opt_start_seq=start_seq, opt_start_time=since_to_time(start_time))
    if len(parts) == 3:
        src.subject_transforms = [SubjectTransform(src=parts[1], dest=parts[2])]
    elif len(parts) == 2:
        src.filter_subject = parts[1]
    return src


def _sourcing_changes(options: dict) -> dict:
    """--mirror and --source (repeatable), with --start-seq / --start-time for each of them."""
    out: dict = {}
    start_seq, start_time = options.pop("start_seq", None), options.pop("start_time", None)
    mirror, sources = options.pop("mirror", None), options.pop("sources", None)
    if options.pop("no_mirror", None):
        out["mirror"] = None
    if mirror is not None:
        out["mirror"] = stream_source(mirror, "--mirror", start_seq, start_time)
    if sources is not None:
        items = [sources] if isinstance(sources, (str, StreamSource)) else list(sources)
        out["sources"] = [stream_source(x, "--source", start_seq, start_time) for x in items]
    if (start_seq is not None or start_time is not None) and mirror is None and sources is None:
        raise LabError("--start-seq and --start-time go with --mirror or --source")
    consumer = _source_consumer(options.pop("source_consumer", None), options.pop("source_deliver", None))
    if consumer is not None:
        if out.get("mirror") is not None and "sources" not in out:
            out["mirror"] = dataclasses.replace(out["mirror"], consumer=consumer)
        elif out.get("mirror") is None and len(out.get("sources") or ()) == 1:
            out["sources"] = [dataclasses.replace(out["sources"][0], consumer=consumer)]
        else:
            raise LabError("--source-consumer goes with --mirror or one --source")
    return out


def _source_consumer(name: str | None, deliver: str | None) -> StreamConsumerSource | None:
    """nats-server 2.14's durable sourcing: the origin's push consumer (ack policy flow_control) the mirror or
    source reads through, and the subject it delivers to."""
    if name is None and deliver is None:
        return None
    if not name or not deliver:
        raise LabError("--source-consumer NAME and --source-deliver SUBJECT go together")
    check_subject(deliver, "--source-deliver")
    return StreamConsumerSource(name=name, deliver_subject=deliver)


def _special_changes(options: dict) -> dict:
    """The settings that are not one StreamConfig field each: transform, republish, metadata, TTLs, sourcing."""
    out: dict = _sourcing_changes(options)
    headers_only = options.pop("republish_headers_only", None)
    if options.pop("no_transform", None):
        out["subject_transform"] = None
    if options.pop("no_republish", None):
        out["republish"] = None
    transform = options.pop("transform", None)
    if transform is not None:
        src, dest = _pair(transform, "--transform")
        out["subject_transform"] = SubjectTransform(src=src, dest=dest)
    republish = options.pop("republish", None)
    if republish is not None:
        src, dest = _pair(republish, "--republish")
        out["republish"] = RePublish(src=src, dest=dest, headers_only=True if headers_only else None)
    elif headers_only:
        raise LabError("--republish-headers-only goes with --republish SRC DEST")
    metadata = options.pop("metadata", None)
    if metadata is not None:
        out["metadata"] = metadata_dict(metadata)
    marker = options.pop("subject_delete_marker_ttl", None)
    if marker is not None:
        seconds = parse_duration(marker, "--subject-delete-marker-ttl")
        if seconds is not None and seconds < 1:
            raise LabError(f"invalid --subject-delete-marker-ttl {marker!r}: at least 1s")
        out["subject_delete_marker_ttl"] = seconds
    return out


def _config_changes(options: dict) -> dict:
    """User-level options (natscli names, '1h' and '10MB' strings) -> StreamConfig fields."""
    options = dict(options)
    out: dict = _special_changes(options)
    for key, value in options.items():
        if value is None:
            continue
        key = _ALIASES.get(key, key)
        if key in ("storage", "retention", "discard"):
            value = _enum(key, value)
        elif key in ("max_age", "duplicate_window"):
            value = parse_duration(value, key.replace("_", "-"))
        elif key in ("max_bytes", "max_msg_size"):
            value = parse_size(value, key.replace("_", "-"))
        elif key == "subjects" and isinstance(value, str):
            value = [s for s in value.replace(",", " ").split() if s]
        if key not in {f.name for f in dataclasses.fields(StreamConfig)}:
            raise LabError(f"unknown stream setting {key!r}")
        out[key] = value
    return out


@in_session
async def stream_add(s: Session, name: str, subjects: list[str] | str | None = None, *,
                     config: StreamConfig | None = None, **options: Any) -> StreamInfo:
    """Create a stream. Options use natscli's names: storage, retention, max_msgs, max_bytes, max_age,
    max_msg_size, max_msgs_per_subject, dupe_window, replicas, discard, allow_direct, description, ...
    `mirror="ORIGIN"` or `sources=["A", ["B", "b.>"], ["C", "c.*", "all.$1"]]` copy other streams (see
    `stream_source`), with `start_seq=` or `start_time=` where to begin, and `source_consumer=NAME,
    source_deliver=SUBJECT` to read the mirror or one source through the origin's durable push consumer (ack
    policy flow_control, nats-server 2.14+); `allow_msg_counter=True` makes a
    counter stream (`publish(..., incr=N)`).

    Streams created here allow direct get unless `allow_direct=False`, so `stream_view` pages fast."""
    cfg = dataclasses.replace(config) if config else StreamConfig()
    changes = _config_changes({"subjects": subjects, **options})
    cfg = dataclasses.replace(cfg, name=name, **changes)
    if cfg.storage is None:
        cfg.storage = StorageType.FILE
    if cfg.allow_direct is None:
        cfg.allow_direct = True
    if not cfg.subjects and cfg.mirror is None and not cfg.sources:
        cfg.subjects = [name]
    cfg = mark_config(s, cfg)
    try:
        return tables.added_stream(await s.js.add_stream(cfg))
    except jse.APIError as exc:
        if exc.err_code == 10058:
            asked = sorted({"subjects", "storage", *changes} - {"name"})
            raise as_lab_error(exc, await _exists_otherwise(s, cfg, asked, exc)) from None
        if exc.err_code == 10065:
            raise as_lab_error(exc, await _overlaps(s, cfg, exc)) from None
        raise


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if hasattr(value, "value"):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


async def _exists_otherwise(s: Session, cfg: StreamConfig, asked: list[str], exc) -> str:
    """Why an add met a stream of that name with other settings, and the three ways on."""
    name = cfg.name
    try:
        have = (await s.js.stream_info(name)).config
        differ = [f"{k} {_shown(getattr(have, k))} (asked {_shown(getattr(cfg, k))})" for k in asked
                  if getattr(have, k, None) != getattr(cfg, k)]
    except Exception:
        differ = []
    what = f": it has {'; '.join(differ)}" if differ else ""
    return (f"stream {name} already exists with other settings{what} ({exc.err_code}). Look at it with "
            f"%stream info {name}, change it with %stream edit {name}, or delete it and its messages with "
            f"%stream rm {name}")


async def _overlaps(s: Session, cfg: StreamConfig, exc) -> str:
    """Which existing streams hold the subjects an add asked for."""
    from .subjects import subjects_overlap

    holders = []
    try:
        for si in await s.js.streams_info():
            mine = [x for x in si.config.subjects or [] if any(subjects_overlap(x, y) for y in cfg.subjects)]
            if mine:
                holders.append(f"{si.config.name} ({', '.join(mine)})")
    except Exception:
        pass
    held = f": held by {'; '.join(holders)}" if holders else ""
    return (f"subjects overlap with an existing stream{held} ({exc.err_code}). Use other subjects, or "
            f"change or delete that stream (%stream edit / %stream rm)")


@in_session
async def stream_info(s: Session, name: str) -> StreamInfo:
    """The stream's configuration and state (messages, bytes, first/last sequence, consumers)."""
    return await s.js.stream_info(name)


@in_session
async def stream_names(s: Session) -> list[str]:
    return sorted(si.config.name for si in await s.js.streams_info())


@in_session
async def stream_ls(s: Session) -> pd.DataFrame:
    """All streams as a DataFrame (name, subjects, storage, retention, messages, bytes, ...)."""
    return frames.streams_frame(await s.js.streams_info())


@in_session
async def stream_edit(s: Session, name: str, **options: Any) -> StreamInfo:
    """Change settings of an existing stream (same option names as `stream_add`; `metadata` keys are added to
    the stream's, `no_transform` / `no_republish` remove those)."""
    current = (await s.js.stream_info(name)).config
    changes = _config_changes(options)
    if not changes:
        raise LabError("nothing to change: give at least one setting, e.g. --max-msgs 1000")
    if "metadata" in changes:
        changes["metadata"] = {**(current.metadata or {}), **changes["metadata"]}
    return await s.js.update_stream(dataclasses.replace(current, **changes))


@in_session
async def stream_rm(s: Session, name: str) -> Done:
    """Delete a stream and all its messages and consumers."""
    await s.js.delete_stream(name)
    return Done(f"deleted stream {name}", stream=name)


@in_session
async def stream_purge(s: Session, name: str, subject: str | None = None, keep: int | None = None,
                       seq: int | None = None) -> Done:
    """Remove messages: all, those on `subject`, all but the newest `keep`, or those before `seq`."""
    import json as _json

    # The server reads seq 0 as "not given" and purges everything: a typo must not empty a stream.
    if seq is not None and seq < 1:
        raise LabError(f"--seq must be at least 1 (messages before it are removed), not {seq}")
    if keep is not None and keep < 0:
        raise LabError(f"--keep must be 0 or more, not {keep}")
    if seq is not None and keep is not None:
        raise LabError("--seq and --keep do not go together: give one")
    req = {k: v for k, v in {"filter": subject, "keep": keep, "seq": seq}.items() if v is not None}
    msg = await s.nc.request(f"$JS.API.STREAM.PURGE.{name}", _json.dumps(req).encode(), timeout=10)
    resp = _json.loads(msg.data)
    if "error" in resp:
        import nats.js.errors as jse
        raise jse.APIError.from_error(resp["error"])
    purged = int(resp.get("purged", 0))
    what = f" on {subject}" if subject else ""
    return Done(f"purged {purged} message{'s' if purged != 1 else ''}{what} from {name}", purged=purged,
                stream=name)


@in_session
async def stream_rmm(s: Session, name: str, seq: int) -> Done:
    """Remove one message (natscli's `stream rmm`: erased, not only marked deleted). Says which it was."""
    from .reports import api_request

    if seq is None or int(seq) < 1:
        raise LabError(f"a message sequence is 1 or more, not {seq}")
    seq = int(seq)
    found = await api_request(s, f"$JS.API.STREAM.MSG.GET.{name}", {"seq": seq})
    subject = found["message"]["subject"]
    await api_request(s, f"$JS.API.STREAM.MSG.DELETE.{name}", {"seq": seq})
    return Done(f"removed message {seq} ({subject}) from {name}", stream=name, seq=seq, subject=subject)


@in_session
async def stream_get(s: Session, name: str, seq: int | None = None, last_for: str | None = None,
                     raw: bool = False) -> pd.DataFrame:
    """One stored message by sequence (or the last one on a subject) as a one-row DataFrame."""
    import nats.js.errors as jse

    if seq is None and not last_for:
        raise LabError("give a sequence number or --last-for SUBJECT")
    try:
        m = await s.js.get_msg(name, seq=seq, subject=last_for) if seq is None else \
            await s.js.get_msg(name, seq=seq)
    except jse.NotFoundError as exc:
        if getattr(exc, "err_code", None) == 10059:
            raise
        raise LabError(f"no message {seq if seq is not None else 'on ' + last_for} in stream {name}") from None
    return tables.lab_frame(frames.stored_frame([m.seq], [m.time], [m.subject], [m.data], [m.headers], raw))


class StreamPager:
    """Pages through a stream lazily: first, next, prev, last, goto(seq|time). Read-only.

    `page` is the current DataFrame (columns as `frames.STORED_COLUMNS`). Only `page_size` messages are
    fetched per move; moving back and to the end uses the server's pending counts, not a scan."""

    def __init__(self, stream: str, *, subject: str | None = None, start_seq: int | None = None,
                 since: Any = None, page_size: int = 100, raw: bool = False, session: Session | None = None):
        for what, value in (("page size", page_size), ("--id", start_seq)):
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)):
                raise LabError(f"{what} must be a whole number, not {value!r}")
        if subject:
            check_subject(subject, "--subject", wildcards=True)
        if page_size < 1:
            raise LabError("page size must be at least 1")
        if start_seq is not None and start_seq < 0:
            raise LabError(f"--id must be a sequence number, not {start_seq}")
        self.session = (session or get_session()).ensure()
        self.stream = stream
        self.subject = subject or None
        self.page_size = int(page_size)
        self.raw = raw
        self.reader = StreamReader(self.session, stream)
        self.page: pd.DataFrame = frames.empty_stored_frame()
        self.info: StreamInfo = self.session.run(self.session.js.stream_info(stream))
        self.reader.direct = bool(self.info.config.allow_direct)
        self.reader._state = self.info.state
        self._start_seq = start_seq
        self._start_time = since_to_time(since)

    # -- moves ----------------------------------------------------------------------------------
    def first(self) -> pd.DataFrame:
        return self._show(self._fetch(start_seq=1))

    def start(self) -> pd.DataFrame:
        """The page the pager was opened at (start_seq / since), else the first page."""
        if self._start_time is not None:
            return self._show(self._fetch(start_time=self._start_time))
        return self._show(self._fetch(start_seq=self._start_seq or 1))

    def goto(self, seq: int | None = None, since: Any = None) -> pd.DataFrame:
        if since is not None:
            return self._show(self._fetch(start_time=since_to_time(since)))
        return self._show(self._fetch(start_seq=max(int(seq or 1), 1)))

    def next(self) -> pd.DataFrame:
        if not len(self.page):
            return self.start()
        got = self._fetch(start_seq=int(self.page["seq"].iloc[-1]) + 1)
        return self._show(got) if len(got) else self.page

    def prev(self) -> pd.DataFrame:
        if not len(self.page):
            return self.last()
        return self._show(self._page_before(int(self.page["seq"].iloc[0])))

    def last(self) -> pd.DataFrame:
        self.refresh_info()
        return self._show(self._page_before(self.info.state.last_seq + 1))

    def newer(self) -> pd.DataFrame:
        """Messages stored after the current page (for live follow); does not move the page."""
        after = int(self.page["seq"].iloc[-1]) + 1 if len(self.page) else 1
        return self._frame(self._fetch(start_seq=after, count=10_000))

    def follow(self) -> pd.DataFrame:
        """Move to the newest page if new messages arrived; returns the (possibly unchanged) page."""
        before = int(self.page["seq"].iloc[-1]) if len(self.page) else 0
        self.refresh_info()
        if self.info.state.last_seq > before:
            return self.last()
        return self.page

    def refresh_info(self) -> StreamInfo:
        self.info = self.session.run(self.session.js.stream_info(self.stream))
        self.reader._state = self.info.state
        return self.info

    @property
    def position(self) -> str:
        st = self.info.state
        if not len(self.page):
            return f"{self.stream}: no messages{' on ' + self.subject if self.subject else ''} " \
                   f"(stream holds {st.messages}, seq {st.first_seq}..{st.last_seq})"
        return f"{self.stream}: seq {self.page['seq'].iloc[0]}..{self.page['seq'].iloc[-1]} " \
               f"({len(self.page)} shown; stream holds {st.messages}, seq {st.first_seq}..{st.last_seq})"

    def pages(self, start_seq: int = 1, up_to_seq: int | None = None,
              consumer: bool | None = None) -> Iterable[pd.DataFrame]:
        """Every page from `start_seq` on, one DataFrame at a time (whole-stream reads, searches).

        `consumer`: read through an ordered consumer (reader.OrderedRead; limits-retention streams only), or
        never (False: direct get / STREAM.MSG.GET, as pages are read). None: through a consumer when the
        stream has limits retention and at least `reader.CONSUMER_FROM` messages, if the server lets the lab
        make one; otherwise as pages."""
        read = self._open_consumer(start_seq, up_to_seq, consumer)
        if read is not None:
            yield from self._consumer_pages(read)
            return
        seq = start_seq
        while True:
            got = self.session.run(self.reader.fetch(seq, self.page_size, self.subject))
            if up_to_seq is not None:
                keep = sum(1 for x in got.seqs if x <= up_to_seq)
                got = Batch(got.seqs[:keep], got.times[:keep], got.subjects[:keep], got.headers[:keep],
                            got.payloads[:keep])
            if not len(got):
                return
            yield self._frame(got)
            seq = got.seqs[-1] + 1

    def _open_consumer(self, start_seq: int, up_to_seq: int | None, consumer: bool | None):
        """An opened OrderedRead for a bulk read, or None to read as pages (see `pages`)."""
        import nats.errors as ne

        if consumer is False:
            return None
        retention = getattr(self.info.config.retention, "value", self.info.config.retention) or "limits"
        if retention != "limits":
            if consumer:
                raise LabError(f"{self.stream} has {retention} retention: a consumer would change what it keeps "
                               "(read it with consumer=False)")
            return None
        if consumer is None and self.info.state.messages < _reader.CONSUMER_FROM:
            return None
        st = self.refresh_info().state
        if not st.messages:
            return None
        stop = min(up_to_seq, st.last_seq) if up_to_seq is not None else st.last_seq
        read = OrderedRead(self.reader, start_seq, self.subject, stop,
                           st.bytes / st.messages if st.messages else 256)
        try:
            self.session.run(read.open())
        except (jse.APIError, ne.TimeoutError, ne.NoRespondersError, LabError) as exc:
            if consumer:
                why = getattr(exc, "description", None) or str(exc)
                raise LabError(f"{self.stream}: no consumer to read it with: {why}; read it with consumer=False") \
                    from None
            return None  # not allowed here (account or stream consumer limit, permissions): read as pages
        return read

    def _consumer_pages(self, read: OrderedRead) -> Iterable[pd.DataFrame]:
        try:
            while True:
                got = self.session.run(read.take(self.page_size))
                if not len(got):
                    return
                yield self._frame(got)
        finally:
            self._close(read)

    def _close(self, read: OrderedRead) -> None:
        try:
            self.session.run(read.close(), timeout=10)
        except Exception:
            pass  # the server removes it after its inactive_threshold

    # -- internals ------------------------------------------------------------------------------
    def _fetch(self, start_seq: int | None = None, start_time: _dt.datetime | None = None,
               count: int | None = None, up_to_seq: int | None = None) -> Batch:
        count = count or self.page_size
        st = self.info.state
        if count >= _reader.CONSUMER_FROM and start_time is None and \
                min(up_to_seq or st.last_seq, st.last_seq) - max(start_seq or 1, st.first_seq) >= _reader.CONSUMER_FROM:
            # A page as large as a bulk read (--page-size 100000) is one.
            read = self._open_consumer(start_seq or 1, up_to_seq, None)
            if read is not None:
                try:
                    return self._run_read(lambda: read.take(count), count,
                                          lambda: len(read.records) + read.taken)
                finally:
                    self._close(read)
        return self._run_read(lambda: self.reader.fetch(start_seq, count, self.subject, start_time, up_to_seq),
                              count, lambda: self.reader.received)

    def _run_read(self, make, count: int, received) -> Batch:
        """Run the read `make()` of up to `count` messages; one of `_PROGRESS_FROM` or more shows a progress bar
        (on stdout, once it has taken a second) following `received()`."""
        if count < _PROGRESS_FROM:
            return self.session.run(make())
        from .progress import Following, bar

        total = min(count, self.info.state.messages) if not self.subject else None
        base = received()

        async def go() -> Batch:
            async with Following(bar(total, f"reading {self.stream}"), lambda: min(received() - base, total or count)):
                return await make()

        return self.session.run(go())

    def _page_before(self, seq: int) -> Batch:
        """The `page_size` matching messages just before `seq`."""
        if seq <= 1:
            return self._fetch(start_seq=1)
        if not self.subject:
            # Without a filter the page usually starts page_size before: one request, unless gaps.
            guess = self._fetch(start_seq=max(seq - self.page_size, 1), up_to_seq=seq - 1)
            if len(guess) >= self.page_size or seq - self.page_size <= self.info.state.first_seq:
                return guess
        start = self._start_for_count_before(seq)
        if start is not None:
            return self._fetch(start_seq=start, up_to_seq=seq - 1)
        # No cheap counts (no direct get): read backwards a window at a time, each as wide as the density seen so
        # far says the rest of the page needs (a quarter more), and never read a message twice.
        first = max(self.info.state.first_seq, 1)
        got, hi, window = Batch(), seq, self.page_size
        while True:
            lo = max(first, hi - window)
            part = self._fetch(start_seq=lo, count=max(hi - lo, 1), up_to_seq=hi - 1)
            part.extend(got)
            got = part
            if len(got) >= self.page_size or lo <= first:
                return got.tail(self.page_size)
            density = max(len(got), 1) / (seq - lo)
            window, hi = int((self.page_size - len(got)) / density * 1.25) + 1, lo

    def _start_for_count_before(self, seq: int) -> int | None:
        """Binary search a start sequence with exactly a page of matches in [start, seq)."""
        run = self.session.run
        after = run(self.reader.count_from(seq, self.subject))
        if after is None:
            return None
        lo, hi = max(self.info.state.first_seq, 1), seq - 1
        if lo > hi:
            return lo
        if run(self.reader.count_from(lo, self.subject)) - after <= self.page_size:
            return lo
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if run(self.reader.count_from(mid, self.subject)) - after >= self.page_size:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _frame(self, got: Batch) -> pd.DataFrame:
        return frames.stored_frame(got.seqs, got.times, got.subjects, got.payloads, got.headers, self.raw)

    def _show(self, got: Batch) -> pd.DataFrame:
        self.page = self._frame(got)
        return self.page


def stream_view(stream: str, *, id: int | None = None, since: Any = None, subject: str | None = None,
                page_size: int = 100, raw: bool = False, last: bool = False,
                session: Session | None = None) -> pd.DataFrame:
    """One page of a stream as a DataFrame, read without consuming anything (works on work-queue streams).

    `id` starts at a sequence, `since` at a time ("2h" ago, a datetime or ISO string), `subject` filters
    (wildcards allowed), `last` shows the newest page. Columns: seq, time, subject, data, headers, size,
    msg_id. A page of 50,000 messages or more shows a progress bar once it has taken a second."""
    pager = StreamPager(stream, subject=subject, start_seq=id, since=since, page_size=page_size, raw=raw,
                        session=session)
    page = pager.last() if last else pager.start()
    return tables.lab_frame(page, view_summary(pager, page, id=id, since=since))


def view_summary(pager: StreamPager, page: pd.DataFrame, *, id: int | None = None, since: Any = None) -> str:
    """The line over a page of a stream: where it is in the stream, or why it is empty."""
    st, name = pager.info.state, pager.stream
    on = f" on {pager.subject}" if pager.subject else ""
    if len(page):
        first, last = int(page["seq"].iloc[0]), int(page["seq"].iloc[-1])
        more = f"; next page: %stream view {name} --id {last + 1}" + (f" --subject {pager.subject}" if on else "") \
            if last < st.last_seq and len(page) >= pager.page_size else ""
        return (f"{name}: {len(page):,} message{'s' if len(page) != 1 else ''}{on}, seq {first}..{last} "
                f"(the stream holds {st.messages:,}, seq {st.first_seq}..{st.last_seq}){more}")
    if not st.messages:
        return f"{name} holds no messages yet"
    if id is not None and id > st.last_seq:
        return f"no message at or after seq {id}; the stream ends at {st.last_seq}"
    if since is not None and pager._start_time is not None:
        return (f"no message{on} since {pager._start_time.isoformat(timespec='seconds')}; the stream holds "
                f"{st.messages:,}, seq {st.first_seq}..{st.last_seq}")
    if on:
        subjects = ", ".join(pager.info.config.subjects or [])
        return (f"no message{on} in {name} (its {st.messages:,} messages are on {subjects}; a filter matches "
                "whole tokens, * one token, > the rest)")
    return f"no message in {name} from there (seq {st.first_seq}..{st.last_seq})"


_PROGRESS_FROM = 50_000  # a read at least this large shows a progress bar unless told not to


def stream_frame(stream: str, *, subject: str | None = None, raw: bool = False, page_size: int = 10_000,
                 progress: bool | None = None, consumer: bool | None = None,
                 session: Session | None = None) -> pd.DataFrame:
    """The whole stream (or its messages on `subject`) in one DataFrame. A read of 50,000 messages or more shows
    a progress bar (`progress=False`: never, `True`: always).

    A limits-retention stream of 10,000 messages or more is read through an ordered consumer (ephemeral,
    AckNone, deleted when the read ends), the fastest way on both servers; work-queue and interest streams,
    smaller ones and `consumer=False` are read with direct get or STREAM.MSG.GET and leave no trace.
    `consumer=True` asks for a consumer whatever the size."""
    import sys

    from tqdm.auto import tqdm

    pager = StreamPager(stream, subject=subject, page_size=page_size, raw=raw, session=session)
    total = pager.info.state.messages
    show = total >= _PROGRESS_FROM if progress is None else progress
    parts = []
    with _reader.gc_paused(), tqdm(total=None if subject else total, desc=f"reading {stream}", unit="msg",
                                   file=sys.stdout, disable=not show, leave=True) as bar:
        for part in pager.pages(consumer=consumer):
            parts.append(part)
            bar.update(len(part))
        whole = pd.concat(parts, ignore_index=True) if parts else frames.empty_stored_frame()
    on = f" on {subject}" if subject else ""
    if not len(whole):
        return tables.lab_frame(whole, f"{stream} holds no messages{on}")
    return tables.lab_frame(whole, f"{stream}: {len(whole):,} messages{on}, seq {whole['seq'].iloc[0]}.."
                                   f"{whole['seq'].iloc[-1]}")


def stream_tail(stream: str, *, subject: str | None = None, since: Any = None, start_seq: int | None = None,
                timeout: Any = None, interval: Any = "1s", raw: bool = False,
                session: Session | None = None) -> pd.DataFrame:
    """Print new messages as they are stored until Ctrl-C (or `timeout`); returns all that were shown.
    Starts after the current last message unless `since`/`start_seq` say otherwise; looks for new ones
    every `interval` (a duration). (Terminal --follow.)"""
    import time as _time

    from .units import parse_duration, parse_interval

    pause = parse_interval(interval)
    pager = StreamPager(stream, subject=subject, start_seq=start_seq, since=since, page_size=1000, raw=raw,
                        session=session)
    if since is not None or start_seq is not None:
        shown = [pager.start()]
    else:
        pager.page = frames.empty_stored_frame()
        shown = []
        last = pager.info.state.last_seq
        pager.page = pd.DataFrame({"seq": [last]}) if last else pager.page
    if shown and len(shown[0]):
        print(shown[0].to_string(index=False))
    limit = parse_duration(timeout, "--timeout")
    end = _time.monotonic() + limit if limit else None
    try:
        while end is None or _time.monotonic() < end:
            new = pager.newer()
            if len(new):
                print(new.to_string(index=False, header=not shown))
                shown.append(new)
                pager.page = new
            _time.sleep(pause)
    except KeyboardInterrupt:
        pass
    parts = [p for p in shown if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else frames.empty_stored_frame()
