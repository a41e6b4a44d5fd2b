"""Stream mirrors and sources: checking their configuration as nats-server's checkStreamCfg does, and copying
messages from the origin streams into the mirror or sourcing stream, catching up first and then following.

nats-server copies through an internal push consumer on the origin; a single embedded server reads the
origin's store directly (same sequences, same order, no consumer on the origin) and is told of each new
message by the origin's publish path (`Stream.sourcers`). A mirror or source with a durable consumer
(`consumer: {name, deliver_subject}`) goes through that user-made consumer instead, as nats-server does
(`DurableFeed`). A mirror keeps the origin's sequences and
timestamps; a source re-publishes into its stream with a `Nats-Stream-Source` header that records where each
message came from, which is how a restarted stream finds where each source stopped.
"""
from __future__ import annotations

import hashlib
import json
import os

from ..auth.accounts import map_subject
from . import config_check, filters, headers
from .clock import now_ns, parse_rfc3339, rfc3339
from .errors import ApiError, api_error
from .store import StoreError, StoreMsg
from .transform import SubjectTransform, TransformError

SECOND = 1_000_000_000
STREAM_SOURCE = b"Nats-Stream-Source"
JS_API_PREFIX = "$JS.API"
BATCH = 4096  # messages copied per turn of the event loop while catching up
RETRY = 1.0  # seconds before trying again after the sourcing stream refused a message
SAVE_AFTER = 1.0  # seconds between writes of the sources' positions (file streams)
POSITIONS_FILE = "sources.json"

MORE, IDLE, RETRY_LATER = "more", "idle", "retry"  # what a copying turn left to do
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def get_hash(name: str, size: int = 8) -> str:
    """nats-server's getHash: the first `size` bytes of sha256(name), each mapped onto base62 digits."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_DIGITS[b % 62] for b in digest[:size])


def stream_identity(created_ns: int) -> str:
    """How a sourcing stream recognises that its origin was deleted and created again."""
    return get_hash(rfc3339(created_ns))


# -- configuration -------------------------------------------------------------------------------

def _is_valid_name(name) -> bool:
    return isinstance(name, str) and bool(name) and not any(c in name for c in " \t\r\n\f.*>\\/")


def _bad_type(struct: str, field: str, gotype: str, value) -> ApiError:
    kind = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "value")
    return api_error("JSInvalidJSONErr", err=f"json: cannot unmarshal {kind} into Go struct field "
                                             f"{struct}.{field} of type {gotype}")


def normalise_source(raw: dict, struct: str) -> dict:
    """A `mirror` or `sources[i]` object as nats-server decodes and echoes it (empty fields left out)."""
    out: dict = {}
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise _bad_type(struct, "name", "string", name)
    out["name"] = name
    seq = raw.get("opt_start_seq") or 0
    if isinstance(seq, bool) or not isinstance(seq, (int, float)) or seq < 0 or int(seq) != seq:
        raise _bad_type(struct, "opt_start_seq", "uint64", seq)
    if seq:
        out["opt_start_seq"] = int(seq)
    start = raw.get("opt_start_time")
    if start is not None:
        # The request decoder gives nanoseconds; a config read back from disk has the RFC 3339 text.
        try:
            out["opt_start_time"] = rfc3339(start if isinstance(start, int) else parse_rfc3339(start))
        except (ValueError, TypeError):
            raise _bad_type(struct, "opt_start_time", "time.Time", start) from None
    fs = raw.get("filter_subject") or ""
    if not isinstance(fs, str):
        raise _bad_type(struct, "filter_subject", "string", fs)
    if fs:
        out["filter_subject"] = fs
    trs = raw.get("subject_transforms") or []
    if not isinstance(trs, list) or not all(isinstance(t, dict) for t in trs):
        raise _bad_type(struct, "subject_transforms", "[]server.SubjectTransformConfig", trs)
    if trs:
        out["subject_transforms"] = [{"src": t.get("src") or "", "dest": t.get("dest") or ""} for t in trs]
    ext = raw.get("external")
    if ext is not None:
        if not isinstance(ext, dict):
            raise _bad_type(struct, "external", "server.ExternalStream", ext)
        out["external"] = {"api": ext.get("api") or "", "deliver": ext.get("deliver") or ""}
    cons = raw.get("consumer")
    if cons is not None:
        if not isinstance(cons, dict):
            raise _bad_type(struct, "consumer", "server.StreamConsumerSource", cons)
        out["consumer"] = {}
        for field in ("name", "deliver_subject"):
            value = cons.get(field) or ""
            if not isinstance(value, str):
                raise _bad_type(struct + ".consumer", field, "string", value)
            if value:
                out["consumer"][field] = value
    return out


def _durable_ok(src: dict) -> bool:
    """nats-server's checks of a durable sourcing consumer (`consumer` in a mirror or a source)."""
    cons = src["consumer"]
    deliver = cons.get("deliver_subject", "")
    return (_is_valid_name(cons.get("name")) and filters.is_literal(deliver) and filters.is_valid_subject(deliver)
            and not src.get("opt_start_seq") and not src.get("opt_start_time") and not src.get("filter_subject"))


def consumer_index_name(src: dict) -> str:
    """nats-server's composeCName: a durable consumer may feed only one source of a stream."""
    iname = src["name"]
    if src.get("external") is not None:
        iname += ":" + get_hash(src["external"].get("api", ""))
    return iname + " " + (src.get("consumer") or {}).get("name", "")


def index_name(src: dict) -> str:
    """nats-server's composeIName: what makes two sources the same (stream, api prefix, filters, transforms)."""
    iname = src["name"]
    if src.get("external") is not None:
        iname += ":" + get_hash(src["external"].get("api", ""))
    if src.get("consumer") is not None:
        iname += ":C=" + get_hash(src["consumer"].get("name", ""))
    trs = src.get("subject_transforms") or []
    if not trs:
        source, dest = src.get("filter_subject") or ">", ">"
    else:
        source = "\f".join(t["src"] or ">" for t in trs)
        dest = "\f".join(t["dest"] or ">" for t in trs)
    return " ".join((iname, source, dest))


def _check_transforms(trs, kind: str, subset: bool) -> None:
    for i, tr in enumerate(trs):
        src = tr["src"]
        if src and not filters.is_valid_subject(src):
            raise api_error(f"JS{kind}InvalidSubjectFilter", err=f"invalid subject {src}")
        try:
            SubjectTransform(src, tr["dest"])
        except TransformError as e:
            raise api_error(f"JS{kind}InvalidTransformDestination", err=str(e)) from None
        if not subset:
            for j, other in enumerate(trs):
                if i != j and filters.collide(src or ">", other["src"] or ">"):
                    raise api_error("JSMirrorOverlappingSubjectFilters")
    if subset:
        for i, tr in enumerate(trs):
            for j, other in enumerate(trs):
                if i != j and filters.is_subset(tr["src"] or ">", other["src"] or ">"):
                    raise api_error("JSSourceOverlappingSubjectFilters")


def check_config(cfg: dict, pedantic: bool, lookup=None) -> None:
    """The mirror and sources part of nats-server's checkStreamCfg, in its order. `lookup(name)` gives the
    config of another stream of the account (or None): for message sizes, inherited direct gets and cycles."""
    lookup = lookup or (lambda name: None)
    stream_subjects: list[str] = []
    deliver_prefixes: list[str] = []
    api_prefixes: list[str] = []
    mirror = cfg.get("mirror")
    if mirror is not None:
        mirror = cfg["mirror"] = normalise_source(mirror, "StreamConfigRequest.mirror")
        if cfg.get("first_seq"):
            raise api_error("JSMirrorWithFirstSeqErr")
        if cfg.get("subjects"):
            raise api_error("JSMirrorWithSubjectsErr")
        if cfg.get("sources"):
            raise api_error("JSMirrorWithSourcesErr")
        if cfg.get("allow_msg_counter"):
            raise api_error("JSMirrorWithCountersErr")
        if cfg.get("allow_atomic"):
            raise api_error("JSMirrorWithAtomicPublishErr")
        if cfg.get("allow_batched"):
            raise api_error("JSMirrorWithBatchPublishErr")
        if cfg.get("allow_msg_schedules"):
            raise api_error("JSMirrorWithMsgSchedulesErr")
        if mirror.get("consumer") is not None and not _durable_ok(mirror):
            raise api_error("JSMirrorDurableConsumerCfgInvalid")
        if mirror.get("filter_subject") and mirror.get("subject_transforms"):
            raise api_error("JSMirrorMultipleFiltersNotAllowed")
        if cfg.get("subject_delete_marker_ttl", 0) > 0:
            raise api_error("JSStreamInvalidConfigF", err="subject delete markers forbidden on mirrors")
        _check_transforms(mirror.get("subject_transforms") or [], "Mirror", subset=False)
        if mirror.get("external") is None:
            if not _is_valid_name(mirror["name"]):
                raise api_error("JSMirrorInvalidStreamName")
            origin = lookup(mirror["name"])
            if origin is not None:
                stream_subjects.extend(origin.get("subjects") or ())
                if cfg.get("max_msg_size", -1) > 0 and origin.get("max_msg_size", -1) > 0 and \
                        cfg["max_msg_size"] < origin["max_msg_size"]:
                    raise api_error("JSMirrorMaxMessageSizeTooBigErr")
                if pedantic and bool(cfg.get("mirror_direct")) != bool(origin.get("allow_direct")):
                    raise api_error("JSPedanticErrF", err="origin stream has direct get set, mirror has it disabled")
                cfg["mirror_direct"] = bool(origin.get("allow_direct"))
        else:
            _collect_prefixes(mirror["external"], deliver_prefixes, api_prefixes)
    sources = cfg.get("sources") or []
    if sources and cfg.get("allow_msg_schedules"):
        raise api_error("JSSourceWithMsgSchedulesErr")
    seen: set[str] = set()
    consumers: set[str] = set()
    checked = []
    for raw in sources:
        if raw is None or not _is_valid_name(raw.get("name")):
            raise api_error("JSSourceInvalidStreamName")
        src = normalise_source(raw, "StreamConfigRequest.sources")
        checked.append(src)
        iname = index_name(src)
        if iname in seen:
            raise api_error("JSSourceDuplicateDetected")
        seen.add(iname)
        if src.get("filter_subject") and src.get("subject_transforms"):
            raise api_error("JSSourceMultipleFiltersNotAllowed")
        _check_transforms(src.get("subject_transforms") or [], "Source", subset=True)
        if src.get("consumer") is not None:
            if not _durable_ok(src):
                raise api_error("JSSourceDurableConsumerCfgInvalid")
            cname = consumer_index_name(src)
            if cname in consumers:
                raise api_error("JSSourceDurableConsumerDuplicateDetected")
            consumers.add(cname)
        if src.get("external") is None:
            origin = lookup(src["name"])
            if origin is not None:
                stream_subjects.extend(origin.get("subjects") or ())
                if cfg.get("max_msg_size", -1) > 0 and origin.get("max_msg_size", -1) > 0 and \
                        cfg["max_msg_size"] < origin["max_msg_size"]:
                    raise api_error("JSSourceMaxMessageSizeTooBigErr")
        else:
            _collect_prefixes(src["external"], deliver_prefixes, api_prefixes)
    if sources:
        cfg["sources"] = checked
    for pfx in deliver_prefixes:
        if not filters.is_valid_publish_subject(pfx):
            raise api_error("JSStreamInvalidExternalDeliverySubjErrF", prefix=pfx)
        for sub in stream_subjects:
            if filters.collide(sub, f"{pfx}.{sub}"):
                raise api_error("JSStreamExternalDelPrefixOverlapsErrF", prefix=pfx, subject=sub)
    for pfx in api_prefixes:
        if not filters.is_valid_publish_subject(pfx):
            raise api_error("JSStreamInvalidConfigF",
                            err=f'stream external api prefix "{pfx}" must be a valid subject without wildcards')
        if filters.collide(pfx, JS_API_PREFIX):
            raise api_error("JSStreamExternalApiOverlapErrF", prefix=pfx, subject=JS_API_PREFIX)
    _check_cycles(cfg, lookup)


def _collect_prefixes(ext: dict, deliver: list, api: list) -> None:
    if ext.get("deliver"):
        deliver.append(ext["deliver"])
    if ext.get("api"):
        api.append(ext["api"])


def _check_cycles(cfg: dict, lookup) -> None:
    """nats-server's walk over sources and mirrors: a stream may not (indirectly) source what it stores."""
    def overlaps(subjects, flt):
        return not flt or any(filters.collide(s, flt) for s in subjects or ())

    to_visit, visited = [cfg], set()
    while to_visit:
        cur = to_visit.pop(0)
        visited.add(cur["name"])
        for src in cur.get("sources") or ():
            if src.get("external") is not None:
                continue
            if src["name"] in visited:
                if overlaps(cur.get("subjects"), src.get("filter_subject", "")):
                    raise api_error("JSStreamInvalidConfigF", err="detected cycle")
            else:
                other = lookup(src["name"])
                if other is not None:
                    to_visit.append(other)
        m = cur.get("mirror")
        if m is not None and m.get("external") is None:
            if m["name"] in visited:
                raise api_error("JSStreamInvalidConfigF", err="detected cycle")
            other = lookup(m["name"])
            if other is not None:
                to_visit.append(other)


# -- runtime ---------------------------------------------------------------------------------------

class Feed:
    """One mirror or one source of a stream: where it reads (`origin`), how far it got (`sseq`)."""

    def __init__(self, owner: "Sourcing", spec: dict, mirror: bool):
        self.owner = owner
        self.spec = spec
        self.mirror = mirror
        self.name = spec["name"]
        self.iname = index_name(spec)
        self.label = self.iname.split(" ")[0]
        trs = spec.get("subject_transforms") or []
        if spec.get("filter_subject"):
            self.filters: tuple[str, ...] = (spec["filter_subject"],)
        else:
            self.filters = tuple(t["src"] or ">" for t in trs)
        if any(f == ">" for f in self.filters):
            self.filters = ()
        self.transforms = [SubjectTransform(t["src"] or ">", t["dest"]) for t in trs if t["dest"]]
        parts = self.iname.split(" ")
        self._hdr_middle = f"{parts[1]} {parts[2]}"
        self.origin = None
        self.sseq = 0  # the last origin sequence taken (or passed over by a filter)
        self.next = 0  # the next origin sequence to look at once attached
        self.ident = ""
        self.err: ApiError | None = None
        self.last = 0
        self.stopped = False
        self._scheduled = False
        self._retry = None
        self.failure = ""  # the last reason the stream refused a copy (logged once)

    # -- attaching to the origin ----------------------------------------------------------------
    def start_seq(self) -> int:
        spec = self.spec
        if spec.get("opt_start_seq"):
            return spec["opt_start_seq"]
        if spec.get("opt_start_time") and self.origin is not None:
            return max(self.origin.store.get_seq_from_time(parse_rfc3339(spec["opt_start_time"])), 1)
        return 1

    def attach(self, origin) -> None:
        if self.stopped or self.origin is origin:
            return
        self.detach()
        ident = stream_identity(origin.created)
        if self.ident and self.ident != ident and not self.mirror:
            self.owner.stream.js.logger.warn(
                f"JetStream source stream \"{self.name}\" for stream '{self.owner.stream.account.name} > "
                f"{self.owner.stream.name}' was recreated, resetting source state")
            self.sseq = 0
        self.ident = ident
        self.origin = origin
        self.err = None
        self.last = now_ns()
        self._attached(origin)

    def _attached(self, origin) -> None:
        if self.mirror:
            last = self.owner.stream.store.last_seq
            self.next = last + 1 if last else self.start_seq()
        else:
            self.next = self.sseq + 1 if self.sseq else self.start_seq()
        origin.sourcers.append(self)
        self.schedule()

    def detach(self, gone: bool = False) -> None:
        if self.origin is not None:
            try:
                self.origin.sourcers.remove(self)
            except ValueError:
                pass
            self.origin = None
        if gone:
            self.err = api_error("JSStreamNotFoundErr")
        self._cancel_retry()

    def stop(self) -> None:
        self.stopped = True
        self.detach()

    def remove(self) -> None:
        """The mirror or source left its stream's config, or the stream was deleted."""
        self.stop()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    # -- copying --------------------------------------------------------------------------------
    def origin_stored(self, seq: int) -> None:
        """The origin stored `seq`: copy it now if this feed is caught up, else let the pump reach it."""
        if self._scheduled or self._retry is not None:
            return
        if seq == self.next:
            self.pump(limit=1)
        else:
            self.schedule()

    def schedule(self) -> None:
        if not self._scheduled and not self.stopped:
            self._scheduled = True
            self.owner.stream.js.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self.pump(BATCH)

    def pump(self, limit: int) -> None:
        origin = self.origin
        if origin is None or self.stopped or origin.closed:
            return
        target = self.owner.stream
        if target.closed:
            return
        copy = self.owner.copy_mirrored if self.mirror else self.owner.copy_sourced
        target.store.begin_writes()
        try:
            done, state = copy(self, origin.store, limit)
        finally:
            target.store.end_writes()
        if done:
            self.last = now_ns()
            if not self.mirror:
                self.owner.positions_changed()
        if state == MORE:
            self.schedule()
        elif state == RETRY_LATER:
            self._retry = target.js.loop.call_later(RETRY, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.pump(BATCH)

    def transform(self, subject: str) -> str:
        for tr in self.transforms:
            out = tr.match(subject)
            if out is not None:
                return out
        return subject

    # -- info -----------------------------------------------------------------------------------
    def info(self) -> dict:
        out: dict = {"name": self.name}
        if self.spec.get("external") is not None:
            out["external"] = dict(self.spec["external"])
        lag = 0
        if self.origin is not None and not self.origin.closed:
            lag = self.origin.store.num_pending(self.next, self.filters)
        out["lag"] = lag
        if not self.mirror and self.sseq:
            out["seq"] = self.sseq
        if self.origin is None:
            out["active"] = -1
        else:
            # nats-server hears from a healthy origin at least once a second (its idle heartbeat).
            out["active"] = (now_ns() - self.last) % SECOND
        if self.err is not None:
            out["error"] = self.err.as_dict()
        if self.spec.get("filter_subject"):
            out["filter_subject"] = self.spec["filter_subject"]
        if self.spec.get("subject_transforms"):
            out["subject_transforms"] = [dict(t) for t in self.spec["subject_transforms"]]
        return out


FC_REPLY = b"NATS/1.0\r\nNats-Last-Consumer: %d\r\nNats-Last-Stream: %d\r\n\r\n"
STALLED = b"Nats-Consumer-Stalled"
STALLED_AFTER = 5.0  # seconds between checks that a durable feed's consumer is still the one it set up


class DurableFeed(Feed):
    """A mirror or source through a durable consumer of the origin (`consumer: {name, deliver_subject}`,
    nats-server 2.14+). As nats-server does, it resets the user's consumer to its ack floor, subscribes to its
    deliver subject and answers the consumer's flow control with how far it got (`Nats-Last-Consumer`,
    `Nats-Last-Stream`), which is the consumer's ack (the `flow_control` ack policy): the consumer's delivered
    and ack floor move, its num_pending falls and a work-queue origin gives the messages up."""

    def __init__(self, owner: "Sourcing", spec: dict, mirror: bool):
        super().__init__(owner, spec, mirror)
        consumer = spec.get("consumer") or {}
        self.cname = consumer.get("name", "")
        self.deliver = consumer.get("deliver_subject", "")
        self.dseq = 0  # the last consumer sequence taken
        self.lag = 0
        self._sub = None
        self._setup_timer = None
        self.consumer = None  # the origin's consumer this feed reset and listens to

    def _attached(self, origin) -> None:
        self._setup()

    def detach(self, gone: bool = False) -> None:
        self._unsubscribe()
        if self._setup_timer is not None:
            self._setup_timer.cancel()
            self._setup_timer = None
        super().detach(gone)

    def _unsubscribe(self) -> None:
        self.consumer = None
        if self._sub is not None:
            self.owner.stream.js.server.unsubscribe_internal(self._sub)
            self._sub = None

    def _later(self, seq: int = 0) -> None:
        if self._setup_timer is None and not self.stopped:
            self._setup_timer = self.owner.stream.js.loop.call_later(RETRY, self._setup, seq)

    def _setup(self, seq: int = 0) -> None:
        """nats-server's durable sourcing set-up: `$JS.API.CONSUMER.RESET` of the consumer, then its messages.
        A consumer that does not exist (yet) is looked for again every second, as nats-server retries."""
        self._setup_timer = None
        origin = self.origin
        if origin is None or self.stopped or origin.closed:
            return
        o = self._find_consumer(origin)
        if o is None or o.closed:
            self._unsubscribe()
            self._later()
            return
        if o.cfg.get("ack_policy") != "flow_control":
            self._unsubscribe()
            self.err = api_error("JSMirrorConsumerRequiresAckFCErr" if self.mirror
                                 else "JSSourceConsumerRequiresAckFCErr")
            self._later()
            return
        self.err = None
        self._unsubscribe()
        o.reset_position(seq if seq else o.asflr + 1)
        self.consumer = o
        self.dseq = 0
        self.last = now_ns()
        self._sub = self.owner.stream.js.server.subscribe_internal(origin.account, self.deliver, self._on_msg)
        self._setup_timer = self.owner.stream.js.loop.call_later(STALLED_AFTER, self._check_consumer)

    def _find_consumer(self, origin):
        """The origin's consumer this feed reads (None: looked for again in a second)."""
        return origin.consumers.get(self.cname)

    def _check_consumer(self) -> None:
        """nats-server sets a durable feed up again once its consumer's heartbeats stop (the consumer was
        deleted, or deleted and made again): here, once the origin's consumer of that name is another one."""
        self._setup_timer = None
        if self.origin is None or self.stopped:
            return
        o = self.origin.consumers.get(self.cname)
        if o is not self.consumer or o.closed:
            self._unsubscribe()
            self._setup()
        else:
            self._setup_timer = self.owner.stream.js.loop.call_later(STALLED_AFTER, self._check_consumer)

    def origin_stored(self, seq: int) -> None:  # the consumer delivers; nothing to pull
        return

    def schedule(self) -> None:
        return

    def pump(self, limit: int) -> None:
        return

    def _on_msg(self, sub, client, subject, reply, hdr, payload) -> None:
        if sub is not self._sub or self.origin is None:
            return
        self.last = now_ns()
        if hdr and hdr.startswith(b"NATS/1.0 100"):
            target = reply or (headers.get(hdr, STALLED) or b"").decode()
            if target:
                # Answered on the next turn of the loop, as a reply over the network would be: answered at
                # once, the consumer would go on delivering in the same turn, and a catch-up of many
                # messages would hold every other client up until it is done.
                self.owner.stream.js.loop.call_soon(self._answer_flow_control, target,
                                                    FC_REPLY % (self.dseq, self.sseq))
            return
        tokens = (reply or "").split(".")
        try:
            sseq, dseq, ts, pending = (int(t) for t in tokens[-4:])
        except ValueError:
            return
        self.lag = pending
        st = self.owner.stream
        if sseq <= (st.store.last_seq if self.mirror else self.sseq):
            self.dseq = dseq  # delivered again after a reset: already here
            return
        sm = StoreMsg(subject, hdr, payload, sseq, ts)
        ok = self.owner.store_mirrored(self, sm) if self.mirror else self.owner.take_sourced(self, sm)
        if not ok:  # refused (limits, a full disk): from this message again in a second
            self._unsubscribe()
            if self._setup_timer is not None:
                self._setup_timer.cancel()
                self._setup_timer = None
            self._later(sseq)
            return
        self.sseq, self.dseq = sseq, dseq
        if not self.mirror:
            self.owner.positions_changed()

    def _answer_flow_control(self, target: str, hdr: bytes) -> None:
        if self._sub is not None and self.origin is not None:
            self.owner.stream.js.server.send_internal(self.origin.account, target, None, hdr, b"")

    def info(self) -> dict:
        out = super().info()
        out["lag"] = self.lag if self._sub is not None else 0
        if self._sub is None:
            out["active"] = -1
        return out


class ManagedFeed(DurableFeed):
    """A mirror or source without `consumer` whose origin has work-queue or interest retention (nats-server
    2.14+, ADR-60): the origin's server turns its sourcing consumer into a durable, `JS_SRC_<hash>` or
    `JS_MIRROR_<hash>`, with the `flow_control` ack policy, so that the origin learns which messages are stored
    here (a work queue gives them up, an interest stream holds them meanwhile). The feed makes that consumer
    when it is missing, then reads it as a DurableFeed does, and deletes it when the mirror or source goes."""

    def __init__(self, owner: "Sourcing", spec: dict, mirror: bool):
        super().__init__(owner, spec, mirror)
        self.cname = managed_consumer_name(owner.stream, spec, mirror)

    def _find_consumer(self, origin):
        o = origin.consumers.get(self.cname)
        if o is None or o.closed:
            try:
                o = self._create(origin)
            except ApiError as e:  # the origin refused it (a full disk, ...): try again in a second
                self.err = e
                return None
        self.deliver = o.cfg.get("deliver_subject") or ""
        return o

    def _create(self, origin):
        """The consumer nats-server's origin makes of a sourcing consumer request on such a stream."""
        st = self.owner.stream
        kind, letter = ("mirror", "M") if self.mirror else ("src", "S")
        ext = self.spec.get("external") or {}
        prefix = ext.get("deliver") or "$JS"
        meta = {f"_nats.{kind}.stream": st.name, f"_nats.{kind}.acc": st.account.name}
        if st.js.domain:
            meta[f"_nats.{kind}.domain"] = st.js.domain
        cfg = {"name": self.cname, "durable_name": self.cname, "ack_policy": "flow_control", "flow_control": True,
               "idle_heartbeat": SECOND, "sourcing": True, "metadata": meta,
               "deliver_subject": f"{prefix}.{letter}.{get_hash(os.urandom(16).hex())}".replace("..", ".")}
        if self.spec.get("opt_start_seq"):
            cfg.update(deliver_policy="by_start_sequence", opt_start_seq=self.spec["opt_start_seq"])
        elif self.spec.get("opt_start_time"):
            cfg.update(deliver_policy="by_start_time", opt_start_time=self.spec["opt_start_time"])
        if len(self.filters) == 1:
            cfg["filter_subject"] = self.filters[0]
        elif self.filters:
            cfg["filter_subjects"] = list(self.filters)
        config_check.set_static_metadata(cfg)
        return origin.jsa.add_consumer(origin, cfg, "create", False)

    def remove(self) -> None:
        origin = self.origin
        self.stop()
        if origin is not None and not origin.closed:
            o = origin.consumers.get(self.cname)
            if o is not None and o.cfg.get("sourcing"):
                origin.jsa.delete_consumer(origin, o)


def managed_consumer_name(st, spec: dict, mirror: bool) -> str:
    """nats-server's createStableConsumerHash / createSourcingConsumerHash: from the sourcing stream's name,
    account and domain, and the source's index name when the same origin is sourced more than once."""
    stable = f"{st.name} {st.account.name}" + (f" {st.js.domain}" if st.js.domain else "")
    if mirror:
        return "JS_MIRROR_" + get_hash(stable)
    ident = get_hash(stable)
    if sum(1 for src in st.cfg.get("sources") or () if src.get("name") == spec["name"]) > 1:
        ident = f"{ident} {index_name(spec)}"
    return "JS_SRC_" + get_hash(ident)


def managed(origin) -> bool:
    """Whether a mirror or source without `consumer` reads `origin` through a server-managed durable."""
    return origin.cfg.get("retention", "limits") != "limits"


def new_feed(owner: "Sourcing", spec: dict, mirror: bool) -> Feed:
    return (DurableFeed if spec.get("consumer") is not None else Feed)(owner, spec, mirror)


class Sourcing:
    """The mirror or the sources of one stream."""

    def __init__(self, stream):
        self.stream = stream
        self.mirror: Feed | None = None
        self.sources: dict[str, Feed] = {}
        self._remembered: dict[str, tuple[int, str]] = {}
        self._save_timer = None
        directory = getattr(stream.store, "directory", None)
        self._path = os.path.join(directory, POSITIONS_FILE) if directory else None

    # -- configuration --------------------------------------------------------------------------
    def configure(self, cfg: dict) -> None:
        """Start, keep or stop feeds so that they match `cfg` (a create, an update, a promotion)."""
        jsa = self.stream.jsa
        spec = cfg.get("mirror")
        if spec is None and self.mirror is not None:
            self.mirror.remove()
            self.mirror = None
        elif spec is not None and self.mirror is None:
            self.mirror = new_feed(self, spec, mirror=True)
            self._attach(self.mirror, jsa)
        wanted = {index_name(s): s for s in cfg.get("sources") or ()}
        for iname in list(self.sources):
            if iname not in wanted:
                feed = self.sources.pop(iname)
                self._remembered[iname] = (feed.sseq, feed.ident)
                feed.remove()
        new = [new_feed(self, s, mirror=False) for iname, s in wanted.items() if iname not in self.sources]
        if new:
            self._recover_positions(new)
        for feed in new:
            self.sources[feed.iname] = feed
            self._attach(feed, jsa)

    def _attach(self, feed: Feed, jsa) -> None:
        if feed.spec.get("external") is not None:
            jsa = external_account(jsa, feed.spec["external"].get("api", ""), feed.name)
            if jsa is None:
                feed.err = api_error("JSStreamNotFoundErr")
                return
        origin = jsa.streams.get(feed.name)
        if origin is None or origin is self.stream:
            feed.err = api_error("JSStreamNotFoundErr")
            return
        self._fitting(feed, origin).attach(origin)

    def _fitting(self, feed: Feed, origin) -> Feed:
        """The feed that reads `origin` as nats-server would: a source or mirror without `consumer` goes through
        a server-managed durable on a work-queue or interest origin, and reads the store of any other."""
        if feed.spec.get("consumer") is not None or managed(origin) == isinstance(feed, ManagedFeed):
            return feed
        fresh = (ManagedFeed if managed(origin) else Feed)(self, feed.spec, feed.mirror)
        fresh.sseq, fresh.ident = feed.sseq, feed.ident
        feed.stop()
        if feed is self.mirror:
            self.mirror = fresh
        else:
            self.sources[feed.iname] = fresh
        return fresh

    def _recover_positions(self, feeds: list[Feed]) -> None:
        """Where each new source stopped: remembered from before, or read back from the `Nats-Stream-Source`
        headers of this stream's newest messages (nats-server's startingSequenceForSources)."""
        saved = self._load_positions()
        missing = {}
        for feed in feeds:
            if feed.iname in self._remembered:
                feed.sseq, feed.ident = self._remembered.pop(feed.iname)
            else:
                missing[feed.iname] = feed
                if feed.iname in saved:
                    feed.sseq, feed.ident = saved[feed.iname]
        store = self.stream.store
        seq = store.last_seq
        while missing and seq >= store.first_seq and seq > 0:
            sm = store.load_prev_msg((), seq)
            if sm is None:
                break
            seq = sm.seq - 1
            value = headers.get(sm.hdr, STREAM_SOURCE) if sm.hdr else None
            if not value:
                continue
            fields = value.decode("utf-8", "replace").split(" ")
            if len(fields) < 4:
                continue
            iname = " ".join((fields[0], fields[2], fields[3]))
            feed = missing.pop(iname, None)
            if feed is not None:
                seq = int(fields[1]) if fields[1].isdigit() else 0
                if seq > feed.sseq:
                    feed.sseq = seq
                    feed.ident = fields[5] if len(fields) >= 6 else ""

    # -- positions on disk ----------------------------------------------------------------------
    # A work queue or a purge removes the copies whose headers say how far a source got, so a file
    # stream also keeps each source's position in a small file, written a moment after it moves and at stop.
    def _load_positions(self) -> dict:
        if self._path is None:
            return {}
        try:
            with open(self._path, encoding="utf-8") as f:
                doc = json.load(f)
            return {k: (int(v["seq"]), str(v.get("ident", ""))) for k, v in doc.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def positions_changed(self) -> None:
        if self._path is not None and self._save_timer is None:
            self._save_timer = self.stream.js.loop.call_later(SAVE_AFTER, self.save_positions)

    def save_positions(self) -> None:
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        if self._path is None or not os.path.isdir(os.path.dirname(self._path)):
            return
        doc = {f.iname: {"seq": f.sseq, "ident": f.ident} for f in self.sources.values()}
        tmp = self._path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp, self._path)
        except OSError as e:
            self.stream.js.logger.warn(f"JetStream could not save the source positions of stream "
                                       f"'{self.stream.account.name} > {self.stream.name}': {e}")

    # -- the accounts' streams come and go ------------------------------------------------------
    def origin_added(self, origin) -> None:
        for feed in self.feeds():
            if feed.origin is None and feed.name == origin.name:
                if feed.spec.get("external") is None:
                    if origin.jsa is self.stream.jsa:
                        self._fitting(feed, origin).attach(origin)
                elif external_account(self.stream.jsa, feed.spec["external"].get("api", ""),
                                      feed.name) is origin.jsa:
                    self._fitting(feed, origin).attach(origin)

    def origin_removed(self, origin) -> None:
        for feed in self.feeds():
            if feed.origin is origin:
                feed.detach(gone=True)

    def feeds(self) -> list[Feed]:
        return ([self.mirror] if self.mirror is not None else []) + list(self.sources.values())

    def stop(self, delete: bool = False) -> None:
        """The stream stops (shutdown) or, with `delete`, is deleted: its server-managed consumers go too."""
        if self.sources and self._save_timer is not None and not delete:
            self.save_positions()
        for feed in self.feeds():
            if delete:
                feed.remove()
            else:
                feed.stop()

    def info(self) -> dict:
        """The `mirror` or `sources` block of stream info."""
        if self.mirror is not None:
            return {"mirror": self.mirror.info()}
        if self.sources:
            return {"sources": [feed.info() for feed in self.sources.values()]}
        return {}

    # -- storing --------------------------------------------------------------------------------
    def copy_mirrored(self, feed: Feed, origin_store, limit: int) -> tuple[int, str]:
        """Store up to `limit` origin messages at their own sequences and times; gaps (deleted, filtered)
        are skipped. Returns (copied, MORE/IDLE/RETRY_LATER)."""
        st = self.stream
        store = st.store
        js = st.js
        storage = store.storage
        if js.usage[storage] > js.limit_for[storage]:
            return 0, RETRY_LATER
        flt = feed.filters
        transform = feed.transform if feed.transforms else None
        ttls = bool(st.cfg.get("allow_msg_ttl"))
        notify = st.notify_stored
        watched = bool(st.consumers or st.sourcers or st.cfg.get("max_age"))
        load, load_next = origin_store.load_msg, origin_store.load_next_msg
        done = seq = 0
        state = MORE
        while done < limit:
            sm = load(feed.next) if not flt else None
            if sm is None:
                sm = load_next(flt, feed.next)
                if sm is None:
                    feed.next = max(feed.next, origin_store.last_seq + 1)
                    state = IDLE
                    break
            feed.sseq = sm.seq
            feed.next = sm.seq + 1
            if sm.seq <= store.last_seq:
                continue
            subject = transform(sm.subject) if transform else sm.subject
            ttl = self._mirrored_ttl(st, sm.hdr) if ttls and sm.hdr else 0
            try:
                if sm.seq > store.last_seq + 1:
                    if store.msgs == 0:
                        store.compact(sm.seq)
                    else:
                        while store.last_seq < sm.seq - 1:
                            store.skip_msg()
                seq, _ts = store.store_msg(subject, sm.hdr, sm.data, ttl, ts=sm.ts)
            except (StoreError, OSError) as e:  # limits under discard new, a full disk: try again later
                feed.sseq, feed.next = sm.seq - 1, sm.seq
                if str(e) != feed.failure:
                    js.logger.warn(f"Error processing inbound mirror message for '{st.account.name}' > "
                                   f"'{st.name}': {e}")
                feed.failure = str(e)
                state = RETRY_LATER
                break
            feed.failure = ""
            done += 1
            if watched or ttl:
                notify(seq, subject, ttl)
        if seq:
            st.lseq = seq
            js.add_usage(st)
        return done, state

    def store_mirrored(self, feed: Feed, sm) -> bool:
        """Store one delivered origin message at its own sequence and time (a durable mirror); False if the
        stream refused it."""
        feed.next = sm.seq
        return self.copy_mirrored(feed, _OneMsg(sm), 1)[1] != RETRY_LATER

    @staticmethod
    def _mirrored_ttl(st, hdr: bytes) -> int:
        value = headers.get(hdr, headers.TTL)
        if not value:
            return 0
        try:
            return st.parse_msg_ttl(value)
        except ApiError:
            return 0

    def copy_sourced(self, feed: Feed, origin_store, limit: int) -> tuple[int, str]:
        """Publish up to `limit` origin messages into this stream. Returns (copied, MORE/IDLE/RETRY_LATER)."""
        done = 0
        while done < limit:
            sm = origin_store.load_next_msg(feed.filters, feed.next)
            if sm is None:
                feed.next = max(feed.next, origin_store.last_seq + 1)
                return done, IDLE
            if not self.take_sourced(feed, sm):
                return done, RETRY_LATER
            feed.sseq = sm.seq
            feed.next = sm.seq + 1
            done += 1
        return done, MORE

    def take_sourced(self, feed: Feed, sm) -> bool:
        """Publish an origin message into this stream as nats-server's processInboundSourceMsg does."""
        st = self.stream
        hdr = sm.hdr
        if hdr:
            hdr = headers.remove(hdr, STREAM_SOURCE)
            hdr = _remove_prefixed(hdr, (b"Nats-Expected-", b"Nats-Batch-"))
            msg_id = headers.get(hdr, headers.MSG_ID)
            if msg_id and msg_id.decode("utf-8", "replace") in st._dd:
                st._expire_dedupe(now_ns())
                if msg_id.decode("utf-8", "replace") in st._dd:
                    return True
        value = f"{feed.label} {sm.seq} {feed._hdr_middle} {sm.subject}"
        if feed.ident:
            value += " " + feed.ident
        hdr = headers.append(hdr, [(STREAM_SOURCE, value.encode())])
        subject = feed.transform(sm.subject) if feed.transforms else sm.subject
        return st._process_checked(subject, "", hdr, sm.data, sourced=True) > 0


class _OneMsg:
    """One message delivered by a durable mirror's consumer, read as if it were the origin's store."""

    __slots__ = ("sm", "last_seq")

    def __init__(self, sm):
        self.sm = sm
        self.last_seq = sm.seq

    def load_msg(self, seq: int):
        return self.sm if seq == self.sm.seq else None

    def load_next_msg(self, _filters, seq: int):
        return self.sm if seq <= self.sm.seq else None


def _remove_prefixed(hdr: bytes | None, prefixes: tuple[bytes, ...]) -> bytes | None:
    if not hdr:
        return hdr
    lines = hdr.split(b"\r\n")
    kept = [ln for ln in lines[1:] if ln and not ln.startswith(prefixes)]
    if len(kept) == len([ln for ln in lines[1:] if ln]):
        return hdr
    if not kept:
        return None
    return lines[0] + b"\r\n" + b"\r\n".join(kept) + b"\r\n\r\n"


def external_account(jsa, api_prefix: str, stream: str):
    """The JetStream account an `external` API prefix reaches from `jsa`'s account: the one whose
    `$JS.API.CONSUMER.>` a service import of this account maps the prefix onto (nats-server's cross-account
    sourcing), or None (nats-server does not reach its own domain's `$JS.<domain>.API` this way either)."""
    probe = f"{api_prefix}.CONSUMER.CREATE.{stream}"
    wanted = f"{JS_API_PREFIX}.CONSUMER.CREATE.{stream}"
    accounts = {a.name: a for a in (jsa.js.server.options.accounts or [])}
    config = accounts.get(jsa.account.name)
    for imp in (config.service_imports if config is not None else ()):
        local = imp.to or imp.subject
        if filters.matches(local, probe) and map_subject(local, imp.subject, probe) == wanted:
            return jsa.js.accounts.get(imp.account)
    return None


# -- hooks the account calls -------------------------------------------------------------------------

def stream_added(jsa, st) -> None:
    """A stream was created (or recovered): start its own feeds, and attach feeds that wait for it."""
    if st.cfg.get("mirror") is not None or st.cfg.get("sources"):
        st.sourcing = Sourcing(st)
        st.sourcing.configure(st.cfg)
    for account in jsa.js.accounts.values():
        for other in account.streams.values():
            if other is not st and other.sourcing is not None:
                other.sourcing.origin_added(st)


def stream_updated(st) -> None:
    if st.cfg.get("mirror") is not None or st.cfg.get("sources"):
        if st.sourcing is None:
            st.sourcing = Sourcing(st)
        st.sourcing.configure(st.cfg)
    elif st.sourcing is not None:
        st.sourcing.configure(st.cfg)
        st.sourcing = None


def stream_removed(jsa, st) -> None:
    for account in jsa.js.accounts.values():
        for other in account.streams.values():
            if other.sourcing is not None:
                other.sourcing.origin_removed(st)
    for feed in list(st.sourcers):
        feed.detach(gone=True)
