"""Supplier API keys: ``emp_<key_id>_<secret>``; only a salted scrypt hash of the secret is stored.

The public ``key_id`` lets us find the key's owner with one indexed lookup, which is what tells a
wrong key (401) from a valid key used on another supplier's path (403). The secret is 256 random
bits, so the scrypt cost is for defence in depth (a stolen table reveals no usable key), not for
stretching a weak password; it stays small enough (~tens of ms) for a per-feed check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import msgspec

KEY_PREFIX = "emp"
_N, _R, _P = 2**14, 8, 1


class ApiKey(msgspec.Struct, frozen=True):
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


def new_api_key() -> ApiKey:
    return ApiKey(key_id=secrets.token_hex(6), secret=secrets.token_urlsafe(32))


def parse_api_key(token: str) -> ApiKey | None:
    """None for anything that is not shaped like one of our keys."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return ApiKey(key_id=parts[1], secret=parts[2])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
