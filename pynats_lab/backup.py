"""Stream backup and restore as readable files: `stream.json` (the server's config), `consumers.json`
(durable consumer configs), `messages.jsonl` (one message a line with headers and original time) and
`backup.json` (what, when, from which server).

Restore republishes the messages, so the server gives them new timestamps (and, after gaps, new sequence
numbers); the originals travel in the `Lab-Original-Time` and `Lab-Original-Seq` headers and stay in the files.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from .done import Done
from .errors import LabError
from .reader import StreamReader
from .session import Session, get_session

FORMAT = "pynats-lab stream backup v1"
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


def stream_backup(stream: str, directory: str | Path, *, progress: bool = True,
                  session: Session | None = None) -> Done:
    """Write config, durable consumers and every message (read-only, via direct/message get) to `directory`."""
    from .frames import user_headers

    s = (session or get_session()).ensure()
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
    if not (src / "stream.json").is_file():
        raise LabError(f"no stream backup in {src} (stream.json missing)")
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
