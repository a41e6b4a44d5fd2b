"""Configured identities (users with passwords, nkey users) and the credential checks nats-server makes.

Passwords may be bcrypt hashes (`$2a$...`, checked with the optional `bcrypt` package) or plain text
(compared in constant time). Nkey users prove themselves by signing the nonce the server sent in INFO.
"""
from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from embedded_server.auth.permissions import Permissions

_BCRYPT = re.compile(r"^\$2[abxy]\$\d{2}\$.*")
CONNECTION_TYPES = ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS")


@dataclass
class User:
    username: str
    password: str = ""
    permissions: Permissions | None = None
    account: str | None = None  # None: the global account $G
    allowed_connection_types: set[str] | None = None
    default_permissions: bool = False  # permissions came from the block's defaults


@dataclass
class NkeyUser:
    nkey: str
    permissions: Permissions | None = None
    account: str | None = None
    allowed_connection_types: set[str] | None = None
    default_permissions: bool = False


def is_bcrypt(password: str) -> bool:
    return bool(_BCRYPT.match(password))


def compare_passwords(server_password: str, client_password: str) -> bool:
    """nats-server's comparePasswords: bcrypt when the configured password is a hash, else constant time."""
    if is_bcrypt(server_password):
        try:
            import bcrypt
        except ImportError:
            raise RuntimeError("bcrypt password hashes need the bcrypt package: pip install bcrypt") from None
        try:
            return bcrypt.checkpw(client_password.encode(), server_password.encode())
        except ValueError:
            return False
    return hmac.compare_digest(server_password.encode(), client_password.encode())


def connection_type_allowed(allowed: set[str] | None, conn_type: str = "STANDARD") -> bool:
    return not allowed or conn_type in allowed
