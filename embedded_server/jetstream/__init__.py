"""JetStream for the embedded server: `enable(server)` is the one hook the core server calls when `-js` is given.

The package follows nats-server's split: `api.py` answers `$JS.API.*`, `stream.py` and `consumer.py` hold
the behaviour, `store/` keeps the messages (memory or file), `errors.py` is the one error table. This module
owns the server-wide part: the store directory, resource limits and usage, the per-account registries of
streams (`JSAccount`), recovery at start and the orderly shutdown.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

from embedded_server.version import PROTOCOL_VERSION

from . import api, filters, limits
from .account import JSAccount
from .clock import now_ns, rfc3339
from .config import API_LEVEL
from .config_json import stream_config_json
from .errors import ApiError
from .store.cache import DEFAULT_LIMIT as DEFAULT_BLOCK_CACHE
from .store.cache import BlockCache
from .stream import parse_go_duration

__all__ = ["enable", "JetStream", "JetStreamError", "ApiError"]


DEFAULT_MAX_CONSUMERS = 1000  # nats-server 2.15's per-stream default


class JetStreamError(Exception):
    """JetStream cannot start (store directory unusable): the server reports it and does not start."""


def _default_limits(store_dir: str) -> tuple[int, int]:
    """nats-server's defaults: 75% of the machine's memory, 75% of the free disk space under the store."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 4 << 30
    probe = store_dir
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        disk = shutil.disk_usage(probe or "/").free
    except OSError:
        disk = 1 << 40
    return mem * 3 // 4, disk * 3 // 4


def _sync_settings(options) -> tuple[bool, float]:
    """(fsync before every ack, seconds between background fsyncs) from the options or the jetstream block."""
    interval = options.sync_interval
    always = False
    block = options.jetstream_block
    if hasattr(block, "items"):
        for key, value in block.items():
            if str(key).lower() in ("sync", "sync_interval"):
                if isinstance(value, str) and value.strip().lower() != "always":
                    ns = parse_go_duration(value.strip())
                    value = ns / 1e9 if ns else interval
                interval = value
    if isinstance(interval, str):
        if interval.strip().lower() == "always":
            return True, 120.0
        interval = 120.0
    if interval is None or interval <= 0:
        interval = 120.0
    return always, float(interval)


def _batch_limits(options) -> dict:
    """`jetstream { limits { batch { max_inflight_per_stream, max_inflight_total, max_msgs, timeout } } }`, as
    nats-server reads them (timeout a Go duration, kept here in seconds); anything unreadable is left unset."""
    out: dict = {}
    block = options.jetstream_block
    lims = _child(block, "limits")
    batch = _child(lims, "batch")
    if batch is None:
        return out
    for key, value in batch.items():
        lk = str(key).lower()
        if lk in ("max_inflight_per_stream", "max_inflight_total", "max_msgs") and isinstance(value, int):
            out[lk] = value
        elif lk == "timeout" and isinstance(value, str):
            ns = parse_go_duration(value.strip())
            if ns:
                out["timeout"] = ns / 1e9
    return out


def _child(block, name: str):
    if not hasattr(block, "items"):
        return None
    for key, value in block.items():
        if str(key).lower() == name and hasattr(value, "items"):
            return value
    return None


def format_size(n: int) -> str:
    """Bytes as nats-server's friendlyBytes writes them (`10.00 MB`)."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


class JetStream:
    """The JetStream subsystem of one server."""

    def __init__(self, server):
        self.server = server
        self.loop = server.loop
        self.logger = server.logger
        opts = server.options
        base = opts.store_dir or os.path.join(tempfile.gettempdir(), "nats")
        self.store_dir = os.path.join(os.path.abspath(base), "jetstream")
        mem_default, disk_default = _default_limits(self.store_dir)
        max_mem = opts.max_memory_store
        max_file = opts.max_file_store
        self.max_memory = max_mem if max_mem and max_mem > 0 else mem_default
        self.max_store = max_file if max_file and max_file > 0 else disk_default
        self.sync_always, self.sync_interval = _sync_settings(opts)
        self.batch_limits = _batch_limits(opts)
        cache = opts.block_cache
        self.block_cache = BlockCache(cache if cache is not None and cache >= 0 else DEFAULT_BLOCK_CACHE)
        self.max_pending = opts.max_pending
        self.domain = opts.jetstream_domain
        # nats-server 2.15: a stream whose config and account set no max_consumers takes at most this many
        # (jetstream { limits { default_max_consumers } }, 1,000 unless set; below 0 unlimited)
        self.default_max_consumers = getattr(opts, "jetstream_default_max_consumers", 0) or DEFAULT_MAX_CONSUMERS
        # feature flag js_ack_fc_v2 (nats-server 2.14+, off by default): consumers send ack and flow control
        # reply subjects in the v2 form; both forms are accepted either way.
        self.ack_v2 = bool((getattr(opts, "feature_flags", None) or {}).get("js_ack_fc_v2", False))
        self.version = PROTOCOL_VERSION
        self.accounts: dict[str, JSAccount] = {}
        self._not_enabled: set[str] = set()   # accounts answering "JetStream not enabled for account"
        self.api_total = 0
        self.api_errors = 0
        self.usage = {"memory": 0, "file": 0}
        self.limit_for = {"memory": self.max_memory, "file": self.max_store}
        self._sync_timer = None
        self._closed = False

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        log = self.logger
        log.notice("Starting JetStream")
        try:
            os.makedirs(self.store_dir, exist_ok=True)
            probe = os.path.join(self.store_dir, ".writable")
            with open(probe, "w") as f:
                f.write("ok")
            os.unlink(probe)
        except OSError as e:
            raise JetStreamError(f"could not create storage directory - {e}") from None
        log.notice("---------------- JETSTREAM ----------------")
        log.notice(f"  Max Memory:      {format_size(self.max_memory)}")
        log.notice(f"  Max Storage:     {format_size(self.max_store)}")
        log.notice(f'  Store Directory: "{self.store_dir}"')
        log.notice(f"  Sync:            {'always' if self.sync_always else f'every {self.sync_interval:g}s'}")
        log.notice(f"  Block Cache:     {format_size(self.block_cache.limit)}")
        log.notice(f"  API Level:       {API_LEVEL}")
        log.notice("-------------------------------------------")
        for account in list(self.server.accounts.values()):
            self.account_registered(account)
        self._arm_sync()
        log.notice(f"Took {(time.monotonic() - started) * 1000:.3f}ms to start JetStream")

    def account_registered(self, account) -> None:
        """Turn JetStream on or off for an account, at start or when it first appears (operator mode). As
        nats-server: never the system account; with accounts configured, only those saying `jetstream: enabled`
        (or a limits map); in operator mode, those whose JWT has JetStream limits; the others answer
        $JS.API.INFO with "JetStream not enabled for account"."""
        server = self.server
        if account.name in self.accounts or account.name in self._not_enabled:
            return
        system = server.system_account_name or server.options.system_account or "$SYS"
        operator = server.operator
        if account.name in ("$SYS", system):
            enabled = False   # never JetStream in the system account, as nats-server
        elif operator is not None:
            enabled = limits.jwt_enabled(operator.accounts.get(account.name))
        else:
            configured = {a.name: a for a in server.options.accounts}
            # As nats-server (globalAccountOnly): accounts besides $G and the system account make a
            # multi-account server, where only those saying `jetstream: enabled` get it. With only a system
            # account configured, $G keeps JetStream.
            multi = any(name not in ("$G", system) for name in configured)
            enabled = not multi or bool(getattr(configured.get(account.name), "jetstream", False))
        if enabled:
            self.enable_account(account)
        else:
            self._not_enabled.add(account.name)
            if not self._imports_js_api(account.name):
                api.subscribe_not_enabled(self, account)
            if account.name == system:
                api.subscribe_system(self, account)

    def _imports_js_api(self, name: str) -> bool:
        """Does the account reach JetStream through a service import of another account's API? As nats-server
        (enableJetStreamInfoServiceImportOnly): an import whose subject covers $JS.API.INFO leaves out the
        "not enabled" answers, so what it does not import gets no responders, not 10039."""
        operator = self.server.operator
        configs = operator.account_configs() if operator is not None else self.server.options.accounts or []
        return any(filters.matches(i.to or i.subject, "$JS.API.INFO")
                   for c in configs if c.name == name for i in c.service_imports)

    def enable_account(self, account) -> JSAccount:
        """Turn JetStream on for an account (all accounts but $SYS at start; later ones through this call)."""
        jsa = self.accounts.get(account.name)
        if jsa is None:
            jsa = self.accounts[account.name] = JSAccount(self, account)
            jsa.recover()
            api.subscribe(self, jsa)
        return jsa

    # -- resources --------------------------------------------------------------------------------
    @property
    def server_limits(self) -> dict:
        """`jetstream { limits { ... } }` as the running configuration has it (a reload may change it)."""
        return self.server.options.jetstream_limits

    def add_usage(self, stream, gone: bool = False) -> None:
        """A stream's size changed (or it went away): move the totals the limits are checked against."""
        size = 0 if gone else stream.store.bytes
        self.usage[stream.store.storage] += size - stream.accounted
        stream.accounted = size

    def limits_exceeded(self, storage: str) -> bool:
        return self.usage[storage] > self.limit_for[storage]

    # -- messaging helpers ------------------------------------------------------------------------
    def send(self, account, subject: str, payload: bytes) -> None:
        # (A PubAck or batch answer to a request's reply subject: Server.answer.)
        self.server.answer(account, subject, payload)

    def deliver(self, account, deliver_subject: str, subject: str, reply: str, hdr, payload) -> bool:
        """A consumer's delivery: routed by the deliver subject, received with the message's own subject."""
        return self.server.deliver_internal(account, deliver_subject, subject, reply, hdr, payload)

    # -- durability -------------------------------------------------------------------------------
    def _arm_sync(self) -> None:
        if not self.sync_always and not self._closed:
            self._sync_timer = self.loop.call_later(self.sync_interval, self._sync)

    def _sync(self) -> None:
        self._sync_timer = None
        for jsa in self.accounts.values():
            for st in jsa.streams.values():
                try:
                    st.store.flush()
                except OSError as e:
                    self.logger.error(f"JetStream sync of stream '{jsa.account.name} > {st.name}' failed: {e}")
        self._arm_sync()

    # -- monitoring -------------------------------------------------------------------------------
    def _config_doc(self) -> dict:
        return {"max_memory": self.max_memory, "max_storage": self.max_store, "store_dir": self.store_dir,
                "sync_interval": int(self.sync_interval * 1e9), **({"sync_always": True} if self.sync_always else {}),
                "strict": True}

    def _stats_doc(self) -> dict:
        return {"memory": self.usage["memory"], "storage": self.usage["file"], "reserved_memory": 0,
                "reserved_storage": 0, "accounts": len(self.accounts), "ha_assets": 0,
                "api": {"level": API_LEVEL, "total": self.api_total, "errors": self.api_errors}}

    def varz(self) -> dict:
        """The `jetstream` section of /varz."""
        return {"config": self._config_doc(), "stats": self._stats_doc(), "limits": self._limits_doc()}

    def _limits_doc(self) -> dict:
        """nats-server's JSLimitOpts as /varz and /jsz show them: the limits set (zero ones left out)."""
        lim, batch = self.server_limits, self.server_limits.get("batch") or {}
        doc = {"max_request_batch": lim.get("max_request_batch", 0), "max_ack_pending": lim.get("max_ack_pending", 0),
               "max_ha_assets": lim.get("max_ha_assets", 0), "max_duplicate_window": lim.get("duplicate_window", 0),
               "max_batch_inflight_per_stream": batch.get("max_inflight_per_stream", 0),
               "max_batch_inflight_total": batch.get("max_inflight_total", 0),
               "max_batch_size": batch.get("max_msgs", 0), "max_batch_timeout": batch.get("timeout", 0)}
        doc = {k: v for k, v in doc.items() if v}
        doc["default_max_consumers"] = self.default_max_consumers
        return doc

    def jsz(self, q: dict | None = None) -> dict:
        """/jsz as nats-server shapes it; `accounts`, `streams`, `consumers`, `config`, `acc` select detail."""
        q = q or {}
        flag = lambda name: str(q.get(name, "")).lower() in ("1", "t", "true")  # noqa: E731
        streams = [st for jsa in self.accounts.values() for st in jsa.streams.values()]
        doc = self._stats_doc()
        doc.update({"server_id": self.server.server_id, "now": rfc3339(now_ns()), "config": self._config_doc(),
                    "limits": self._limits_doc(), "streams": len(streams),
                    "consumers": sum(len(st.consumers) for st in streams),
                    "messages": sum(st.store.msgs for st in streams),
                    "bytes": sum(st.store.bytes for st in streams),
                    "block_cache": self.block_cache.stats()})
        want_streams, want_consumers = flag("streams") or flag("consumers"), flag("consumers")
        if flag("accounts") or want_streams or q.get("acc"):
            details = []
            for name, jsa in sorted(self.accounts.items()):
                if q.get("acc") and q["acc"] != name:
                    continue
                acc = {"name": name, "id": name,
                       "memory": sum(st.store.bytes for st in jsa.streams.values() if st.store.storage == "memory"),
                       "storage": sum(st.store.bytes for st in jsa.streams.values() if st.store.storage == "file"),
                       "reserved_memory": 0, "reserved_storage": 0, "accounts": 0, "ha_assets": 0,
                       "api": {"level": 0, "total": 0, "errors": 0}}
                if want_streams:
                    acc["stream_detail"] = []
                    for st in sorted(jsa.streams.values(), key=lambda x: x.name):
                        d = {"name": st.name, "created": rfc3339(st.created),
                             "cluster": {"leader": self.server.server_name}}
                        if flag("config"):
                            d["config"] = stream_config_json(st.cfg)
                        d["state"] = st.state_json()
                        if want_consumers:
                            d["consumer_detail"] = [o.info() for _, o in sorted(st.consumers.items())]
                        acc["stream_detail"].append(d)
                details.append(acc)
            offset = max(_int_arg(q.get("offset")), 0)
            limit = _int_arg(q.get("limit")) or 1024
            page = details[offset:offset + limit]
            if page:
                doc["account_details"] = page
        doc["total"] = len(self.accounts)
        return doc

    def healthz(self, q: dict | None = None) -> tuple[int, dict]:
        return 200, {"status": "ok"}

    # -- stop -------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        for jsa in self.accounts.values():
            jsa.stop()


def _int_arg(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def enable(server) -> JetStream:
    """Start JetStream on `server` (called on its loop thread before "Server is ready"). Raises JetStreamError."""
    js = JetStream(server)
    js.start()
    return js
