"""Consumer priority groups (ADR-42) for pull consumers: the `overflow` policy (a request with `min_pending` or
`min_ack_pending` is served only while the consumer is that far behind) and the `prioritized` policy (requests
with a lower `priority`, 0-9, are served first) and the `pinned_client` policy (the first request without an `id`
pins its client: every message then carries `Nats-Pin-Id` and only requests with that id are served; the pin
goes after `priority_timeout` without a request from it, or by `$JS.API.CONSUMER.UNPIN`).
"""
from __future__ import annotations

import re

from . import advisories
from .clock import ZERO_TIME, now_ns, rfc3339
from .errors import api_error

VALID_GROUP = re.compile(r"^[a-zA-Z0-9/_=-]{1,16}$")


def check_config(cfg: dict) -> None:
    """nats-server's checkConsumerCfg rules for priority groups."""
    policy = cfg.get("priority_policy", "none") or "none"
    if policy != "none":
        if cfg.get("deliver_subject"):
            raise api_error("JSConsumerPushWithPriorityGroupErr")
        groups = cfg.get("priority_groups") or []
        if not groups:
            raise api_error("JSConsumerPriorityPolicyWithoutGroup")
        for group in groups:
            if group == "":
                raise api_error("JSConsumerEmptyGroupName")
            if not VALID_GROUP.match(group):
                raise api_error("JSConsumerInvalidGroupNameErr")
    else:
        if cfg.get("priority_groups"):
            raise api_error("JSConsumerPriorityGroupWithPolicyNone")
        if cfg.get("priority_timeout", 0) > 0:
            raise api_error("JSConsumerPinnedTTLWithoutPriorityPolicyNone")


def check_request(cfg: dict, req: dict) -> str | None:
    """The 400 text nats-server answers a pull request's priority fields with, or None."""
    policy = cfg.get("priority_policy", "none") or "none"
    fields = ("group", "min_pending", "min_ack_pending", "id", "priority")
    if not any(k in req for k in fields):
        return "Bad Request - Priority Group missing" if policy != "none" else None
    if (req.get("min_pending") or req.get("min_ack_pending")) and policy != "overflow":
        return "Bad Request - Not a Overflow Priority consumer"
    if req.get("id") and policy != "pinned_client":
        return "Bad Request - Not a Pinned Client Priority consumer"
    if not 0 <= req.get("priority", 0) <= 9:
        return "Bad Request - Priority must be between 0 and 9"
    if policy != "none":
        if not req.get("group"):
            return "Bad Request - Priority Group missing"
        if req["group"] not in (cfg.get("priority_groups") or ()):
            return "Bad Request - Invalid Priority Group"
    return None


def overflow_ready(wr, npc: int, ack_pending: int) -> bool:
    """An overflow request is served once the consumer has `min_pending` messages waiting (counting the one in
    hand) or `min_ack_pending` unacknowledged; a request with neither is always served."""
    if wr.min_pending <= 0 and wr.min_ack_pending <= 0:
        return True
    return (0 < wr.min_pending <= npc + 1) or (0 < wr.min_ack_pending <= ack_pending)


def insert_prioritized(waiting, wr) -> None:
    """Place `wr` after every request of the same or a lower priority number (FIFO within a priority)."""
    for i, other in enumerate(waiting):
        if other.priority > wr.priority:
            waiting.insert(i, wr)
            return
    waiting.append(wr)


def info(o) -> list:
    """The `priority_groups` of consumer info: nats-server reports the first group with its pin (if any)."""
    groups = o.cfg.get("priority_groups") or []
    if not groups:
        return []
    state = {"group": groups[0]}
    if o.pin_id:
        state["pinned_client_id"] = o.pin_id
    state["pinned_ts"] = rfc3339(o.pinned_ts) if o.pinned_ts else ZERO_TIME
    return [state]


# -- the pinned client ----------------------------------------------------------------------------

def assign_pin(o, group: str) -> str:
    """Pin the client of the request for `group` being served: a new id, its timer, the pinned advisory."""
    o.pin_id = advisories.nuid()
    o.pinned_ts = now_ns()
    set_pin_timer(o, group)
    advisories.consumer_pinned(o.js, o.account, o.stream.name, o.name, group, o.pin_id)
    return o.pin_id


def unassign_pin(o) -> None:
    o.pin_id = ""
    o.pinned_ts = 0
    if o.pin_timer is not None:
        o.pin_timer.cancel()
        o.pin_timer = None


def set_pin_timer(o, group: str) -> None:
    """(Re)start the `priority_timeout` after which a pin without requests is released."""
    if o.pin_timer is not None:
        o.pin_timer.cancel()
    o.pin_timer = o.js.loop.call_later(o.cfg.get("priority_timeout", 0) / 1e9, _pin_expired, o, group)


def _pin_expired(o, group: str) -> None:
    o.pin_timer = None
    if o.closed or not o.pin_id:
        return
    unassign_pin(o)
    advisories.consumer_unpinned(o.js, o.account, o.stream.name, o.name, group, "timeout")
    o.kick()


def unpin(o, group: str) -> None:
    """`$JS.API.CONSUMER.UNPIN`: release the pin (if any) and tell the advisory listeners it was the admin."""
    unassign_pin(o)
    advisories.consumer_unpinned(o.js, o.account, o.stream.name, o.name, group, "admin")
    o.kick()
