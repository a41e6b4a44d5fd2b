"""Consumer priority groups (ADR-42) for pull consumers: the `overflow` policy (a request with `min_pending` or
`min_ack_pending` is served only while the consumer is that far behind) and the `prioritized` policy (requests
with a lower `priority`, 0-9, are served first). The `pinned_client` policy is refused (see differences.md).
"""
from __future__ import annotations

import re

from .clock import ZERO_TIME
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
        if policy == "pinned_client":
            raise api_error("JSStreamInvalidConfigF",
                            err="the pinned_client priority policy is not supported by this server")
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


def info(cfg: dict) -> list:
    """The `priority_groups` of consumer info: nats-server reports the first group (no pin: zero time)."""
    groups = cfg.get("priority_groups") or []
    return [{"group": groups[0], "pinned_ts": ZERO_TIME}] if groups else []
