"""What start-up believes of a store directory: decoded metadata and consumer state are checked for shape before
they are used (a checksum proves only that the bytes are the ones written), and what cannot be loaded is moved
aside, with the reason logged, so that the rest of the server starts and the name can be used again.
"""
from __future__ import annotations

import json
import os
import time

from . import config_check
from . import requests
from .clock import rfc3339
from .errors import ApiError
from .store import MAX_SEQ, StoreCorrupt

UNLOADABLE = "unloadable"


class Unloadable(Exception):
    """Content on disk that does not describe a stream or consumer this server can run."""


class OverLimit(Exception):
    """A stored stream or consumer that is sound but above a limit of the configuration it starts with (a
    `jetstream { limits }` or account limit lowered since it was made). As nats-server, it is not loaded and
    the log says why in nats-server's words; its files stay where they are, so raising the limit again brings
    it back at the next start."""

    def __init__(self, error: ApiError):
        super().__init__(f"{error.description} ({error.err_code})")


def _is_uint(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ


def _created(meta: dict) -> int:
    created = meta.get("created")
    if created is None:
        return 0
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        raise Unloadable(f"'created' is {created!r}, not a time in nanoseconds")
    return created


def _config(meta, what: str) -> dict:
    if not isinstance(meta, dict):
        raise Unloadable(f"the {what} metafile holds {type(meta).__name__}, not an object")
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        raise Unloadable(f"the {what} metafile has no 'config' object")
    return cfg


_STREAM_CONFIG = requests.Struct("StreamConfig", requests.STREAM_CONFIG_FIELDS)


def _texts_for_times(cfg: dict, keys: tuple[str, ...]) -> dict:
    """A stored config keeps times as nanoseconds where the API sends RFC 3339 text: the text, for decoding."""
    return {k: rfc3339(v) if k in keys and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in cfg.items()}


def _check_types(cfg: dict, struct: requests.Struct) -> None:
    """Each field's JSON type as nats-server would decode the config (json.Unmarshal: unknown fields pass)."""
    try:
        requests.decode(json.dumps(cfg), struct, strict=False)
    except requests.GoJsonError as e:
        raise Unloadable(str(e)) from None


def stream_meta(meta, dirname: str, server_limits=None) -> tuple[dict, int]:
    """(config, created) of a stream's meta.inf, checked as a create request would be; OverLimit when it is
    above `server_limits` (its duplicate window, as nats-server's checkStreamCfg on recovery)."""
    cfg = _config(meta, "stream")
    typed = dict(cfg)
    if isinstance(cfg.get("mirror"), dict):
        typed["mirror"] = _texts_for_times(cfg["mirror"], ("opt_start_time",))
    if isinstance(cfg.get("sources"), list):
        typed["sources"] = [_texts_for_times(s, ("opt_start_time",)) if isinstance(s, dict) else s
                            for s in cfg["sources"]]
    _check_types(typed, _STREAM_CONFIG)
    try:
        config_check.check_stream_config(cfg)
    except ApiError as e:
        raise Unloadable(e.description) from None
    if cfg.get("name") != dirname:
        raise Unloadable(f"the metafile names stream {cfg.get('name')!r}, its directory is {dirname!r}")
    if cfg.get("storage", "file") != "file":
        raise Unloadable(f"storage is {cfg.get('storage')!r} in a file stream's directory")
    if server_limits:
        try:
            config_check.check_stream_config(cfg, server_limits=server_limits)
        except ApiError as e:
            raise OverLimit(e) from None
    return cfg, _created(meta)


def consumer_meta(meta, dirname: str, stream_cfg: dict, server_limits=None,
                  account_max_ack_pending: int = 0) -> tuple[dict, int]:
    """(config, created) of a consumer's meta.inf, with the defaults of the limits it starts with (a pull
    consumer without `max_batch` shows the server's `max_request_batch`, as on nats-server; not written back);
    OverLimit when it is above the server's or its account's limits, as nats-server's checkConsumerCfg."""
    cfg = _config(meta, "consumer")
    _check_types(_texts_for_times(cfg, ("opt_start_time", "pause_until")), requests.CONSUMER_CONFIG)
    try:
        cfg = config_check.consumer_defaults(cfg, stream_cfg, False, server_limits, account_max_ack_pending)
    except ApiError as e:
        raise Unloadable(e.description) from None
    if not cfg.get("durable_name") and not cfg.get("name"):
        cfg["name"] = dirname  # a legacy ephemeral's config has no name until a restart, as on nats-server
    name = cfg.get("durable_name") or cfg.get("name")
    if name != dirname:
        raise Unloadable(f"the metafile names consumer {name!r}, its directory is {dirname!r}")
    try:
        config_check.check_consumer_limits(cfg, server_limits, account_max_ack_pending)
    except ApiError as e:
        raise OverLimit(e) from None
    return cfg, _created(meta)


def consumer_state(state) -> dict | None:
    """The delivery state as Consumer reads it, or Unloadable naming the first field that is wrong."""
    if state is None:
        return None
    if not isinstance(state, dict):
        raise Unloadable(f"the consumer state holds {type(state).__name__}, not an object")
    for key in ("delivered", "ack_floor"):
        if key not in state:
            raise Unloadable(f"the consumer state has no {key!r}")
        part = state[key]
        if not isinstance(part, dict) or not all(_is_uint(part.get(k, 0)) for k in ("consumer_seq", "stream_seq")):
            raise Unloadable(f"the consumer state's {key!r} is {part!r}")
    pending = state.get("pending") or {}
    if not isinstance(pending, dict):
        raise Unloadable("the consumer state's 'pending' is not an object")
    for seq, entry in pending.items():
        if not (seq.isdigit() and isinstance(entry, list) and len(entry) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in entry)):
            raise Unloadable(f"the consumer state's pending entry {seq!r}: {entry!r}")
    redelivered = state.get("redelivered") or {}
    if not isinstance(redelivered, dict) or not all(
            k.isdigit() and _is_uint(v) for k, v in redelivered.items()):
        raise Unloadable("the consumer state's 'redelivered' is not a map of sequences to counts")
    return state


def set_aside(error: Exception, path: str, holder: str) -> str:
    """What the log says about a stream or consumer that could not be loaded. Content judged unusable (bad
    checksum, wrong shape, unreadable) is moved aside; an unexpected exception is this server's own defect, so
    the files stay where they are for the next version to load."""
    if isinstance(error, (Unloadable, StoreCorrupt, OSError, ValueError, UnicodeError)):
        return f"{error}; its files are kept in {keep_aside(path, holder)}"
    return f"{error!r} (an internal error; its files are left in place)"


def keep_aside(path: str, holder: str) -> str:
    """Move `path` into `<holder>/unloadable/` under a name with the time, out of the way of a new stream or
    consumer of the same name; returns where it went (or `path` if it could not be moved)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target_dir = os.path.join(holder, UNLOADABLE)
    target = os.path.join(target_dir, f"{os.path.basename(path)}.{stamp}")
    n = 1
    while os.path.exists(target):
        n += 1
        target = os.path.join(target_dir, f"{os.path.basename(path)}.{stamp}.{n}")
    try:
        os.makedirs(target_dir, exist_ok=True)
        os.rename(path, target)
    except OSError:
        return path
    return target
