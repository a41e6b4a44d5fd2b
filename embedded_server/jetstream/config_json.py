"""Stream and consumer configurations in and out as JSON: requests decoded with the field types of
nats-server's Go structs (a string where a number belongs is rejected as Go would reject it), and configs
written in nats-server's field order, with the fields it always shows.
"""
from __future__ import annotations

import json

from embedded_server.gojson import compact_json  # noqa: F401 (the JetStream modules write through config_json)

from . import requests
from .clock import rfc3339
from .config import API_LEVEL
from .errors import ApiError, api_error


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


def decode_stream_request(payload: bytes) -> tuple[dict, bool]:
    """The requested config (typed, not yet normalised) and the `pedantic` flag."""
    cfg = decode_request(payload, requests.STREAM_CONFIG_REQUEST)
    return cfg, bool(cfg.pop("pedantic", False))


def decode_consumer_request(payload: bytes) -> tuple[str, dict | None, str, bool]:
    """(stream_name, config or None, action, pedantic) of a CreateConsumerRequest."""
    obj = decode_request(payload, requests.CREATE_CONSUMER_REQUEST)
    return obj.get("stream_name", ""), obj.get("config"), obj.get("action", ""), obj.get("pedantic", False)


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
