"""Key-value buckets: add, list buckets or keys, put, create, update by revision, get, delete, history and
watch, as DataFrames.

A bucket is the stream KV_<bucket>. Writes go through nats-py's KeyValue, so the rules (history depth,
TTL, delete markers) are the server's; reads (get, history, ls) read the bucket's stream like `%stream
view` does, without a consumer, so they see exactly what is stored and never race a watcher.
"""
from __future__ import annotations

import asyncio
import operator
import re
import time
from typing import Any

import pandas as pd
from nats.js.api import KeyValueConfig, StorageType

from . import tables
from .done import Done
from .errors import LabError, as_lab_error
from .messaging import encode_payload
from .session import Session, in_session
from .tutorials import is_new, mark_stream
from .units import at_least_one, parse_duration, parse_size

ENTRY_COLUMNS = ["bucket", "key", "value", "revision", "created", "operation"]


def entries_frame(entries: list) -> pd.DataFrame:
    """nats-py KeyValue.Entry objects as rows (bucket, key, value, revision, created, operation)."""
    from .frames import decode

    return pd.DataFrame({
        "bucket": pd.Series([e.bucket for e in entries], dtype=object),
        "key": pd.Series([e.key for e in entries], dtype=object),
        "value": pd.Series([decode(e.value) for e in entries], dtype=object),
        "revision": pd.Series([e.revision for e in entries], dtype="int64"),
        "created": pd.Series(pd.to_datetime([e.created for e in entries], utc=True)
                             if entries else [], dtype="datetime64[ns, UTC]"),
        "operation": pd.Series([e.operation or "PUT" for e in entries], dtype=object),
    }, columns=ENTRY_COLUMNS)


def _operation(headers: dict) -> str:
    op = headers.get("KV-Operation")
    if op:
        return op
    reason = headers.get("Nats-Marker-Reason")  # server-placed markers (TTL, purge) since nats-server 2.11
    return {"MaxAge": "PURGE", "Purge": "PURGE", "Remove": "DEL"}.get(reason, "PUT")


async def _stored(s: Session, bucket: str, key: str = ">") -> list:
    """Every stored entry of the bucket (or of keys matching `key`), oldest first, read-only."""
    import nats.js.errors as jse
    from nats.js.kv import KeyValue

    from .reader import StreamReader

    reader = StreamReader(s, f"KV_{bucket}")
    try:
        await reader._ensure_mode()
    except jse.NotFoundError:
        raise LabError(f"bucket not found: {bucket}") from None
    prefix = f"$KV.{bucket}."
    entries, seq = [], 1
    while True:
        got = await reader.fetch(seq, 10_000, prefix + key)
        for sq, t, subject, hdrs, data in zip(got.seqs, got.times, got.subjects, got.headers, got.payloads):
            entries.append(KeyValue.Entry(bucket=bucket, key=subject[len(prefix):], value=data, revision=sq,
                                          delta=None, created=pd.Timestamp(t), operation=_operation(hdrs or {})))
        if len(got) < 10_000:
            return entries
        seq = got.seqs[-1] + 1


def _bucket_row(status) -> dict:
    si = status.stream_info
    return {"bucket": status.bucket, "values": si.state.messages, "history": status.history,
            "ttl": status.ttl or None, "bytes": si.state.bytes,
            "storage": getattr(si.config.storage, "value", si.config.storage), "created": si.created}


def _buckets_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["bucket", "values", "history", "ttl", "bytes", "storage", "created"])
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    return frame.sort_values("bucket", ignore_index=True)


async def _bucket(s: Session, bucket: str):
    import nats.js.errors as jse

    try:
        return await s.js.key_value(bucket)
    except jse.BucketNotFoundError:
        raise LabError(f"bucket not found: {bucket}") from None


@in_session
async def kv_add(s: Session, bucket: str, *, history: int = 1, ttl: Any = None, max_value_size: Any = None,
                 max_bytes: Any = None, storage: str = "file", replicas: int = 1,
                 description: str | None = None) -> pd.DataFrame:
    """Create a bucket; a one-row DataFrame describing it."""
    if not 1 <= history <= 64:
        raise LabError("--history must be between 1 and 64")
    cfg = KeyValueConfig(bucket=bucket, history=history, ttl=parse_duration(ttl, "--ttl"),
                         max_value_size=parse_size(max_value_size, "--max-value-size"),
                         max_bytes=parse_size(max_bytes, "--max-bytes"), storage=StorageType(storage),
                         replicas=replicas, description=description, direct=True)
    new = await is_new(s, f"KV_{bucket}")
    kv = await s.js.create_key_value(cfg)
    if new:
        await mark_stream(s, f"KV_{bucket}")
    return _buckets_frame([_bucket_row(await kv.status())])


@in_session
async def kv_ls(s: Session, bucket: str | None = None) -> pd.DataFrame:
    """Without a bucket: all buckets. With one: its keys and current values."""
    if bucket is None:
        rows = []
        for si in await s.js.streams_info():
            if si.config.name.startswith("KV_"):
                kv = await s.js.key_value(si.config.name[3:])
                rows.append(_bucket_row(await kv.status()))
        return _buckets_frame(rows)
    latest = {e.key: e for e in await _stored(s, bucket)}
    live = [e for e in latest.values() if e.operation == "PUT"]
    return entries_frame(live).sort_values("key", ignore_index=True)


@in_session
async def kv_put(s: Session, bucket: str, key: str, value: Any) -> Done:
    kv = await _bucket(s, bucket)
    rev = await kv.put(key, encode_payload(value))
    return Done(f"{bucket} > {key}: revision {rev}", revision=rev, bucket=bucket, key=key)


_WRONG_LAST = re.compile(r"wrong last sequence: (\d+)")


def _refused(exc, bucket: str, key: str, wanted: int | None) -> LabError:
    """nats-server's wrong-last-sequence refusal as one line, saying what the key's revision is.
    (nats-py keeps only the description; 10071 is the code of its numbered form in errors.json.)"""
    m = _WRONG_LAST.search(exc.description or "")
    if not m:
        return as_lab_error(exc, f"{bucket} > {key} changed meanwhile: {exc.description} (10164)")
    current = int(m.group(1))
    server = f"wrong last sequence: {current} (10071)"
    if wanted is None:
        why = f"{bucket} > {key} exists (revision {current})"
    elif current == 0:
        why = f"{bucket} > {key} does not exist"
    else:
        why = f"{bucket} > {key} is at revision {current}, not {wanted}"
    return as_lab_error(exc, f"{why}: {server}")


@in_session
async def kv_create(s: Session, bucket: str, key: str, value: Any) -> Done:
    """Set a key only if it has no value (never set, deleted or purged); refused if it has one."""
    import nats.js.errors as jse

    kv = await _bucket(s, bucket)
    try:
        rev = await kv.create(key, encode_payload(value))
    except jse.KeyWrongLastSequenceError as exc:
        raise _refused(exc, bucket, key, None) from None
    return Done(f"{bucket} > {key}: created, revision {rev}", revision=rev, bucket=bucket, key=key)


@in_session
async def kv_update(s: Session, bucket: str, key: str, value: Any, *, last: int) -> Done:
    """Set a key only if its latest revision is still `last` (compare-and-set); refused if anyone wrote,
    deleted or purged it since."""
    import nats.js.errors as jse

    try:
        revision = operator.index(last)  # an int, or a numpy integer read from a DataFrame
    except TypeError:
        revision = -1
    if revision < 0:
        raise LabError(f"invalid revision {last!r}: use the revision you read (a number, 0 for none)")
    last = revision
    kv = await _bucket(s, bucket)
    try:
        rev = await kv.update(key, encode_payload(value), last=last)
    except jse.KeyWrongLastSequenceError as exc:
        raise _refused(exc, bucket, key, last) from None
    return Done(f"{bucket} > {key}: revision {rev} (was {last})", revision=rev, bucket=bucket, key=key)


@in_session
async def kv_get(s: Session, bucket: str, key: str, revision: int | None = None) -> pd.DataFrame:
    """The current (or a given revision's) entry of a key, as a one-row DataFrame."""
    entries = await _stored(s, bucket, key)
    if revision is not None:
        entries = [e for e in entries if e.revision == revision]
    if not entries or entries[-1].operation != "PUT":
        at = f" at revision {revision}" if revision is not None else ""
        raise LabError(f"key not found: {bucket} > {key}{at}")
    return tables.lab_frame(entries_frame(entries[-1:]))


@in_session
async def kv_del(s: Session, bucket: str, key: str, purge: bool = False) -> Done:
    """Delete a key (a delete marker, history kept) or purge it (history removed)."""
    kv = await _bucket(s, bucket)
    if purge:
        await kv.purge(key)
        return Done(f"purged {bucket} > {key}", bucket=bucket, key=key)
    await kv.delete(key)
    return Done(f"deleted {bucket} > {key}", bucket=bucket, key=key)


@in_session
async def kv_history(s: Session, bucket: str, key: str) -> pd.DataFrame:
    """Every kept revision of a key, oldest first, including deletes."""
    entries = await _stored(s, bucket, key)
    if not entries:
        raise LabError(f"key not found: {bucket} > {key}")
    return tables.lab_frame(entries_frame(entries), f"{bucket} > {key}: {len(entries)} revision"
                            f"{'s' if len(entries) != 1 else ''} kept, oldest first")


@in_session
async def kv_watch(s: Session, bucket: str, key: str = ">", *, count: int | None = None, timeout: Any = 2.0,
                   include_history: bool = False) -> pd.DataFrame:
    """Watch a bucket (or keys matching `key`): current values first, then changes, until `count`
    updates or `timeout`. A DataFrame of what was seen."""
    at_least_one(count, "--count")
    kv = await _bucket(s, bucket)
    limit = parse_duration(timeout, "--timeout") or 2.0
    watcher = await kv.watch(key, include_history=include_history)
    entries = []
    deadline = time.monotonic() + limit
    try:
        while count is None or len(entries) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                entry = await watcher.updates(timeout=left)
            except (asyncio.TimeoutError, Exception) as exc:
                if isinstance(exc, asyncio.TimeoutError) or type(exc).__name__ == "TimeoutError":
                    break
                raise
            if entry is not None:
                entries.append(entry)
    finally:
        await watcher.stop()
    seen = entries_frame(entries)
    what = f"{bucket} > {key}" if key != ">" else bucket
    if not len(seen):
        return tables.lab_frame(seen, f"nothing in {what} within {limit:g}s: no value"
                                      + (" and no change" if not include_history else ", no history, no change"))
    return tables.lab_frame(seen, f"{len(seen)} entr{'ies' if len(seen) != 1 else 'y'} seen in {what}")


@in_session
async def kv_rm(s: Session, bucket: str) -> Done:
    """Delete a bucket and all its keys."""
    await _bucket(s, bucket)
    await s.js.delete_key_value(bucket)
    return Done(f"deleted bucket {bucket}", bucket=bucket)
