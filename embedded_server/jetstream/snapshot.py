"""Stream snapshots and restores over NATS (`$JS.API.STREAM.SNAPSHOT/RESTORE.<stream>`), as nats-server 2.15:
the snapshot is streamed in chunks to a deliver subject under a window of acknowledged chunks; a restore takes
the chunks as requests, each answered, and the final empty one with the restored stream's info.

The bytes are nats-server's archive (archive.py); a restore also takes the tar snapshot of an older nats-server
(snapshot_tar.py). Messages are read and written through the store's public
interface only. A restore is received into `<account>/__snapshots__/` and built there; a file stream is moved
into `streams/` only once complete, so a restore cut off at any point (a stall, a crash) leaves nothing behind.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import string
import time

from . import advisories, archive, config_check, config_json, headers, limits, requests, snapshot_tar, sourcing
from .clock import now_ns
from .config_json import decode_request
from .consumer import Consumer
from .errors import ApiError, api_error
from .store import StoreError
from .store.file import FileStore, write_meta
from .store.memory import MemoryStore
from .stream import Stream, parse_msg_ttl

DEFAULT_CHUNK = 128 * 1024
DEFAULT_WINDOW = 8 * 1024 * 1024
ACK_TIMEOUT = 5.0          # nats-server's snapshotAckTimeout
STALL_TIMEOUT = 5.0        # nats-server's restore activityInterval
INTEREST_WAIT = 2.0        # how long a snapshot waits for someone to listen on its deliver subject
SLICE = 0.005              # a restore builds its stream in slices of this long
FRAMES_AT_ONCE = 4         # a snapshot frames its bytes this many 64 KiB frames at a time (archive.frames)
STAGING = "__snapshots__"

SNAPSHOT_REQUEST = requests.Struct("JSApiStreamSnapshotRequest", {
    "deliver_subject": requests.STRING, "no_consumers": requests.BOOL, "chunk_size": requests.INT,
    "window_size": requests.INT, "jsck": requests.BOOL})
_STREAM_STATE = requests.Struct("StreamState", {
    "messages": requests.UINT64, "bytes": requests.UINT64, "first_seq": requests.UINT64,
    "first_ts": requests.TIME, "last_seq": requests.UINT64, "last_ts": requests.TIME,
    "num_subjects": requests.INT, "subjects": requests.Map(requests.UINT64),
    "num_deleted": requests.INT, "deleted": requests.Slice(requests.UINT64, "[]uint64"),
    "lost": requests.Struct("LostStreamData", {"msgs": requests.Slice(requests.UINT64, "[]uint64"),
                                               "bytes": requests.UINT64}),
    "consumer_count": requests.INT})
RESTORE_REQUEST = requests.Struct("JSApiStreamRestoreRequest", {
    "config": requests.Struct("StreamConfig", requests.STREAM_CONFIG_FIELDS), "state": _STREAM_STATE})


def _nuid() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=22))


def _valid_publish_subject(subject: str) -> bool:
    if not subject or any(c in subject for c in " \t\r\n"):
        return False
    tokens = subject.split(".")
    return all(t and t not in ("*", ">") for t in tokens)


def staging_dir(jsa) -> str:
    return os.path.join(os.path.dirname(jsa.dir), STAGING)


def clean_staging(jsa) -> None:
    """At start: whatever an interrupted restore left is removed (it never became a stream)."""
    path = staging_dir(jsa)
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


# -- snapshot -------------------------------------------------------------------------------------

def stream_snapshot(req) -> dict:
    if not req.msg or req.msg == b"{}" or _empty_object(req.msg):
        raise api_error("JSBadRequestErr")
    st = req.jsa.lookup(req.subject.split(".")[4])
    body = decode_request(req.msg, SNAPSHOT_REQUEST)
    if not _valid_publish_subject(body.get("deliver_subject", "")):
        raise api_error("JSSnapshotDeliverSubjectInvalidErr")
    sender = _Snapshot(req.js, req.jsa, st, body, advisories.client_info(req.js, req.client))
    req.js.loop.call_soon(sender.start)
    return {"config": config_json.stream_config_json(st.cfg), "state": sender.state}


def _empty_object(msg: bytes) -> bool:
    try:
        v = json.loads(msg)
    except ValueError:
        return False
    return isinstance(v, dict) and not v


class _Snapshot:
    """One snapshot being sent: the archive made lazily, a chunk at a time, as acks free the window."""

    def __init__(self, js, jsa, st, body, client=None):
        self.js, self.jsa, self.st = js, jsa, st
        self.client = client  # the requester, as the advisories show it
        # `jsck` asks for a health check first; nats-server 2.15 only names it here: its archive (and this one)
        # reads every message through the store, which checks each record and passes over a damaged one.
        what = "health check and snapshot" if body.get("jsck") else "snapshot"
        js.logger.notice(f"Starting {what} for stream '{jsa.account.name} > {st.name}'")
        self.deliver = body["deliver_subject"]
        chunk = body.get("chunk_size") or DEFAULT_CHUNK
        window = body.get("window_size") or DEFAULT_WINDOW
        self.chunk = min(max(1024, chunk), 1024 * 1024)
        window = max(min(max(1024, window), 32 * 1024 * 1024), self.chunk)
        self.slots = window // self.chunk
        self.consumers = [] if body.get("no_consumers") else sorted(st.consumers.values(), key=lambda o: o.name)
        self.state = st.state_json()   # the answer's: every consumer counted, as nats-server's FastState
        self.last = st.store.state().last_seq
        self.first = self.state["first_seq"]
        self.ack_subject = f"$JS.SNAPSHOT.ACK.{st.name}.{_nuid()}"
        self.ack_sub = None
        self.index = 1
        self.status = None          # the final message's header once a full chunk went out
        self.done = False
        self.timer = None
        self.interest = False
        self.out = bytearray()
        self.frames = self._frames()
        self.exhausted = False
        self.started = now_ns()

    def _frames(self):
        raw = bytearray(archive.MAGIC)
        yield archive.STREAM_ID

        def flush(all_=False):
            """Whole frames, FRAMES_AT_ONCE of them together (their checksums computed at once), or all that is left."""
            if len(raw) < FRAMES_AT_ONCE * archive.MAX_FRAME and not all_:
                return
            pieces = []
            while len(raw) >= archive.MAX_FRAME or (all_ and raw):
                pieces.append(bytes(raw[:archive.MAX_FRAME]))
                del raw[:archive.MAX_FRAME]
            yield from archive.frames(pieces)

        # The archive's own state counts the consumers it holds (none with no_consumers), as the restore reads it.
        state = {**self.state, "consumer_count": len(self.consumers)}
        raw += archive.entry("state.json", now_ns(), data=config_json.compact_json(state))
        for o in self.consumers:
            raw += archive.entry("consumers/" + o.name, now_ns(), data=config_json.compact_json(_consumer_doc(o)))
            yield from flush()
        store = self.st.store
        seq = self.first - 1
        while seq < self.last and not self.st.closed:
            sm = store.load_next_msg((), seq + 1)
            if sm is None or sm.seq > self.last:
                break
            seq = sm.seq
            raw += archive.entry(sm.subject, sm.ts, sm.seq, sm.hdr or b"", sm.data or b"")
            yield from flush()
        if self.st.closed:   # deleted while being sent: the end marker would make a cut copy look whole
            raise archive.ArchiveError(f"couldn't load next message after seq {seq}: stream is closed")
        raw += archive.entry("")
        yield from flush(all_=True)

    def start(self) -> None:
        """After the answer: the SNAPSHOT_CREATE advisory, then the chunks."""
        server = self.js.server
        advisories.snapshot_create(self.js, self.jsa.account, self.st.name, self.state, self.client)
        self.interest = server.has_interest(self.jsa.account, self.deliver)
        self.ack_sub = server.subscribe_internal(self.jsa.account, self.ack_subject + ".>", self._on_ack)
        if self.interest:
            self._pump()
        else:
            self._wait_interest(now_ns())

    def _wait_interest(self, since: int) -> None:
        if self.js.server.has_interest(self.jsa.account, self.deliver):
            self.interest = True
            self._pump()
        elif now_ns() - since > INTEREST_WAIT * 1e9:
            self._pump()
        else:
            self.js.loop.call_later(0.05, self._wait_interest, since)

    def _on_ack(self, sub, client, subject, reply, hdr, payload) -> None:
        if self.done:
            return
        self.slots += 1
        if self.slots == 1:
            self.js.loop.call_soon(self._pump)

    def _next_chunk(self) -> bytes:
        while len(self.out) < self.chunk and not self.exhausted:
            try:
                self.out += next(self.frames)
            except StopIteration:
                self.exhausted = True
        piece = bytes(self.out[:self.chunk])
        del self.out[:self.chunk]
        return piece

    def _pump(self) -> None:
        if self.done or self.slots <= 0:
            return
        server = self.js.server
        now_interest = server.has_interest(self.jsa.account, self.deliver)
        if self.interest and not now_interest:
            return self._finish(b"NATS/1.0 408 No Interest\r\n\r\n", "no interest")
        self.interest = self.interest or now_interest
        try:
            piece = self._next_chunk()
        except Exception as e:  # noqa: BLE001 - a store that fails mid-way ends the snapshot with its reason
            return self._finish(f"NATS/1.0 500 {e}\r\n\r\n".encode(), str(e))
        account = self.jsa.account
        if len(piece) < self.chunk:
            if piece:
                server.send_internal(account, self.deliver, None, None, piece)
            return self._finish(self.status, "")
        self.slots -= 1
        server.send_internal(account, self.deliver, f"{self.ack_subject}.{len(piece)}.{self.index}", None, piece)
        self.status = b"NATS/1.0 204\r\n\r\n"
        self.index += 1
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.js.loop.call_later(ACK_TIMEOUT, self._no_flow)
        if self.slots > 0:
            self.js.loop.call_soon(self._pump)

    def _no_flow(self) -> None:
        self.timer = None
        if not self.done and self.slots <= 0:
            self._finish(b"NATS/1.0 408 No Flow Response\r\n\r\n", "no flow response")

    def _finish(self, hdr: bytes | None, err: str) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.ack_sub is not None:
            self.js.server.unsubscribe_internal(self.ack_sub)
        self.js.server.send_internal(self.jsa.account, self.deliver, None, hdr, b"")
        advisories.snapshot_complete(self.js, self.jsa.account, self.st.name, self.started, now_ns(), self.client,
                                     err)
        name = f"'{self.jsa.account.name} > {self.st.name}'"
        secs = (now_ns() - self.started) / 1e9
        if err:
            self.js.logger.warn(f"Snapshot for stream {name} failed after {secs:.3f}s: {err}")
        else:
            self.js.logger.notice(f"Completed snapshot of {self.state['bytes']} bytes for stream {name} in {secs:.3f}s")


def _consumer_doc(o) -> dict:
    s = o.state()
    state = {"delivered": s["delivered"], "ack_floor": s["ack_floor"]}
    if s["pending"]:
        state["pending"] = {k: {"sequence": v[0], "ts": v[1]} for k, v in s["pending"].items()}
    if s["redelivered"]:
        state["redelivered"] = s["redelivered"]
    return {"config": config_json.consumer_config_json(o.cfg), "state": state}


# -- restore --------------------------------------------------------------------------------------

def stream_restore(req) -> dict:
    if not req.msg or _empty_object(req.msg):
        raise api_error("JSBadRequestErr")
    body = decode_request(req.msg, RESTORE_REQUEST)
    name = req.subject.split(".")[4]
    cfg = dict(body.get("config") or {})
    if not cfg.get("name"):
        cfg["name"] = name
    if cfg["name"] != name:
        raise api_error("JSStreamMismatchErr")
    if "\\" in name or "/" in name:
        raise api_error("JSStreamNameContainsPathSeparatorsErr")
    jsa = req.jsa
    checked = config_check.check_stream_config(cfg, False, jsa._sourcing_check, jsa.js.server_limits)
    if checked["num_replicas"] > 1:
        raise api_error("JSStreamReplicasNotSupportedErr")
    if jsa.limited:
        limits.check_stream(jsa, checked, new=True)
    if name in jsa.streams:
        raise api_error("JSStreamNameExistRestoreFailedErr")
    restore = _Restore(req.js, jsa, checked, advisories.client_info(req.js, req.client))
    return {"deliver_subject": restore.subject}


class _Restore:
    """One restore being received: chunks appended to a file under the staging directory, then built."""

    def __init__(self, js, jsa, cfg, client=None):
        self.js, self.jsa, self.cfg = js, jsa, cfg
        self.client = client  # the requester, as the advisories show it
        self.name = cfg["name"]
        self.label = f"'{jsa.account.name} > {self.name}'"
        uid = _nuid()
        self.subject = f"$JS.SNAPSHOT.RESTORE.{self.name}.{uid}"
        self.dir = os.path.join(staging_dir(jsa), uid)
        try:
            os.makedirs(self.dir)
            self.file = open(os.path.join(self.dir, "snapshot.s2"), "w+b")
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise api_error("JSTempStorageFailedErr") from None
        self.total = 0
        self.started = now_ns()
        self.reply = ""
        self.building = None
        js.logger.notice(f"Starting restore for stream {self.label}")
        advisories.restore_create(js, jsa.account, self.name, client)
        self.sub = js.server.subscribe_internal(jsa.account, self.subject, self._on_chunk)
        self.timer = js.loop.call_later(STALL_TIMEOUT, self._stalled)

    def _stop_listening(self) -> None:
        if self.sub is not None:
            self.js.server.unsubscribe_internal(self.sub)
            self.sub = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _close(self) -> None:
        self._stop_listening()
        try:
            self.file.close()
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stalled(self) -> None:
        self.timer = None
        self.js.logger.warn(f"restore for stream {self.label} is stalled")
        self._close()

    def _on_chunk(self, sub, client, subject, reply, hdr, payload) -> None:
        if self.sub is None:
            return
        if not reply:
            self.js.logger.warn(f"restore for stream {self.label} requires reply subject for each chunk")
            self._close()
            return
        if not payload:
            self._finish(reply)
            return
        try:
            self.file.write(payload)
        except OSError as e:
            self._close()
            self._answer(reply, api_error("JSStreamRestoreErrF", err=str(e)))
            return
        self.total += len(payload)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.js.loop.call_later(STALL_TIMEOUT, self._stalled)
        self.js.server.send_internal(self.jsa.account, reply, None, None, b"")

    def _answer(self, reply: str, result) -> None:
        """The restore's end (built or failed): the RESTORE_COMPLETE advisory, then the answer."""
        advisories.restore_complete(self.js, self.jsa.account, self.name, self.started, now_ns(), self.total,
                                    self.client)
        resp = {"type": "io.nats.jetstream.api.v1.stream_create_response"}
        if isinstance(result, ApiError):
            resp["error"] = result.as_dict()
        else:
            resp.update(result)
        self.js.server.send_internal(self.jsa.account, reply, None, None, config_json.compact_json(resp))

    def _finish(self, reply: str) -> None:
        """The last chunk came: build the stream a slice at a time (the event loop serves everyone meanwhile)."""
        self._stop_listening()
        self.reply = reply
        try:
            self.file.flush()
            self.file.seek(0)
        except OSError as e:
            return self._failed(e)
        self.building = _build(self.js, self.jsa, self.cfg, self.file, self.dir)
        self._step()

    def _step(self) -> None:
        try:
            next(self.building)
        except StopIteration as done:
            return self._done(done.value)
        except Exception as e:  # noqa: BLE001 - whatever stops a restore is said to the client, nothing is kept
            return self._failed(e)
        self.js.loop.call_soon(self._step)

    def _failed(self, e: Exception) -> None:
        if isinstance(e, ApiError):
            err = e
        else:
            text = str(e) if isinstance(e, (archive.ArchiveError, StoreError)) else f"{type(e).__name__}: {e}"
            err = api_error("JSStreamRestoreErrF", err=text)
        secs = (now_ns() - self.started) / 1e9
        self.js.logger.warn(f"Restore failed for {self.total} bytes for stream {self.label} in {secs:.3f}s: "
                            f"{err.description}")
        self._close()
        self._answer(self.reply, err)

    def _done(self, st) -> None:
        self._close()
        secs = (now_ns() - self.started) / 1e9
        self.js.logger.notice(f"Completed restore of {self.total} bytes for stream {self.label} in {secs:.3f}s")
        info = st.info(self.js.version)
        advisories.stream_action(self.js, self.jsa.account, self.name, "create")  # as nats-server's restore
        self._answer(self.reply, {k: info[k] for k in ("config", "created", "state", "ts")})


def _loading_config(cfg: dict) -> dict:
    """The config a store is filled under: no limit may drop a message of the snapshot while it loads."""
    out = dict(cfg)
    out.update(max_msgs=-1, max_bytes=-1, max_msgs_per_subject=-1, max_age=0, discard="old")
    return out


def _consumer_config(jsa, name: str, doc: dict, stream_cfg: dict) -> tuple[dict, dict]:
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise archive.ArchiveError(f"consumer {name!r} is missing config")
    if not isinstance(doc.get("state"), dict):
        raise archive.ArchiveError(f"consumer {name!r} is missing state")
    try:
        cfg = requests.decode(json.dumps(doc["config"]), requests.CONSUMER_CONFIG, strict=False)
    except requests.GoJsonError as e:
        raise archive.ArchiveError(f"failed to decode consumer {name!r} state: {e}") from None
    if not cfg.get("durable_name") and not cfg.get("name"):
        cfg["name"] = name
    server_limits, account_limit = jsa.consumer_limits()
    cfg = config_check.consumer_defaults(cfg, stream_cfg, False, server_limits, account_limit)
    try:
        config_check.check_consumer_config(cfg, stream_cfg, server_limits, account_limit)
    except ApiError as e:
        # (nats-server's "failed to add consumer %q: %w" of its ApiError, which prints its code too)
        raise archive.ArchiveError(f"failed to add consumer {json.dumps(name)}: {e.description} ({e.err_code})") \
            from None
    config_check.set_static_metadata(cfg)
    s = doc["state"]

    def pair(key):
        p = s.get(key) or {}
        return {"consumer_seq": int(p.get("consumer_seq", 0)), "stream_seq": int(p.get("stream_seq", 0))}

    state = {"delivered": pair("delivered"), "ack_floor": pair("ack_floor"),
             "pending": {str(int(k)): [int(v.get("sequence", 0)), int(v.get("ts", 0))]
                         for k, v in (s.get("pending") or {}).items()},
             "redelivered": {str(int(k)): int(v) for k, v in (s.get("redelivered") or {}).items()}}
    # nats-server's checks of a consumer state it is given (consumerFileStore.Update)
    delivered, floor = state["delivered"], state["ack_floor"]
    bad = None
    if floor["consumer_seq"] > delivered["consumer_seq"]:
        bad = "bad ack floor for consumer"
    elif floor["stream_seq"] > delivered["stream_seq"]:
        bad = "bad ack floor for stream"
    else:
        for seq in map(int, state["pending"]):
            if seq <= floor["stream_seq"] or seq > delivered["stream_seq"]:
                bad = f"bad pending entry, sequence [{seq}] out of range"
                break
    if bad:
        raise archive.ArchiveError(f"failed to set consumer {name!r} state: {bad}")
    return cfg, state


def _build(js, jsa, cfg: dict, f, workdir: str):
    """Read the snapshot in `f` and make the stream, yielding now and then to let the event loop run; returns
    the stream, or raises with the reason it cannot be made. The snapshot is nats-server 2.15's archive or, from
    an older nats-server, a tar of its file store (snapshot_tar.py), as nats-server 2.15 tells them apart."""
    chunks = archive.unframe(f)
    head, chunks = _peek(chunks, 512)
    if not head.startswith(archive.MAGIC) and snapshot_tar.looks_like_tar(head):
        return (yield from _build_from_tar(js, jsa, cfg, chunks, workdir))
    reader = archive.Reader(chunks)
    head = reader.next()
    if head.name != "state.json":
        raise archive.ArchiveError("expected state.json first")
    try:
        state = json.loads(head.data)
        first_seq, last_seq = int(state.get("first_seq", 0)), int(state.get("last_seq", 0))
        n_consumers = int(state.get("consumer_count", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise archive.ArchiveError(f"error in state.json: {e}") from None
    consumers = []
    for _ in range(n_consumers):
        e = reader.next()
        if not e.name.startswith("consumers/"):
            raise archive.ArchiveError(f"expected consumer, found {e.name!r}")
        cname = e.name[len("consumers/"):]
        try:
            doc = json.loads(e.data)
        except ValueError as err:
            raise archive.ArchiveError(f"failed to decode consumer {cname!r} state: {err}") from None
        consumers.append((cname, *_consumer_config(jsa, cname, doc, cfg), 0))
    _check_place(jsa, cfg)
    jsa._check_resources(cfg)
    _check_room(js, jsa, cfg["storage"], int(state.get("bytes", 0) or 0))
    return (yield from _make(js, jsa, cfg, workdir, reader, first_seq, last_seq, consumers, now_ns()))


def _peek(chunks, n: int):
    """(at least the first `n` decoded bytes, unless the stream is shorter; the same stream from its start)."""
    got, size = [], 0
    for part in chunks:
        got.append(part)
        size += len(part)
        if size >= n:
            break
    return b"".join(got), itertools.chain(got, chunks)


def _build_from_tar(js, jsa, cfg: dict, chunks, workdir: str):
    """An older nats-server's snapshot: its files extracted (their bytes counted against the storage, as
    nats-server counts them), then its messages and consumers restored like an archive's."""
    label = f"'{jsa.account.name} > {cfg['name']}'"
    root = os.path.join(workdir, "tar")
    yield from snapshot_tar.extract(chunks, root, lambda total: _check_room(js, jsa, cfg["storage"], total),
                                    jsa.account.name)
    snap = snapshot_tar.TarSnapshot(root, js.logger, label)
    if snap.name != cfg["name"]:
        raise archive.ArchiveError("stream names do not match")
    yield from snap.scan()
    consumers = [(cname, *_consumer_config(jsa, cname, doc, cfg), created)
                 for cname, doc, created in snap.consumers()]
    _check_place(jsa, cfg)
    jsa._check_resources(cfg)
    st = yield from _make(js, jsa, cfg, workdir, snapshot_tar.EntryReader(snap), snap.first_seq, snap.last_seq,
                          consumers, snap.created or now_ns(), snap.last_ts)
    if snap.damaged:
        where = "; ".join(f"{f} at offset {pos} ({why})" for (f, pos), why in list(snap.damaged.items())[:5])
        more = f" and {len(snap.damaged) - 5} more" if len(snap.damaged) > 5 else ""
        js.logger.error(f"Restore of stream {label}: {len(snap.damaged)} damaged place(s) in the snapshot's message "
                        f"blocks passed over, their messages are not restored: {where}{more}")
    shutil.rmtree(root, ignore_errors=True)
    return st


def _make(js, jsa, cfg: dict, workdir: str, reader, first_seq: int, last_seq: int, consumers, created: int,
          last_ts: int = 0):
    """The stream built from `reader`'s messages and the consumers (name, config, state, created or 0); `last_ts`,
    when known, the time of the last sequence when that is not a message (deleted or purged)."""
    file_stream = cfg["storage"] == "file"
    path = os.path.join(workdir, "stream")
    store = FileStore(path, _loading_config(cfg), sync_always=js.sync_always, cache=js.block_cache,
                      logger=js.logger) if file_stream \
        else MemoryStore(_loading_config(cfg))
    try:
        yield from _fill(js, store, reader, first_seq, last_seq, last_ts)
        store.update_config(cfg)
        _check_place(jsa, cfg)   # again: others may have made streams while this one was being built
    except BaseException:
        store.delete()
        raise
    if not file_stream:
        return _register_memory(js, jsa, cfg, store, created, consumers)
    try:
        write_meta(store.directory, {"config": cfg, "created": created}, sync=True)
        for cname, ccfg, cstate, ccreated in consumers:
            cstore = store.consumer_store(cname)
            cstore.save_config(ccfg, ccreated or created)
            cstore.update(cstate)
            cstore.flush()
            cstore.stop()
        store.flush()
    finally:
        store.stop()
    final = os.path.join(jsa.dir, cfg["name"])
    os.makedirs(jsa.dir, exist_ok=True)
    os.rename(path, final)
    _fsync_dir(jsa.dir)
    jsa._recover_stream(cfg["name"], final)
    st = jsa.streams.get(cfg["name"])
    if st is None:
        raise archive.ArchiveError(f"restore for stream '{jsa.account.name} > {cfg['name']}' did not create a stream")
    sourcing.stream_added(jsa, st)
    return st


def _check_room(js, jsa, storage: str, size: int) -> None:
    """The stream's bytes must fit the server's and the account's storage, as nats-server reserves them."""
    err = "JSMemoryResourcesExceededErr" if storage == "memory" else "JSStorageResourcesExceededErr"
    if js.usage[storage] + size > js.limit_for[storage]:
        raise api_error(err)
    limit = jsa.limits.get("max_memory" if storage == "memory" else "max_storage", -1)
    if limit is not None and limit >= 0:
        used = sum(s.store.bytes for s in jsa.streams.values() if s.store.storage == storage)
        if used + size > limit:
            raise api_error(err)


def _check_place(jsa, cfg: dict) -> None:
    if cfg["name"] in jsa.streams:
        raise api_error("JSStreamNameExistRestoreFailedErr")
    if jsa.subjects_overlap(cfg.get("subjects") or ()):
        raise archive.ArchiveError("error adding stream: subjects overlap with an existing stream")


def _fill(js, store, reader, first_seq: int, last_seq: int, last_ts: int = 0):
    slice_end = time.monotonic() + SLICE
    if first_seq > last_seq and last_ts:
        first_seq = last_seq   # emptied: the last sequence is skipped below with its time, the first follows it
    if first_seq > 1:
        store.compact(first_seq)
    lseq = max(first_seq, 1) - 1
    max_payload = js.server.options.max_payload
    now = now_ns()
    while True:
        e = reader.next()
        if e is None:   # the reader is passing over deleted records
            if time.monotonic() > slice_end:
                yield
                slice_end = time.monotonic() + SLICE
            continue
        if e.seq == 0:
            if e.end:
                break
            raise archive.ArchiveError("expected message sequence")
        if len(e.hdr) + len(e.data) > max_payload:
            raise archive.ArchiveError(f"message sequence {e.seq} exceeds maximum payload size")
        if e.seq <= lseq:
            raise archive.ArchiveError(f"message sequence {e.seq} out of order")
        for _ in range(e.seq - lseq - 1):
            store.skip_msg()
        lseq = e.seq
        if time.monotonic() > slice_end:
            yield
            slice_end = time.monotonic() + SLICE
        ttl = 0
        if e.hdr:
            value = headers.get(e.hdr, b"Nats-TTL")
            if value:
                try:
                    ttl = parse_msg_ttl(value)
                except (ValueError, ApiError):
                    raise archive.ArchiveError(f"failed to parse message TTL of sequence {e.seq}") from None
        if ttl > 0 and e.ts + ttl * 1_000_000_000 < now:
            store.skip_msg()   # expired while in the backup: its sequence stays used, as in nats-server
            continue
        store.store_msg(e.name, e.hdr or None, e.data, ttl, ts=e.ts)
    while store.state().last_seq < last_seq:
        store.skip_msg(last_ts)   # deleted last sequences: the stream's last time is the last one's


def _register_memory(js, jsa, cfg, store, created, consumers):
    st = Stream(jsa, cfg, store, created)
    for cname, ccfg, cstate, ccreated in consumers:
        cstore = store.consumer_store(cname)
        cstore.save_config(ccfg, ccreated or created)
        o = Consumer(st, ccfg, cname, ccreated or created, cstore, state=cstate)
        st.consumers[cname] = o
        o.start()
    jsa.streams[cfg["name"]] = st
    js.add_usage(st)
    st.subscribe()
    st.schedule_expiry()
    sourcing.stream_added(jsa, st)
    return st


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

