"""Minting NATS identities for tutorials: operator, accounts and users as seeds, JWTs and nsc-style .creds.

The decentralized model in a few lines: the operator signs accounts, an account signs its users, and a
server configured with the operator (and the account JWTs) only checks that chain, so a user minted later
connects without any change to the server:

    op = Operator.new("lab")
    acct = op.new_account("APP")
    alice = acct.new_user("alice", pub_allow=["orders.>"])
    conf = op.server_config(accounts=[acct])      # operator / resolver: MEMORY / resolver_preload
    alice.write_creds("alice.creds")              # nats-py: nats.connect(url, user_credentials=...)

Works the same against the embedded server and a real nats-server.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

__all__ = ["Account", "Operator", "User", "new_seed", "encode_jwt", "decode_jwt_claims", "format_creds"]

_PREFIXES = {"operator": nkeys.PREFIX_BYTE_OPERATOR, "account": nkeys.PREFIX_BYTE_ACCOUNT,
             "user": nkeys.PREFIX_BYTE_USER}
NO_LIMIT = -1


def new_seed(kind: str) -> str:
    """A fresh nkey seed (`SO...`, `SA...`, `SU...`) for an operator, account or user."""
    return nkeys.encode_seed(os.urandom(32), _PREFIXES[kind]).decode()


def public_key(seed: str) -> str:
    return nkeys.from_seed(seed.encode()).public_key.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _timestamp(when: float | dt.datetime | dt.timedelta | None) -> int | None:
    if when is None:
        return None
    if isinstance(when, dt.timedelta):
        return int(time.time() + when.total_seconds())
    if isinstance(when, dt.datetime):
        return int(when.timestamp())
    return int(when)


def encode_jwt(claims: dict, signer_seed: str) -> str:
    """Sign claims as a version 2 NATS JWT (issuer, issued-at and jti filled in as the jwt library does)."""
    claims = dict(claims)
    claims["iss"] = public_key(signer_seed)
    claims.setdefault("iat", int(time.time()))
    claims.pop("jti", None)
    digest = hashlib.new("sha512_256", json.dumps(claims, separators=(",", ":")).encode()).digest()
    claims = {"jti": base64.b32encode(digest).decode().rstrip("="), **claims}
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{header}.{body}"
    sig = nkeys.from_seed(signer_seed.encode()).sign(signed.encode())
    return f"{signed}.{_b64(sig)}"


def decode_jwt_claims(token: str) -> dict:
    """The claims of a JWT, unverified (for display)."""
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def format_creds(jwt: str, seed: str) -> str:
    """A credentials file exactly as `nsc` writes it (nats-py's user_credentials reads it)."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


def _permission(allow, deny) -> dict:
    out = {}
    if allow:
        out["allow"] = list(allow)
    if deny:
        out["deny"] = list(deny)
    return out


class _Signed:
    """What operators, accounts and users share: a name, a seed (the secret), the JWT that names its key,
    and the same read-outs: `public_key`, `claims` (the JWT's, decoded), `issuer` (who signed it)."""
    name: str
    seed: str
    jwt: str

    @property
    def public_key(self) -> str:
        return public_key(self.seed)

    @property
    def claims(self) -> dict:
        return decode_jwt_claims(self.jwt)

    @property
    def issuer(self) -> str:
        """The public key that signed the JWT (an operator signs itself)."""
        return self.claims["iss"]

    def __repr__(self) -> str:
        # Never the seed: a displayed identity must not put a secret into a saved notebook.
        kind = self.claims["nats"]["type"]
        return f"<{kind} {self.name} {self.public_key[:12]}… signed by {self.issuer[:12]}…>"


@dataclass(repr=False)
class User(_Signed):
    name: str
    seed: str
    jwt: str
    account: "Account"

    @property
    def creds(self) -> str:
        return format_creds(self.jwt, self.seed)

    def write_creds(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(self.creds)
        path.chmod(0o600)
        return path


@dataclass(repr=False)
class Account(_Signed):
    name: str
    seed: str
    jwt: str
    operator: "Operator"
    signing_seeds: list[str] = field(default_factory=list)

    def new_user(self, name: str, *, pub_allow=None, pub_deny=None, sub_allow=None, sub_deny=None,
                 allow_responses: bool | int = False, expires=None, not_before=None, bearer: bool = False,
                 subs: int = NO_LIMIT, data: int = NO_LIMIT, payload: int = NO_LIMIT, src=None, times=None,
                 times_location: str = "", signer: str | None = None, seed: str | None = None) -> User:
        """A user of this account: its seed and a JWT signed by the account (or one of its signing keys).

        `expires`/`not_before`: a datetime, a timedelta from now, or a unix time. `src`: CIDR networks the
        user may connect from; `times`: daily ("HH:MM:SS", "HH:MM:SS") windows in `times_location`."""
        seed = seed or new_seed("user")
        nats: dict = {"pub": _permission(pub_allow, pub_deny), "sub": _permission(sub_allow, sub_deny),
                      "subs": subs, "data": data, "payload": payload, "type": "user", "version": 2}
        if allow_responses:
            nats["resp"] = {"max": 1 if allow_responses is True else int(allow_responses), "ttl": 0}
        if bearer:
            nats["bearer_token"] = True
        if src:
            nats["src"] = list(src)
        if times:
            nats["times"] = [{"start": s, "end": e} for s, e in times]
        if times_location:
            nats["times_location"] = times_location
        signer = signer or self.seed
        if signer != self.seed:
            nats["issuer_account"] = self.public_key
        claims: dict = {"name": name, "sub": public_key(seed), "nats": nats}
        if (exp := _timestamp(expires)) is not None:
            claims["exp"] = exp
        if (nbf := _timestamp(not_before)) is not None:
            claims["nbf"] = nbf
        return User(name, seed, encode_jwt(claims, signer), self)

    def add_signing_key(self) -> str:
        """A new signing key for users (re-issues the account JWT: push or preload it again)."""
        seed = new_seed("account")
        self.signing_seeds.append(seed)
        self.reissue()
        return seed

    def reissue(self, **changes) -> str:
        """Sign this account's claims again (after changes), e.g. to push an update to a running server."""
        claims = self.claims
        nats = claims["nats"]
        nats.update(changes)
        nats["signing_keys"] = [public_key(s) for s in self.signing_seeds] or nats.get("signing_keys", [])
        if not nats["signing_keys"]:
            nats.pop("signing_keys")
        claims.pop("iat", None)
        self.jwt = encode_jwt(claims, self.operator.seed)
        return self.jwt

    def revoke(self, user: User, at: float | None = None) -> str:
        """Revoke a user's JWTs issued before `at` (default: now); returns the re-issued account JWT."""
        revocations = dict(self.claims["nats"].get("revocations") or {})
        revocations[user.public_key] = int(at if at is not None else time.time())
        return self.reissue(revocations=revocations)


@dataclass(repr=False)
class Operator(_Signed):
    name: str
    seed: str
    jwt: str
    accounts: list[Account] = field(default_factory=list)

    @classmethod
    def new(cls, name: str = "lab") -> "Operator":
        seed = new_seed("operator")
        claims = {"name": name, "sub": public_key(seed), "nats": {"type": "operator", "version": 2}}
        return cls(name, seed, encode_jwt(claims, seed))

    def new_account(self, name: str, *, exports=None, imports=None, limits: dict | None = None,
                    expires=None) -> Account:
        """An account signed by this operator (nsc's defaults: no limits)."""
        seed = new_seed("account")
        lim = {"subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, "imports": NO_LIMIT,
               "exports": NO_LIMIT, "wildcards": True, "conn": NO_LIMIT, "leaf": NO_LIMIT}
        lim.update(limits or {})
        nats: dict = {"limits": lim, "default_permissions": {"pub": {}, "sub": {}}, "type": "account",
                      "version": 2}
        if exports:
            nats["exports"] = list(exports)
        if imports:
            nats["imports"] = list(imports)
        claims: dict = {"name": name, "sub": public_key(seed), "nats": nats}
        if (exp := _timestamp(expires)) is not None:
            claims["exp"] = exp
        account = Account(name, seed, encode_jwt(claims, self.seed), self)
        self.accounts.append(account)
        return account

    def system_account(self) -> Account:
        """The `SYS` account nats-server wants in operator mode (named in `system_account`)."""
        for account in self.accounts:
            if account.name == "SYS":
                return account
        return self.new_account("SYS")

    def server_config(self, accounts: list[Account] | None = None, *, system: Account | None = None) -> str:
        """A server configuration for operator mode with the memory resolver, accounts preloaded."""
        system = system or self.system_account()
        accounts = list(accounts if accounts is not None else self.accounts)
        if system not in accounts:
            accounts.append(system)
        preload = "\n".join(f"  {a.public_key}: {a.jwt}" for a in accounts)
        return (f"operator: {self.jwt}\nsystem_account: {system.public_key}\nresolver: MEMORY\n"
                f"resolver_preload: {{\n{preload}\n}}\n")
