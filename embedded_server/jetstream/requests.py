"""The JetStream API's request types as nats-server declares them, and one decoder with Go's encoding/json rules.

Every request body that nats-server unmarshals into a Go struct is decoded here against a `Struct` schema:
JSON types, integer ranges (int32/int64/uint64), floats into integers, null (a no-op, except for nats-server's
enum types, whose UnmarshalJSON refuses it), unknown fields (refused, as nats-server's strict decoder does),
case-insensitive field names and several concatenated JSON values, with Go's error texts. Handlers get plain
Python values of the fields that were set; `GoJsonError` carries the text nats-server answers after
"invalid JSON: " (or, for a direct get, the reason for its "408 Malformed Request").
"""
from __future__ import annotations

import calendar
import json
import re


class GoJsonError(ValueError):
    """What Go's json package would return for this body."""


def _fold(name: str) -> str:
    """Go's case folding of field names (encoding/json matches keys case-insensitively)."""
    return "".join(c.upper() if c.isascii() else c.lower().upper() for c in name)


# -- field types -------------------------------------------------------------------------------------

class Int:
    """A Go integer type: `bits` wide, signed or not; `name` as Go prints it (int, uint64, time.Duration)."""
    __slots__ = ("name", "lo", "hi")

    def __init__(self, name: str, bits: int, signed: bool = True):
        self.name = name
        self.lo, self.hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


class Enum:
    """A nats-server type with its own UnmarshalJSON: the raw JSON text maps to a value or to its error."""
    __slots__ = ("name", "values", "error")

    def __init__(self, name: str, values: dict, error: str):
        self.name, self.values, self.error = name, values, error


class Slice:
    __slots__ = ("item", "name")

    def __init__(self, item, name: str):
        self.item, self.name = item, name


class Map:
    """map[string]string, or map[string]<item>."""
    __slots__ = ("name", "item")

    def __init__(self, item=None):
        self.item = item
        self.name = "map[string]" + (item.name if item is not None else "string")


class Struct:
    """A Go struct: JSON name -> field type. `pointer` structs decode null to "absent" as well."""
    __slots__ = ("name", "fields", "folded")

    def __init__(self, name: str, fields: dict):
        self.name = name
        self.fields = fields
        self.folded = {_fold(k): k for k in reversed(list(fields))}


STRING, BOOL, TIME = "string", "bool", "time.Time"
INT, INT32, INT64 = Int("int", 64), Int("int32", 32), Int("int64", 64)
UINT64 = Int("uint64", 64, signed=False)
DURATION = Int("time.Duration", 64)


def _quoted_enum(name: str, values: tuple, error: str = "can not unmarshal %q", aliases: dict | None = None) -> Enum:
    table = {json.dumps(v): v for v in values}
    table.update(aliases or {})
    return Enum(name, table, error)


RETENTION = _quoted_enum("RetentionPolicy", ("limits", "interest", "workqueue"))
DISCARD = _quoted_enum("DiscardPolicy", ("old", "new"))
STORAGE = _quoted_enum("StorageType", ("file", "memory"))
DELIVER = _quoted_enum("DeliverPolicy", ("all", "last", "new", "by_start_sequence", "by_start_time",
                                         "last_per_subject"), aliases={'"undefined"': "all"})
ACK = _quoted_enum("AckPolicy", ("none", "all", "explicit", "flow_control"))
REPLAY = _quoted_enum("ReplayPolicy", ("instant", "original"))
# The default persist mode is Go's zero value: omitted from the config nats-server answers.
PERSIST = _quoted_enum("PersistModeType", ("async",), aliases={'"default"': "", '""': ""})
PRIORITY = _quoted_enum("PriorityPolicy", ("none", "overflow", "pinned_client", "prioritized"),
                        error="unknown priority policy: %v")
ACTION = _quoted_enum("ConsumerAction", ("create", "update"), error="unknown consumer action: %v",
                      aliases={'""': ""})
COMPRESSION = Enum("StoreCompression", {}, "unknown compression algorithm")  # decoded as a string first

PLACEMENT = Struct("Placement", {"cluster": STRING, "tags": Slice(STRING, "[]string"), "preferred": STRING})
SUBJECT_TRANSFORM = Struct("SubjectTransformConfig", {"src": STRING, "dest": STRING})
EXTERNAL = Struct("ExternalStream", {"api": STRING, "deliver": STRING})
STREAM_SOURCE = Struct("StreamSource", {
    "name": STRING, "opt_start_seq": UINT64, "opt_start_time": TIME, "filter_subject": STRING,
    "subject_transforms": Slice(SUBJECT_TRANSFORM, "[]server.SubjectTransformConfig"), "external": EXTERNAL,
    "consumer": Struct("StreamConsumerSource", {"name": STRING, "deliver_subject": STRING}),
})
REPUBLISH = Struct("RePublish", {"src": STRING, "dest": STRING, "headers_only": BOOL})
CONSUMER_LIMITS = Struct("StreamConsumerLimits", {"inactive_threshold": DURATION, "max_ack_pending": INT})

STREAM_CONFIG_FIELDS = {
    "name": STRING, "description": STRING, "subjects": Slice(STRING, "[]string"), "retention": RETENTION,
    "max_consumers": INT, "max_msgs": INT64, "max_bytes": INT64, "max_age": DURATION,
    "max_msgs_per_subject": INT64, "max_msg_size": INT32, "discard": DISCARD, "storage": STORAGE,
    "num_replicas": INT, "no_ack": BOOL, "duplicate_window": DURATION, "placement": PLACEMENT,
    "mirror": STREAM_SOURCE, "sources": Slice(STREAM_SOURCE, "[]*server.StreamSource"),
    "compression": COMPRESSION, "first_seq": UINT64, "subject_transform": SUBJECT_TRANSFORM,
    "republish": REPUBLISH, "allow_direct": BOOL, "mirror_direct": BOOL, "discard_new_per_subject": BOOL,
    "sealed": BOOL, "deny_delete": BOOL, "deny_purge": BOOL, "allow_rollup_hdrs": BOOL,
    "consumer_limits": CONSUMER_LIMITS, "allow_msg_ttl": BOOL, "subject_delete_marker_ttl": DURATION,
    "allow_msg_counter": BOOL, "allow_atomic": BOOL, "allow_msg_schedules": BOOL, "persist_mode": PERSIST,
    "allow_batched": BOOL, "metadata": Map(),
}
STREAM_CONFIG_REQUEST = Struct("StreamConfigRequest", {**STREAM_CONFIG_FIELDS, "pedantic": BOOL})

CONSUMER_CONFIG = Struct("ConsumerConfig", {
    "durable_name": STRING, "name": STRING, "description": STRING, "deliver_policy": DELIVER,
    "opt_start_seq": UINT64, "opt_start_time": TIME, "ack_policy": ACK, "ack_wait": DURATION, "max_deliver": INT,
    "backoff": Slice(DURATION, "[]time.Duration"), "filter_subject": STRING,
    "filter_subjects": Slice(STRING, "[]string"), "replay_policy": REPLAY, "rate_limit_bps": UINT64,
    "sample_freq": STRING, "max_waiting": INT, "max_ack_pending": INT, "flow_control": BOOL,
    "headers_only": BOOL, "max_batch": INT, "max_expires": DURATION, "max_bytes": INT,
    "deliver_subject": STRING, "deliver_group": STRING, "idle_heartbeat": DURATION,
    "inactive_threshold": DURATION, "num_replicas": INT, "mem_storage": BOOL, "direct": BOOL,
    "sourcing": BOOL, "metadata": Map(), "pause_until": TIME, "priority_groups": Slice(STRING, "[]string"),
    "priority_policy": PRIORITY, "priority_timeout": DURATION,
})
CREATE_CONSUMER_REQUEST = Struct("CreateConsumerRequest", {
    "stream_name": STRING, "config": CONSUMER_CONFIG, "action": ACTION, "pedantic": BOOL})

STREAM_PURGE_REQUEST = Struct("JSApiStreamPurgeRequest", {"seq": UINT64, "filter": STRING, "keep": UINT64})
MSG_GET_REQUEST = Struct("JSApiMsgGetRequest", {
    "seq": UINT64, "last_by_subj": STRING, "next_by_subj": STRING, "batch": INT, "max_bytes": INT,
    "start_time": TIME, "multi_last": Slice(STRING, "[]string"), "up_to_seq": UINT64, "up_to_time": TIME,
    "no_hdr": BOOL,
})
MSG_DELETE_REQUEST = Struct("JSApiMsgDeleteRequest", {"seq": UINT64, "no_erase": BOOL})
STREAM_INFO_REQUEST = Struct("JSApiStreamInfoRequest", {"offset": INT, "deleted_details": BOOL,
                                                        "subjects_filter": STRING})
STREAM_NAMES_REQUEST = Struct("JSApiStreamNamesRequest", {"offset": INT, "subject": STRING})
STREAM_LIST_REQUEST = Struct("JSApiStreamListRequest", {"offset": INT, "subject": STRING})
CONSUMERS_REQUEST = Struct("JSApiConsumersRequest", {"offset": INT})
CONSUMER_PAUSE_REQUEST = Struct("JSApiConsumerPauseRequest", {"pause_until": TIME})
CONSUMER_UNPIN_REQUEST = Struct("JSApiConsumerUnpinRequest", {"group": STRING})
CONSUMER_NEXT_REQUEST = Struct("JSApiConsumerGetNextRequest", {
    "expires": DURATION, "batch": INT, "max_bytes": INT, "no_wait": BOOL, "idle_heartbeat": DURATION,
    "group": STRING, "min_pending": INT64, "min_ack_pending": INT64, "id": STRING, "priority": INT,
})


# -- decoding ----------------------------------------------------------------------------------------

class _Number(str):
    """A JSON number kept as its literal text: Go's errors quote it, and ranges are checked on it exactly."""
    __slots__ = ()


def _go_constant(name: str):
    raise GoJsonError(f"invalid character '{name[0] if name[0] != '-' else name[1]}' "
                      + ("in numeric literal" if name[0] == "-" else "looking for beginning of value"))


_DECODER = json.JSONDecoder(parse_int=_Number, parse_float=_Number, parse_constant=_go_constant,
                            object_pairs_hook=lambda pairs: _Object(pairs))
_WS = re.compile(r"[ \t\n\r]*")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _values(payload: bytes | str, many: bool) -> list:
    """The JSON values of a body: one (json.Unmarshal) or several in a row (json.Decoder, as nats-server's API)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    out = []
    pos = _WS.match(text, 0).end()
    try:
        while pos < len(text):
            value, pos = _DECODER.raw_decode(text, pos)
            out.append(value)
            pos = _WS.match(text, pos).end()
            if not many and pos < len(text):
                raise GoJsonError(f"invalid character {text[pos]!r} after top-level value")
    except json.JSONDecodeError as e:
        raise GoJsonError(f"{e.msg} at offset {e.pos + 1}") from None
    except RecursionError:
        raise GoJsonError("exceeded max depth") from None
    if not out and not many:
        raise GoJsonError("unexpected end of JSON input")
    return out


def _kind(value) -> str:
    if isinstance(value, _Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    return "object"


def _raw(value) -> str:
    """The JSON text of a value, for the error texts that quote it."""
    if value is None:
        return "null"
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, _Object):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_raw(v)}" for k, v in value.pairs) + "}"
    return "[" + ",".join(_raw(v) for v in value) + "]"


class _Object:
    """A decoded JSON object as its key/value pairs in order (duplicates kept, as Go sees them)."""
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


class _State:
    """Go's decodeState: decoding goes on past a bad field and the first error found is the one answered (a type
    error, an unknown field, or an enum's or a time's own UnmarshalJSON error alike, as nats-server answers)."""
    __slots__ = ("saved", "strict", "top", "text")

    def __init__(self, strict: bool, top: str):
        self.saved: str | None = None
        self.strict = strict
        self.top = top
        self.text = ""

    def raw(self, key: str, value) -> str:
        """The JSON text of `key`'s value as it was sent (Go quotes an enum's bad value byte for byte)."""
        if isinstance(value, (list, _Object)):
            m = re.search(re.escape(json.dumps(key, ensure_ascii=False)) + r"[ \t\n\r]*:[ \t\n\r]*", self.text)
            if m:
                try:
                    _value, end = _DECODER.raw_decode(self.text, m.end())
                    return self.text[m.end():end]
                except (ValueError, RecursionError):
                    pass
        return _raw(value)

    def save(self, text: str) -> None:
        if self.saved is None:
            self.saved = text

    def type_error(self, value, gotype: str, path: list[str], literal: bool = False) -> None:
        what = f"number {value}" if literal else _kind(value)
        where = ".".join(str(p) for p in path)
        if path and isinstance(path[-1], int):  # an array element: Go names no struct field
            self.save(f"json: cannot unmarshal {what} into {self.top}.{where} of type {gotype}")
        elif path:
            self.save(f"json: cannot unmarshal {what} into Go struct field {self.top}.{where} of type {gotype}")
        else:
            self.save(f"json: cannot unmarshal {what} into Go value of type {gotype}")


_LAYOUT = "2006-01-02T15:04:05Z07:00"
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _time_err(text: str, elem: str = "", rest: str = "", message: str = "") -> GoJsonError:
    if message:
        return GoJsonError(f"parsing time {json.dumps(text)}{message}")
    return GoJsonError(f"parsing time {json.dumps(text)} as {json.dumps(_LAYOUT)}: cannot parse {json.dumps(rest)} "
                       f"as {json.dumps(elem)}")


def parse_time(text: str) -> int:
    """Go's time.Time.UnmarshalJSON (strict RFC 3339) in nanoseconds since the epoch, with Go's error texts."""
    v = text

    def num(elem: str, width: int, name: str, lo: int, hi: int, fixed: bool = True):
        nonlocal v
        n = width if fixed else (2 if len(v) >= 2 and v[1].isdigit() else 1)
        if len(v) < n or not v[:n].isascii() or not v[:n].isdigit():
            raise _time_err(text, elem, v)
        value, v = int(v[:n]), v[n:]
        if name and not lo <= value <= hi:
            raise _time_err(text, message=f": {name} out of range")
        return value

    def literal(lit: str):
        nonlocal v
        if not v.startswith(lit):
            raise _time_err(text, lit, v)
        v = v[len(lit):]

    year = num("2006", 4, "", 0, 9999)
    literal("-")
    month = num("01", 2, "month", 1, 12)
    literal("-")
    day = num("02", 2, "", 0, 99)
    literal("T")
    hour_text = v
    hour = num("15", 2, "hour", 0, 23, fixed=False)
    if len(hour_text) > 1 and hour_text[1] == ":":
        raise _time_err(text, "15", hour_text[:1])
    literal(":")
    minute = num("04", 2, "minute", 0, 59)
    literal(":")
    second = num("05", 2, "second", 0, 59)
    nanos = 0
    if len(v) >= 2 and v[0] in ".," and v[1].isdigit():
        if v[0] == ",":
            raise _time_err(text, ".", ",")
        i = 1
        while i < len(v) and v[i].isdigit():
            i += 1
        nanos = int(v[1:i][:9].ljust(9, "0"))
        v = v[i:]
    offset = 0
    if v[:1] == "Z":
        v = v[1:]
    else:
        if len(v) < 6 or v[3] != ":" or v[0] not in "+-" or not (v[1:3] + v[4:6]).isdigit():
            raise _time_err(text, "Z07:00", v)
        hh, mm = int(v[1:3]), int(v[4:6])
        if hh > 24:  # Go's Parse takes up to 24:00 and 60 minutes
            raise _time_err(text, message=": time zone offset hour out of range")
        if mm > 60:
            raise _time_err(text, message=": time zone offset minute out of range")
        offset = (hh * 60 + mm) * 60 * (-1 if v[0] == "-" else 1)
        v = v[6:]
    if v:
        raise _time_err(text, message=f": extra text: {json.dumps(v)}")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS[month - 1] + (1 if month == 2 and leap else 0):
        raise _time_err(text, message=": day out of range")
    if year < 1970:
        return 0
    secs = calendar.timegm((year, month, day, hour, minute, second)) - offset
    return secs * 1_000_000_000 + nanos


def _string(value: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", value)


def _decode(value, typ, st: _State, path: list[str]):
    """The Python value of `value` decoded into Go type `typ`; `_UNSET` when Go would leave the field alone."""
    if isinstance(typ, Enum):
        return _decode_enum(value, typ, st, path)
    if value is None:
        return _UNSET
    if typ is STRING:
        if isinstance(value, str) and not isinstance(value, _Number):
            return _string(value)
        st.type_error(value, "string", path)
        return _UNSET
    if typ is BOOL:
        if isinstance(value, bool):
            return value
        st.type_error(value, "bool", path)
        return _UNSET
    if isinstance(typ, Int):
        if not isinstance(value, _Number):
            st.type_error(value, typ.name, path)
            return _UNSET
        text = str(value)
        if (text.isdigit() or text[:1] == "-" and text[1:].isdigit() and typ.lo < 0) and len(text) < 30:
            n = int(text)
            if typ.lo <= n <= typ.hi:
                return n
        st.type_error(value, typ.name, path, literal=True)
        return _UNSET
    if typ is TIME:
        if not isinstance(value, str) or isinstance(value, _Number):
            st.type_error(value, "time.Time", path)
            return _UNSET
        try:
            return parse_time(value)
        except GoJsonError as e:
            st.save(str(e))
            return _UNSET
    if isinstance(typ, Slice):
        if not isinstance(value, list) or isinstance(value, _Object):
            st.type_error(value, typ.name, path)
            return _UNSET
        out = []
        for i, item in enumerate(value):
            got = _decode(item, typ.item, st, path + [i])
            out.append(_zero(typ.item) if got is _UNSET else got)
        return out
    if isinstance(typ, Map):
        if not isinstance(value, _Object):
            st.type_error(value, typ.name, path)
            return _UNSET
        out = {}
        for k, v in value.pairs:
            item = STRING if typ.item is None else typ.item
            got = _decode(v, item, st, path + [k])
            out[_string(k)] = _zero(item) if got is _UNSET else got
        return out
    if isinstance(typ, Struct):
        if not isinstance(value, _Object):
            st.type_error(value, "server." + typ.name, path)
            return _UNSET
        return _decode_struct(value, typ, st, path)
    raise TypeError(f"no decoder for {typ!r}")


def _decode_enum(value, typ: Enum, st: _State, path: list):
    if typ is COMPRESSION:
        if value is not None and (not isinstance(value, str) or isinstance(value, _Number)):
            st.save(f"json: cannot unmarshal {_kind(value)} into Go value of type string")
        elif value in ("s2", "none"):
            return value
        else:
            st.save(typ.error)
        return _UNSET
    raw = st.raw(str(path[-1]), value) if path else _raw(value)
    if raw in typ.values:
        return typ.values[raw]
    st.save(typ.error.replace("%q", json.dumps(raw, ensure_ascii=False)).replace("%v", raw))
    return _UNSET


def _decode_struct(obj: _Object, typ: Struct, st: _State, path: list[str]) -> dict:
    out: dict = {}
    for key, value in obj.pairs:
        name = key if key in typ.fields else typ.folded.get(_fold(key))
        if name is None:
            if st.strict:
                st.save(f"json: unknown field {json.dumps(key, ensure_ascii=False)}")
            continue
        got = _decode(value, typ.fields[name], st, path + [key])  # Go's error names the key as sent
        if got is _UNSET:
            if value is None and isinstance(typ.fields[name], (Slice, Map, Struct)) or value is None and \
                    typ.fields[name] is TIME:
                out.pop(name, None)  # null sets a pointer, slice or map to nil
            continue
        if isinstance(got, dict) and isinstance(out.get(name), dict) and isinstance(typ.fields[name], Struct):
            got = {**out[name], **got}  # Go decodes into the struct already there
        out[name] = got
    return out


_UNSET = object()


def _zero(typ):
    if typ is STRING:
        return ""
    if typ is BOOL:
        return False
    if isinstance(typ, Int):
        return 0
    if isinstance(typ, Struct):
        return {}
    return None


def decode(payload: bytes | str, typ: Struct, *, strict: bool = True, struct_name: str | None = None) -> dict:
    """The fields of `payload` set as Go would decode it into `typ` (nats-server's unmarshalRequest when
    `strict`: several values in a row, unknown fields refused; json.Unmarshal otherwise). Raises GoJsonError.

    `struct_name` is the struct named in type errors when it is not `typ`'s name (nats-server decodes a pull
    request through a pointer to a pointer, and Go then names no struct: "Go struct field .batch")."""
    if isinstance(payload, (bytes, bytearray)) and len(payload) <= _SIMPLE_MAX:
        got = _decode_simple(payload, typ)
        if got is not None:
            return got
    return decode_full(payload, typ, strict=strict, struct_name=struct_name)


# The bodies of the requests sent most (a direct or message get, a pull) are one flat object of distinct field names
# spelled as declared, with plain values of the declared types. Such a body decodes to the same fields under every
# rule above, so Python's own JSON parser reads it; anything else goes through decode_full: not UTF-8, not an
# object, several values, a name repeated (every ':' of the body must be a field's, so a ':' inside a string
# also falls back), a case variant or unknown name, null, a float for an integer, a number out of range, a string
# with a lone surrogate, -0 for an unsigned field, nested values.
_SIMPLE_MAX = 1024
_LOADS = json.JSONDecoder().decode


# The body the lab sends for each message of a stream read without allow_direct, matched without parsing: a
# sequence without sign, leading zero or exponent, a subject of printable ASCII with nothing to unescape.
_SEQ_NEXT = re.compile(rb'\{"seq":(0|[1-9][0-9]{0,19}),"next_by_subj":"([\x20-\x21\x23-\x5b\x5d-\x7e]*)"\}')
_U64 = (1 << 64) - 1


def seq_next_body(payload: bytes) -> tuple[int, str] | None:
    """(seq, next_by_subj) of the lab's body `{"seq":N,"next_by_subj":"S"}` with S not empty, matched without
    parsing (what decode gives for it); None for any other body."""
    m = _SEQ_NEXT.fullmatch(payload)
    if m is None or not m[2]:
        return None
    seq = int(m[1])
    return (seq, m[2].decode()) if seq <= _U64 else None


def _decode_simple(payload: bytes, typ: Struct) -> dict | None:
    """A simple body's fields, or None when the body is not that simple (see above)."""
    if typ is MSG_GET_REQUEST:
        m = _SEQ_NEXT.fullmatch(payload)
        if m is not None:
            seq = int(m[1])
            if seq <= _U64:
                return {"seq": seq, "next_by_subj": m[2].decode()}
    try:
        obj = _LOADS(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if type(obj) is not dict or payload.count(b":") != len(obj):
        return None
    fields = typ.fields
    for name, value in obj.items():
        ftype = fields.get(name)
        kind = type(value)
        if ftype is STRING:
            if kind is not str or not value.isascii() and _LONE_SURROGATE.search(value):
                return None
        elif kind is int:
            if ftype.__class__ is not Int or not ftype.lo <= value <= ftype.hi or \
                    value == 0 and ftype.lo == 0 and b"-" in payload:  # Go refuses -0 for an unsigned field
                return None
        elif kind is not bool or ftype is not BOOL:
            return None
    return obj


def decode_full(payload: bytes | str, typ: Struct, *, strict: bool = True, struct_name: str | None = None) -> dict:
    """`decode` by the general decoder alone (tests compare the two)."""
    st = _State(strict, typ.name if struct_name is None else struct_name)
    st.text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    out: dict = {}
    for value in _values(payload, many=strict):
        if value is None:
            continue
        if not isinstance(value, _Object):
            st.type_error(value, "server." + typ.name, [])
            raise GoJsonError(st.saved)
        got = _decode_struct(value, typ, st, [])
        if st.saved is not None:
            break
        out.update(got)
    if st.saved is not None:
        raise GoJsonError(st.saved)
    return out
