"""Stream backup and restore, two ways.

Readable files: `stream.json` (the server's config), `consumers.json` (durable consumer configs),
`messages.jsonl` (one message a line with headers and original time) and `backup.json` (what, when, from which
server). Restore republishes the messages, so the server gives them new timestamps (and, after gaps, new
sequence numbers); the originals travel in the `Lab-Original-Time` and `Lab-Original-Seq` headers.

The server's snapshot (`snapshot=True`), as natscli's `nats stream backup`/`restore` (jsm.go's
SnapshotToDirectory / RestoreSnapshotFromDirectory): `stream.tar.s2` holds the bytes the server streamed
(`$JS.API.STREAM.SNAPSHOT`, every chunk acknowledged) and `backup.json` its `{"config", "state"}`; restore sends
them back through `$JS.API.STREAM.RESTORE`. Sequences, times and consumer state come back exactly.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
from pathlib import Path

from .done import Done
from .errors import LabError
from .reader import StreamReader
from .session import Session, get_session
from .units import parse_size

FORMAT = "pynats-lab stream backup v1"
SNAPSHOT_FILE = "stream.tar.s2"     # natscli's names
META_FILE = "backup.json"
_RESTORE_CHUNK = 64 * 1024          # what jsm.go sends per restore request
_IDLE = 5.0                         # natscli gives up on a backup after this long without a chunk
ORIGINAL_TIME = "Lab-Original-Time"
ORIGINAL_SEQ = "Lab-Original-Seq"
_PAGE = 1000
_WINDOW = 256


async def _api(s: Session, subject: str, body: dict | None = None) -> dict:
    import nats.js.errors as jse

    msg = await s.nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=10)
    resp = json.loads(msg.data)
    if "error" in resp:
        raise jse.APIError.from_error(resp["error"])
    return resp


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="msg", disable=not enabled, leave=True)


def _encode(data: bytes) -> dict:
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_b64": base64.b64encode(data).decode()}


def _decode(rec: dict) -> bytes:
    if "data_b64" in rec:
        return base64.b64decode(rec["data_b64"])
    return rec.get("data", "").encode("utf-8")


def stream_backup(stream: str, directory: str | Path, *, snapshot: bool = False, consumers: bool = True,
                  chunk_size: int | str | None = None, window_size: int | str | None = None, progress: bool = True,
                  session: Session | None = None) -> Done:
    """Write config, durable consumers and every message (read-only, via direct/message get) to `directory`;
    with `snapshot=True` the server's own snapshot in natscli's layout (`stream.tar.s2`, `backup.json`),
    with the consumers' state unless `consumers=False`."""
    from .frames import user_headers

    s = (session or get_session()).ensure()
    if snapshot:
        return _snapshot_backup(s, stream, Path(directory).expanduser(), consumers,
                                parse_size(chunk_size, "chunk size"), parse_size(window_size, "window size"), progress)
    if not consumers or chunk_size is not None or window_size is not None:
        raise LabError("--no-consumers, --chunk-size and --window-size go with --snapshot")
    out = Path(directory).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    info = s.run(_api(s, f"$JS.API.STREAM.INFO.{stream}"))
    consumers = []
    offset = 0
    while True:
        page = s.run(_api(s, f"$JS.API.CONSUMER.LIST.{stream}", {"offset": offset}))
        found = page.get("consumers") or []
        consumers += [c["config"] for c in found if c["config"].get("durable_name")]
        offset += len(found)
        if not found or offset >= page.get("total", 0):
            break
    state = info["state"]
    last = state.get("last_seq", 0)
    reader = StreamReader(s, stream, direct=bool(info["config"].get("allow_direct")))
    written = 0
    bar = _progress(state.get("messages", 0), f"backup {stream}", progress)
    with open(out / "messages.jsonl", "w", encoding="utf-8") as fh:
        seq = max(state.get("first_seq", 1), 1)
        while last and seq <= last:
            got = s.run(reader.fetch(seq, _PAGE))
            if not len(got):
                break
            for sq, t, subj, hdrs, data in zip(got.seqs, got.times, got.subjects, got.headers, got.payloads):
                if sq > last:
                    break
                rec = {"seq": sq, "time": t if isinstance(t, str) else t.isoformat(), "subject": subj,
                       "headers": user_headers(hdrs), **_encode(data or b"")}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                written += 1
            bar.update(sum(1 for x in got.seqs if x <= last))
            seq = got.seqs[-1] + 1
    bar.close()
    (out / "stream.json").write_text(json.dumps(info["config"], indent=2))
    (out / "consumers.json").write_text(json.dumps(consumers, indent=2))
    meta = {"format": FORMAT, "stream": stream, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "server": (s.nc._server_info or {}).get("version"), "messages": written,
            "first_seq": state.get("first_seq"), "last_seq": last, "consumers": len(consumers)}
    (out / "backup.json").write_text(json.dumps(meta, indent=2))
    return Done(f"backed up {stream}: {written} messages, {len(consumers)} consumers to {out}",
                messages=written, consumers=len(consumers), path=str(out))


def stream_restore(directory: str | Path, *, name: str | None = None, subjects: list[str] | None = None,
                   progress: bool = True, session: Session | None = None):
    """Recreate a stream from a backup: config (under `name` / with `subjects` if given), durable
    consumers, then every message with its headers plus Lab-Original-Time / Lab-Original-Seq.
    Returns the restored stream's StreamInfo."""
    s = (session or get_session()).ensure()
    src = Path(directory).expanduser()
    if (src / SNAPSHOT_FILE).is_file():
        return _snapshot_restore(s, src, name, subjects, progress)
    if not (src / "stream.json").is_file():
        raise LabError(f"no stream backup in {src} (neither {SNAPSHOT_FILE} nor stream.json)")
    config = json.loads((src / "stream.json").read_text())
    consumers = json.loads((src / "consumers.json").read_text()) if (src / "consumers.json").is_file() else []
    meta = json.loads((src / "backup.json").read_text()) if (src / "backup.json").is_file() else {}
    target = name or config["name"]
    config["name"] = target
    final_subjects = list(subjects) if subjects else config.get("subjects")
    staging = None
    if subjects and list(subjects) != config.get("subjects"):
        # The original subjects may belong to another stream (the original, still there): publish under a
        # private prefix and let a subject transform store each message under its original subject.
        staging = f"_lab.restore.{s.nc.new_inbox().rsplit('.', 1)[-1]}"
        config["subjects"] = list(subjects) + [f"{staging}.>"]
        config["subject_transform"] = {"src": f"{staging}.>", "dest": ">"}
    for key in ("mirror", "sources"):
        if config.pop(key, None):
            print(f"restore: {key} of the original not restored: the messages are restored directly")
    meta_kv = {k: v for k, v in (config.get("metadata") or {}).items() if not k.startswith("_nats")}
    if s.tutorial is not None:  # a stream a tutorial restores is the tutorial's (tutorials.py)
        from .tutorials import MARKER

        meta_kv[MARKER] = s.tutorial
    config["metadata"] = meta_kv or None
    config = {k: v for k, v in config.items() if v is not None}
    sealed = config.pop("sealed", False)
    window = config.get("duplicate_window")
    config["duplicate_window"] = 100_000_000  # the server's minimum while restoring: ids repeated hours apart must all land
    if meta.get("first_seq"):
        config["first_seq"] = meta["first_seq"]
    s.run(_api(s, f"$JS.API.STREAM.CREATE.{target}", config))
    from .errors import describe

    for cc in consumers:
        try:
            s.run(_api(s, f"$JS.API.CONSUMER.CREATE.{target}.{cc['durable_name']}",
                       {"stream_name": target, "config": cc}))
        except Exception as exc:
            print(f"restore: consumer {cc['durable_name']} not restored: {describe(exc)}")
    lines = (src / "messages.jsonl").read_text(encoding="utf-8").splitlines() \
        if (src / "messages.jsonl").is_file() else []
    bar = _progress(len(lines), f"restore {target}", progress)
    duplicates = s.run(_republish(s, target, lines, bar, staging))
    bar.close()
    restore_cfg = {**config, "duplicate_window": window or 120_000_000_000, "subjects": final_subjects}
    restore_cfg.pop("first_seq", None)
    if staging:
        restore_cfg.pop("subject_transform", None)
    if sealed:
        restore_cfg["sealed"] = True
    s.run(_api(s, f"$JS.API.STREAM.UPDATE.{target}", restore_cfg))
    if duplicates:
        print(f"restore: {duplicates} messages were taken as duplicates by the server and not stored")
    return s.run(s.js.stream_info(target))


async def _republish(s: Session, stream: str, lines: list[str], bar, staging: str | None) -> int:
    import asyncio

    duplicates = 0

    async def one(rec: dict) -> bool:
        headers = dict(rec.get("headers") or {})
        headers[ORIGINAL_TIME] = rec["time"]
        headers[ORIGINAL_SEQ] = str(rec["seq"])
        subject = f"{staging}.{rec['subject']}" if staging else rec["subject"]
        ack = await s.js.publish(subject, _decode(rec), headers=headers, timeout=10)
        if ack.stream != stream:
            raise LabError(f"restore: {rec['subject']} was stored by stream {ack.stream}, not {stream}; "
                           "restore with --subjects to keep them apart")
        return bool(ack.duplicate)

    for start in range(0, len(lines), _WINDOW):
        batch = [json.loads(x) for x in lines[start:start + _WINDOW] if x.strip()]
        results = await asyncio.gather(*(one(r) for r in batch))
        duplicates += sum(results)
        bar.update(len(batch))
    return duplicates


# -- the server's snapshot, natscli's layout -------------------------------------------------------------

def _snapshot_backup(s: Session, stream: str, out: Path, consumers: bool, chunk: int | None,
                     window: int | None, progress: bool) -> Done:
    out.mkdir(parents=True, exist_ok=True)
    info = s.run(_api(s, f"$JS.API.STREAM.INFO.{stream}"))   # a missing stream fails here, before any file
    data_file = out / SNAPSHOT_FILE
    from tqdm.auto import tqdm

    bar = tqdm(total=info["state"].get("bytes") or None, desc=f"snapshot {stream}", unit="B", unit_scale=True,
               disable=not progress, leave=True)
    try:
        with open(data_file, "wb") as fh:
            resp, received, chunks = s.run(_receive_snapshot(s, stream, fh, consumers, chunk, window, bar))
    except BaseException:
        data_file.unlink(missing_ok=True)
        raise
    finally:
        if bar.total:
            bar.n = bar.total
        bar.close()
    (out / META_FILE).write_text(json.dumps({"config": resp["config"], "state": resp["state"]}, indent=2))
    n = resp["state"].get("consumer_count", 0)
    return Done(f"snapshot of {stream}: {resp['state'].get('messages', 0)} messages, {n} consumers, "
                f"{received:,} bytes in {chunks} chunks to {out}",
                messages=resp["state"].get("messages", 0), consumers=n, bytes=received, path=str(out))


async def _receive_snapshot(s: Session, stream: str, fh, consumers: bool, chunk: int | None,
                            window: int | None, bar) -> tuple[dict, int, int]:
    import asyncio

    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    counts = {"bytes": 0, "chunks": 0, "at": loop.time()}

    async def on_chunk(m) -> None:
        if finished.done():
            return
        counts["at"] = loop.time()
        if not m.data:
            status = (m.headers or {}).get("Status", "")
            if status and status != "204":
                desc = (m.headers or {}).get("Description", "")
                finished.set_exception(LabError(f"snapshot of {stream} failed: {status} {desc}".rstrip()))
            else:
                finished.set_result(None)
            return
        if m.reply:  # acknowledge first: the server sends the next chunks while this one is written
            await s.nc.publish(m.reply, b"")
        fh.write(m.data)
        counts["bytes"] += len(m.data)
        counts["chunks"] += 1
        bar.update(len(m.data))

    inbox = s.nc.new_inbox()
    sub = await s.nc.subscribe(inbox, cb=on_chunk, pending_msgs_limit=-1, pending_bytes_limit=-1)
    try:
        req = {"deliver_subject": inbox, "no_consumers": not consumers, "chunk_size": chunk or 128 * 1024}
        if window:
            req["window_size"] = window
        resp = await _api(s, f"$JS.API.STREAM.SNAPSHOT.{stream}", req)
        while not finished.done():
            await asyncio.wait({finished}, timeout=0.5)
            if not finished.done() and loop.time() - counts["at"] > _IDLE:
                raise LabError(f"snapshot of {stream} timed out after receiving no data for {_IDLE:g}s")
        finished.result()
    finally:
        await sub.unsubscribe()
    return resp, counts["bytes"], counts["chunks"]


def _snapshot_restore(s: Session, src: Path, name: str | None, subjects: list[str] | None, progress: bool):
    try:
        meta = json.loads((src / META_FILE).read_text())
        config, state = dict(meta["config"]), meta["state"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LabError(f"{src / META_FILE} is not a snapshot's backup.json ({e})") from None
    stream = config.get("name", "")
    if name and name != stream:
        raise LabError(f"a snapshot restores under its own name ({stream}); stream names may not be changed "
                       "during restore")
    if subjects:
        config["subjects"] = list(subjects)
    import nats.js.errors as jse

    try:
        s.run(_api(s, f"$JS.API.STREAM.INFO.{stream}"))
    except jse.NotFoundError:
        pass
    else:
        raise LabError(f"stream {stream} already exists: delete it first (%stream rm {stream}) or restore "
                       "elsewhere")
    size = (src / SNAPSHOT_FILE).stat().st_size
    from tqdm.auto import tqdm

    bar = tqdm(total=size, desc=f"restore {stream}", unit="B", unit_scale=True, disable=not progress, leave=True)
    try:
        with open(src / SNAPSHOT_FILE, "rb") as fh:
            s.run(_send_snapshot(s, stream, config, state, fh, bar))
    finally:
        bar.close()
    return s.run(s.js.stream_info(stream))


async def _send_snapshot(s: Session, stream: str, config: dict, state: dict, fh, bar) -> dict:
    import nats.js.errors as jse

    resp = await _api(s, f"$JS.API.STREAM.RESTORE.{stream}", {"config": config, "state": state})
    subject = resp["deliver_subject"]
    while chunk := fh.read(_RESTORE_CHUNK):
        ack = await s.nc.request(subject, chunk, timeout=10)
        if ack.data:
            err = json.loads(ack.data).get("error")
            if err:
                raise jse.APIError.from_error(err)
        bar.update(len(chunk))
    final = json.loads((await s.nc.request(subject, b"", timeout=600)).data)
    if "error" in final:
        raise jse.APIError.from_error(final["error"])
    return final
