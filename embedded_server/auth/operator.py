"""Operator mode (decentralized JWT auth): trusted operators, the MEMORY account resolver, and the chain of
trust checks nats-server makes when a client CONNECTs with a user JWT (auth.go, jwt.go, accounts.go).

Accounts are named by their public key. Account JWTs come from `resolver_preload` and may be replaced at run
time by publishing a newer JWT to `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` from the system account.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import time
from dataclasses import dataclass, field

from embedded_server.auth import jwt as _jwt
from embedded_server.auth import nkey as _nkey
from embedded_server.auth.authenticator import Identity
from embedded_server.auth.permissions import Permissions, ResponsePermission, SubjectPermission
from embedded_server.config import ConfigError


@dataclass
class OperatorConfig:
    operators: list[dict] = field(default_factory=list)  # decoded operator claims
    preload: dict[str, str] = field(default_factory=dict)  # account public key -> account JWT
    system_account: str = ""
    resolver: str = ""


def read_operator_jwt(value: str, base_dir: str = ".") -> str:
    """`operator:` is a JWT or the path of a file holding one (possibly decorated as nsc writes it)."""
    if value.startswith("eyJ") and value.count(".") == 2:
        return value
    path = value if os.path.isabs(value) else os.path.join(base_dir, value)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("eyJ") and line.count(".") == 2:
            return line
    raise ValueError(f"no JWT found in {path}")


def parse_operator_options(keys: dict, base_dir: str, errors: list[ConfigError]) -> OperatorConfig | None:
    """From the config's operator/resolver/resolver_preload/system_account keys (Options.operator_keys)."""
    op_value = next((keys[k] for k in ("operator", "operators", "root", "roots", "root_operator",
                                         "root_operators") if k in keys), None)
    if op_value is None:
        return None
    conf = OperatorConfig()
    values = list(op_value) if isinstance(op_value, list) else [op_value]
    for v in values:
        try:
            token = read_operator_jwt(str(v), base_dir)
            conf.operators.append(_jwt.decode(token, expect="operator"))
        except (OSError, ValueError) as e:
            errors.append(ConfigError(f"error parsing operator JWT: {e}"))
    resolver = keys.get("resolver")
    if resolver is not None:
        if isinstance(resolver, str) and resolver.upper() == "MEMORY":
            conf.resolver = "MEMORY"
        else:
            errors.append(ConfigError("resolver: only MEMORY is supported by the embedded server "
                                      "(see docs/differences.md)"))
    preload = keys.get("resolver_preload")
    if preload is not None:
        if not isinstance(preload, dict):
            errors.append(ConfigError("preload should be a map of account_public_key:account_jwt"))
        else:
            for key, token in preload.items():
                if not isinstance(token, str):
                    errors.append(ConfigError("preload map value should be a string JWT"))
                    continue
                try:
                    claims = _jwt.decode(token, expect="account")
                except _jwt.JWTError as e:
                    errors.append(ConfigError(f"invalid account JWT for {key}: {e}"))
                    continue
                if claims.get("sub") != key:
                    errors.append(ConfigError(f"account JWT subject does not match key {key}"))
                    continue
                conf.preload[key] = token
    sys_acc = keys.get("system_account", keys.get("system"))
    if isinstance(sys_acc, str):
        conf.system_account = sys_acc
    elif conf.operators:
        conf.system_account = _jwt.nats(conf.operators[0]).get("system_account", "")
    return conf


class OperatorMode:
    """The trust anchors and the account JWTs a server in operator mode knows."""

    def __init__(self, conf: OperatorConfig):
        self.conf = conf
        self.trusted_keys: set[str] = set()
        for op in conf.operators:
            self.trusted_keys |= _jwt.operator_signing_keys(op)
        self.accounts: dict[str, dict] = {}  # public key -> account claims
        self.account_jwts: dict[str, str] = {}
        # Accounts the server has looked up (nats-server only applies pushed updates to those).
        self.loaded: set[str] = {conf.system_account} if conf.system_account else set()
        for key, token in conf.preload.items():
            claims = _jwt.decode(token, expect="account")
            if claims.get("iss") in self.trusted_keys:
                self.accounts[key] = claims
                self.account_jwts[key] = token

    @property
    def system_account(self) -> str:
        return self.conf.system_account

    # -- accounts ---------------------------------------------------------------------------------
    def update_account(self, key: str, token: str) -> tuple[str, str | None]:
        """A claims update pushed at run time: (message, error) in nats-server's words."""
        if not token:
            return "jwt update error", "request body is empty"
        try:
            claims = _jwt.decode(token, expect="account")
        except _jwt.JWTError as e:
            return "jwt update resulted in error", str(e)
        if claims.get("sub") != key:
            return "jwt update resulted in error", "subject does not match jwt content"
        if key not in self.accounts or key not in self.loaded:
            return "jwt update skipped", None
        if claims.get("iss") not in self.trusted_keys:
            return "jwt update resulted in error", "account not signed by a trusted operator"
        old = self.accounts[key]
        if (claims.get("iat") or 0) < (old.get("iat") or 0):
            return "jwt update resulted in error", "jwt is older than the one in use"
        self.accounts[key] = claims
        self.account_jwts[key] = token
        return "jwt updated", None

    def revoked(self, account_key: str, user_key: str, issued_at: int) -> bool:
        revocations = _jwt.nats(self.accounts.get(account_key, {})).get("revocations") or {}
        t = revocations.get(user_key)
        if t is None or t < issued_at:
            t = revocations.get("*")
            if t is None or t < issued_at:
                return False
        return True

    def account_configs(self) -> list:
        """The exports/imports of the known account JWTs, in the form the config file's accounts use.

        Only public exports are honoured (activation tokens for `token_req` exports are not implemented)."""
        from embedded_server.auth.accounts import AccountConfig, Export, Import

        configs = []
        for key, claims in self.accounts.items():
            acc = AccountConfig(key)
            for e in _jwt.nats(claims).get("exports") or []:
                if not isinstance(e, dict) or not e.get("subject") or e.get("token_req"):
                    continue
                target = acc.service_exports if e.get("type") == "service" else acc.stream_exports
                target.append(Export(e["subject"]))
            for i in _jwt.nats(claims).get("imports") or []:
                if not isinstance(i, dict) or not i.get("subject") or not i.get("account"):
                    continue
                exporter = self.accounts.get(i["account"])
                kind = i.get("type") or "stream"
                exports = [e for e in (_jwt.nats(exporter).get("exports") or []) if isinstance(e, dict)
                           and (e.get("type") or "stream") == kind and not e.get("token_req")] if exporter else []
                if not any(_subject_within(i["subject"], e.get("subject", "")) for e in exports):
                    continue
                local = i.get("local_subject") or ""
                if kind == "service":
                    acc.service_imports.append(Import(i["account"], i["subject"], local or i.get("to") or ""))
                else:
                    acc.stream_imports.append(Import(i["account"], i["subject"], local, "" if local else
                                                     i.get("to") or i.get("prefix") or ""))
            configs.append(acc)
        return configs

    # -- users ------------------------------------------------------------------------------------
    def authenticate(self, connect: dict, nonce: str | bytes | None, host: str = "") -> Identity | None:
        token = connect.get("jwt")
        if not isinstance(token, str) or not token:
            return None
        try:
            user = _jwt.decode(token, expect="user")
        except _jwt.JWTError:
            return None
        now = time.time()
        if _jwt.expired(user, now) or _jwt.not_yet_valid(user, now):
            return None
        unats = _jwt.nats(user)
        account_key = unats.get("issuer_account") or user.get("iss", "")
        account = self.accounts.get(account_key)
        if account is None or account.get("iss") not in self.trusted_keys:
            return None
        self.loaded.add(account_key)
        if _jwt.expired(account, now):
            return None
        issuer = user.get("iss")
        scope = None
        if issuer != account_key:
            keys = _jwt.signing_keys(account)
            if issuer not in keys:
                return None
            scope = keys[issuer]
        if unats.get("bearer_token"):
            if (_jwt.nats(account).get("limits") or {}).get("disallow_bearer"):
                return None
        elif not self._signed_nonce(user.get("sub", ""), connect, nonce):
            return None
        if self.revoked(account_key, user.get("sub", ""), int(user.get("iat") or 0)):
            return None
        if not _src_allowed(unats.get("src"), host):
            return None
        in_window, window_left = _times_allowed(unats.get("times"), unats.get("times_location"))
        if not in_window:
            return None
        limits = unats
        if scope is not None and scope.get("template") is not None:
            limits = scope["template"]
        perms = permissions_from_jwt(limits)
        if perms is None:
            perms = permissions_from_jwt(_jwt.nats(account).get("default_permissions") or {})
        expires_in = None
        if user.get("exp"):
            expires_in = max(0.0, user["exp"] - now)
        if window_left is not None and (expires_in is None or window_left < expires_in):
            expires_in = window_left
        # The account's subs and payload limits cap the user's (nats-server's applyAccountLimits).
        acc_limits = _jwt.nats(account).get("limits") or {}
        return Identity("jwt", user.get("sub", ""), perms, account_key, None, expires_in,
                        _tighter(_limit(limits.get("subs")), _limit(acc_limits.get("subs"))),
                        _tighter(_limit(limits.get("payload")), _limit(acc_limits.get("payload"))),
                        int(user.get("iat") or 0))

    def max_connections(self, account_key: str) -> int:
        """The account JWT's `conn` limit (-1: none)."""
        return _limit((_jwt.nats(self.accounts.get(account_key, {})).get("limits") or {}).get("conn"))

    @staticmethod
    def _signed_nonce(public_key: str, connect: dict, nonce) -> bool:
        sig = connect.get("sig")
        if not isinstance(sig, str) or not sig or nonce is None:
            return False
        raw = _nkey.decode_signature(sig)
        data = nonce.encode() if isinstance(nonce, str) else nonce
        return raw is not None and _nkey.verify(public_key, data, raw)


def _subject_within(subject: str, export: str) -> bool:
    from embedded_server.auth.permissions import _subset_match

    return bool(export) and _subset_match(subject.split("."), export.split("."))


def _limit(v) -> int:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else -1


def _tighter(a: int, b: int) -> int:
    """The stricter of two limits where -1 means none."""
    if a < 0:
        return b
    return a if b < 0 else min(a, b)


def permissions_from_jwt(p: dict) -> Permissions | None:
    """nats-server's buildPermissionsFromJwt: only the parts that are set; None when nothing is."""
    perms = None
    pub, sub, resp = p.get("pub") or {}, p.get("sub") or {}, p.get("resp")
    if pub.get("allow") or pub.get("deny"):
        perms = Permissions(publish=SubjectPermission(pub.get("allow") or None, pub.get("deny") or None))
    if sub.get("allow") or sub.get("deny"):
        perms = perms or Permissions()
        perms.subscribe = SubjectPermission(sub.get("allow") or None, sub.get("deny") or None)
    if resp:
        perms = perms or Permissions()
        ttl_ns = resp.get("ttl") or 0
        perms.response = ResponsePermission(int(resp.get("max") or 0), ttl_ns / 1e9)
        perms.validated()
    return perms


def _src_allowed(src, host: str) -> bool:
    if not src:
        return True
    cidrs = src if isinstance(src, list) else str(src).split(",")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    for c in cidrs:
        try:
            if addr in ipaddress.ip_network(c.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def _times_allowed(times, location) -> tuple[bool, float | None]:
    """nats-server's validateTimes: inside one of the daily windows? and seconds until it closes."""
    if not times:
        return True, None
    tz = None
    if location:
        try:
            from zoneinfo import ZoneInfo
            tz = ZoneInfo(location)
        except Exception:
            return False, None
    now = _dt.datetime.now(tz) if tz else _dt.datetime.now().astimezone()
    best: float | None = None
    for window in times:
        try:
            start = _dt.datetime.strptime(window["start"], "%H:%M:%S").time()
            end = _dt.datetime.strptime(window["end"], "%H:%M:%S").time()
        except (KeyError, TypeError, ValueError):
            return False, None
        s = now.replace(hour=start.hour, minute=start.minute, second=start.second, microsecond=0)
        e = now.replace(hour=end.hour, minute=end.minute, second=end.second, microsecond=0)
        left = None
        if s < now < e:
            left = (e - now).total_seconds()
        elif s > e:
            if now < e:
                left = (e - now).total_seconds()
            elif s < now < e + _dt.timedelta(days=1):
                left = (e + _dt.timedelta(days=1) - now).total_seconds()
        if left is not None and (best is None or left > best):
            best = left
    return best is not None, best
