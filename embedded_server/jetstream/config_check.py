"""Stream and consumer configurations normalised and checked as nats-server does (checkStreamCfg,
setConsumerConfigDefaults, checkConsumerCfg): `max_msgs` 0 becomes -1, `duplicate_window` defaults to 2 minutes
in nanoseconds, ...; every refusal is nats-server's error code and text.
"""
from __future__ import annotations

import json

from . import counters, filters, priority, schedules
from .errors import ApiError, api_error
from .config import (DEFAULT_ACK_WAIT, DEFAULT_DUPLICATE_WINDOW, DEFAULT_MAX_ACK_PENDING, DEFAULT_MAX_WAITING,
                     MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, MAX_NAME_LEN, MINUTE, SECOND, filter_list)
from embedded_server.gotime import duration_string

from .transform import SubjectTransform, TransformError


def is_valid_name(name: str) -> bool:
    return bool(name) and not any(c in name for c in " \t\r\n\f.*>\\/")


def _invalid(text: str) -> ApiError:
    return api_error("JSStreamInvalidConfigF", err=text)


def _pedantic(text: str) -> ApiError:
    return api_error("JSPedanticErrF", err=text)


def check_stream_config(req: dict, pedantic: bool = False, sourcing_check=None, server_limits=None) -> dict:
    """nats-server's checkStreamCfg for a single server: defaults filled in, or an ApiError raised.
    `sourcing_check(cfg, pedantic)` checks a mirror and sources where nats-server does (sourcing.py);
    `server_limits` is `jetstream { limits {} }` (its `duplicate_window` caps the stream's, in ns)."""
    cfg = dict(req)
    name = cfg.get("name", "")
    if not is_valid_name(name):
        raise _invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'")
    if len(name) > MAX_NAME_LEN:
        raise _invalid(f"stream name is too long, maximum allowed is {MAX_NAME_LEN}")
    if len(cfg.get("description", "")) > MAX_DESCRIPTION_LEN:
        raise _invalid(f"stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")
    meta = cfg.get("metadata") or {}
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_LEN:
        raise _invalid(f"stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")
    cfg.setdefault("retention", "limits")
    cfg.setdefault("discard", "old")
    cfg.setdefault("storage", "file")
    cfg.setdefault("compression", "none")
    replicas = cfg.get("num_replicas", 0) or 1
    if replicas > 5:
        raise _invalid("maximum replicas is 5")
    if replicas < 0:
        raise api_error("JSReplicasCountCannotBeNegative")
    cfg["num_replicas"] = replicas
    for field in ("max_msgs", "max_msgs_per_subject", "max_bytes", "max_msg_size", "max_consumers"):
        value = cfg.get(field, 0)
        if value == 0 or value < -1:
            if pedantic and value < -1:
                raise _pedantic(f"{field} must be set to -1")
            cfg[field] = -1
    max_age = cfg.get("max_age", 0)
    if max_age < 0:
        raise _invalid("max age can not be negative")
    if max_age and max_age < SECOND // 10:
        raise _invalid("max age needs to be >= 100ms")
    cfg["max_age"] = max_age
    dup = cfg.get("duplicate_window", 0)
    dup_limit = (server_limits or {}).get("duplicate_window", 0)
    if dup == 0 and not cfg.get("mirror") and not cfg.get("sources"):
        window = DEFAULT_DUPLICATE_WINDOW
        if 0 < dup_limit < window:
            if pedantic:
                raise _pedantic("duplicate window limits are higher than current limits")
            window = dup_limit
        if max_age and max_age < window:
            if pedantic:
                raise _pedantic("duplicate window cannot be bigger than max age")
            dup = max_age
        else:
            dup = window
    if dup < 0:
        raise _invalid("duplicates window can not be negative")
    if max_age and dup > max_age:
        raise _invalid("duplicates window can not be larger then max age")
    if dup_limit > 0 and dup > dup_limit:
        raise _invalid(f"duplicates window can not be larger then server limit of {duration_string(dup_limit)}")
    if 0 < dup < SECOND // 10:
        raise _invalid("duplicates window needs to be >= 100ms")
    cfg["duplicate_window"] = dup
    if cfg.get("deny_purge") and cfg.get("allow_rollup_hdrs"):
        raise _invalid("roll-ups require the purge permission")
    counters.check_config(cfg)
    if cfg.get("discard_new_per_subject"):
        if cfg["discard"] != "new":
            raise _invalid("discard new per subject requires discard new policy to be set")
        if cfg["max_msgs_per_subject"] <= 0:
            raise _invalid("discard new per subject requires max msgs per subject > 0")
    sdm = cfg.get("subject_delete_marker_ttl", 0)
    if sdm > 0:
        if sdm < SECOND:
            raise _invalid("subject delete marker TTL must be at least 1 second")
        if not cfg.get("allow_msg_ttl"):
            if pedantic:
                raise _invalid("subject delete marker cannot be set if message TTLs are disabled")
            cfg["allow_msg_ttl"] = True
        if not cfg.get("allow_rollup_hdrs"):
            if pedantic:
                raise _invalid("subject delete marker cannot be set if roll-ups are disabled")
            cfg["allow_rollup_hdrs"], cfg["deny_purge"] = True, False
    elif sdm < 0:
        raise _invalid("subject delete marker TTL must not be negative")
    schedules.check_config(cfg, pedantic)
    if cfg.get("persist_mode") == "async" and cfg["storage"] != "file":
        raise _invalid("async persist mode is only supported on file storage")
    if cfg.get("persist_mode") == "async" and cfg.get("allow_atomic"):
        raise _invalid("async persist mode is not supported with atomic batch publish")
    if sourcing_check is not None and (cfg.get("mirror") is not None or cfg.get("sources")):
        sourcing_check(cfg, pedantic)
    subjects = cfg.get("subjects") or []
    if not subjects:
        if cfg.get("mirror") is None and not cfg.get("sources"):
            subjects = [name]
    else:
        seen = set()
        for i, s in enumerate(subjects):
            if not filters.is_valid_subject(s):
                raise _invalid("invalid subject")
            if s in seen:
                raise _invalid("duplicate subjects detected")
            if s == ">" and not cfg.get("no_ack"):
                raise _invalid("capturing all subjects requires no-ack to be true")
            if not cfg.get("no_ack"):
                for ns in ("$JS.>", "$JSC.>", "$NRG.>"):
                    if filters.collide(s, ns) and not filters.is_subset(s, "$JS.EVENT.>"):
                        raise _invalid("subjects that overlap with jetstream api require no-ack to be true")
                if filters.collide(s, "$SYS.>") and not filters.is_subset(s, "$SYS.ACCOUNT.>"):
                    raise _invalid("subjects that overlap with system api require no-ack to be true")
            for other in subjects[i + 1:]:
                if filters.collide(other, s):
                    raise _invalid(f'subject "{s}" overlaps with "{other}"')
            seen.add(s)
    if subjects:
        cfg["subjects"] = list(subjects)
    else:
        cfg.pop("subjects", None)
    if cfg.get("subject_transform") is not None:
        # nats-server keeps a given transform, even `{}`, and echoes it with both fields
        tr = cfg["subject_transform"]
        src, dest = tr.get("src", ""), tr.get("dest", "")
        if src and not filters.is_valid_subject(src):
            raise api_error("JSStreamTransformInvalidSource", err=f"invalid subject {src}")
        try:
            SubjectTransform(src, dest)
        except TransformError as e:
            raise api_error("JSStreamTransformInvalidDestination", err=str(e)) from None
        cfg["subject_transform"] = {"src": src, "dest": dest}
    if cfg.get("republish") is not None:
        rp = cfg["republish"]
        src = rp.get("src") or ">"
        dest = rp.get("dest", "")
        if any(filters.collide(dest, s) for s in subjects):
            raise _invalid("stream configuration for republish destination forms a cycle")
        try:
            SubjectTransform(src, dest)
        except TransformError:
            raise _invalid(f"stream configuration for republish with transform from '{src}' to '{dest}' "
                           "not valid") from None
        cfg["republish"] = {"src": src, "dest": dest, **({"headers_only": True} if rp.get("headers_only") else {})}
    if cfg.get("placement") is not None:
        pl = {k: v for k, v in cfg["placement"].items() if v}
        if pl.get("preferred"):
            raise _invalid("preferred server not permitted in placement")
        if pl:
            cfg["placement"] = pl
        else:
            del cfg["placement"]
    return cfg


def set_static_metadata(cfg: dict, previous: dict | None = None) -> None:
    """Record the API level a stream or consumer needs (`_nats.req.level`), as nats-server does."""
    meta = {k: v for k, v in (cfg.get("metadata") or {}).items() if k not in ("_nats.ver", "_nats.level")}
    level = 0
    if cfg.get("allow_msg_ttl") or cfg.get("subject_delete_marker_ttl", 0) > 0:
        level = 1
    if (cfg.get("pause_until") or cfg.get("priority_policy", "none") != "none" or cfg.get("priority_groups")
            or cfg.get("priority_timeout")):
        level = max(level, 1)
    if (cfg.get("allow_msg_counter") or cfg.get("allow_atomic") or cfg.get("allow_msg_schedules")
            or cfg.get("persist_mode") == "async"):
        level = max(level, 2)
    if cfg.get("allow_batched") or cfg.get("ack_policy") == "flow_control":
        level = max(level, 4)
    meta["_nats.req.level"] = str(level)
    cfg["metadata"] = meta


def check_stream_update(old: dict, new: dict) -> dict:
    """nats-server's configUpdateCheck: what a stream update may not change."""
    if new["name"] != old["name"]:
        raise _invalid("stream configuration name must match original")
    if new["num_replicas"] > 1:
        raise api_error("JSStreamReplicasNotSupportedErr")
    if new["storage"] != old["storage"]:
        raise _invalid("stream configuration update can not change storage type")
    if new["retention"] != old["retention"] and "workqueue" in (new["retention"], old["retention"]):
        raise _invalid("stream configuration update can not change retention policy to/from workqueue")
    if not new.get("sealed") and old.get("sealed"):
        raise _invalid("stream configuration update can not unseal a sealed stream")
    if not new.get("deny_delete") and old.get("deny_delete"):
        raise _invalid("stream configuration update can not cancel deny message deletes")
    if not new.get("deny_purge") and old.get("deny_purge"):
        raise _invalid("stream configuration update can not cancel deny purge")
    if new.get("mirror") is not None and new.get("mirror") != old.get("mirror"):
        raise api_error("JSStreamMirrorNotUpdatableErr")
    if old.get("allow_msg_ttl") and not new.get("allow_msg_ttl"):
        raise _invalid("message TTL status can not be disabled")
    if old.get("allow_msg_schedules") and not new.get("allow_msg_schedules"):
        raise _invalid("message schedules can not be disabled")
    if bool(old.get("allow_msg_counter")) != bool(new.get("allow_msg_counter")):
        raise _invalid("stream configuration update can not change message counter setting")
    if old.get("persist_mode", "") != new.get("persist_mode", ""):
        raise _invalid("stream configuration update can not change persist mode")
    cfg = dict(new)
    if cfg.get("sealed"):
        cfg["max_age"] = 0
        cfg["discard"] = "new"
        cfg["deny_delete"] = cfg["deny_purge"] = True
        cfg["allow_rollup_hdrs"] = False
    return cfg


def _atoi_error(text: str) -> str:
    """Why nats-server refuses a sampling frequency: Go's strconv.Atoi error, or "<nil>" (its nil error) for a
    negative number; "" if it is fine."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return f"strconv.Atoi: parsing {json.dumps(text)}: invalid syntax"
    value = int(digits) * (-1 if text[0] == "-" else 1)
    if not -(1 << 63) <= value < (1 << 63):
        return f"strconv.Atoi: parsing {json.dumps(text)}: value out of range"
    return "<nil>" if value < 0 else ""


def _cons_invalid(text: str) -> ApiError:
    return api_error("JSConsumerInvalidPolicyErrF", err=text)


def consumer_defaults(cfg: dict, stream_cfg: dict, pedantic: bool = False, server_limits=None,
                      account_max_ack_pending: int = 0) -> dict:
    """nats-server's setConsumerConfigDefaults. `server_limits` is `jetstream { limits {} }`: its
    `max_ack_pending` and the account's lower the default of 1,000; its `max_request_batch` is a pull
    consumer's default `max_batch`."""
    cfg = dict(cfg)
    cfg.setdefault("deliver_policy", "all")
    cfg.setdefault("ack_policy", "none")
    cfg.setdefault("replay_policy", "instant")
    md = cfg.get("max_deliver", 0)
    if md == 0 or md < -1:
        if pedantic and md < -1:
            raise _pedantic("max_deliver must be set to -1")
        cfg["max_deliver"] = -1
    for field, text in (("max_waiting", "max_waiting must not be negative"),
                        ("max_batch", "max_batch must not be negative"),
                        ("max_expires", "max_expires must not be negative"),
                        ("max_bytes", "max_bytes must not be negative"),
                        ("idle_heartbeat", "idle_heartbeat must not be negative"),
                        ("inactive_threshold", "inactive_threshold must not be negative"),
                        ("priority_timeout", "priority_timeout must not be negative")):
        if cfg.get(field, 0) < 0:
            if pedantic:
                raise _pedantic(text)
            cfg[field] = 0
    if cfg.get("max_ack_pending", 0) < -1:
        if pedantic:
            raise _pedantic("max_ack_pending must be set to -1")
        cfg["max_ack_pending"] = -1
    if not cfg.get("deliver_subject") and not cfg.get("max_waiting"):
        cfg["max_waiting"] = DEFAULT_MAX_WAITING
    if not cfg.get("ack_wait") and cfg["ack_policy"] in ("explicit", "all"):
        cfg["ack_wait"] = DEFAULT_ACK_WAIT
    if cfg.get("backoff"):
        if pedantic and cfg.get("ack_wait") != cfg["backoff"][0]:
            raise _pedantic("first backoff value has to equal batch AckWait")
        cfg["ack_wait"] = cfg["backoff"][0]
    limits = stream_cfg.get("consumer_limits") or {}
    if not cfg.get("max_ack_pending"):
        if pedantic and limits.get("max_ack_pending", 0) > 0:
            raise _pedantic("max_ack_pending must be set if it's configured in stream limits")
        cfg["max_ack_pending"] = limits.get("max_ack_pending", 0)
    if not cfg.get("inactive_threshold"):
        if pedantic and limits.get("inactive_threshold", 0) > 0:
            raise _pedantic("inactive_threshold must be set if it's configured in stream limits")
        cfg["inactive_threshold"] = limits.get("inactive_threshold", 0)
    server_limits = server_limits or {}
    if not cfg.get("max_ack_pending") and cfg["ack_policy"] != "none":
        ack_pending = DEFAULT_MAX_ACK_PENDING
        for limit in (server_limits.get("max_ack_pending", 0), account_max_ack_pending):
            if 0 < limit < ack_pending:
                ack_pending = limit
        cfg["max_ack_pending"] = ack_pending
    max_request_batch = server_limits.get("max_request_batch", 0)
    if not cfg.get("deliver_subject") and not cfg.get("max_batch") and max_request_batch > 0:
        if pedantic:
            raise _pedantic("max_request_batch must be set if it's JetStream limits are set")
        cfg["max_batch"] = max_request_batch
    if cfg.get("priority_policy") == "pinned_client" and not cfg.get("priority_timeout"):
        cfg["priority_timeout"] = 2 * MINUTE
    if cfg["ack_policy"] == "flow_control" and not pedantic:
        # nats-server 2.14+: acks ride on the flow control replies, with sourcing's 1 s heartbeat.
        cfg["flow_control"] = True
        cfg["idle_heartbeat"] = SECOND
    return cfg


def check_consumer_limits(cfg: dict, server_limits=None, account_max_ack_pending: int = 0) -> None:
    """The server's `max_request_batch` (pull consumers) and `max_ack_pending`, then the account's, in
    checkConsumerCfg's order: for a request, and for a stored consumer when the server starts."""
    server_limits = server_limits or {}
    max_request_batch = server_limits.get("max_request_batch", 0)
    if not cfg.get("deliver_subject") and max_request_batch > 0 and cfg.get("max_batch", 0) > max_request_batch:
        raise api_error("JSConsumerMaxRequestBatchExceededF", limit=max_request_batch)
    for limit in (server_limits.get("max_ack_pending", 0), account_max_ack_pending):
        if limit > 0 and cfg.get("max_ack_pending", 0) > limit:
            raise api_error("JSConsumerMaxPendingAckExcessErrF", limit=limit)


def check_consumer_config(cfg: dict, stream_cfg: dict, server_limits=None, account_max_ack_pending: int = 0) -> None:
    """nats-server's checkConsumerCfg (single server); the limits as in consumer_defaults."""
    server_limits = server_limits or {}
    if cfg.get("name") and not is_valid_name(cfg["name"]):
        raise _invalid("consumer name can not contain '.', '*', '>', '\\', '/'")
    if cfg.get("durable_name") and not is_valid_name(cfg["durable_name"]):
        raise _invalid("consumer durable name can not contain '.', '*', '>', '\\', '/'")
    replicas = cfg.get("num_replicas", 0)
    if replicas > 0 and replicas > stream_cfg["num_replicas"]:
        raise api_error("JSConsumerReplicasExceedsStream")
    if replicas < 0:
        raise api_error("JSReplicasCountCannotBeNegative")
    if any(b < 0 for b in cfg.get("backoff") or ()):
        raise api_error("JSConsumerBackOffNegativeErr")
    if cfg.get("ack_wait", 0) < 0:
        raise api_error("JSConsumerAckWaitNegativeErr")
    if cfg.get("ack_policy") == "flow_control":
        if not cfg.get("deliver_subject"):
            raise api_error("JSConsumerAckFCRequiresPushErr")
        if not cfg.get("flow_control"):
            raise api_error("JSConsumerAckFCRequiresFCErr")
        if cfg.get("idle_heartbeat", 0) != SECOND:
            raise _invalid("flow control ack policy heartbeat needs to be 1s")
        if cfg.get("max_ack_pending", 0) <= 0:
            raise api_error("JSConsumerAckFCRequiresMaxAckPendingErr")
        if cfg.get("ack_wait") or cfg.get("backoff"):
            raise api_error("JSConsumerAckFCRequiresNoAckWaitErr")
        if cfg.get("max_deliver", -1) > 0:
            raise api_error("JSConsumerAckFCRequiresNoMaxDeliverErr")
    backoff = cfg.get("backoff") or []
    if backoff and cfg["max_deliver"] != -1 and len(backoff) > cfg["max_deliver"]:
        raise api_error("JSConsumerMaxDeliverBackoffErr")
    if len(cfg.get("description", "")) > MAX_DESCRIPTION_LEN:
        raise api_error("JSConsumerDescriptionTooLongErrF", max=MAX_DESCRIPTION_LEN)
    deliver = cfg.get("deliver_subject", "")
    if deliver:
        if not filters.is_literal(deliver):
            raise api_error("JSConsumerDeliverToWildcardsErr")
        if not filters.is_valid_subject(deliver):
            raise api_error("JSConsumerInvalidDeliverSubject")
        if any(filters.is_subset(deliver, s) for s in stream_cfg.get("subjects") or ()):
            raise api_error("JSConsumerDeliverCycleErr")
        if cfg.get("max_waiting"):
            raise api_error("JSConsumerPushMaxWaitingErr")
        if cfg.get("max_ack_pending", 0) > 0 and cfg.get("ack_policy") == "none":
            raise api_error("JSConsumerMaxPendingAckPolicyRequiredErr")
        if 0 < cfg.get("idle_heartbeat", 0) < SECOND // 10:
            raise api_error("JSConsumerSmallHeartbeatErr")
    else:
        if cfg.get("ack_policy") == "none" and stream_cfg["retention"] == "workqueue":
            raise api_error("JSConsumerPullRequiresAckErr")
        if cfg.get("rate_limit_bps"):
            raise api_error("JSConsumerPullWithRateLimitErr")
        if cfg.get("max_waiting", 0) < 0:
            raise api_error("JSConsumerMaxWaitingNegativeErr")
        if cfg.get("idle_heartbeat", 0) > 0:
            raise api_error("JSConsumerHBRequiresPushErr")
        if cfg.get("flow_control"):
            raise api_error("JSConsumerFCRequiresPushErr")
        if cfg.get("max_batch", 0) < 0:
            raise api_error("JSConsumerMaxRequestBatchNegativeErr")
        if 0 < cfg.get("max_expires", 0) < 1_000_000:
            raise api_error("JSConsumerMaxRequestExpiresTooSmall")
    check_consumer_limits(cfg, server_limits, account_max_ack_pending)
    limits = stream_cfg.get("consumer_limits") or {}
    if limits.get("max_ack_pending", 0) > 0 and cfg.get("max_ack_pending", 0) > limits["max_ack_pending"]:
        raise api_error("JSConsumerMaxPendingAckExcessErrF", limit=limits["max_ack_pending"])
    if limits.get("inactive_threshold", 0) > 0 and cfg.get("inactive_threshold", 0) > limits["inactive_threshold"]:
        raise api_error("JSConsumerInactiveThresholdExcess", limit=duration_string(limits["inactive_threshold"]))
    if cfg.get("direct"):
        if not deliver:
            raise api_error("JSConsumerDirectRequiresPushErr")
        if cfg.get("durable_name"):
            raise api_error("JSConsumerDirectRequiresEphemeralErr")
    if cfg.get("filter_subject") and cfg.get("filter_subjects"):
        raise api_error("JSConsumerDuplicateFilterSubjects")
    if cfg.get("filter_subject") and not filters.is_valid_subject(cfg["filter_subject"]):
        raise _invalid("invalid subject")
    if any(f == "" for f in cfg.get("filter_subjects") or ()):
        raise api_error("JSConsumerEmptyFilter")
    subjects = filter_list(cfg)
    for i, s in enumerate(subjects):
        if not filters.is_valid_subject(s):
            raise _invalid("invalid subject")
        for j, other in enumerate(subjects):
            if i != j and filters.is_subset(s, other):
                raise api_error("JSConsumerOverlappingSubjectFilters")
    policy = cfg.get("deliver_policy", "all")
    has_seq, has_time = bool(cfg.get("opt_start_seq")), "opt_start_time" in cfg

    def bad_start(dp, start):
        return _cons_invalid(f"consumer delivery policy is deliver {dp}, but optional start {start} is also set")

    def not_set(dp, what):
        return _cons_invalid(f"consumer delivery policy is deliver {dp}, but optional {what} is not set")

    if policy in ("all", "last", "new", "last_per_subject"):
        label = "last per subject" if policy == "last_per_subject" else policy
        if has_seq:
            raise bad_start(label, "sequence")
        if has_time:
            raise bad_start(label, "time")
        if policy == "last_per_subject" and not subjects:
            raise not_set("last per subject", "filter subject")
    elif policy == "by_start_sequence":
        if not has_seq:
            raise not_set("by start sequence", "start sequence")
        if has_time:
            raise bad_start("by start sequence", "time")
    elif policy == "by_start_time":
        if not has_time:
            raise not_set("by start time", "start time")
        if has_seq:
            raise bad_start("by start time", "start sequence")
    if cfg.get("sample_freq"):
        sampling_error = _atoi_error(cfg["sample_freq"].removesuffix("%"))
        if sampling_error:
            raise api_error("JSConsumerInvalidSamplingErrF", err=sampling_error)
    if cfg.get("flow_control") and not cfg.get("idle_heartbeat"):
        raise api_error("JSConsumerWithFlowControlNeedsHeartbeats")
    if cfg.get("durable_name") and cfg.get("name") and cfg["name"] != cfg["durable_name"]:
        raise api_error("JSConsumerCreateDurableAndNameMismatch")
    meta = cfg.get("metadata") or {}
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_LEN:
        raise api_error("JSConsumerMetadataLengthErrF", limit=f"{MAX_METADATA_LEN // 1024}KB")
    priority.check_config(cfg)
