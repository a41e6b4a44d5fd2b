"""The block cache of the file stores: whole blocks in memory, least recently used first out, never more bytes
than its limit.

One cache serves every file store of a server (`jetstream { block_cache: 64MB }`), so the memory a server
spends on message payloads is bounded whatever its streams hold. A scan (a consumer, a batch read) loads the
block it reads through the cache; a single read of a block that is not cached (a direct get) reads only its
record with os.pread and caches nothing. The block being written is cached from its first byte: each append to
its file is appended here too (`append`), so reads of the newest messages cost no system call; it leaves the
cache when the next block starts (a scan loads it again, as any closed block), when it outgrows the limit, or as
the least recently used. Nothing here writes: evicting a
block never touches the disk.
"""
from __future__ import annotations

from collections import OrderedDict

DEFAULT_LIMIT = 64 * 1024 * 1024


class BlockCache:
    def __init__(self, limit: int = DEFAULT_LIMIT):
        self.limit = max(int(limit), 0)
        self._blocks: OrderedDict = OrderedDict()  # (store id, block index) -> bytes
        self.bytes = 0
        self.peak = 0  # the most bytes ever held at once: never above `limit`
        self.hits = self.misses = self.evictions = 0

    def get(self, key) -> bytes | None:
        data = self._blocks.get(key)
        if data is None:
            self.misses += 1
            return None
        self.hits += 1
        self._blocks.move_to_end(key)
        return data

    def put(self, key, data: bytes) -> bool:
        """Keep `data` if it fits in the limit at all, evicting the least recently used blocks first."""
        size = len(data)
        if size > self.limit:
            return False
        self.drop(key)
        blocks = self._blocks
        while self.bytes + size > self.limit:
            _, old = blocks.popitem(last=False)
            self.bytes -= len(old)
            self.evictions += 1
        blocks[key] = data
        self.bytes += size
        if self.bytes > self.peak:
            self.peak = self.bytes
        return True

    def append(self, key, data: bytes) -> None:
        """`data` was appended to the file of the cached block `key` (nothing if it is not cached): append it here,
        evicting the least recently used other blocks first; a block that would not fit the limit is dropped."""
        block = self._blocks.get(key)
        if block is None:
            return
        size = len(data)
        if len(block) + size > self.limit:
            self.drop(key)
            return
        blocks = self._blocks
        blocks.move_to_end(key)
        while self.bytes + size > self.limit:  # never `key` itself: it is the newest and fits alone
            _, old = blocks.popitem(last=False)
            self.bytes -= len(old)
            self.evictions += 1
        if type(block) is not bytearray:
            block = blocks[key] = bytearray(block)
        try:
            block += data
        except BufferError:  # a reader still holds a view of it: append to a copy
            block = blocks[key] = bytearray(block)
            block += data
        self.bytes += size
        if self.bytes > self.peak:
            self.peak = self.bytes

    def drop(self, key) -> None:
        data = self._blocks.pop(key, None)
        if data is not None:
            self.bytes -= len(data)

    def drop_store(self, store_id: int) -> None:
        for key in [k for k in self._blocks if k[0] == store_id]:
            self.drop(key)

    def set_limit(self, limit: int) -> None:
        self.limit = max(int(limit), 0)
        while self.bytes > self.limit:
            _, old = self._blocks.popitem(last=False)
            self.bytes -= len(old)
            self.evictions += 1

    def stats(self) -> dict:
        return {"limit": self.limit, "bytes": self.bytes, "peak": self.peak, "blocks": len(self._blocks),
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions}
