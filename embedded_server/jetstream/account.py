"""JetStream inside one account (nats-server's jsAccount): its streams, their consumers, creating,
updating, deleting and recovering them from the store directory.
"""
from __future__ import annotations

import os

from . import advisories
from . import config as config_mod
from . import config_check
from . import config_json
from . import filters, limits, recovery, snapshot, sourcing
from .clock import now_ns
from .consumer import Consumer, new_consumer_name
from .errors import ApiError, api_error
from .store import StoreCorrupt
from .store.file import FileConsumerStore, FileStore, read_meta, write_meta
from .store.memory import MemoryStore
from .stream import Stream


class JSAccount:
    def __init__(self, js, account):
        self.js = js
        self.account = account
        self.streams: dict[str, Stream] = {}
        self.dir = os.path.join(js.store_dir, account.name, "streams")
        self.limits = limits.for_account(js, account.name)
        self.api_total = self.api_errors = 0   # this account's API requests, as its $JS.API.INFO reports
        self.limited = limits.is_limited(self.limits)
        self.tiered = limits.is_tiered(js, account.name)

    # -- streams ----------------------------------------------------------------------------------
    def lookup(self, name: str) -> Stream:
        st = self.streams.get(name)
        if st is None:
            raise api_error("JSStreamNotFoundErr")
        return st

    def subjects_overlap(self, subjects, exclude: str | None = None) -> bool:
        for st in self.streams.values():
            if st.name == exclude:
                continue
            for s in st.cfg.get("subjects") or ():
                for t in subjects:
                    if filters.collide(t, s):
                        return True
        return False

    def _new_store(self, cfg: dict):
        if cfg["storage"] == "memory":
            return MemoryStore(cfg)
        path = os.path.join(self.dir, cfg["name"])
        try:
            return FileStore(path, cfg, sync_always=self.js.sync_always, cache=self.js.block_cache,
                             logger=self.js.logger)
        except (OSError, StoreCorrupt) as e:
            self.js.logger.warn(f"Stream create failed for '{self.account.name} > {cfg['name']}': {e}")
            raise api_error("JSStreamCreateErrF", err="error creating store for stream") from None

    def add_stream(self, req: dict, pedantic: bool) -> tuple[Stream, bool]:
        """nats-server's addStream: (stream, created). An identical repeat returns the existing stream."""
        cfg = config_check.check_stream_config(req, pedantic, self._sourcing_check, self.js.server_limits)
        config_check.set_static_metadata(cfg)
        if cfg["num_replicas"] > 1:
            raise api_error("JSStreamReplicasNotSupportedErr")
        existing = self.streams.get(cfg["name"])
        if self.limited:
            limits.check_stream(self, cfg, new=existing is None)
        if existing is not None:
            if config_json.comparable_stream_config(cfg) == config_json.comparable_stream_config(existing.cfg):
                return existing, False
            raise api_error("JSStreamNameExistErr")
        self._check_resources(cfg)
        if self.subjects_overlap(cfg.get("subjects") or ()):
            raise api_error("JSStreamSubjectOverlapErr")
        store = self._new_store(cfg)
        created = now_ns()
        if isinstance(store, FileStore):
            try:
                write_meta(store.directory, {"config": cfg, "created": created}, sync=True,
                           new_dirs=store.take_new_dirs())
            except OSError as e:
                store.delete()
                raise api_error("JSStreamCreateErrF", err=f"error creating store for stream: {e}") from None
        st = Stream(self, cfg, store, created)
        self.streams[cfg["name"]] = st
        st.subscribe()
        st.schedule_expiry()
        self.js.add_usage(st)
        sourcing.stream_added(self, st)
        advisories.stream_action(self.js, self.account, st.name, "create")
        return st, True

    def _sourcing_check(self, cfg: dict, pedantic: bool) -> None:
        def lookup(name):
            st = self.streams.get(name)
            return st.cfg if st is not None else None
        sourcing.check_config(cfg, pedantic, lookup)

    def _check_resources(self, cfg: dict, old: dict | None = None) -> None:
        max_bytes = cfg.get("max_bytes", -1)
        if max_bytes <= 0:
            return
        storage = cfg["storage"]
        limit = self.js.max_memory if storage == "memory" else self.js.max_store
        reserved = sum(max(s.cfg.get("max_bytes", -1), 0) for s in self.streams.values()
                       if s.cfg["storage"] == storage and s.name != cfg["name"])
        if reserved + max_bytes > limit:
            raise api_error("JSMemoryResourcesExceededErr" if storage == "memory" else "JSStorageResourcesExceededErr")

    def update_stream(self, name: str, req: dict, pedantic: bool) -> Stream:
        st = self.lookup(name)
        cfg = config_check.check_stream_config(req, pedantic, self._sourcing_check, self.js.server_limits)
        cfg = config_check.check_stream_update(st.cfg, cfg)
        if self.limited:
            limits.check_stream(self, cfg, new=False)
        if self.subjects_overlap(cfg.get("subjects") or (), exclude=name):
            raise api_error("JSStreamSubjectOverlapErr")
        self._check_resources(cfg, st.cfg)
        config_check.set_static_metadata(cfg)
        if isinstance(st.store, FileStore):
            write_meta(st.store.directory, {"config": cfg, "created": st.created}, sync=True)
        st.update(cfg)
        sourcing.stream_updated(st)
        self.js.add_usage(st)
        advisories.stream_action(self.js, self.account, st.name, "modify")
        return st

    def delete_stream(self, name: str) -> None:
        st = self.lookup(name)
        del self.streams[name]
        sourcing.stream_removed(self, st)
        st.stop(delete=True)
        self.js.add_usage(st, gone=True)
        advisories.stream_action(self.js, self.account, name, "delete")

    # -- consumers --------------------------------------------------------------------------------
    def consumer_limits(self) -> tuple[dict, int]:
        """(`jetstream { limits }`, this account's `max_ack_pending` or 0): what a consumer's config is held to
        when it is created, restored from a snapshot or loaded at start."""
        return self.js.server_limits, self.limits["max_ack_pending"] if self.limited else 0

    def add_consumer(self, st: Stream, req_cfg: dict, action: str, pedantic: bool) -> Consumer:
        """nats-server's addConsumerWithAction for a single server."""
        if st.closed:
            raise api_error("JSStreamInvalidErr")
        server_limits, account_limit = self.consumer_limits()
        cfg = config_check.consumer_defaults(req_cfg, st.cfg, pedantic, server_limits, account_limit)
        config_check.check_consumer_config(cfg, st.cfg, server_limits, account_limit)
        name = cfg.get("durable_name") or cfg.get("name") or ""
        if name:
            existing = st.consumers.get(name)
            if existing is not None:
                if action == "create":
                    if consumer_comparable(cfg) != consumer_comparable(existing.cfg):
                        raise api_error("JSConsumerAlreadyExists")
                if st.cfg["retention"] == "workqueue" and not self._partition_unique(st, name, cfg):
                    raise api_error("JSConsumerWQConsumerNotUniqueErr")
                err = check_consumer_update(existing.cfg, cfg, self.js.server.has_interest, self.account)
                if err is not None:
                    raise err if isinstance(err, ApiError) else api_error("JSConsumerCreateErrF", err=err)
                if not config_mod.filter_list(cfg) == config_mod.filter_list(existing.cfg) or cfg != existing.cfg:
                    existing.update_config(cfg)
                return existing
        if action == "update":
            raise api_error("JSConsumerDoesNotExist")
        max_consumers = limits.max_consumers(self, st.cfg) if self.limited else st.cfg.get("max_consumers", -1)
        if max_consumers <= 0:  # neither the stream nor the account sets one: the server's default (2.15)
            max_consumers = self.js.default_max_consumers
        # nats-server's numLimitableConsumers: the consumers of mirrors and sources do not count
        limitable = sum(1 for o in st.consumers.values() if not o.cfg.get("sourcing"))
        if max_consumers > 0 and limitable >= max_consumers:
            raise api_error("JSMaximumConsumersLimitErr")
        if st.cfg["retention"] == "workqueue" and not cfg.get("direct") and not cfg.get("sourcing"):
            if cfg["ack_policy"] not in ("explicit", "flow_control"):
                raise api_error("JSConsumerWQRequiresExplicitAckErr")
            if cfg.get("deliver_policy", "all") != "all":
                raise api_error("JSConsumerWQConsumerNotDeliverAllErr")
            if limitable:
                if not config_mod.filter_list(cfg):
                    raise api_error("JSConsumerWQMultipleUnfilteredErr")
                if not self._partition_unique(st, name, cfg):
                    raise api_error("JSConsumerWQConsumerNotUniqueErr")
        if cfg.get("durable_name"):
            if len(cfg["durable_name"]) > config_mod.MAX_NAME_LEN:
                raise api_error("JSConsumerNameTooLongErrF", max=config_mod.MAX_NAME_LEN)
            name = cfg["durable_name"]
        elif cfg.get("name"):
            name = cfg["name"]
        else:
            # A legacy ephemeral: nats-server's config keeps no `name` (create answer, info, list, meta file).
            name = new_consumer_name()
            while name in st.consumers:
                name = new_consumer_name()
        if not config_check.is_valid_name(name):
            raise api_error("JSConsumerBadDurableNameErr")
        if not cfg.get("durable_name") and not cfg.get("inactive_threshold"):
            cfg["inactive_threshold"] = 5 * config_mod.SECOND
        created = now_ns()
        try:
            cstore = st.store.consumer_store(name)
            state = _state_left(cstore)
            cstore.save_config(cfg, created)
        except OSError as e:
            raise api_error("JSConsumerCreateErrF", err="error creating store for consumer") from e
        o = Consumer(st, cfg, name, created, cstore, state=state)
        st.consumers[name] = o
        o.start()
        advisories.consumer_action(self.js, self.account, st.name, name, "create")
        return o

    def _partition_unique(self, st: Stream, name: str, cfg: dict) -> bool:
        subjects = config_mod.filter_list(cfg)
        for other in st.consumers.values():
            if other.name == name or other.cfg.get("direct") or other.cfg.get("sourcing"):
                continue
            ofilters = config_mod.filter_list(other.cfg)
            if not ofilters:
                return False
            for a in subjects:
                for b in ofilters:
                    if filters.is_subset(a, b) or filters.is_subset(b, a):
                        return False
        return True

    def delete_consumer(self, st: Stream, o: Consumer) -> None:
        if st.consumers.get(o.name) is o:
            del st.consumers[o.name]
        o.stop(delete=True)
        advisories.consumer_action(self.js, self.account, st.name, o.name, "delete")
        st.cleanup_no_interest(o.asflr)

    # -- recovery and stop ------------------------------------------------------------------------
    # Nothing found on disk may stop the server from starting: a stream or consumer that cannot be loaded is
    # reported with an [ERR] line and moved into `unloadable/` beside the others (see recovery.py); the rest runs.
    def recover(self) -> None:
        """Bring back the file streams and their consumers found on disk."""
        snapshot.clean_staging(self)
        try:
            names = sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else []
        except OSError as e:
            self.js.logger.error(f"JetStream could not read {self.dir}: {e}")
            return
        for name in names:
            path = os.path.join(self.dir, name)
            if os.path.isdir(path):
                self._recover_stream(name, path)
        for st in list(self.streams.values()):
            try:
                sourcing.stream_added(self, st)
            except Exception as e:  # noqa: BLE001 - a stream that cannot follow its origins still starts
                self.js.logger.error(f"JetStream could not start the mirror/sources of stream "
                                     f"'{self.account.name} > {st.name}': {e!r}")

    def _recover_stream(self, name: str, path: str) -> None:
        log = self.js.logger
        store = None
        try:
            meta = read_meta(path)
            cfg, created = recovery.stream_meta(meta, name, self.js.server_limits)
            if self.subjects_overlap(cfg.get("subjects") or ()):
                raise recovery.Unloadable("subjects overlap with an existing stream")
            log.notice(f"  Starting restore for stream '{self.account.name} > {name}'")
            store = FileStore(path, cfg, sync_always=self.js.sync_always, cache=self.js.block_cache,
                              logger=self.js.logger)
            for text in store.warnings:
                log.warn(text)
            for text in store.errors:
                log.error(text)
            st = Stream(self, cfg, store, created or now_ns())
        except recovery.OverLimit as e:
            log.warn(f'  Error recreating stream "{name}": {e}')
            return
        except Exception as e:  # noqa: BLE001 - whatever the files hold, the other streams still start
            if store is not None:
                store.stop()
            log.error(f'  Error recreating stream "{name}" in account \'{self.account.name}\': '
                      + recovery.set_aside(e, path, os.path.dirname(self.dir)))
            return
        self.streams[cfg["name"]] = st
        self.js.add_usage(st)
        log.notice(f"  Restored {store.msgs:,} messages for stream '{self.account.name} > {cfg['name']}'")
        self._recover_consumers(st)
        st.subscribe()
        st.schedule_expiry()

    def _recover_consumers(self, st: Stream) -> None:
        obs = os.path.join(st.store.directory, "obs")
        try:
            names = sorted(os.listdir(obs)) if os.path.isdir(obs) else []
        except OSError as e:
            self.js.logger.error(f"JetStream could not read {obs}: {e}")
            return
        for name in names:
            self._recover_consumer(st, name, os.path.join(obs, name))
        if st.consumers:
            self.js.logger.notice(f"  Restored {len(st.consumers)} consumer(s) for stream "
                                  f"'{self.account.name} > {st.name}'")

    def _recover_consumer(self, st: Stream, name: str, path: str) -> None:
        cstore = None
        try:
            if not os.path.isdir(path):
                raise recovery.Unloadable("not a directory")
            cstore = st.store.consumer_store(name)
            cfg, created = recovery.consumer_meta(read_meta(path), name, st.cfg, *self.consumer_limits())
            state = recovery.consumer_state(cstore.load_state())
            # Ephemerals come back too, as in nats-server; their inactivity threshold then removes them.
            o = Consumer(st, cfg, name, created or now_ns(), cstore, state=state)
        except recovery.OverLimit as e:
            if cstore is not None:
                cstore.close()
            self.js.logger.warn(f"    Error adding consumer '{self.account.name} > {st.name} > {name}': {e}")
            return
        except Exception as e:  # noqa: BLE001 - one consumer's files never keep its stream from running
            if cstore is not None:
                cstore.close()
            self.js.logger.error(f'    Error recreating consumer "{name}" of stream '
                                 f"'{self.account.name} > {st.name}': "
                                 + recovery.set_aside(e, path, st.store.directory))
            return
        st.consumers[name] = o
        o.start()

    def stop(self) -> None:
        for st in self.streams.values():
            st.stop(delete=False)


def _state_left(cstore) -> dict | None:
    """The delivery state left on disk by a consumer of this name that was not loaded at start (above a lowered
    limit, recovery.OverLimit): a new consumer of that name takes it over, as on nats-server."""
    if not isinstance(cstore, FileConsumerStore):
        return None
    try:
        return recovery.consumer_state(cstore.load_state())
    except (recovery.Unloadable, StoreCorrupt, OSError, ValueError):
        return None


def consumer_comparable(cfg: dict) -> dict:
    out = dict(cfg)
    out["metadata"] = {k: v for k, v in (cfg.get("metadata") or {}).items() if k not in ("_nats.ver", "_nats.level")}
    return out


def check_consumer_update(old: dict, new: dict, has_interest, account):
    """nats-server's checkNewConsumerConfig: what an update may not change. Returns an error text or None."""
    if old == new:
        return None
    same = lambda key, default=None: old.get(key, default) == new.get(key, default)  # noqa: E731
    if not same("deliver_policy", "all"):
        return "deliver policy can not be updated"
    if not same("mem_storage", False):
        return "storage type can not be updated"
    if not same("direct", False):
        return "direct can not be updated"
    if not same("opt_start_seq", 0):
        return "start sequence can not be updated"
    if not same("opt_start_time"):
        return "start time can not be updated"
    if not same("ack_policy"):
        return "ack policy can not be updated"
    if not same("replay_policy", "instant"):
        return "replay policy can not be updated"
    if not same("idle_heartbeat", 0):
        return "heart beats can not be updated"
    if not same("flow_control", False):
        return "flow control can not be updated"
    if not same("deliver_subject", ""):
        if not old.get("deliver_subject"):
            return "can not update pull consumer to push based"
        if not new.get("deliver_subject"):
            return "can not update push consumer to pull based"
        if has_interest(account, old["deliver_subject"]):
            return api_error("JSConsumerNameExistErr")
    if not same("max_waiting", 0):
        return "max waiting can not be updated"
    backoff = new.get("backoff") or []
    if backoff and new.get("max_deliver", -1) != -1 and len(backoff) > new["max_deliver"]:
        return api_error("JSConsumerMaxDeliverBackoffErr")
    return None
