"""`$JS.API.CONSUMER.RESET.<stream>.<consumer>` (nats-server 2.15): move a consumer back to its ack floor, or
to a given stream sequence, forgetting what it had pending. As in nats-server it is answered by the consumer
itself: a missing stream or consumer gets no answer, and the answer does not count as an API request.
"""
from __future__ import annotations

from . import config_json, headers, requests
from .config_json import invalid_json
from .errors import ApiError, api_error
from .sourcing import stream_identity

RESET_REQUEST = requests.Struct("JSApiConsumerResetRequest", {"seq": requests.UINT64})
IDENTITY = b"Nats-Stream-Identity"
RESPONSE_TYPE = "io.nats.jetstream.api.v1.consumer_reset_response"


def consumer_reset(req):
    tokens = req.subject.split(".")
    st = req.jsa.streams.get(tokens[4])
    o = st.consumers.get(tokens[5]) if st is not None else None
    if o is None or not req.reply:
        return None
    resp = {"type": RESPONSE_TYPE}
    identity = stream_identity(st.created) if headers.get(req.hdr, IDENTITY) is not None else ""
    hdr = None
    try:
        body = {}
        if req.msg:
            try:
                body = requests.decode(req.msg, RESET_REQUEST, strict=False)
            except requests.GoJsonError as e:
                raise invalid_json(str(e)) from None
        seq = _check(o, body.get("seq", 0))
        o.reset_position(seq)
        resp.update(o.info(req.js.version))
        resp["reset_seq"] = seq
        if identity:
            hdr = b"NATS/1.0\r\n" + IDENTITY + b": " + identity.encode() + b"\r\n\r\n"
    except ApiError as e:
        resp["error"] = e.as_dict()
    req.js.server.send_internal(req.jsa.account, req.reply, None, hdr, config_json.compact_json(resp))
    return None


def _check(o, seq: int) -> int:
    """nats-server's resetStartingSeq: the sequence to deliver from next, or 10204 with the reason."""
    if seq == 0:
        return o.asflr + 1
    policy = o.cfg.get("deliver_policy", "all")
    if policy == "by_start_sequence":
        if seq < o.cfg.get("opt_start_seq", 0):
            raise api_error("JSConsumerInvalidResetErr", err="below start seq")
    elif policy == "by_start_time":
        if seq < o.stream.store.get_seq_from_time(o.cfg.get("opt_start_time", 0)):
            raise api_error("JSConsumerInvalidResetErr", err="below start time")
    elif policy != "all":
        raise api_error("JSConsumerInvalidResetErr", err="not allowed")
    return max(seq, 1)
