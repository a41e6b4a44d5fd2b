"""NATS nkeys on the server side: checking public keys (`U...`, `A...`, `O...`) and ed25519 signatures.

Decoding is base32 with a prefix byte and a CRC16 (the nkeys format); the signature check uses PyNaCl, which
the optional `nkeys` package brings. Without it the server still runs; only nkey and JWT auth are refused.
"""
from __future__ import annotations

import base64
import binascii

PREFIX_OPERATOR = 14 << 3
PREFIX_ACCOUNT = 0
PREFIX_USER = 20 << 3
PREFIX_SERVER = 13 << 3
PREFIX_CLUSTER = 2 << 3
_PUBLIC_PREFIXES = {PREFIX_OPERATOR, PREFIX_ACCOUNT, PREFIX_USER, PREFIX_SERVER, PREFIX_CLUSTER}


class NkeysUnavailable(RuntimeError):
    def __init__(self) -> None:
        super().__init__("nkey and JWT authentication need PyNaCl: pip install nkeys")


def available() -> bool:
    try:
        import nacl.signing  # noqa: F401
    except ImportError:
        return False
    return True


def _crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)


def decode_public_key(key: str, prefix: int | None = None) -> bytes | None:
    """The 32 raw ed25519 bytes of a public nkey, or None if it is not one (of the given kind)."""
    if not isinstance(key, str) or len(key) != 56:
        return None
    try:
        raw = base64.b32decode(key)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 35:
        return None
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if _crc16(body) != crc:
        return None
    if body[0] not in _PUBLIC_PREFIXES or (prefix is not None and body[0] != prefix):
        return None
    return body[1:]


def is_valid_public_user_key(key: str) -> bool:
    return decode_public_key(key, PREFIX_USER) is not None


def is_valid_public_account_key(key: str) -> bool:
    return decode_public_key(key, PREFIX_ACCOUNT) is not None


def is_valid_public_operator_key(key: str) -> bool:
    return decode_public_key(key, PREFIX_OPERATOR) is not None


def decode_signature(sig: str) -> bytes | None:
    """CONNECT's `sig`: base64 URL without padding, or standard base64 (nats-server accepts both)."""
    padded = sig + "=" * (-len(sig) % 4)
    for altchars in (b"-_", b"+/"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """Is `signature` the ed25519 signature of `data` by the key `public_key`?"""
    try:
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey
    except ImportError:
        raise NkeysUnavailable() from None
    raw = decode_public_key(public_key)
    if raw is None:
        return False
    try:
        VerifyKey(raw).verify(data, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
