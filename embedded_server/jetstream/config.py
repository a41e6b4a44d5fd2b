"""Stream and consumer configurations: decoding requests, nats-server's defaults and validation, JSON output.

A request is decoded with the field types of nats-server's Go structs (so a string where a number belongs is
rejected as Go would reject it), then normalised (`max_msgs` 0 becomes -1, `duplicate_window` defaults to
2 minutes in nanoseconds, ...) and checked with nats-server's error codes and texts (checkStreamCfg,
setConsumerConfigDefaults, checkConsumerCfg). Configs are plain dicts in nats-server's field order.
"""
from __future__ import annotations

import json

from . import counters, filters, requests
from .clock import rfc3339
from .errors import ApiError, api_error
from .transform import SubjectTransform, TransformError

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
DEFAULT_DUPLICATE_WINDOW = 2 * MINUTE
DEFAULT_ACK_WAIT = 30 * SECOND
DEFAULT_MAX_ACK_PENDING = 1000
DEFAULT_MAX_WAITING = 512
MAX_NAME_LEN = 255
MAX_DESCRIPTION_LEN = 4 * 1024
MAX_METADATA_LEN = 128 * 1024
API_LEVEL = 5


def compact_json(obj) -> bytes:
    """JSON as nats-server sends it: no spaces."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def invalid_json(err: str) -> ApiError:
    return api_error("JSInvalidJSONErr", err=err)


def decode_json(payload: bytes) -> object:
    """Parse a request body; empty means {} as for nats-server. Raises ApiError 10025."""
    if not payload or not payload.strip():
        return {}
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid_json(_python_json_error(e)) from None


def decode_request(payload: bytes, typ: requests.Struct) -> dict:
    """A request body decoded as nats-server decodes it into `typ`; a bad one raises nats-server's 10025."""
    try:
        return requests.decode(payload, typ)
    except requests.GoJsonError as e:
        raise invalid_json(str(e)) from None


def _python_json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at offset {e.pos + 1}"
    return str(e)


# -- streams ---------------------------------------------------------------------------------------

def is_valid_name(name: str) -> bool:
    return bool(name) and not any(c in name for c in " \t\r\n\f.*>\\/")


def decode_stream_request(payload: bytes) -> tuple[dict, bool]:
    """The requested config (typed, not yet normalised) and the `pedantic` flag."""
    cfg = decode_request(payload, requests.STREAM_CONFIG_REQUEST)
    return cfg, bool(cfg.pop("pedantic", False))


def _invalid(text: str) -> ApiError:
    return api_error("JSStreamInvalidConfigF", err=text)


def _pedantic(text: str) -> ApiError:
    return api_error("JSPedanticErrF", err=text)


def check_stream_config(req: dict, pedantic: bool = False, sourcing_check=None) -> dict:
    """nats-server's checkStreamCfg for a single server: defaults filled in, or an ApiError raised.
    `sourcing_check(cfg, pedantic)` checks a mirror and sources where nats-server does (sourcing.py)."""
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
    if dup == 0 and not cfg.get("mirror") and not cfg.get("sources"):
        if max_age and max_age < DEFAULT_DUPLICATE_WINDOW:
            if pedantic:
                raise _pedantic("duplicate window cannot be bigger than max age")
            dup = max_age
        else:
            dup = DEFAULT_DUPLICATE_WINDOW
    if dup < 0:
        raise _invalid("duplicates window can not be negative")
    if max_age and dup > max_age:
        raise _invalid("duplicates window can not be larger then max age")
    if 0 < dup < SECOND // 10:
        raise _invalid("duplicates window needs to be >= 100ms")
    cfg["duplicate_window"] = dup
    if cfg.get("deny_purge") and cfg.get("allow_rollup_hdrs"):
        raise _invalid("roll-ups require the purge permission")
    counters.check_config(cfg)
    if cfg.get("allow_atomic") or cfg.get("allow_batched"):
        raise _invalid("batch publishing is not supported by this server")
    if cfg.get("allow_msg_schedules"):
        raise _invalid("message schedules are not supported by this server")
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
    if cfg.get("persist_mode") == "async" and cfg["storage"] != "file":
        raise _invalid("async persist mode is only supported on file storage")
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
    if cfg.get("subject_transform"):
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
    if cfg.get("pause_until") or cfg.get("priority_policy", "none") != "none" or cfg.get("priority_groups"):
        level = max(level, 1)
    if cfg.get("allow_msg_counter"):
        level = max(level, 2)
    meta["_nats.req.level"] = str(level)
    cfg["metadata"] = meta


_STREAM_ORDER = ("name", "description", "subjects", "retention", "max_consumers", "max_msgs", "max_bytes",
                 "max_age", "max_msgs_per_subject", "max_msg_size", "discard", "storage", "num_replicas", "no_ack",
                 "duplicate_window", "placement", "mirror", "sources", "compression", "first_seq",
                 "subject_transform", "republish", "allow_direct", "mirror_direct", "discard_new_per_subject",
                 "sealed", "deny_delete", "deny_purge", "allow_rollup_hdrs", "consumer_limits", "allow_msg_ttl",
                 "subject_delete_marker_ttl", "allow_msg_counter", "allow_atomic", "allow_msg_schedules",
                 "persist_mode", "allow_batched", "metadata")
_STREAM_ALWAYS = {"name": "", "retention": "limits", "max_consumers": -1, "max_msgs": -1, "max_bytes": -1,
                  "max_age": 0, "max_msgs_per_subject": -1, "discard": "old", "storage": "file", "num_replicas": 1,
                  "compression": "none", "allow_direct": False, "mirror_direct": False, "sealed": False,
                  "deny_delete": False, "deny_purge": False, "allow_rollup_hdrs": False, "consumer_limits": {},
                  "allow_msg_ttl": False}


def stream_config_json(cfg: dict, version: str | None = None) -> dict:
    """The config as nats-server marshals it (omitempty fields left out); `version` adds dynamic metadata."""
    out = {}
    for key in _STREAM_ORDER:
        if key in _STREAM_ALWAYS:
            out[key] = cfg.get(key, _STREAM_ALWAYS[key])
        elif cfg.get(key):
            out[key] = cfg[key]
    if key_limits := cfg.get("consumer_limits"):
        out["consumer_limits"] = {k: v for k, v in key_limits.items() if v}
    if version is not None:
        meta = dict(cfg.get("metadata") or {})
        meta["_nats.ver"] = version
        meta["_nats.level"] = str(API_LEVEL)
        out["metadata"] = dict(sorted(meta.items()))
    elif out.get("metadata"):
        out["metadata"] = dict(sorted(out["metadata"].items()))
    return out


def comparable_stream_config(cfg: dict) -> dict:
    """What must be equal for a repeated create to be accepted (nats-server's DeepEqual of the configs)."""
    out = stream_config_json(cfg)
    out["metadata"] = {k: v for k, v in (out.get("metadata") or {}).items()
                       if k not in ("_nats.ver", "_nats.level")}
    return out


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


# -- consumers -------------------------------------------------------------------------------------

def decode_consumer_request(payload: bytes) -> tuple[str, dict | None, str, bool]:
    """(stream_name, config or None, action, pedantic) of a CreateConsumerRequest."""
    obj = decode_request(payload, requests.CREATE_CONSUMER_REQUEST)
    return obj.get("stream_name", ""), obj.get("config"), obj.get("action", ""), obj.get("pedantic", False)


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


def consumer_defaults(cfg: dict, stream_cfg: dict, pedantic: bool = False) -> dict:
    """nats-server's setConsumerConfigDefaults."""
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
    if not cfg.get("max_ack_pending") and cfg["ack_policy"] != "none":
        cfg["max_ack_pending"] = DEFAULT_MAX_ACK_PENDING
    if cfg.get("priority_policy") == "pinned_client" and not cfg.get("priority_timeout"):
        cfg["priority_timeout"] = 2 * MINUTE
    return cfg


def check_consumer_config(cfg: dict, stream_cfg: dict) -> None:
    """nats-server's checkConsumerCfg (single server)."""
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
        raise _invalid("flow control ack policy is not supported by this server")
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
    limits = stream_cfg.get("consumer_limits") or {}
    if limits.get("max_ack_pending", 0) > 0 and cfg.get("max_ack_pending", 0) > limits["max_ack_pending"]:
        raise api_error("JSConsumerMaxPendingAckExcessErrF", limit=limits["max_ack_pending"])
    if limits.get("inactive_threshold", 0) > 0 and cfg.get("inactive_threshold", 0) > limits["inactive_threshold"]:
        raise api_error("JSConsumerInactiveThresholdExcess", limit=go_duration(limits["inactive_threshold"]))
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
    if cfg.get("priority_policy", "none") != "none":
        raise _invalid("priority groups are not supported by this server")
    if cfg.get("priority_groups"):
        raise api_error("JSConsumerPriorityGroupWithPolicyNone")
    if cfg.get("priority_timeout", 0) > 0:
        raise api_error("JSConsumerPinnedTTLWithoutPriorityPolicyNone")


def filter_list(cfg: dict) -> list[str]:
    if cfg.get("filter_subject"):
        return [cfg["filter_subject"]]
    return list(cfg.get("filter_subjects") or [])


def go_duration(ns: int) -> str:
    """Go's time.Duration.String for whole units (enough for limits in error texts)."""
    if ns % SECOND == 0:
        secs = ns // SECOND
        h, rem = divmod(secs, 3600)
        m, s = divmod(rem, 60)
        if h:
            return f"{h}h{m}m{s}s"
        if m:
            return f"{m}m{s}s"
        return f"{s}s"
    if ns % 1_000_000 == 0:
        return f"{ns // 1_000_000}ms"
    return f"{ns}ns"


_CONSUMER_ORDER = ("durable_name", "name", "description", "deliver_policy", "opt_start_seq", "opt_start_time",
                   "ack_policy", "ack_wait", "max_deliver", "backoff", "filter_subject", "filter_subjects",
                   "replay_policy", "rate_limit_bps", "sample_freq", "max_waiting", "max_ack_pending",
                   "flow_control", "headers_only", "max_batch", "max_expires", "max_bytes", "deliver_subject",
                   "deliver_group", "idle_heartbeat", "inactive_threshold", "num_replicas", "mem_storage",
                   "direct", "sourcing", "metadata", "pause_until", "priority_groups", "priority_policy",
                   "priority_timeout")
_TIME_FIELDS = ("opt_start_time", "pause_until")


def consumer_config_json(cfg: dict, version: str | None = None) -> dict:
    out = {}
    for key in _CONSUMER_ORDER:
        if key in ("deliver_policy", "ack_policy", "replay_policy"):
            out[key] = cfg.get(key)
        elif key == "num_replicas":
            out[key] = cfg.get(key, 0)
        elif key in _TIME_FIELDS:
            if key in cfg and (cfg[key] or key == "opt_start_time"):
                out[key] = rfc3339(cfg[key])
        elif key == "priority_policy":
            if cfg.get(key, "none") != "none":
                out[key] = cfg[key]
        elif cfg.get(key):
            out[key] = cfg[key]
    meta = dict(cfg.get("metadata") or {})
    if version is not None:
        meta["_nats.ver"] = version
        meta["_nats.level"] = str(API_LEVEL)
    if meta:
        out["metadata"] = dict(sorted(meta.items()))
    return out
