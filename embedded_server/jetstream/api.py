"""The `$JS.API.*` endpoints, one handler each, registered by subject; JSON in, JSON out, nats-server's shapes.

Every handler raises `ApiError` (from errors.py) for a failure; `_dispatch` turns it into the response of
that endpoint's `type` with nats-server's zero-value fields (a failed purge still says `"purged":0`).
"""
from __future__ import annotations

import json
import os
import shutil
from binascii import b2a_base64

from . import advisories
from . import config_check
from . import config_json
from . import filters
from . import headers
from . import priority
from . import requests
from . import consumer_reset
from . import snapshot
from .batch import required_level_error
from .clock import rfc3339, now_ns, ZERO_TIME
from .config import API_LEVEL
from .config_json import decode_request, invalid_json
from .errors import ApiError, api_error
from .sourcing import get_hash, stream_identity

STREAM_IDENTITY = consumer_reset.IDENTITY  # b"Nats-Stream-Identity"

PREFIX = "io.nats.jetstream.api.v1."
NAMES_LIMIT = 1024
LIST_LIMIT = 256
MAX_SUBJECT_DETAILS = 100_000

# Extra zero-valued fields nats-server's response structs carry even in an error response.
_ERROR_EXTRAS = {
    "stream_info_response": {"total": 0, "offset": 0, "limit": 0},
    "stream_names_response": {"total": 0, "offset": 0, "limit": 0, "streams": None},
    "stream_list_response": {"total": 0, "offset": 0, "limit": 0, "streams": []},
    "consumer_names_response": {"total": 0, "offset": 0, "limit": 0, "consumers": []},
    "consumer_list_response": {"total": 0, "offset": 0, "limit": 0, "consumers": []},
    "stream_purge_response": {"purged": 0},
    "consumer_pause_response": {"paused": False, "pause_until": ZERO_TIME},
    "stream_restore_response": {"deliver_subject": ""},
}


dumps = config_json.compact_json


def _is_json_object_or_array(msg: bytes) -> bool:
    stripped = msg.lstrip(b" \t\r\n")
    return stripped[:1] in (b"{", b"[")


def _is_empty_request(msg: bytes) -> bool:
    if not msg or msg == b"{}":
        return True
    if b'"' in msg:  # an object without fields holds no string: no need to parse it
        return False
    try:
        v = json.loads(msg)
    except ValueError:
        return False
    return isinstance(v, dict) and not v


def _token(subject: str, index: int) -> str:
    """nats-server's tokenAt (1-based)."""
    parts = subject.split(".")
    return parts[index - 1] if 0 < index <= len(parts) else ""


class Request:
    __slots__ = ("js", "jsa", "subject", "reply", "hdr", "msg", "client", "answer_hdr")

    def __init__(self, js, jsa, subject, reply, hdr, msg, client=None):
        self.js, self.jsa, self.subject, self.reply, self.hdr, self.msg = js, jsa, subject, reply, hdr, msg
        self.client = client  # the requesting connection (None from inside the server), for advisories
        self.answer_hdr = None  # headers a handler puts on a successful answer (Nats-Stream-Identity)


# -- account --------------------------------------------------------------------------------------

def account_info(req: Request) -> dict:
    jsa = req.jsa
    memory = sum(s.store.bytes for s in jsa.streams.values() if s.store.storage == "memory")
    storage = sum(s.store.bytes for s in jsa.streams.values() if s.store.storage == "file")
    usage = {"memory": memory, "storage": storage, "reserved_memory": 0, "reserved_storage": 0,
             "streams": len(jsa.streams), "consumers": sum(len(s.consumers) for s in jsa.streams.values())}
    if jsa.tiered:
        # Limits in tiers (an account JWT's tiered_limits): the top level holds none, R1 holds them all.
        out = {**usage, "limits": {k: (False if isinstance(v, bool) else 0) for k, v in jsa.limits.items()}}
    else:
        out = {**usage, "limits": dict(jsa.limits)}
    if req.js.domain:
        out["domain"] = req.js.domain
    out["api"] = {"level": API_LEVEL, "total": jsa.api_total, "errors": jsa.api_errors}
    if jsa.tiered:
        out["tiers"] = {"R1": {**usage, "limits": dict(jsa.limits)}}
    return out


# -- streams --------------------------------------------------------------------------------------

def stream_create(req: Request) -> dict:
    cfg, pedantic = config_json.decode_stream_request(req.msg)
    name = _token(req.subject, 5)
    config_check.set_static_metadata(cfg)
    if name != cfg.get("name", ""):
        raise api_error("JSStreamMismatchErr")
    if "\\" in name or "/" in name:
        raise api_error("JSStreamNameContainsPathSeparatorsErr")
    if cfg.get("sealed"):
        raise api_error("JSStreamInvalidConfigF", err="stream configuration for create can not be sealed")
    if cfg.get("mirror_direct") and cfg.get("mirror") is None:
        raise api_error("JSStreamInvalidConfigF", err="stream has no mirror but does have mirror direct")
    st, _created = req.jsa.add_stream(cfg, pedantic)
    out = st.info(req.js.version)
    out.pop("domain", None)
    out["did_create"] = True
    return out


def stream_update(req: Request) -> dict:
    cfg, pedantic = config_json.decode_stream_request(req.msg)
    checked = config_check.check_stream_config(cfg, pedantic, server_limits=req.js.server_limits)
    if _token(req.subject, 5) != checked["name"]:
        raise api_error("JSStreamMismatchErr")
    st = req.jsa.update_stream(checked["name"], cfg, pedantic)
    return st.info(req.js.version)


def stream_info(req: Request) -> dict:
    details, subjects_filter, offset = False, "", 0
    if _is_json_object_or_array(req.msg):
        body = decode_request(req.msg, requests.STREAM_INFO_REQUEST)
        details = body.get("deleted_details", False)
        subjects_filter = body.get("subjects_filter", "")
        offset = max(body.get("offset", 0), 0)
    st = req.jsa.lookup(_token(req.subject, 5))
    info = st.info(req.js.version, with_deleted=details)
    paged = {"total": 0, "offset": 0, "limit": 0}
    if subjects_filter:
        totals = {k: v.msgs for k, v in st.store.subjects_state(subjects_filter).items()}
        if totals:
            paged = {"total": len(totals), "offset": offset, "limit": MAX_SUBJECT_DETAILS}
            names = sorted(totals)
            if offset or len(names) > MAX_SUBJECT_DETAILS:
                names = names[min(offset, len(names)):][:MAX_SUBJECT_DETAILS]
            info["state"] = _with_subjects(info["state"], {k: totals[k] for k in names})
    ts = info.pop("ts")
    info["cluster"] = {"leader": req.js.server.server_name}
    info["ts"] = ts
    return {**paged, **info}


def _with_subjects(state: dict, subjects: dict) -> dict:
    out = {}
    for k, v in state.items():
        out[k] = v
        if k in ("num_subjects", "last_ts") and "subjects" not in out and (k == "num_subjects" or "num_subjects" not in state):
            out["subjects"] = subjects
    return out


def stream_delete(req: Request) -> dict:
    if not _is_empty_request(req.msg):
        raise api_error("JSNotEmptyRequestErr")
    req.jsa.delete_stream(_token(req.subject, 5))
    return {"success": True}


def stream_purge(req: Request) -> dict:
    subject, seq, keep = "", 0, 0
    if _is_json_object_or_array(req.msg):
        body = decode_request(req.msg, requests.STREAM_PURGE_REQUEST)
        subject = body.get("filter", "")
        seq = body.get("seq", 0)
        keep = body.get("keep", 0)
        if seq > 0 and keep > 0:
            raise api_error("JSBadRequestErr")
    st = req.jsa.lookup(_token(req.subject, 5))
    if st.cfg.get("sealed"):
        raise api_error("JSStreamSealedErr")
    if st.cfg.get("deny_purge"):
        raise api_error("JSStreamPurgeFailedF", err="stream purge not permitted")
    purged = st.purge(subject, seq, keep)
    return {"success": True, "purged": purged}


def _names_filter(jsa, subject_filter: str):
    out = []
    for st in jsa.streams.values():
        if not subject_filter or any(filters.collide(subject_filter, s) for s in st.cfg.get("subjects") or ()):
            out.append(st)
    return sorted(out, key=lambda s: s.name)


def _paging(req: Request, typ: requests.Struct) -> tuple[int, str]:
    """(offset, subject filter) of a names/list request; a body that is not a JSON object or array means none."""
    if _is_json_object_or_array(req.msg):
        body = decode_request(req.msg, typ)
        return max(body.get("offset", 0), 0), body.get("subject", "")
    return 0, ""


def stream_names(req: Request) -> dict:
    offset, subject_filter = _paging(req, requests.STREAM_NAMES_REQUEST)
    names = [s.name for s in _names_filter(req.jsa, subject_filter)]
    total = len(names)
    offset = min(offset, total)
    page = names[offset:offset + NAMES_LIMIT]
    return {"total": total, "offset": offset, "limit": NAMES_LIMIT, "streams": page or None}


def stream_list(req: Request) -> dict:
    offset, subject_filter = _paging(req, requests.STREAM_LIST_REQUEST)
    streams = _names_filter(req.jsa, subject_filter)
    total = len(streams)
    offset = min(offset, total)
    page = [s.info() for s in streams[offset:offset + LIST_LIMIT]]
    return {"total": total, "offset": offset, "limit": LIST_LIMIT, "streams": page}


def msg_get(req: Request) -> dict:
    if _is_empty_request(req.msg):
        raise api_error("JSBadRequestErr")
    body = decode_request(req.msg, requests.MSG_GET_REQUEST)
    seq = body.get("seq", 0)
    last_for = body.get("last_by_subj", "")
    next_for = body.get("next_by_subj", "")
    start_time = body.get("start_time")
    if body.get("batch", 0) > 0 or body.get("max_bytes", 0) > 0:
        raise api_error("JSBadRequestErr")
    if (seq and last_for) or (not seq and not last_for and not next_for and start_time is None) or \
            (seq and start_time is not None) or (start_time is not None and last_for) or (last_for and next_for):
        raise api_error("JSBadRequestErr")
    st = req.jsa.lookup(_token(req.subject, 6))
    store = st.store
    if start_time is not None:
        seq = store.get_seq_from_time(start_time)
    if seq > 0 and not next_for:
        sm = store.load_msg(seq)
    elif next_for:
        sm = store.load_next_msg((next_for,), seq)
    else:
        sm = store.load_last_msg(last_for)
    if sm is None:
        raise api_error("JSNoMessageFoundErr")
    return msg_get_answer(sm, body.get("no_hdr", False))


def msg_get_answer(sm, no_hdr: bool) -> bytes:
    """The fields of a STREAM.MSG.GET answer after its `type`, `{"message":{...}}` as `dumps` would write them,
    put together from bytes (the hot path of a lab reading a stream without allow_direct): the subject
    through `dumps` only when it needs escaping, the base64 left as bytes."""
    subject = sm.subject
    if (subject.isascii() and subject.isprintable() and '"' not in subject and "\\" not in subject
            and "<" not in subject and ">" not in subject and "&" not in subject):
        head = b'{"message":{"subject":"%s","seq":%d' % (subject.encode(), sm.seq)
    else:
        head = b'{"message":{"subject":%s,"seq":%d' % (dumps(subject), sm.seq)
    parts = [head]
    if sm.hdr and not no_hdr:
        parts += (b',"hdrs":"', b2a_base64(sm.hdr, newline=False), b'"')
    if sm.data:
        parts += (b',"data":"', b2a_base64(sm.data, newline=False), b'"')
    parts += (b',"time":"', rfc3339(sm.ts).encode(), b'"}}')
    return b"".join(parts)


def msg_delete(req: Request) -> dict:
    if _is_empty_request(req.msg):
        raise api_error("JSBadRequestErr")
    seq = decode_request(req.msg, requests.MSG_DELETE_REQUEST).get("seq", 0)
    st = req.jsa.lookup(_token(req.subject, 6))
    if st.cfg.get("sealed"):
        raise api_error("JSStreamSealedErr")
    if st.cfg.get("deny_delete"):
        raise api_error("JSStreamMsgDeleteFailedF", err="message delete not permitted")
    if st.store.storage == "file" and seq > st.store.last_seq:
        raise api_error("JSStreamMsgDeleteFailedF", err="stream store EOF")
    if st.store.storage == "file" and seq < st.store.first_seq:
        # nats-server's file store finds no block holding it: "no message found", not "sequence ... not found".
        raise api_error("JSStreamMsgDeleteFailedF", err="no message found")
    if not st.remove_msg(seq):
        raise api_error("JSSequenceNotFoundErrF", seq=seq)
    return {"success": True}


# -- consumers ------------------------------------------------------------------------------------

def consumer_create(req: Request) -> dict:
    stream_req, cfg, action, pedantic = config_json.decode_consumer_request(req.msg)
    tokens = req.subject.split(".")
    n = len(tokens)
    filtered = ""
    if n < 5:
        return None
    if n == 5:
        kind = "legacy_ephemeral"
        stream = tokens[4]
        name = (cfg or {}).get("name", "")
    elif tokens[3] == "DURABLE":
        kind = "legacy_durable"
        if n != 7:
            raise api_error("JSConsumerDurableNameNotInSubjectErr")
        stream, name = tokens[5], tokens[6]
    else:
        kind = "new"
        stream, name = tokens[4], tokens[5]
        if n > 6:
            filtered = ".".join(tokens[6:])
    if stream != stream_req:
        raise api_error("JSStreamMismatchErr")
    if name and ("\\" in name or "/" in name):
        raise api_error("JSConsumerNameContainsPathSeparatorsErr")
    if cfg is None:
        cfg = {}
        config_missing = True
    else:
        config_missing = False
    if kind == "legacy_durable":
        if not cfg.get("durable_name"):
            raise api_error("JSConsumerDurableNameNotSetErr")
        if name != cfg["durable_name"]:
            raise api_error("JSConsumerDurableNameNotMatchSubjectErr")
        cfg["name"] = name
    if kind == "new":
        if cfg.get("durable_name") and name != cfg["durable_name"]:
            raise api_error("JSConsumerDurableNameNotMatchSubjectErr")
        cfg["name"] = name
    if kind == "legacy_ephemeral" and cfg.get("durable_name"):
        raise api_error("JSConsumerEphemeralWithDurableNameErr")
    if filtered and cfg.get("filter_subjects"):
        raise api_error("JSConsumerMultipleFiltersNotAllowed")
    if filtered and cfg.get("filter_subject", "") != filtered:
        raise api_error("JSConsumerCreateFilterSubjectMismatchErr")
    if cfg.get("num_replicas", 0) > 1:
        raise api_error("JSStreamReplicasNotSupportedErr")
    st = req.jsa.lookup(stream)
    if config_missing and kind != "new":
        raise api_error("JSConsumerConfigRequiredErr")
    if cfg.get("direct") and cfg.get("sourcing") and cfg.get("name"):
        # nats-server 2.14+: a source's named consumer becomes a durable acknowledged by flow control on a
        # work-queue or interest stream (ADR-60); elsewhere the stable name gets a suffix of its own.
        if st.cfg.get("retention", "limits") != "limits":
            cfg.pop("direct")
            for field in ("ack_wait", "max_deliver", "inactive_threshold"):
                cfg.pop(field, None)
            cfg.update(durable_name=cfg["name"], ack_policy="flow_control")
        else:
            cfg["name"] = name = f"{cfg['name']}-{get_hash(os.urandom(16).hex())}"
    existing = st.consumers.get(name) if name else None
    if existing is not None:
        if existing.cfg.get("pause_until"):
            cfg["pause_until"] = existing.cfg["pause_until"]
        else:
            cfg.pop("pause_until", None)
    identity = ""
    if cfg.get("direct") or cfg.get("sourcing"):
        # nats-server 2.15 (API level 5, stream recreation detection): a sourcing consumer's create names the
        # stream's identity in the answer, and is refused when the request expects another incarnation.
        identity = stream_identity(st.created)
        expected = headers.get(req.hdr, STREAM_IDENTITY) if req.hdr else None
        if expected and expected.decode(errors="replace") != identity:
            raise api_error("JSConsumerStreamIdentityMismatchF", msg=identity)
    config_check.set_static_metadata(cfg)
    info = req.jsa.add_consumer(st, cfg, action, pedantic).info(req.js.version)
    if identity:
        req.answer_hdr = b"NATS/1.0\r\n" + STREAM_IDENTITY + b": " + identity.encode() + b"\r\n\r\n"
    return info


def _lookup_consumer(req: Request):
    st = req.jsa.lookup(_token(req.subject, 5))
    o = st.consumers.get(_token(req.subject, 6))
    if o is None:
        raise api_error("JSConsumerNotFoundErr")
    return st, o


def consumer_info(req: Request) -> dict:
    _st, o = _lookup_consumer(req)
    return o.info(req.js.version)


def consumer_delete(req: Request) -> dict:
    if not _is_empty_request(req.msg):
        raise api_error("JSNotEmptyRequestErr")
    st, o = _lookup_consumer(req)
    req.jsa.delete_consumer(st, o)
    return {"success": True}


def consumer_names(req: Request) -> dict:
    offset, _ = _paging(req, requests.CONSUMERS_REQUEST)
    st = req.jsa.lookup(_token(req.subject, 5))
    names = st.public_consumers()
    total = len(names)
    offset = min(offset, total)
    return {"total": total, "offset": offset, "limit": NAMES_LIMIT, "consumers": names[offset:offset + NAMES_LIMIT]}


def consumer_list(req: Request) -> dict:
    offset, _ = _paging(req, requests.CONSUMERS_REQUEST)
    st = req.jsa.lookup(_token(req.subject, 5))
    names = st.public_consumers()
    total = len(names)
    offset = min(offset, total)
    infos = [st.consumers[n].info() for n in names[offset:offset + LIST_LIMIT]]
    return {"total": total, "offset": offset, "limit": LIST_LIMIT, "consumers": infos}


def consumer_pause(req: Request) -> dict:
    until = 0
    if _is_json_object_or_array(req.msg):
        until = decode_request(req.msg, requests.CONSUMER_PAUSE_REQUEST).get("pause_until", 0)
    _st, o = _lookup_consumer(req)
    o.set_pause(until)
    out = {"paused": bool(until) and now_ns() < until, "pause_until": rfc3339(until)}
    if out["paused"]:
        out["pause_remaining"] = until - now_ns()
    return out


def consumer_unpin(req: Request) -> dict:
    try:  # nats-server decodes this one with json.Unmarshal (one value, unknown fields ignored)
        group = requests.decode(req.msg, requests.CONSUMER_UNPIN_REQUEST, strict=False).get("group", "")
    except requests.GoJsonError as e:
        raise invalid_json(str(e)) from None
    if not group:
        raise invalid_json("consumer group not specified")
    if not priority.VALID_GROUP.match(group):
        raise api_error("JSConsumerInvalidGroupNameErr")
    _st, o = _lookup_consumer(req)
    if group not in (o.cfg.get("priority_groups") or ()):
        raise api_error("JSConsumerInvalidPriorityGroupErr")
    priority.unpin(o, group)
    return {}


def cluster_required(req: Request) -> dict:
    """Leader step-down, peer removal and 2.15's peer evacuation and move cancelling: a lone nats-server
    answers that they need clustering, whatever the stream or consumer named."""
    raise api_error("JSClusterRequiredErr")


# -- dispatch -------------------------------------------------------------------------------------

# (subject tokens after "$JS.API", handler, response type). "*" matches one token, ">" the rest.
ROUTES = [
    (("INFO",), account_info, "account_info_response"),
    (("STREAM", "CREATE", "*"), stream_create, "stream_create_response"),
    (("STREAM", "UPDATE", "*"), stream_update, "stream_update_response"),
    (("STREAM", "INFO", "*"), stream_info, "stream_info_response"),
    (("STREAM", "DELETE", "*"), stream_delete, "stream_delete_response"),
    (("STREAM", "PURGE", "*"), stream_purge, "stream_purge_response"),
    (("STREAM", "NAMES"), stream_names, "stream_names_response"),
    (("STREAM", "LIST"), stream_list, "stream_list_response"),
    (("STREAM", "MSG", "GET", "*"), msg_get, "stream_msg_get_response"),
    (("STREAM", "MSG", "DELETE", "*"), msg_delete, "stream_msg_delete_response"),
    (("STREAM", "SNAPSHOT", "*"), snapshot.stream_snapshot, "stream_snapshot_response"),
    (("STREAM", "RESTORE", "*"), snapshot.stream_restore, "stream_restore_response"),
    (("CONSUMER", "CREATE", "*"), consumer_create, "consumer_create_response"),
    (("CONSUMER", "CREATE", "*", ">"), consumer_create, "consumer_create_response"),
    (("CONSUMER", "DURABLE", "CREATE", "*", "*"), consumer_create, "consumer_create_response"),
    (("CONSUMER", "INFO", "*", "*"), consumer_info, "consumer_info_response"),
    (("CONSUMER", "DELETE", "*", "*"), consumer_delete, "consumer_delete_response"),
    (("CONSUMER", "NAMES", "*"), consumer_names, "consumer_names_response"),
    (("CONSUMER", "LIST", "*"), consumer_list, "consumer_list_response"),
    (("CONSUMER", "PAUSE", "*", "*"), consumer_pause, "consumer_pause_response"),
    (("CONSUMER", "UNPIN", "*", "*"), consumer_unpin, "consumer_unpin_response"),
    (("STREAM", "LEADER", "STEPDOWN", "*"), cluster_required, "stream_leader_stepdown_response"),
    (("CONSUMER", "LEADER", "STEPDOWN", "*", "*"), cluster_required, "consumer_leader_stepdown_response"),
    (("STREAM", "PEER", "REMOVE", "*"), cluster_required, "stream_remove_peer_response"),
    (("STREAM", "PEER", "EVACUATE", "*"), cluster_required, "stream_evacuate_peer_response"),
    (("CONSUMER", "PEER", "EVACUATE", "*", "*"), cluster_required, "consumer_evacuate_peer_response"),
    (("STREAM", "CANCEL_MOVE", "*"), cluster_required, "stream_cancel_move_response"),
    (("CONSUMER", "RESET", "*", "*"), consumer_reset.consumer_reset, "consumer_reset_response"),
]


_ROUTED: dict = {}  # API subject -> (handler, rtype), for the subjects asked most (bounded)


def _route_subject(subject: str):
    """`_route` of a whole `$JS.API.` subject, remembered."""
    found = _ROUTED.get(subject)
    if found is None:
        found = _route(subject.split(".")[2:])
        if len(_ROUTED) >= 4096:
            _ROUTED.clear()
        _ROUTED[subject] = found
    return found


def _route(tokens: list[str]):
    for pattern, handler, rtype in ROUTES:
        if pattern[-1] == ">":
            if len(tokens) < len(pattern) or any(p != "*" and p != t for p, t in zip(pattern[:-1], tokens)):
                continue
            return handler, rtype
        if len(tokens) == len(pattern) and all(p == "*" or p == t for p, t in zip(pattern, tokens)):
            return handler, rtype
    return None, None


def subscribe(js, jsa) -> None:
    """Listen for the API in one account."""
    def dispatch(sub, client, subject, reply, hdr, payload):
        _dispatch(js, jsa, subject, reply, hdr, payload, client)

    server = js.server
    for subject in ("$JS.API.INFO", "$JS.API.STREAM.>", "$JS.API.CONSUMER.>"):
        server.subscribe_internal(jsa.account, subject, dispatch)
    if js.domain:
        # nats-server maps $JS.<domain>.API.> to $JS.API.> in every JetStream account.
        def domain_dispatch(sub, client, subject, reply, hdr, payload):
            _dispatch(js, jsa, "$JS.API." + subject.split(".", 3)[3], reply, hdr, payload, client)

        server.subscribe_internal(jsa.account, f"$JS.{js.domain}.API.>", domain_dispatch)


def subscribe_not_enabled(js, account) -> None:
    """An account without JetStream: every endpoint answers "JetStream not enabled for account"."""
    def answer(sub, client, subject, reply, hdr, payload):
        _handler, rtype = _route(subject.split(".")[2:])
        if reply and rtype:
            resp = {"type": PREFIX + rtype, "error": api_error("JSNotEnabledForAccountErr").as_dict()}
            resp.update(_ERROR_EXTRAS.get(rtype, {}))
            js.server.send_internal(account, reply, None, None, dumps(resp))

    for subject in ("$JS.API.INFO", "$JS.API.STREAM.>", "$JS.API.CONSUMER.>"):
        js.server.subscribe_internal(account, subject, answer)


def subscribe_system(js, account) -> None:
    """The system account's JetStream API that a lone nats-server answers: `$JS.API.ACCOUNT.PURGE.<account>`
    deletes every stream of that account and its directory in the store (jsLeaderAccountPurgeRequest)."""
    def purge(sub, client, subject, reply, hdr, payload):
        name = subject.split(".", 4)[4] if subject.count(".") >= 4 else ""
        resp: dict = {"type": PREFIX + "account_purge_response"}
        if "\\" in name or "/" in name:
            resp["error"] = api_error("JSStreamGeneralErrorF",
                                      err="account name can not contain path separators").as_dict()
        else:
            jsa = js.accounts.get(name)
            streams = sorted(jsa.streams) if jsa is not None else []
            known = "true" if js.server.lookup_account(name) is not None else "false"
            js.logger.notice(f"Purge request for account {name} (streams: {len(streams)}, hasAccount: {known})")
            for stream in streams:
                jsa.delete_stream(stream)
            shutil.rmtree(os.path.join(js.store_dir, name), ignore_errors=True)
            resp["initiated"] = True
        if reply:
            js.server.send_internal(account, reply, None, None, dumps(resp))

    js.server.subscribe_internal(account, "$JS.API.ACCOUNT.PURGE.*", purge)


def typed_answer(rtype: str, fields: bytes) -> bytes:
    """`dumps({"type": PREFIX + rtype, **fields})` for fields given as a JSON object's bytes (not empty)."""
    return b'{"type":"%s",%s' % ((PREFIX + rtype).encode(), fields[1:])


_MSG_GET_AT = len("$JS.API.STREAM.MSG.GET.")  # where the stream's name starts in a routed MSG.GET subject


def _msg_get_found(jsa, subject: str, payload: bytes) -> bytes | None:
    """The answer's fields of a STREAM.MSG.GET with the body a pipelined read sends, `{"seq":N,"next_by_subj":S}`
    (no headers), when its stream exists and holds such a message: what msg_get answers, without the general
    request's decoding and checks (such a body passes all of them). None for anything else: msg_get decides."""
    asked = requests.seq_next_body(payload)
    if asked is None:
        return None
    st = jsa.streams.get(subject[_MSG_GET_AT:])
    if st is None:
        return None
    try:
        sm = st.store.load_next_msg((asked[1],), asked[0])
    except Exception:  # msg_get reads again and answers what went wrong
        return None
    return None if sm is None else msg_get_answer(sm, False)


def _dispatch(js, jsa, subject: str, reply: str, hdr, payload: bytes, client=None) -> None:
    handler, rtype = _route_subject(subject)
    if handler is None or not reply:
        return
    if handler is msg_get and not hdr:
        fields = _msg_get_found(jsa, subject, payload)
        if fields is not None:  # a message found: answered outside the API's counters and audit (see below)
            js.server.send_internal(jsa.account, reply, None, None, typed_answer(rtype, fields))
            return
    js.api_total += 1
    resp = {"type": PREFIX + rtype}
    answer_hdr = answer = None
    try:
        if required_level_error(hdr):
            raise api_error("JSRequiredApiLevelErr")
        request = Request(js, jsa, subject, reply, hdr, payload, client)
        body = handler(request)
        answer_hdr = request.answer_hdr
        if body is None:
            js.api_total -= 1
            return
        if type(body) is bytes:  # the answer's fields already as JSON (msg_get_answer): after the type
            # nats-server sends a message STREAM.MSG.GET found "not through the API layer": it counts in neither
            # the account's nor the server's API total, and no API audit advisory tells of it (its errors do).
            js.api_total -= 1
            js.server.send_internal(jsa.account, reply, None, None, typed_answer(rtype, body))
            return
        resp.update(body)
    except ApiError as e:
        js.api_errors += 1
        resp["error"] = e.as_dict()
        resp.update(_ERROR_EXTRAS.get(rtype, {}))
    except Exception as e:  # a bug here must answer, not hang the client
        js.api_errors += 1
        js.logger.error(f"JetStream API {subject} failed: {type(e).__name__}: {e}")
        resp["error"] = api_error("JSStreamGeneralErrorF", err=str(e) or type(e).__name__).as_dict()
    # The account's own counters move after the answer is made (its INFO does not count itself).
    jsa.api_total += 1
    if "error" in resp:
        jsa.api_errors += 1
    if answer is None:
        answer = dumps(resp)
    js.server.send_internal(jsa.account, reply, None, answer_hdr if "error" not in resp else None, answer)
    advisories.api_audit(js, jsa.account, client, subject, payload, answer)
