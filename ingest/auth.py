"""API keys: ``<kind prefix>_<key_id>_<secret>``; only a keyed hash of the secret is stored.

Suppliers hold ``emp_`` keys, storefronts ``sfk_`` keys: the prefix tells the kinds apart before any
lookup. The public ``key_id`` finds the key's owner with one indexed lookup, which is what tells a wrong
key (401) from a valid key used on another owner's route (403).

The secret is 256 random bits, so nothing needs stretching: the stored hash is HMAC-SHA256 keyed with a
server secret (``EMPORIUM_KEY_SECRET``), which makes a wrong key cost microseconds while a stolen table
still reveals no usable key (nor lets one be tested without the server secret). Keys issued before this
scheme carry a salted scrypt hash; they keep working: the first time one is used it is checked with scrypt,
and its HMAC hash is stored in place of the scrypt one (``ingest.identities``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import msgspec

SUPPLIER_KEY_PREFIX = "emp"
STOREFRONT_KEY_PREFIX = "sfk"
KEY_ID_LENGTH = 12
HMAC_SCHEME = "hmac-sha256"
SCRYPT_SCHEME = "scrypt"
KEY_SECRET_FILE = "key-secret"
_N, _R, _P = 2**14, 8, 1


class ApiKey(msgspec.Struct, frozen=True):
    key_id: str
    secret: str
    prefix: str = SUPPLIER_KEY_PREFIX

    @property
    def token(self) -> str:
        return f"{self.prefix}_{self.key_id}_{self.secret}"


def new_api_key(prefix: str = SUPPLIER_KEY_PREFIX) -> ApiKey:
    return ApiKey(
        key_id=secrets.token_hex(KEY_ID_LENGTH // 2), secret=secrets.token_urlsafe(32), prefix=prefix
    )


def parse_api_key(token: str, prefix: str = SUPPLIER_KEY_PREFIX) -> ApiKey | None:
    """None for anything that is not shaped like one of our keys with that prefix."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != KEY_ID_LENGTH or not parts[2]:
        return None
    return ApiKey(key_id=parts[1], secret=parts[2], prefix=prefix)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """The legacy scrypt hash (keys issued before HMAC); new keys use ``KeyHasher.hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"{SCRYPT_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Check ``secret`` against a legacy scrypt hash (slow on purpose: run it off the event loop)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCRYPT_SCHEME:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def is_legacy_hash(stored: str) -> bool:
    return stored.startswith(SCRYPT_SCHEME + "$")


class KeyHasher:
    """HMAC-SHA256 of key secrets under the server secret."""

    def __init__(self, server_secret: bytes) -> None:
        if len(server_secret) < 16:
            raise ValueError("the key secret must be at least 16 bytes")
        self._server_secret = server_secret

    def _digest(self, secret: str) -> bytes:
        return hmac.new(self._server_secret, secret.encode(), hashlib.sha256).digest()

    def hash(self, secret: str) -> str:
        return f"{HMAC_SCHEME}${_b64(self._digest(secret))}"

    def matches(self, secret: str, stored: str) -> bool:
        """Microseconds; False for anything but an HMAC hash of ``secret`` (a legacy hash included)."""
        scheme, _, digest = stored.partition("$")
        if scheme != HMAC_SCHEME:
            return False
        try:
            expected = _unb64(digest)
        except ValueError:
            return False
        return hmac.compare_digest(self._digest(secret), expected)


def load_key_secret(configured: str | None, data_dir: Path) -> bytes:
    """The server secret: ``EMPORIUM_KEY_SECRET`` when set, else one generated once and kept in the data
    dir (mode 0600). Every server of a cluster must share it: set it there."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="utf-8").strip().encode()
