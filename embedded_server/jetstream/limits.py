"""Account JetStream limits (nats-server's JetStreamAccountLimits): from an account's `jetstream { ... }` map in the
configuration, reported by `$JS.API.INFO` and enforced with nats-server's errors when a stream or consumer is
created and when a message would take the account over its storage."""
from __future__ import annotations

from .errors import api_error
from .store import file_msg_size, mem_msg_size

UNLIMITED = {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1, "max_ack_pending": -1,
             "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1, "max_bytes_required": False}


# An account JWT's JetStream limits (jwt.JetStreamLimits) as $JS.API.INFO names them.
_JWT_NAMES = {"mem_storage": "max_memory", "disk_storage": "max_storage", "streams": "max_streams",
              "consumer": "max_consumers", "max_ack_pending": "max_ack_pending",
              "mem_max_stream_bytes": "memory_max_stream_bytes", "disk_max_stream_bytes": "storage_max_stream_bytes",
              "max_bytes_required": "max_bytes_required"}


def _jwt_limits(claims: dict | None) -> dict:
    lim = ((claims or {}).get("nats") or {}).get("limits") or {}
    tier = (lim.get("tiered_limits") or {}).get("R1")
    if isinstance(tier, dict):
        # A lone server's streams all have one replica: the R1 tier is the account's limits (a per-stream
        # bytes limit of 0 reads as none there, as nats-server reports it).
        out = {name: tier[key] for key, name in _JWT_NAMES.items() if key in tier}
        for key in ("memory_max_stream_bytes", "storage_max_stream_bytes"):
            if not out.get(key):
                out[key] = -1
        return out
    return {name: lim[key] for key, name in _JWT_NAMES.items() if key in lim}


def is_tiered(js, name: str) -> bool:
    """Does account `name`'s JWT give its JetStream limits in tiers (then $JS.API.INFO reports `tiers`)?"""
    operator = getattr(js.server, "operator", None)
    if operator is None:
        return False
    lim = ((operator.accounts.get(name) or {}).get("nats") or {}).get("limits") or {}
    return bool(lim.get("tiered_limits"))


def jwt_enabled(claims: dict | None) -> bool:
    """jwt's IsJSEnabled: tiered limits, or a memory or disk storage limit other than 0."""
    lim = ((claims or {}).get("nats") or {}).get("limits") or {}
    if lim.get("tiered_limits"):
        return True
    return bool(lim.get("mem_storage", 0) or lim.get("disk_storage", 0))


def for_account(js, name: str) -> dict:
    """The limits the configuration (or the account's JWT) gives account `name` (unlimited when none)."""
    operator = js.server.operator
    if operator is not None:
        return {**UNLIMITED, **_jwt_limits(operator.accounts.get(name))}
    for cfg in js.server.options.accounts:
        if cfg.name == name and cfg.jetstream_limits:
            return {**UNLIMITED, **cfg.jetstream_limits}
    return dict(UNLIMITED)


def is_limited(limits: dict) -> bool:
    return limits != UNLIMITED


def check_stream(jsa, cfg: dict, new: bool) -> None:
    """nats-server's checks of a stream config against its account's limits (may fill in `max_bytes`)."""
    lim = jsa.limits
    max_bytes = cfg.get("max_bytes", -1)
    if lim["max_bytes_required"] and max_bytes <= 0:
        raise api_error("JSStreamMaxBytesRequired")
    memory = cfg["storage"] == "memory"
    per_stream = lim["memory_max_stream_bytes"] if memory else lim["storage_max_stream_bytes"]
    if per_stream > 0:
        if max_bytes <= 0:
            cfg["max_bytes"] = max_bytes = per_stream
        elif max_bytes > per_stream:
            raise api_error("JSStreamMaxStreamBytesExceeded")
    if new and 0 < lim["max_streams"] <= len(jsa.streams):
        raise api_error("JSMaximumStreamsLimitErr")
    if 0 < lim["max_consumers"] < cfg.get("max_consumers", -1):  # nats-server's checkLimits, create and update
        raise api_error("JSMaximumConsumersLimitErr")
    limit = lim["max_memory"] if memory else lim["max_storage"]
    if limit < 0:
        return
    reserved = sum(max(s.cfg.get("max_bytes", -1), 0) for s in jsa.streams.values()
                   if s.cfg["storage"] == cfg["storage"] and s.name != cfg["name"])
    if limit == 0 or (max_bytes > 0 and reserved + max_bytes > limit):
        raise api_error("JSMemoryResourcesExceededErr" if memory else "JSStorageResourcesExceededErr")


def max_consumers(jsa, stream_cfg: dict) -> int:
    """Consumers a stream may have: its own max_consumers, capped by the account's (per stream)."""
    own = stream_cfg.get("max_consumers", -1)
    acc = jsa.limits["max_consumers"]
    if acc > 0 and (own <= 0 or acc < own):
        return acc
    return own


def publish_exceeds(jsa, storage: str, subject: str, hdr: bytes | None, msg: bytes) -> bool:
    """Would storing this message take the account over its memory or storage limit?"""
    limit = jsa.limits["max_memory" if storage == "memory" else "max_storage"]
    if limit < 0:
        return False
    used = sum(s.store.bytes for s in jsa.streams.values() if s.store.storage == storage)
    size = mem_msg_size(subject, hdr, msg) if storage == "memory" else file_msg_size(subject, hdr, msg)
    return used + size > limit
