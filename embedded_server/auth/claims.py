"""Account JWT updates pushed at run time in operator mode, as nats-server handles them for non-directory
resolvers: `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` (and the older `$SYS.ACCOUNT.<key>.CLAIMS.UPDATE`),
published from the system account. Revoked users of an updated account are disconnected at once.
"""
from __future__ import annotations

from embedded_server import errors
from embedded_server.auth.accounts import wire_accounts
from embedded_server.gojson import compact_json
from embedded_server.version import PROTOCOL_VERSION

SUBJECTS = ("$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE", "$SYS.ACCOUNT.*.CLAIMS.UPDATE")


def subscribe(server) -> None:
    operator = server.operator
    if not operator.system_account:
        return
    system = server.register_account(operator.system_account)
    for subject in SUBJECTS:
        server.subscribe_internal(system, subject, lambda sub, c, subj, reply, hdr, payload:
                                  _update(server, subj, reply, payload))


def _update(server, subject: str, reply: str | None, payload: bytes) -> None:
    tokens = subject.split(".")
    key = tokens[3] if len(tokens) == 6 else tokens[2]
    message, error = server.operator.update_account(key, payload.decode("utf-8", "replace").strip())
    if error:
        server.error(f"{message} - {key} - {error}")
    else:
        server.debug(f"{message} - {key}")
    if message == "jwt updated":
        wire_accounts(server)
        _enforce(server, key)
    if reply:
        info = {"name": server.server_name, "host": server.options.host, "id": server.server_id,
                "ver": PROTOCOL_VERSION, "seq": 0, "time": ""}
        body = {"server": info}
        if error:
            body["error"] = {"account": key, "code": 500, "description": f"{message} - {error}"}
        else:
            body["data"] = {"account": key, "code": 200, "message": message}
        server.send_internal(server.register_account(operator_system(server)), reply, None, None,
                             compact_json(body))


def operator_system(server) -> str:
    return server.operator.system_account


def _enforce(server, key: str) -> None:
    """After an account update: disconnect its revoked users."""
    operator = server.operator
    for client in list(server.clients.values()):
        identity = client.identity
        if client.closed or identity is None or identity.account != key:
            continue
        if operator.revoked(key, identity.name, identity.issued_at):
            client.send_err(errors.ERR_AUTHENTICATION_REVOKED)
    server.flush()
