"""Object store buckets from the notebook: add, put (bytes, text or a file), get, info, list, delete, and
the chunks an object is stored as, as DataFrames. A bucket is the stream OBJ_<bucket>; the work is nats-py's
ObjectStore, so chunking, digests and delete markers are the server's and the client library's rules.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from nats.js.api import ObjectMeta, ObjectMetaOptions, ObjectStoreConfig, StorageType

from .done import Done
from .errors import LabError
from .session import Session, in_session
from .tutorials import is_new, mark_stream
from .units import parse_duration, parse_size

OBJECT_COLUMNS = ["bucket", "name", "size", "chunks", "digest", "modified", "description", "deleted"]


def objects_frame(infos: list) -> pd.DataFrame:
    rows = [{"bucket": i.bucket, "name": i.name, "size": i.size or 0, "chunks": i.chunks or 0,
             "digest": i.digest or "", "modified": i.mtime or None, "description": i.description,
             "deleted": bool(i.deleted)} for i in infos]
    frame = pd.DataFrame(rows, columns=OBJECT_COLUMNS)
    frame["modified"] = pd.to_datetime(frame["modified"], utc=True, format="ISO8601")
    return frame.astype({"size": "int64", "chunks": "int64"})


async def _bucket(s: Session, bucket: str):
    import nats.js.errors as jse

    try:
        return await s.js.object_store(bucket)
    except (jse.NotFoundError, jse.BucketNotFoundError):
        raise LabError(f"object store bucket not found: {bucket}") from None


@in_session
async def obj_add(s: Session, bucket: str, *, description: str | None = None, ttl: Any = None,
                  max_bytes: Any = None, storage: str = "file", replicas: int = 1) -> pd.DataFrame:
    """Create a bucket (the stream OBJ_<bucket>); a one-row DataFrame describing it."""
    cfg = ObjectStoreConfig(bucket=bucket, description=description, ttl=parse_duration(ttl, "--ttl"),
                            max_bytes=parse_size(max_bytes, "--max-bytes"), storage=StorageType(storage),
                            replicas=replicas)
    new = await is_new(s, f"OBJ_{bucket}")
    obs = await s.js.create_object_store(bucket, config=cfg)
    if new:
        await mark_stream(s, f"OBJ_{bucket}")
    return _status_frame(await obs.status())


def _status_frame(status) -> pd.DataFrame:
    si = status.stream_info
    return pd.DataFrame([{"bucket": status.bucket, "stream": si.config.name, "messages": si.state.messages,
                          "bytes": si.state.bytes, "storage": getattr(si.config.storage, "value", si.config.storage),
                          "sealed": bool(si.config.sealed), "description": status.description}])


@in_session
async def obj_status(s: Session, bucket: str) -> pd.DataFrame:
    """The bucket's stream, messages (chunks and metadata records) and bytes."""
    return _status_frame(await (await _bucket(s, bucket)).status())


@in_session
async def obj_put(s: Session, bucket: str, name: str, data: Any = None, *, file: str | os.PathLike | None = None,
                  description: str | None = None, chunk_size: Any = None) -> pd.DataFrame:
    """Store `data` (bytes, text) or the contents of `file` as object `name`, in chunks of `chunk_size`
    (nats-py's default 128 KiB). A one-row DataFrame of the stored object's info."""
    if (data is None) == (file is None):
        raise LabError("give the object's data or file=PATH (one of them)")
    opts = ObjectMetaOptions(max_chunk_size=parse_size(chunk_size, "--chunk-size")) if chunk_size else None
    meta = ObjectMeta(name=name, description=description, options=opts)
    obs = await _bucket(s, bucket)
    if file is not None:
        with open(os.path.expanduser(file), "rb") as fh:
            info = await obs.put(name, fh.read(), meta=meta)
    else:
        info = await obs.put(name, data if isinstance(data, (bytes, str)) else bytes(data), meta=meta)
    return objects_frame([info])


@in_session
async def obj_get(s: Session, bucket: str, name: str, *, file: str | os.PathLike | None = None) -> bytes | Path:
    """An object's bytes, or written to `file` (returns the path). The digest is checked on the way."""
    import nats.js.errors as jse

    obs = await _bucket(s, bucket)
    try:
        if file is None:
            return (await obs.get(name)).data
        path = Path(os.path.expanduser(file))
        with open(path, "wb") as fh:
            await obs.get(name, writeinto=fh)
        return path
    except jse.ObjectNotFoundError:
        raise LabError(f"object not found: {bucket} > {name}") from None


@in_session
async def obj_info(s: Session, bucket: str, name: str, *, show_deleted: bool = False) -> pd.DataFrame:
    """One object's info (size, chunks, SHA-256 digest, modified) as a one-row DataFrame."""
    import nats.js.errors as jse

    obs = await _bucket(s, bucket)
    try:
        return objects_frame([await obs.get_info(name, show_deleted=show_deleted)])
    except jse.ObjectNotFoundError:
        raise LabError(f"object not found: {bucket} > {name}") from None


@in_session
async def obj_ls(s: Session, bucket: str, *, deleted: bool = False) -> pd.DataFrame:
    """The objects in a bucket (and, with `deleted`, the delete markers of removed ones)."""
    import nats.js.errors as jse

    obs = await _bucket(s, bucket)
    try:
        infos = await obs.list(ignore_deletes=not deleted)
    except jse.NotFoundError:
        infos = []
    return objects_frame(infos).sort_values("name", ignore_index=True)


@in_session
async def obj_del(s: Session, bucket: str, name: str) -> Done:
    """Delete an object: its chunks are purged, a delete marker stays as its metadata."""
    import nats.js.errors as jse

    obs = await _bucket(s, bucket)
    try:
        await obs.delete(name)
    except jse.ObjectNotFoundError:
        raise LabError(f"object not found: {bucket} > {name}") from None
    return Done(f"deleted {bucket} > {name}", bucket=bucket, name=name)


@in_session
async def obj_rm(s: Session, bucket: str) -> Done:
    """Delete a bucket and every object in it."""
    await _bucket(s, bucket)
    await s.js.delete_object_store(bucket)
    return Done(f"deleted object store {bucket}", bucket=bucket)
