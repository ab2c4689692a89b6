"""Passwords (bcrypt), random tokens and signed session cookies."""
from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt
from itsdangerous import BadSignature, URLSafeSerializer

#: bcrypt work factor for new passwords (tests may lower it to keep fast)
DEFAULT_ROUNDS = 12
MIN_PASSWORD_LENGTH = 8


def _prehash(password: str) -> bytes:
    # bcrypt only looks at 72 bytes; a sha256 digest first keeps long passphrases whole.
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """bcrypt hash (``$2b$...``) of ``password``; the salt is random and stored in the hash."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, hashed: str | None) -> bool:
    """True when ``password`` matches the bcrypt hash (False for accounts without a password)."""
    if not hashed:
        return False
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))
    except ValueError:
        return False


def new_token() -> str:
    """A random URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """sha256 hex of a token: what the database stores instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class CookieSigner:
    """Signs session tokens for the cookie so that a forged cookie is rejected before any lookup."""

    def __init__(self, secret_key: str):
        self._s = URLSafeSerializer(secret_key, salt="scopenet-label-session")

    def dumps(self, token: str) -> str:
        return self._s.dumps(token)

    def loads(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            out = self._s.loads(value)
        except BadSignature:
            return None
        return out if isinstance(out, str) else None
