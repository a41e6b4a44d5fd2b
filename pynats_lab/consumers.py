"""Consumers: add (pull or push), list, inspect, fetch the next messages with ack/nak/term, subscribe,
remove, and replay a stream through a temporary consumer (what ConsumerReplay draws).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import json
import time
from typing import Any, AsyncIterator

import nats.js.errors as jse
import pandas as pd
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, ReplayPolicy, StreamInfo

from . import frames, progress, tables
from .done import Done
from .errors import LabError, as_lab_error
from .session import Session, in_session
from .subjects import check_subject
from .units import at_least_one, format_duration, parse_duration, since_to_time

_ACTIONS = ("ack", "nak", "term", "none")


def deliver_options(deliver: Any) -> dict:
    """natscli's --deliver: all, last, new, last-per-subject, a sequence number, or a duration/time ago."""
    if deliver is None or deliver == "":
        return {"deliver_policy": DeliverPolicy.ALL}
    if isinstance(deliver, int) or (isinstance(deliver, str) and deliver.isdigit()):
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": int(deliver)}
    if isinstance(deliver, (_dt.datetime,)):
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": since_to_time(deliver)}
    word = str(deliver).lower().replace("_", "-")
    named = {"all": DeliverPolicy.ALL, "last": DeliverPolicy.LAST, "new": DeliverPolicy.NEW,
             "last-per-subject": DeliverPolicy.LAST_PER_SUBJECT}
    if word in named:
        return {"deliver_policy": named[word]}
    try:
        start = since_to_time(deliver)
    except LabError:
        raise LabError(f"invalid --deliver {deliver!r}: use all, last, new, last-per-subject, a sequence "
                       "number or a duration like 1h") from None
    return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": start}


def _policy(enum_type, value: Any, flag: str):
    if value is None or isinstance(value, enum_type):
        return value
    try:
        return enum_type(str(value).lower())
    except ValueError:
        raise LabError(f"invalid {flag} {value!r}: use {'|'.join(e.value for e in enum_type)}") from None


def consumer_config(name: str | None = None, *, pull: bool = True, target: str | None = None,
                    deliver: Any = "all", ack: Any = "explicit", replay: Any = "instant",
                    filter: list[str] | str | None = None, max_deliver: int | None = None,
                    ack_wait: Any = None, max_ack_pending: int | None = None, max_waiting: int | None = None,
                    deliver_group: str | None = None, heartbeat: Any = None, flow_control: bool | None = None,
                    description: str | None = None, inactive_threshold: Any = None,
                    durable: bool = True) -> ConsumerConfig:
    """A nats-py ConsumerConfig from natscli-style options."""
    if not pull and not target:
        raise LabError("a push consumer needs --target SUBJECT (where it delivers)")
    if pull and target:
        raise LabError("--target is for push consumers: add --push")
    ack_fc = str(getattr(ack, "value", ack)).lower() == "flow_control"
    if ack_fc and pull:
        raise LabError("--ack flow_control is for push consumers: add --push --target SUBJECT")
    if ack_fc:  # what nats-server 2.14 wants of it: flow control with a 1 s heartbeat
        flow_control, heartbeat = True, "1s" if heartbeat is None else heartbeat
    filters = [filter] if isinstance(filter, str) else list(filter or [])
    for f in filters:
        check_subject(f, "--filter", wildcards=True)
    start = deliver_options(deliver)
    if not filters and start["deliver_policy"] == DeliverPolicy.LAST_PER_SUBJECT:
        filters = [">"]  # the server wants a filter for last-per-subject; natscli gives '>' too
    cfg = ConsumerConfig(
        name=name, durable_name=name if durable else None, description=description,
        ack_policy=_policy(AckPolicy, ack, "--ack"), replay_policy=_policy(ReplayPolicy, replay, "--replay"),
        max_deliver=max_deliver, ack_wait=parse_duration(ack_wait, "--ack-wait"),
        max_ack_pending=max_ack_pending, max_waiting=max_waiting if pull else None,
        deliver_subject=None if pull else target, deliver_group=None if pull else deliver_group,
        idle_heartbeat=parse_duration(heartbeat, "--heartbeat"), flow_control=flow_control or None,
        inactive_threshold=parse_duration(inactive_threshold, "--inactive-threshold"),
        **start,
    )
    if len(filters) == 1:
        cfg.filter_subject = filters[0]
    elif filters:
        cfg.filter_subjects = filters
    return cfg


@in_session
async def consumer_add(s: Session, stream: str, name: str | None = None, *, config: ConsumerConfig | None = None,
                       priority_policy: str | None = None, priority_groups: list[str] | str | None = None,
                       priority_timeout: Any = None, **options: Any) -> ConsumerInfo:
    """Create a consumer (durable when named). Options as natscli: pull (default) or push with target,
    deliver, ack, replay, filter, max_deliver, ack_wait, max_ack_pending, heartbeat, flow_control; priority
    groups (nats-server 2.11+): priority_policy (overflow, pinned_client, prioritized), priority_groups,
    priority_timeout (pinned_client: how long a pin lasts without requests)."""
    cfg = config or consumer_config(name, **options)
    try:
        return await _add_consumer(s, stream, cfg, priority_policy, priority_groups, priority_timeout)
    except jse.APIError as exc:
        # 10012 is also the answer to a bad config; only a durable that exists gets the hint
        if exc.err_code == 10012 and cfg.durable_name:
            hint = await _exists_otherwise(s, stream, cfg, exc)
            if hint:
                raise as_lab_error(exc, hint) from None
        raise


def _setting(field: str, value: Any) -> str:
    if hasattr(value, "value"):
        value = value.value
    if field in ("ack_wait", "idle_heartbeat", "inactive_threshold") and isinstance(value, (int, float)):
        return format_duration(value)
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if value is None:
        return "none (pull)" if field == "deliver_subject" else "unset"
    return str(value)


async def _exists_otherwise(s: Session, stream: str, cfg: ConsumerConfig, exc) -> str | None:
    """Why an add met a consumer of that name with settings that cannot change, and the ways on; None if no
    such consumer exists (then the refusal was about the config itself). Settings that can change are changed
    by the add itself, as nats-server updates a durable created again."""
    name = cfg.durable_name
    try:
        have = (await s.js.consumer_info(stream, name)).config
    except Exception:
        return None
    differ = [f"{f.name} {_setting(f.name, getattr(have, f.name))} (asked {_setting(f.name, getattr(cfg, f.name))})"
              for f in dataclasses.fields(cfg) if f.name not in ("name", "durable_name")
              and (getattr(cfg, f.name) is not None or f.name == "deliver_subject")  # none asked: pull
              and getattr(cfg, f.name) != getattr(have, f.name)]
    what = f" with {'; '.join(differ)}" if differ else ""
    return (f"consumer {name} on {stream} exists{what}; {exc.description} ({exc.err_code}). %consumer edit "
            f"{stream} {name} cannot change that either: %consumer rm {stream} {name} and add it again (it starts "
            f"over), or pick another name")


async def _add_consumer(s: Session, stream: str, cfg: ConsumerConfig, priority_policy, priority_groups,
                        priority_timeout) -> ConsumerInfo:
    if priority_policy is None and not priority_groups and priority_timeout is None:
        return tables.added_consumer(await s.js.add_consumer(stream, cfg))
    from .reports import api_request

    # nats-py's ConsumerConfig has no priority fields: the request is sent as JSON with them added.
    body = cfg.as_dict()
    if priority_policy is not None:
        body["priority_policy"] = priority_policy
    if priority_groups:
        body["priority_groups"] = [priority_groups] if isinstance(priority_groups, str) else list(priority_groups)
    if priority_timeout is not None:
        body["priority_timeout"] = int(parse_duration(priority_timeout, "--priority-timeout") * 1e9)
    subject = f"$JS.API.CONSUMER.CREATE.{stream}" + (f".{cfg.name}" if cfg.name else "")
    resp = await api_request(s, subject, {"stream_name": stream, "config": body})
    return tables.added_consumer(with_priority(resp))


def with_priority(resp: dict) -> ConsumerInfo:
    """nats-py's ConsumerInfo of a consumer info answer, with the priority group fields it drops kept under
    nats-server's names: config.priority_policy, .priority_groups, .priority_timeout (seconds, as nats-py gives
    ack_wait) and info.priority_groups, each group's state ({group, pinned_client_id, pinned_ts})."""
    cfg = dict(resp.get("config") or {})
    info = ConsumerInfo.from_response(resp)
    if cfg.get("priority_policy"):
        info.config.priority_policy = cfg["priority_policy"]
    if cfg.get("priority_groups"):
        info.config.priority_groups = list(cfg["priority_groups"])
    if cfg.get("priority_timeout"):
        info.config.priority_timeout = cfg["priority_timeout"] / 1e9
    if resp.get("priority_groups"):
        info.priority_groups = [dict(g) for g in resp["priority_groups"]]
    return info


@in_session
async def consumer_ls(s: Session, stream: str) -> pd.DataFrame:
    """The stream's consumers with their backlog (pending, ack pending, redelivered, waiting) and priority
    groups (`priority`, `pinned`), read from the server's JSON as `consumer_info` does."""
    from .reports import API, paged_list

    infos, _missing = await paged_list(s, f"{API}.CONSUMER.LIST.{stream}", "consumers")
    return frames.consumers_frame(with_priority(resp) for resp in infos)


@in_session
async def consumer_info(s: Session, stream: str, name: str) -> ConsumerInfo:
    """A consumer's configuration and state (delivered, ack floor, pending, ack pending, redelivered), with
    its priority policy, groups and each group's pinned client (see `with_priority`)."""
    from .reports import api_request

    resp = await api_request(s, f"$JS.API.CONSUMER.INFO.{stream}.{name}")
    return with_priority(resp)


# natscli's names for the settings `consumer_edit` can change -> the server's config fields
_EDITABLE = {"description": "description", "ack_wait": "ack_wait", "max_deliver": "max_deliver",
             "max_ack_pending": "max_ack_pending", "max_pending": "max_ack_pending", "max_waiting": "max_waiting",
             "filter": "filter_subject", "heartbeat": "idle_heartbeat", "inactive_threshold": "inactive_threshold",
             "metadata": "metadata", "backoff": "backoff", "sample": "sample_freq",
             "headers_only": "headers_only", "target": "deliver_subject"}
_NANOS = {"ack_wait", "idle_heartbeat", "inactive_threshold"}


def _shown(field: str, value: Any) -> str:
    if field == "metadata" and value:
        value = {k: v for k, v in value.items() if not k.startswith("_nats")}
    if value in (None, "", [], {}):
        return "unset"
    if field in _NANOS:
        return format_duration(int(value) / 1e9)
    if field == "backoff":
        return "[" + ", ".join(format_duration(int(v) / 1e9) for v in value) + "]"
    return str(value)


@in_session
async def consumer_edit(s: Session, stream: str, name: str, **options: Any) -> Done:
    """Change a consumer's editable settings (natscli's `consumer edit`): description, ack_wait, max_deliver,
    max_ack_pending (max_pending), max_waiting, filter (one subject or several), heartbeat,
    inactive_threshold, backoff (durations), metadata (K=V, added), sample, headers_only, target (push).
    Returns what changed, old -> new; the server refuses what cannot change (its error text)."""
    from .reports import api_request
    from .streams import metadata_dict

    changes = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise LabError(f"cannot edit {', '.join(unknown)}: editable are {', '.join(sorted(_EDITABLE))}")
    if not changes:
        raise LabError("nothing to change: give at least one setting, e.g. --max-pending 1000")
    info = await api_request(s, f"$JS.API.CONSUMER.INFO.{stream}.{name}")
    old = dict(info["config"])
    new = dict(old)
    for key, value in changes.items():
        field = _EDITABLE[key]
        if field in _NANOS:
            value = int(parse_duration(value, "--" + key.replace("_", "-")) * 1e9)
        elif field == "backoff":
            items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
            value = [int(parse_duration(v, "--backoff") * 1e9) for v in items]
        elif field == "metadata":
            value = {**(old.get("metadata") or {}), **metadata_dict(value)}
        elif field == "filter_subject":
            filters = [value] if isinstance(value, str) else list(value)
            new.pop("filter_subject", None)
            new.pop("filter_subjects", None)
            if len(filters) == 1:
                value = filters[0]
            else:
                new["filter_subjects"] = filters
                continue
        new[field] = value
    resp = await api_request(s, f"$JS.API.CONSUMER.CREATE.{stream}.{name}",
                             {"stream_name": stream, "config": new, "action": "update"})
    after = resp["config"]
    changed = [(f, old.get(f), after.get(f)) for f in sorted(set(old) | set(after))
               if old.get(f) != after.get(f) and not f.startswith("_")]
    changed = [c for c in changed if c[0] != "metadata" or
               {k: v for k, v in (c[1] or {}).items() if not k.startswith("_nats")} !=
               {k: v for k, v in (c[2] or {}).items() if not k.startswith("_nats")}]
    if not changed:
        return Done(f"{stream} > {name}: nothing changed (the settings given were already so)", changed={})
    lines = "; ".join(f"{f} {_shown(f, a)} -> {_shown(f, b)}" for f, a, b in changed)
    return Done(f"edited {stream} > {name}: {lines}", changed={f: (a, b) for f, a, b in changed})


def pause_time(until: Any) -> _dt.datetime:
    """--until: a duration from now (1h30m) or a time (ISO, or natscli's '2006-01-02 15:04:05'; naive is UTC)."""
    if isinstance(until, _dt.datetime):
        return until if until.tzinfo else until.replace(tzinfo=_dt.timezone.utc)
    text = str(until).strip()
    try:
        return _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=parse_duration(text, "--until"))
    except LabError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LabError(f"invalid --until {until!r}: use a duration (2h) or a time (2026-01-02 15:04:05, UTC)") \
            from None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


@in_session
async def consumer_pause(s: Session, stream: str, name: str, until: Any) -> Done:
    """Pause a consumer until a time or for a duration (nats-server 2.11+): it delivers nothing meanwhile."""
    from .reports import api_request
    from .units import rfc3339

    when = pause_time(until)
    resp = await api_request(s, f"$JS.API.CONSUMER.PAUSE.{stream}.{name}", {"pause_until": rfc3339(when)})
    if not resp.get("paused"):
        raise LabError(f"{stream} > {name} did not pause: {when:%Y-%m-%d %H:%M:%S} UTC is in the past")
    left = int(resp.get("pause_remaining") or 0) / 1e9
    return Done(f"paused {stream} > {name} until {when:%Y-%m-%d %H:%M:%S} UTC ({format_duration(round(left))})",
                stream=stream, consumer=name, until=when)


@in_session
async def consumer_resume(s: Session, stream: str, name: str) -> Done:
    """Resume a paused consumer now."""
    from .reports import api_request

    info = await api_request(s, f"$JS.API.CONSUMER.INFO.{stream}.{name}")
    if not info.get("paused"):
        return Done(f"{stream} > {name} was not paused: nothing changed", stream=stream, consumer=name)
    was = pd.Timestamp(info["config"].get("pause_until")).tz_convert("UTC")
    await api_request(s, f"$JS.API.CONSUMER.PAUSE.{stream}.{name}", {})
    return Done(f"resumed {stream} > {name} (it was paused until {was:%Y-%m-%d %H:%M:%S} UTC)", stream=stream,
                consumer=name)


@in_session
async def consumer_rm(s: Session, stream: str, name: str) -> Done:
    await s.js.delete_consumer(stream, name)
    return Done(f"deleted consumer {name} on {stream}", stream=stream, consumer=name)


async def _settle(msg, action: str, ack_policy) -> str | None:
    if action == "none" or ack_policy == AckPolicy.NONE:
        return None
    if action == "ack":
        await msg.ack()
    elif action == "nak":
        await msg.nak()
    elif action == "term":
        await msg.term()
    return action


@in_session
async def consumer_next(s: Session, stream: str, name: str, *, count: int = 1, action: str = "ack",
                        timeout: Any = 2.0, raw: bool = False, group: str | None = None,
                        min_pending: int | None = None, min_ack_pending: int | None = None,
                        priority: int | None = None, pin_id: str | None = None) -> pd.DataFrame:
    """Pull the next `count` messages from a pull consumer and ack (or nak, term, leave: action='none')
    each. Columns: the stored ones plus consumer_seq, delivered, pending, received, and `acked`.
    A consumer with priority groups needs `group`; with it go min_pending / min_ack_pending (overflow),
    priority (prioritized, 0-9) and pin_id (pinned_client: the Nats-Pin-Id the messages came with)."""
    if action not in _ACTIONS:
        raise LabError(f"invalid action {action!r}: use {', '.join(_ACTIONS)}")
    info = await s.js.consumer_info(stream, name)
    if info.config.deliver_subject:
        raise LabError(f"{name} is a push consumer: use %consumer sub {stream} {name}")
    at_least_one(count, "--count")
    limit = parse_duration(timeout, "--timeout") or 2.0
    wants = {"group": group, "min_pending": min_pending, "min_ack_pending": min_ack_pending, "priority": priority,
             "id": pin_id}
    if any(v is not None for v in wants.values()):
        if not group:
            raise LabError("--min-pending, --min-ack-pending, --priority and --pin-id go with --group G")
        return await _next_in_group(s, stream, name, info, {k: v for k, v in wants.items() if v is not None},
                                    count, action, limit, raw)
    psub = await s.js.pull_subscribe_bind(durable=name, stream=stream)
    msgs, received, settled = [], [], []
    shown = progress.bar(count, f"{stream} > {name}", enabled=None if count > 1 else False)
    try:
        async with progress.Following(shown, lambda: len(msgs)):
            deadline = time.monotonic() + limit
            while len(msgs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    got = await psub.fetch(count - len(msgs), timeout=left)
                except asyncio.TimeoutError:
                    break
                now = time.time()
                msgs.extend(got)
                received.extend([now] * len(got))
                # Settle each batch as it arrives: waiting for the rest could outlast a short ack_wait.
                settled.extend([await _settle(m, action, info.config.ack_policy) for m in got])
                await s.nc.flush()
    finally:
        await psub.unsubscribe()
    frame = frames.consumed_frame(msgs, received, raw)
    frame["acked"] = pd.Series(settled, dtype=object)
    if len(frame):
        verb = {"ack": "acknowledged", "nak": "asked to be redelivered", "term": "terminated",
                "none": "left unacknowledged"}.get(action, action)
        line = (f"{len(frame):,} message{'s' if len(frame) != 1 else ''} from {stream} > {name}, {verb}; "
                f"{int(frame['pending'].iloc[-1]):,} more pending")
    else:
        line = await _why_nothing(s, stream, name, limit)
    return tables.lab_frame(frame, line, columns=CONSUMED_SHOWN)


async def _next_in_group(s: Session, stream: str, name: str, info, fields: dict, count: int, action: str,
                         limit: float, raw: bool) -> pd.DataFrame:
    """consumer_next for a priority group: one pull request with the group's fields (nats-py's fetch has none)."""
    inbox = s.nc.new_inbox()
    sub = await s.nc.subscribe(inbox)
    body = {"batch": count, "expires": int(limit * 1e9), **fields}
    msgs, received, settled, status = [], [], [], ""
    try:
        await s.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}", json.dumps(body).encode(), reply=inbox)
        while len(msgs) < count:
            try:
                msg = await sub.next_msg(timeout=limit + 1)
            except asyncio.TimeoutError:
                break
            code = (msg.headers or {}).get("Status")
            if code:
                status = f"{code} {(msg.headers or {}).get('Description', '')}".strip()
                break
            msgs.append(msg)
            received.append(time.time())
            settled.append(await _settle(msg, action, info.config.ack_policy))
        await s.nc.flush()
    finally:
        await sub.unsubscribe()
    if status[:3] not in ("", "404", "408"):
        raise LabError(f"{stream} > {name} refused the pull request for group {fields['group']}: {status}")
    frame = frames.consumed_frame(msgs, received, raw)
    frame["acked"] = pd.Series(settled, dtype=object)
    pins = {(m.headers or {}).get("Nats-Pin-Id") for m in msgs} - {None}
    if msgs:
        line = f"{len(msgs):,} message{'s' if len(msgs) != 1 else ''} from {stream} > {name} (group {fields['group']})"
        if pins:
            line += f", pinned as {', '.join(sorted(pins))} (pass --pin-id to keep the pin)"
    else:
        line = (f"nothing from {stream} > {name} for group {fields['group']} within {format_duration(limit)} "
                f"({status or 'no answer'})")
    return tables.lab_frame(frame, line, columns=CONSUMED_SHOWN)


@in_session
async def consumer_unpin(s: Session, stream: str, name: str, group: str) -> Done:
    """Release the pinned client of a priority group (pinned_client policy): the next request gets the pin."""
    from .reports import api_request

    await api_request(s, f"$JS.API.CONSUMER.UNPIN.{stream}.{name}", {"group": group})
    return Done(f"unpinned group {group} of {stream} > {name}", stream=stream, consumer=name, group=group)


@in_session
async def consumer_reset(s: Session, stream: str, name: str, seq: int | None = None) -> Done:
    """Move a consumer back to its ack floor, or to stream sequence `seq` (as its deliver policy allows): what it
    had delivered and not acknowledged is forgotten and delivered again from there (nats-server 2.14+)."""
    import nats.errors

    from .reports import api_request

    if seq is not None and seq < 1:
        raise LabError(f"invalid --seq {seq}: a stream sequence is 1 or more")
    try:
        resp = await api_request(s, f"$JS.API.CONSUMER.RESET.{stream}.{name}",
                                 {"seq": seq} if seq is not None else None, timeout=2)
    except (asyncio.TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
        await api_request(s, f"$JS.API.CONSUMER.INFO.{stream}.{name}")   # says which is missing, if one is
        raise LabError(f"{stream} > {name} did not answer the reset: the server has no consumer reset "
                       "(nats-server 2.14 added it)") from None
    at = resp["reset_seq"]
    return Done(f"reset {stream} > {name}: delivers from stream sequence {at} on", stream=stream, consumer=name,
                reset_seq=at)


# The columns worth the eye in a table of deliveries; the others (size, consumer_seq, received) stay in
# the DataFrame and are named under it.
CONSUMED_SHOWN = ["seq", "time", "subject", "data", "headers", "msg_id", "delivered", "pending", "acked"]


async def _why_nothing(s: Session, stream: str, name: str, limit: float) -> str:
    info = await s.js.consumer_info(stream, name)
    messages = (await s.js.stream_info(stream)).state.messages
    waited = f"no message for {name} within {limit:g}s"
    if not messages:
        return f"{waited}: {stream} holds no messages"
    if info.num_ack_pending and info.config.ack_policy == AckPolicy.FLOW_CONTROL:
        return (f"{waited}: {info.num_ack_pending:,} delivered and not acknowledged (ack flow_control: only the "
                f"answer to a flow control request acknowledges, up to the sequences it names), none new")
    if info.num_ack_pending:
        return (f"{waited}: {info.num_ack_pending:,} delivered and waiting for an ack (redelivered after "
                f"ack wait), none new")
    return f"{waited}: all of {stream}'s messages this consumer selects were delivered already"


class FlowControlAcks:
    """Acks of an `ack flow_control` consumer (nats-server 2.14+): the server takes no per-message acks; it
    counts as acknowledged everything up to the sequences the answer to its flow control request names
    (`Nats-Last-Consumer`, `Nats-Last-Stream`). `taken` is the last message processed; `acked` what the
    server was last told."""

    WAIT = 3.0  # a request comes with the next heartbeat (1 s for this policy) while messages are pending

    def __init__(self) -> None:
        self.taken: tuple[int, int] | None = None
        self.acked: tuple[int, int] | None = None
        self.caught_up = asyncio.Event()

    def take(self, msg) -> None:
        seq = msg.metadata.sequence
        self.taken = (seq.consumer, seq.stream)
        self.caught_up.clear()

    async def answer(self, nc, reply: str) -> None:
        if self.taken is None:
            await nc.publish(reply, b"")
            return
        taken = self.taken
        await nc.publish(reply, b"", headers={"Nats-Last-Consumer": str(taken[0]), "Nats-Last-Stream": str(taken[1])})
        self.acked = taken
        if self.taken == taken:
            self.caught_up.set()

    async def settle(self) -> bool:
        """Wait (still subscribed) for a flow control request that acknowledges the last message taken."""
        if self.taken is None or self.acked == self.taken:
            return True
        try:
            await asyncio.wait_for(self.caught_up.wait(), self.WAIT)
        except asyncio.TimeoutError:
            return False
        return True


async def _deliveries(s: Session, stream: str, name: str, info: ConsumerInfo, limit: float,
                      count: int | None, fc_acks: FlowControlAcks | None = None) -> AsyncIterator:
    """Messages as the consumer delivers them (push: its deliver subject; pull: repeated fetches). With
    `fc_acks`, flow control requests are answered with what it says was taken, and the subscription stays
    until that is acknowledged (or FlowControlAcks.WAIT passes)."""
    deadline = time.monotonic() + limit
    if info.config.deliver_subject:
        queue: asyncio.Queue = asyncio.Queue()
        done = False

        async def on_msg(msg) -> None:
            status = (msg.headers or {}).get("Status")
            if status == "100":
                if msg.reply:  # flow control asks for an answer; heartbeats have no reply
                    if fc_acks is not None:
                        await fc_acks.answer(s.nc, msg.reply)
                    else:
                        await s.nc.publish(msg.reply, b"")
                return
            if not done:
                await queue.put(msg)

        sub = await s.nc.subscribe(info.config.deliver_subject, queue=info.config.deliver_group or "", cb=on_msg)

        async def next_batch(want: int, left: float) -> list:
            return [await asyncio.wait_for(queue.get(), left)]

        async def close() -> None:
            nonlocal done
            done = True  # what arrives now is not taken, so not acknowledged
            if fc_acks is not None:
                await fc_acks.settle()
            await sub.unsubscribe()
    else:
        psub = await s.js.pull_subscribe_bind(durable=name, stream=stream)

        async def next_batch(want: int, left: float) -> list:
            return await psub.fetch(want, timeout=min(left, 1.0))

        close = psub.unsubscribe
    try:
        n = 0
        while count is None or n < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                got = await next_batch(min(256, (count - n) if count else 256), left)
            except asyncio.TimeoutError:
                continue
            for msg in got:
                n += 1
                yield msg
    finally:
        await close()


@in_session
async def consumer_sub(s: Session, stream: str, name: str, *, count: int | None = None, timeout: Any = 2.0,
                       action: str = "ack", raw: bool = False) -> pd.DataFrame:
    """Receive from a push or pull consumer until `count` messages or `timeout`; ack each (or not)."""
    if action not in _ACTIONS:
        raise LabError(f"invalid action {action!r}: use {', '.join(_ACTIONS)}")
    at_least_one(count, "--count")
    info = await s.js.consumer_info(stream, name)
    limit = parse_duration(timeout, "--timeout") or 2.0
    msgs, received, settled = [], [], []
    fc_acks = FlowControlAcks() if info.config.ack_policy == AckPolicy.FLOW_CONTROL else None
    async for msg in _deliveries(s, stream, name, info, limit, count, fc_acks if action == "ack" else None):
        received.append(time.time())
        msgs.append(msg)
        if fc_acks is not None:
            if action == "ack":
                fc_acks.take(msg)
            settled.append(None)
        else:
            settled.append(await _settle(msg, action, info.config.ack_policy))
    await s.nc.flush()
    frame = frames.consumed_frame(msgs, received, raw)
    if fc_acks is not None and fc_acks.acked:  # acknowledged up to the stream sequence the server was told
        settled = ["ack" if seq <= fc_acks.acked[1] else None for seq in frame["seq"]]
    frame["acked"] = pd.Series(settled, dtype=object)
    if len(frame):
        line = f"{len(frame):,} message{'s' if len(frame) != 1 else ''} from {stream} > {name}"
        if fc_acks is not None and action == "ack":
            line += (f", acknowledged through the answer to its flow control request (up to stream seq "
                     f"{fc_acks.acked[1]})" if fc_acks.acked == fc_acks.taken else
                     f"; acknowledged only up to stream seq {fc_acks.acked[1] if fc_acks.acked else 0}: no "
                     f"flow control request came within {FlowControlAcks.WAIT:g}s (ack flow_control)")
    else:
        line = await _why_nothing(s, stream, name, limit)
    return tables.lab_frame(frame, line, columns=CONSUMED_SHOWN)


def replay_config(target: str, *, deliver: Any = "all", replay: Any = "instant",
                  filter: str | None = None) -> ConsumerConfig:
    """The temporary push consumer a replay uses: ack none, so nothing is disturbed on limits streams."""
    return consumer_config(None, pull=False, target=target, deliver=deliver, ack="none", replay=replay,
                           filter=filter, durable=False, inactive_threshold=30)


async def replay_source(s: Session, stream: str) -> StreamInfo:
    """The stream to replay; refused when it is a work queue (a consumer there would take its messages)."""
    si = await s.js.stream_info(stream)
    if si.config.retention and str(getattr(si.config.retention, "value", si.config.retention)) == "workqueue":
        raise LabError(f"{stream} is a work-queue stream: a replay consumer would take its messages; "
                       "use %stream view instead")
    return si


async def run_replay(s: Session, stream: str, *, deliver: Any = "all", replay: str = "instant",
                 filter: str | None = None, count: int | None = None, timeout: float = 10.0,
                 on_message=None) -> pd.DataFrame:
    """Replay a stream through a temporary push consumer and return what arrived with its delivery time.
    `on_message(frame_so_far)` is called as messages arrive, for live widgets."""
    at_least_one(count, "--count")
    inbox = s.nc.new_inbox()
    cfg = replay_config(inbox, deliver=deliver, replay=replay, filter=filter)
    si = await replay_source(s, stream)
    total = si.state.messages if count is None else count
    msgs, received = [], []
    done = asyncio.get_running_loop().create_future()
    last_update = [0.0]

    async def on_msg(msg) -> None:
        if (msg.headers or {}).get("Status"):
            return
        msgs.append(msg)
        received.append(time.time())
        if on_message and time.monotonic() - last_update[0] > 0.2:
            last_update[0] = time.monotonic()
            on_message(frames.consumed_frame(list(msgs), list(received)))
        if msg.metadata.num_pending == 0 or (count and len(msgs) >= count):
            if not done.done():
                done.set_result(None)

    sub = await s.nc.subscribe(inbox, cb=on_msg)
    info = None
    try:
        if total:
            info = await s.js.add_consumer(stream, cfg)
            try:
                await asyncio.wait_for(asyncio.shield(done), timeout)
            except asyncio.TimeoutError:
                pass
    finally:
        await sub.unsubscribe()
        if info is not None:
            try:
                await s.js.delete_consumer(stream, info.name)
            except Exception:
                pass
    frame = frames.consumed_frame(msgs, received)
    if on_message:
        on_message(frame)
    return frame


def consumer_replay(stream: str, *, deliver: Any = "all", replay: str = "instant", filter: str | None = None,
                    count: int | None = None, timeout: Any = 10.0, session: Session | None = None) -> pd.DataFrame:
    """Replay messages through a temporary consumer; `time` (stored) next to `received` (delivered)."""
    from .session import get_session

    s = (session or get_session()).ensure()
    return s.run(run_replay(s, stream, deliver=deliver, replay=replay, filter=filter, count=count,
                        timeout=parse_duration(timeout, "--timeout") or 10.0))
