"""The file store's index checkpoint (`index.ckp` beside `state.dat`): the in-memory index written in bulk at a
clean stop, so the next start loads it instead of reading every record of every block.

Layout: `JSIX`, a 4-byte header length, the header (JSON), then the arrays in machine order, then a CRC-32 of
everything before it. The header holds the scalars, the subjects (in the order the store knows them), the sizes
of the arrays and, per block, what the block was when the checkpoint was written: index, first and last
sequence, time of its last record, live messages, size, modification time (ns), a CRC-32 of its last 4 KiB
and how many message records with headers it holds. The arrays:

- `ids` (uint32 per slot from the index's base): 0 for no message, else 1 + the subject's position;
- `offs`, `lens` (uint32 per slot): the record's offset in its block and the bytes the message counts for;
- `counts` (uint32 per subject) and `seqs` (uint64): each subject's stored sequences, one subject after another;
- `ttls` (int64 pairs: sequence, expiry in ns) and `never` (uint64: sequences whose TTL says never).

Nothing here decides what is believed: decode() only checks that the file is whole (checksum, lengths, shape);
FileStore._load_checkpoint matches its blocks against the files on disk.
"""
from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array

MAGIC = b"JSIX"
VERSION = 2
_HEAD = struct.Struct("<4sI")
_CRC = struct.Struct("<I")
TAIL = 4096  # the bytes at the end of a block whose checksum is kept
# The arrays in file order: name, type code, what gives their length.
_ARRAYS = (("ids", "I", "slots"), ("offs", "I", "slots"), ("lens", "I", "slots"), ("counts", "I", "subjects"),
           ("seqs", "Q", "stored"), ("ttls", "q", "ttls"), ("never", "Q", "never"))
_SIZES = {code: array(code).itemsize for code in "IQq"}


class Damaged(ValueError):
    """The checkpoint is not whole; the message says how."""


def encode(header: dict, arrays: dict) -> list:
    """The file's parts, bytes or the arrays themselves (no copy), to write in order; `header` gets the array
    lengths and the machine's layout."""
    header = dict(header, version=VERSION, byteorder=sys.byteorder, sizes=_SIZES,
                  lengths={name: len(arrays[name]) for name, _, _ in _ARRAYS})
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [_HEAD.pack(MAGIC, len(head)), head] + [arrays[name] for name, _, _ in _ARRAYS]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    parts.append(_CRC.pack(crc))
    return parts


def decode(raw: bytes) -> tuple[dict, dict]:
    """(header, arrays) of a checkpoint file's bytes; Damaged if it is not whole or not of this machine."""
    if len(raw) < _HEAD.size + _CRC.size:
        raise Damaged(f"{len(raw)} bytes, too short")
    magic, hlen = _HEAD.unpack_from(raw)
    if magic != MAGIC:
        raise Damaged("not a checkpoint")
    if zlib.crc32(memoryview(raw)[:-_CRC.size]) != _CRC.unpack_from(raw, len(raw) - _CRC.size)[0]:
        raise Damaged("checksum mismatch")
    try:
        header = json.loads(raw[_HEAD.size:_HEAD.size + hlen])
    except ValueError:
        raise Damaged("unreadable header") from None
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise Damaged("another version")
    if header.get("byteorder") != sys.byteorder or header.get("sizes") != _SIZES:
        raise Damaged("written on a machine of another layout")
    lengths = header.get("lengths")
    if not isinstance(lengths, dict):
        raise Damaged("no array lengths")
    view = memoryview(raw)
    pos = _HEAD.size + hlen
    arrays = {}
    for name, code, _ in _ARRAYS:
        n = lengths.get(name)
        if not isinstance(n, int) or n < 0:
            raise Damaged(f"bad length of {name}")
        end = pos + n * _SIZES[code]
        if end > len(raw) - _CRC.size:
            raise Damaged(f"{name} cut short")
        arr = array(code)
        arr.frombytes(view[pos:end])
        arrays[name] = arr
        pos = end
    if pos != len(raw) - _CRC.size:
        raise Damaged("bytes left over")
    return header, arrays
