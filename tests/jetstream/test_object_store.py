"""Object stores through nats-py's object_store(): chunked objects, digests, metadata, listing, deletion,
sealing; all of it rides on stream features (rollups, last-by-subject direct gets, purges by subject)."""
import hashlib
import os

import pytest
from nats.js.api import ObjectMeta, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError

from .helpers import connected, run


def test_put_get_info_with_chunking_and_digest(js_server):
    blob = os.urandom(300_000)

    async def scenario():
        async with connected(js_server) as (nc, js):
            obs = await js.create_object_store("files", config=ObjectStoreConfig(storage=StorageType.FILE))
            info = await obs.put("big.bin", blob, meta=ObjectMeta(description="random bytes"))
            got = await obs.get("big.bin")
            stream = await js.stream_info("OBJ_files")
            return info, got, stream

    info, got, stream = run(scenario())
    assert info.size == len(blob) and info.chunks > 1
    assert info.digest == "SHA-256=" + __import__("base64").urlsafe_b64encode(hashlib.sha256(blob).digest()).decode()
    assert got.data == blob and got.info.description == "random bytes"
    assert stream.state.messages == info.chunks + 1


def test_list_delete_replace_and_status(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            obs = await js.create_object_store("docs", config=ObjectStoreConfig(storage=StorageType.MEMORY))
            await obs.put("a.txt", b"alpha")
            await obs.put("b.txt", b"bravo")
            await obs.put("a.txt", b"alpha two")
            listed = sorted(o.name for o in await obs.list())
            replaced = (await obs.get("a.txt")).data
            await obs.delete("b.txt")
            with pytest.raises(ObjectNotFoundError):
                await obs.get("b.txt")
            after = sorted(o.name for o in await obs.list(ignore_deletes=True))
            status = await obs.status()
            messages = (await js.stream_info("OBJ_docs")).state.messages
            return listed, replaced, after, status, messages

    listed, replaced, after, status, messages = run(scenario())
    assert listed == ["a.txt", "b.txt"]
    assert replaced == b"alpha two"
    assert after == ["a.txt"]
    assert status.bucket == "docs"
    assert messages == 3  # a.txt: one chunk and its meta; b.txt: the deleted meta


def test_seal_and_delete_bucket(js_server):
    async def scenario():
        async with connected(js_server) as (nc, js):
            obs = await js.create_object_store("sealme", config=ObjectStoreConfig(storage=StorageType.MEMORY))
            await obs.put("x", b"1")
            await obs.seal()
            sealed = (await js.stream_info("OBJ_sealme")).config.sealed
            with pytest.raises(Exception):
                await obs.put("y", b"2")
            deleted = await js.delete_object_store("sealme")
            with pytest.raises((BucketNotFoundError, NotFoundError)):
                await js.object_store("sealme")
            return sealed, deleted

    assert run(scenario()) == (True, True)
