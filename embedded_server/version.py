"""This package's own version, and the nats-server feature level it implements.

`PROTOCOL_VERSION` is sent in INFO as `version` (clients such as nats-py enable features by it, e.g. JetStream
consumer names from 2.9) and `API_LEVEL` as `api_lvl`, in `$JS.API.INFO`'s `api.level` and as `_nats.level` in
stream and consumer configs: the JetStream API level nats-server has in that release (2.11: 1, 2.12.0–2.12.4: 2,
2.12.5–2.12.15: 3, 2.14: 4, 2.15: 5; there was no 2.13). Both say what is there; docs/differences.md "Feature level" says why this one.
"""
VERSION = "0.1.0"
PROTOCOL_VERSION = "2.14.5"
API_LEVEL = 4
