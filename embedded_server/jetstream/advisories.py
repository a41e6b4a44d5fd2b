"""JetStream advisories on `$JS.EVENT.ADVISORY.>` and the ack metric on `$JS.EVENT.METRIC.>`, shaped as
nats-server's (jetstream_events.go).

An advisory is only built when someone listens on its subject, as nats-server's sendAdvisory checks interest
first, so an unobserved server pays nothing for them.
"""
from __future__ import annotations

import secrets

from .clock import now_ns, rfc3339
from .config_json import compact_json

PREFIX = "$JS.EVENT.ADVISORY."
METRIC_ACK = "$JS.EVENT.METRIC.CONSUMER.ACK"
_NUID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def nuid() -> str:
    """A 22-character id of nats-server's NUID alphabet (advisory ids, pin ids)."""
    return "".join(secrets.choice(_NUID_ALPHABET) for _ in range(22))


def send(js, account, subject: str, kind: str, body: dict, schema: str = "advisory") -> None:
    """Publish one event of type `io.nats.jetstream.<schema>.v1.<kind>` (e.g. advisory max_deliver) if
    anyone is subscribed to `subject`; the domain, if any, comes last (nats-server's structs end with it)."""
    if not js.server.has_interest(account, subject):
        return
    event = {"type": f"io.nats.jetstream.{schema}.v1.{kind}", "id": nuid(), "timestamp": rfc3339(now_ns())}
    event.update(body)
    if js.domain:
        event["domain"] = js.domain
    js.server.send_internal(account, subject, None, None, compact_json(event))


def stream_action(js, account, stream: str, action: str) -> None:
    """action: create, delete or modify."""
    verb = {"create": "CREATED", "delete": "DELETED", "modify": "UPDATED"}[action]
    send(js, account, f"{PREFIX}STREAM.{verb}.{stream}", "stream_action", {"stream": stream, "action": action})


def consumer_action(js, account, stream: str, consumer: str, action: str) -> None:
    verb = {"create": "CREATED", "delete": "DELETED"}[action]
    send(js, account, f"{PREFIX}CONSUMER.{verb}.{stream}.{consumer}", "consumer_action",
         {"stream": stream, "consumer": consumer, "action": action})


def max_deliveries(js, account, stream: str, consumer: str, sseq: int, deliveries: int) -> None:
    send(js, account, f"{PREFIX}CONSUMER.MAX_DELIVERIES.{stream}.{consumer}", "max_deliver",
         {"stream": stream, "consumer": consumer, "stream_seq": sseq, "deliveries": deliveries})


def ack_metric(js, account, stream: str, consumer: str, dseq: int, sseq: int, ack_time: int,
               deliveries: int) -> None:
    """nats-server's sampleAck: one sampled acknowledgement, `ack_time` the nanoseconds since the delivery
    (or the last +WPI) that it acknowledges."""
    send(js, account, f"{METRIC_ACK}.{stream}.{consumer}", "consumer_ack",
         {"stream": stream, "consumer": consumer, "consumer_seq": dseq, "stream_seq": sseq, "ack_time": ack_time,
          "deliveries": deliveries}, schema="metric")


def nak(js, account, stream: str, consumer: str, dseq: int, sseq: int, deliveries: int) -> None:
    send(js, account, f"{PREFIX}CONSUMER.MSG_NAKED.{stream}.{consumer}", "nak",
         {"stream": stream, "consumer": consumer, "consumer_seq": dseq, "stream_seq": sseq,
          "deliveries": deliveries})


def terminated(js, account, stream: str, consumer: str, dseq: int, sseq: int, deliveries: int,
               reason: str) -> None:
    body = {"stream": stream, "consumer": consumer, "consumer_seq": dseq, "stream_seq": sseq,
            "deliveries": deliveries}
    if reason:
        body["reason"] = reason
    send(js, account, f"{PREFIX}CONSUMER.MSG_TERMINATED.{stream}.{consumer}", "terminated", body)


def consumer_pause(js, account, stream: str, consumer: str, paused: bool, until: int) -> None:
    body = {"stream": stream, "consumer": consumer, "paused": paused}
    if until:
        body["pause_until"] = rfc3339(until)
    send(js, account, f"{PREFIX}CONSUMER.PAUSE.{stream}.{consumer}", "consumer_pause", body)


def consumer_pinned(js, account, stream: str, consumer: str, group: str, pin_id: str) -> None:
    send(js, account, f"{PREFIX}CONSUMER.PINNED.{stream}.{consumer}", "consumer_group_pinned",
         {"account": account.name, "stream": stream, "consumer": consumer, "group": group, "pinned_id": pin_id})


def consumer_unpinned(js, account, stream: str, consumer: str, group: str, reason: str) -> None:
    """reason: "timeout" or "admin" (nats-server's two)."""
    send(js, account, f"{PREFIX}CONSUMER.UNPINNED.{stream}.{consumer}", "consumer_group_unpinned",
         {"account": account.name, "stream": stream, "consumer": consumer, "group": group, "reason": reason})


def batch_abandoned(js, account, stream: str, batch_id: str, reason: str) -> None:
    """An atomic batch given up: reason "timeout", "incomplete", "large" or "unsupported" (nats-server's four).
    As nats-server does, the stream's account gets it and the system account a copy that names the account
    (only the copy when the stream is in the system account)."""
    subject = f"{PREFIX}STREAM.BATCH_ABANDONED.{stream}"
    body = {"stream": stream}
    if js.domain:
        body["domain"] = js.domain  # the field order of nats-server's struct: domain before batch
    body["batch"], body["reason"] = batch_id, reason
    events = js.server.events
    system = events.account if events is not None else None
    if account is not system:
        send(js, account, subject, "stream_batch_abandoned", body)
    if system is not None:
        send(js, system, subject, "stream_batch_abandoned", {"account": account.name, **body})


# -- snapshots and restores (nats-server's jsStreamSnapshotRequest / processStreamRestore) ---------------

def client_info(js, client) -> dict | None:
    """The requesting client as these advisories show it (nats-server's ClientInfo.forAdvisory of an API
    request: no JWT), or None for a request made inside the server."""
    if client is None or getattr(client, "account", None) is None:
        return None
    from embedded_server.events import client_identity
    info = client_identity(client)
    rtt = int(client.rtt * 1_000_000_000)
    if rtt:
        info["rtt"] = rtt
    info["server"] = js.server.server_id
    info["kind"] = "Client"
    info["client_type"] = "nats"
    return info


def snapshot_create(js, account, stream: str, state: dict, client) -> None:
    send(js, account, f"{PREFIX}STREAM.SNAPSHOT_CREATE.{stream}", "snapshot_create",
         {"stream": stream, "state": state, "client": client})


def snapshot_complete(js, account, stream: str, start: int, end: int, client, err: str) -> None:
    body = {"stream": stream, "start": rfc3339(start), "end": rfc3339(end), "client": client}
    if err:
        body["error"] = err
    send(js, account, f"{PREFIX}STREAM.SNAPSHOT_COMPLETE.{stream}", "snapshot_complete", body)


def restore_create(js, account, stream: str, client) -> None:
    send(js, account, f"{PREFIX}STREAM.RESTORE_CREATE.{stream}", "restore_create",
         {"stream": stream, "client": client})


def restore_complete(js, account, stream: str, start: int, end: int, size: int, client) -> None:
    send(js, account, f"{PREFIX}STREAM.RESTORE_COMPLETE.{stream}", "restore_complete",
         {"stream": stream, "start": rfc3339(start), "end": rfc3339(end), "bytes": size, "client": client})


AUDIT = "$JS.EVENT.ADVISORY.API"


def api_audit(js, account, client, subject: str, request: bytes, response: bytes) -> None:
    """nats-server's sendJetStreamAPIAuditAdvisory: every answered JetStream API request, with its body and
    the answer as text (nothing is built unless someone listens)."""
    if not js.server.has_interest(account, AUDIT):
        return
    body = {"server": js.server.server_name, "client": client_info(js, client), "subject": subject}
    if request:
        body["request"] = request.decode("utf-8", "replace")
    body["response"] = response.decode("utf-8", "replace")
    send(js, account, AUDIT, "api_audit", body)
