"""Stream and consumer configurations: nats-server's defaults and limits, and what every part reads of a config.

Configs are plain dicts in nats-server's field order. Decoding requests and writing configs as JSON is in
config_json.py; normalising and checking them with nats-server's error codes and texts (checkStreamCfg,
setConsumerConfigDefaults, checkConsumerCfg) in config_check.py.
"""
from __future__ import annotations

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
