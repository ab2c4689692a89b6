"""Passwords (bcrypt), random tokens, signed session cookies, anti-CSRF tokens and the log-in
throttle."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque

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


# ------------------------------------------------------------------------------------------ CSRF


class CsrfTokens:
    """Per-session anti-CSRF tokens: ``HMAC-SHA256(secret, binding)``, where the binding is the
    random session token of a logged-in user, or the random value of a pre-session cookie before
    log-in. A cross-site page can neither read the cookie nor the page, so it cannot forge the token;
    nothing is stored server-side and a token dies with its session.
    """

    def __init__(self, secret_key: str):
        self._key = hashlib.sha256(("scopenet-label-csrf:" + secret_key).encode("utf-8")).digest()

    def token(self, binding: str) -> str:
        mac = hmac.new(self._key, binding.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def check(self, binding: str | None, token: str | None) -> bool:
        """True when ``token`` is the token of ``binding`` (constant-time comparison)."""
        if not binding or not token:
            return False
        return hmac.compare_digest(self.token(binding), token)


# ------------------------------------------------------------------------------- login throttle


class LoginThrottle:
    """Refuse log-ins after repeated failures, per account and per client address.

    A key (``"user:<name>"`` or ``"addr:<host>"``) is locked while it holds ``limit`` failures
    younger than ``window`` seconds: a sliding window, so the lock lifts ``window`` seconds after
    the oldest of those failures. While locked, even the right password is refused (and not
    checked, which also spares the bcrypt work). A successful log-in clears the account's
    failures (not the address's).

    Memory is bounded: each key keeps at most ``limit`` time stamps and at most ``max_keys`` keys
    are kept (least recently failed dropped first). Thread-safe.

    Parameters
    ----------
    per_account, per_address : int
        Failures within ``window`` that lock an account / a client address.
    window : float
        Length of the window in seconds (default 15 minutes).
    max_keys : int
        Most keys remembered.
    clock : callable
        Monotonic time in seconds (tests pass a fake one).
    """

    def __init__(self, per_account: int = 5, per_address: int = 20, window: float = 900.0,
                 max_keys: int = 10_000, clock=time.monotonic):
        if per_account < 1 or per_address < 1 or window <= 0 or max_keys < 2:
            raise ValueError("limits and max_keys must be positive and the window longer than 0 s")
        self.per_account, self.per_address, self.window = int(per_account), int(per_address), float(window)
        self.max_keys, self.clock = int(max_keys), clock
        self._fails: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user:" + (username or "").strip().lower(), "account")]
        if address:
            keys.append(("addr:" + address, "address"))
        return keys

    def _limit(self, kind: str) -> int:
        return self.per_account if kind == "account" else self.per_address

    def _recent(self, key: str, now: float) -> deque | None:
        q = self._fails.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[key]
            return None
        return q

    def retry_after(self, username: str, address: str | None) -> float:
        """Seconds until a log-in may be tried again (0: not locked)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, kind in self._keys(username, address):
                q = self._recent(key, now)
                if q is not None and len(q) >= self._limit(kind):
                    wait = max(wait, q[-self._limit(kind)] + self.window - now)
        return wait

    def failure(self, username: str, address: str | None) -> None:
        """Count one failed log-in."""
        now = self.clock()
        with self._lock:
            for key, kind in self._keys(username, address):
                q = self._recent(key, now)
                if q is None:
                    q = self._fails[key] = deque(maxlen=self._limit(kind))
                q.append(now)
                self._fails.move_to_end(key)
            while len(self._fails) > self.max_keys:
                self._fails.popitem(last=False)

    def success(self, username: str) -> None:
        """Forget the account's failures after a successful log-in."""
        with self._lock:
            self._fails.pop(self._keys(username, None)[0][0], None)

    def __len__(self) -> int:
        return len(self._fails)
