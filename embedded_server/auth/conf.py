"""From the parsed configuration to auth settings: the `authorization` block and `no_auth_user`.

Field names, aliases and error texts are nats-server's (opts.go: parseAuthorization, parseUsers,
parseUserPermissions, parseAllowResponses, parseSubjectPermission, validateNoAuthUser).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from embedded_server.auth import nkey as _nkey
from embedded_server.auth.permissions import (
    Permissions, ResponsePermission, SubjectPermission, check_subjects,
)
from embedded_server.auth.users import CONNECTION_TYPES, NkeyUser, User
from embedded_server.config import ConfigError, ConfList, ConfMap, Pos, parse_duration


@dataclass
class AuthConfig:
    """What authentication the server asks of clients. Users None means "no users block"."""
    username: str = ""
    password: str = ""
    token: str = ""
    timeout: float | None = None  # seconds; None: the server's default
    users: list[User] | None = None
    nkeys: list[NkeyUser] | None = None
    no_auth_user: str = ""
    default_permissions: Permissions | None = None

    @property
    def auth_required(self) -> bool:
        return bool(self.users is not None or self.nkeys is not None or self.username or self.token)


def _go_type(v: Any) -> str:
    return {bool: "bool", int: "int64", float: "float64", str: "string", ConfMap: "map[string]interface {}",
            ConfList: "[]interface {}", _dt.datetime: "time.Time"}.get(type(v), type(v).__name__)


class _Block:
    """Typed access to one map of the config, recording errors with positions as nats-server does."""

    def __init__(self, m: ConfMap, errors: list[ConfigError], where: Pos | None):
        self.m, self.errors, self.where = m, errors, where

    def items(self):
        for k, v in self.m.items():
            yield k, k.lower(), v, self.m.pos(k) or self.where

    def typed(self, key: str, value: Any, pos: Pos | None, want: type) -> Any:
        if want is int and isinstance(value, bool) or not isinstance(value, want):
            names = {str: "string", bool: "bool", int: "int64"}
            self.errors.append(ConfigError(
                f"interface conversion: interface {{}} is {_go_type(value)}, not {names[want]}", pos))
            return None
        return value

    def unknown(self, key: str, pos: Pos | None, reason: str | None = None) -> None:
        if key in self.m.used:
            return
        self.errors.append(ConfigError(reason or f'unknown field "{key}"', pos))


def parse_authorization(value: Any, pos: Pos | None, errors: list[ConfigError],
                        warnings: list[ConfigError]) -> AuthConfig:
    auth = AuthConfig()
    if not isinstance(value, ConfMap):
        errors.append(ConfigError(f"interface conversion: interface {{}} is {_go_type(value)}, "
                                  "not map[string]interface {}", pos))
        return auth
    block = _Block(value, errors, pos)
    for key, lk, v, kpos in block.items():
        if lk in ("user", "username"):
            auth.username = block.typed(key, v, kpos, str) or ""
        elif lk in ("pass", "password"):
            auth.password = block.typed(key, v, kpos, str) or ""
        elif lk == "token":
            auth.token = block.typed(key, v, kpos, str) or ""
        elif lk == "timeout":
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                errors.append(ConfigError("error parsing authorization config, 'timeout' wrong type", kpos))
                continue
            if isinstance(v, str):
                try:
                    seconds = parse_duration(v)
                except ValueError as e:
                    errors.append(ConfigError(f"error parsing authorization config, 'timeout' {e}", kpos))
                    continue
            else:
                seconds = float(v)
            if seconds > 60:
                warnings.append(ConfigError(
                    f"timeout of {v} ({seconds:f} seconds) is high, consider keeping it under 60 seconds. "
                    "possibly caused by unquoted duration; use '1m' instead of 1m, for example", kpos))
            auth.timeout = seconds
        elif lk == "users":
            parsed = parse_users(v, kpos, errors)
            if parsed is not None:
                auth.nkeys, auth.users = parsed
        elif lk in ("default_permission", "default_permissions", "permissions"):
            auth.default_permissions = parse_permissions(v, kpos, errors)
        else:
            block.unknown(key, kpos)
    if auth.default_permissions is not None:
        for u in (auth.users or []) + (auth.nkeys or []):
            if u.permissions is None:
                u.permissions = auth.default_permissions
                u.default_permissions = True
    if (auth.username or auth.password) and auth.token:
        errors.append(ConfigError("Cannot have a user/pass and token", pos))
    if auth.users is not None or auth.nkeys:
        if auth.username:
            errors.append(ConfigError("Can not have a single user/pass and a users array", pos))
        elif auth.token:
            errors.append(ConfigError("Can not have a token and a users array", pos))
        seen: set[str] = set()
        for u in auth.users or []:
            if u.username in seen:
                errors.append(ConfigError(f'Duplicate user "{u.username}" detected', pos))
            seen.add(u.username)
        for n in auth.nkeys or []:
            if n.nkey in seen:
                errors.append(ConfigError(f'Duplicate nkey "{n.nkey}" detected', pos))
            seen.add(n.nkey)
    return auth


def parse_users(value: Any, pos: Pos | None, errors: list[ConfigError]
                ) -> tuple[list[NkeyUser], list[User]] | None:
    if not isinstance(value, ConfList):
        errors.append(ConfigError(f"Expected users field to be an array, got {value}", pos))
        return None
    nkey_users: list[NkeyUser] = []
    users: list[User] = []
    for i, entry in enumerate(value):
        epos = value.positions[i] if i < len(value.positions) else pos
        if not isinstance(entry, ConfMap):
            errors.append(ConfigError(f"Expected user entry to be a map/struct, got {entry}", epos))
            continue
        block = _Block(entry, errors, epos)
        username = password = nk = ""
        perms: Permissions | None = None
        conn_types: set[str] | None = None
        for key, lk, v, kpos in block.items():
            if lk == "nkey":
                nk = block.typed(key, v, kpos, str) or ""
            elif lk in ("user", "username"):
                username = block.typed(key, v, kpos, str) or ""
            elif lk in ("pass", "password"):
                password = block.typed(key, v, kpos, str) or ""
            elif lk in ("permission", "permissions", "authorization"):
                perms = parse_permissions(v, kpos, errors)
            elif lk in ("allowed_connection_types", "connection_types", "clients"):
                conn_types = _connection_types(v, kpos, errors)
            else:
                block.unknown(key, kpos)
        if not nk and not username:
            errors.append(ConfigError("User entry requires a user", epos))
            return None
        if nk:
            if not _nkey.is_valid_public_user_key(nk):
                errors.append(ConfigError("Not a valid public nkey for a user", epos))
                return None
            if username or password:
                errors.append(ConfigError("Nkey users do not take usernames or passwords", epos))
                return None
            nkey_users.append(NkeyUser(nk, perms, allowed_connection_types=conn_types))
        else:
            users.append(User(username, password, perms, allowed_connection_types=conn_types))
    return nkey_users, users


def _connection_types(value: Any, pos: Pos | None, errors: list[ConfigError]) -> set[str] | None:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, ConfList) else None
    if names is None or not all(isinstance(n, str) for n in names):
        errors.append(ConfigError(f"error parsing allowed connection types: unsupported type {_go_type(value)}", pos))
        return None
    out = set()
    for n in names:
        if n.upper() not in CONNECTION_TYPES:
            errors.append(ConfigError(f'unknown connection type "{n}"', pos))
            continue
        out.add(n.upper())
    return out


def parse_permissions(value: Any, pos: Pos | None, errors: list[ConfigError]) -> Permissions | None:
    if not isinstance(value, ConfMap):
        errors.append(ConfigError(f"Expected permissions to be a map/struct, got {value}", pos))
        return None
    p = Permissions()
    block = _Block(value, errors, pos)
    for key, lk, v, kpos in block.items():
        if lk in ("pub", "publish", "import"):
            p.publish = _subject_permission(v, kpos, errors, allow_queue=False)
        elif lk in ("sub", "subscribe", "export"):
            p.subscribe = _subject_permission(v, kpos, errors, allow_queue=True)
        elif lk in ("publish_allow_responses", "allow_responses"):
            if isinstance(v, bool):
                p.response = ResponsePermission() if v else None
            else:
                p.response = _allow_responses(v, kpos, errors)
            if p.response is not None:
                if p.publish is None:
                    p.publish = SubjectPermission()
                if p.publish.allow is None:
                    p.publish.allow = []
        else:
            block.unknown(key, kpos, f'Unknown field "{key}" parsing permissions')
    return p


def _allow_responses(value: Any, pos: Pos | None, errors: list[ConfigError]) -> ResponsePermission | None:
    if not isinstance(value, ConfMap):
        errors.append(ConfigError("error parsing response permissions, expected a boolean or a map", pos))
        return None
    rp = ResponsePermission()
    block = _Block(value, errors, pos)
    for key, lk, v, kpos in block.items():
        if lk in ("max", "max_msgs", "max_messages", "max_responses"):
            n = block.typed(key, v, kpos, int)
            if n:
                rp.max_msgs = n
        elif lk in ("expires", "expiration", "ttl"):
            if not isinstance(v, str):
                errors.append(ConfigError("error parsing expires, not a duration string", kpos))
                return None
            try:
                ttl = parse_duration(v)
            except ValueError as e:
                errors.append(ConfigError(f"error parsing expires: {e}", kpos))
                return None
            if ttl:
                rp.expires = ttl
        else:
            block.unknown(key, kpos, f'Unknown field "{key}" parsing permissions')
    return rp


def _subject_permission(value: Any, pos: Pos | None, errors: list[ConfigError],
                        allow_queue: bool) -> SubjectPermission | None:
    if isinstance(value, ConfMap):
        if not value:
            return None
        sp = SubjectPermission()
        block = _Block(value, errors, pos)
        for key, lk, v, kpos in block.items():
            if lk == "allow":
                sp.allow = _subjects(v, kpos, errors, allow_queue)
            elif lk == "deny":
                sp.deny = _subjects(v, kpos, errors, allow_queue)
            else:
                block.unknown(key, kpos, f'Unknown field name "{key}" parsing subject permissions, '
                                         "only 'allow' or 'deny' are permitted")
        return sp
    subjects = _subjects(value, pos, errors, allow_queue)
    return SubjectPermission(allow=subjects) if subjects is not None else None


def _subjects(value: Any, pos: Pos | None, errors: list[ConfigError], allow_queue: bool) -> list[str] | None:
    if isinstance(value, str):
        subjects = [value]
    elif isinstance(value, ConfList):
        subjects = []
        for i, s in enumerate(value):
            if not isinstance(s, str):
                errors.append(ConfigError("Subject in permissions array cannot be cast to string",
                                          value.positions[i] if i < len(value.positions) else pos))
                return None
            subjects.append(s)
    else:
        errors.append(ConfigError("Expected subject permissions to be a subject, or array of subjects, "
                                  f"got {_go_type(value)}", pos))
        return None
    try:
        check_subjects(subjects, allow_queue)
    except ValueError as e:
        errors.append(ConfigError(str(e), pos))
        return None
    return subjects


def validate_no_auth_user(auth: AuthConfig, pos: Pos | None = None) -> ConfigError | None:
    """nats-server's validateNoAuthUser."""
    name = auth.no_auth_user
    if not name:
        return None
    if auth.users is None and auth.nkeys is None:
        return ConfigError(f'no_auth_user: "{name}" present, but users/nkeys are not defined', pos)
    if any(u.username == name for u in auth.users or []) or any(n.nkey == name for n in auth.nkeys or []):
        return None
    return ConfigError(f'no_auth_user: "{name}" not present as user or nkey in authorization block or account '
                       "configuration", pos)
