"""Deciding who a connecting client is, from its CONNECT options, as nats-server's auth.go does.

One Authenticator is built per configuration (at start and on every reload); it is immutable, so a reload
swaps it atomically. `authenticate()` returns the Identity (user, permissions, account) or None, in which
case the server answers with errors.ERR_AUTHORIZATION_VIOLATION and closes the connection.
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from embedded_server.auth import nkey as _nkey
from embedded_server.auth.conf import AuthConfig
from embedded_server.auth.permissions import Permissions
from embedded_server.auth.users import NkeyUser, User, compare_passwords, connection_type_allowed

NONCE_RAW_LEN = 11  # 15 characters of base64 URL, as nats-server


@dataclass(frozen=True)
class Identity:
    """Who a connection authenticated as. `name` is the username or nkey ('' for anonymous/token/no auth)."""
    kind: str  # "none", "token", "user", "nkey"
    name: str = ""
    permissions: Permissions | None = None
    account: str | None = None  # None: the global account $G
    user: User | NkeyUser | None = None
    expires_in: float | None = None  # seconds until the credentials expire (JWT exp or time window)
    max_subs: int = -1  # JWT user limits (-1: none)
    max_payload: int = -1
    issued_at: int = 0


ANONYMOUS = Identity("none")


def generate_nonce() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(NONCE_RAW_LEN)).decode().rstrip("=")


class Authenticator:
    def __init__(self, config: AuthConfig | None = None):
        self.config = config or AuthConfig()
        c = self.config
        self.users: dict[str, User] = {u.username: u for u in c.users} if c.users is not None else {}
        self.nkeys: dict[str, NkeyUser] = {n.nkey: n for n in c.nkeys} if c.nkeys is not None else {}
        for u in list(self.users.values()) + list(self.nkeys.values()):
            if u.permissions is not None:
                u.permissions.validated()
        self.auth_required = c.auth_required

    @property
    def nonce_required(self) -> bool:
        """INFO carries a nonce when nkey users exist (nats-server's nonceRequired)."""
        return bool(self.nkeys)

    @property
    def info_auth_required(self) -> bool:
        """INFO's auth_required: false when a no_auth_user lets clients in without credentials."""
        return self.auth_required and not self.config.no_auth_user

    def authenticate(self, connect: dict, nonce: str | bytes | None = None,
                     conn_type: str = "STANDARD") -> Identity | None:
        """Check CONNECT's user/pass/auth_token/nkey+sig against the configuration.

        `connect` may be updated with the no_auth_user's name, as nats-server records it for later reloads.
        """
        if not self.auth_required:
            return ANONYMOUS
        c = self.config
        username = _s(connect.get("user"))
        password = _s(connect.get("pass"))
        token = _s(connect.get("auth_token"))
        nk = _s(connect.get("nkey"))
        no_auth = c.no_auth_user
        nkey_user: NkeyUser | None = None
        user: User | None = None

        if self.nkeys:
            if no_auth and not (username or password or token or nk) and no_auth in self.nkeys:
                connect["nkey"] = nk = no_auth
            if nk:
                nkey_user = self.nkeys.get(nk)
                if nkey_user is None or not connection_type_allowed(nkey_user.allowed_connection_types, conn_type):
                    return None
        if self.users and nkey_user is None:
            if no_auth and not (username or password or token) and no_auth in self.users:
                u = self.users[no_auth]
                connect["user"], connect["pass"] = username, password = u.username, u.password
            if username:
                user = self.users.get(username)
                if user is None or not connection_type_allowed(user.allowed_connection_types, conn_type):
                    return None

        if nkey_user is not None:
            if nkey_user.nkey != no_auth and not self._signed_nonce(nkey_user.nkey, connect, nonce):
                return None
            return Identity("nkey", nkey_user.nkey, nkey_user.permissions, nkey_user.account, nkey_user)
        if user is not None:
            if not compare_passwords(user.password, password):
                return None
            return Identity("user", user.username, user.permissions, user.account, user)
        if c.token:
            return Identity("token") if compare_passwords(c.token, token) else None
        if c.username:
            if username != c.username or not compare_passwords(c.password, password):
                return None
            return Identity("user", c.username)
        return None

    @staticmethod
    def _signed_nonce(public_key: str, connect: dict, nonce: str | bytes | None) -> bool:
        sig = _s(connect.get("sig"))
        if not sig or nonce is None:
            return False
        raw = _nkey.decode_signature(sig)
        if raw is None:
            return False
        data = nonce.encode() if isinstance(nonce, str) else nonce
        return _nkey.verify(public_key, data, raw)

    def still_same_account(self, connect: dict, identity: Identity) -> bool:
        """nats-server's clientHasMovedToDifferentAccount, inverted: after a reload, does the user this
        connection logged in as still exist, in the same account? (Connections without a user name
        or nkey are not affected.)"""
        nk, username = _s(connect.get("nkey")), _s(connect.get("user"))
        if nk:
            u = self.nkeys.get(nk)
        elif username:
            u = self.users.get(username)
        else:
            return True
        return u is not None and (u.account or "$G") == (identity.account or "$G")


def _s(v) -> str:
    return v if isinstance(v, str) else ""
