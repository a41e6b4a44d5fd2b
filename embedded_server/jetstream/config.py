"""Stream and consumer configurations: nats-server's defaults and limits, and what every part reads of a config.

Configs are plain dicts in nats-server's field order. Decoding requests and writing configs as JSON is in
config_json.py; normalising and checking them with nats-server's error codes and texts (checkStreamCfg,
setConsumerConfigDefaults, checkConsumerCfg) in config_check.py.
"""
from __future__ import annotations

from embedded_server.version import API_LEVEL  # noqa: F401  (re-exported: the level of PROTOCOL_VERSION)

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
DEFAULT_DUPLICATE_WINDOW = 2 * MINUTE
DEFAULT_ACK_WAIT = 30 * SECOND
DEFAULT_MAX_ACK_PENDING = 1000
DEFAULT_MAX_WAITING = 512
MAX_NAME_LEN = 255
MAX_DESCRIPTION_LEN = 4 * 1024
MAX_METADATA_LEN = 128 * 1024


def filter_list(cfg: dict) -> list[str]:
    if cfg.get("filter_subject"):
        return [cfg["filter_subject"]]
    return list(cfg.get("filter_subjects") or [])
