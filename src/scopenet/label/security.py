"""Passwords (bcrypt), random tokens, signed session cookies, anti-CSRF tokens and the log-in
throttle."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

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


@dataclass
class ThrottleRecord:
    """Failed log-ins of one key: how many, when the last was, and until when the key is locked
    (epoch seconds of the throttle's clock; 0: not locked)."""

    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class MemoryThrottleStore:
    """Throttle counters in a dictionary (at most ``max_keys``; least recently failed dropped first).

    For a throttle used on its own; the web app keeps its counters in the database
    (:class:`~scopenet.label.db.SqlThrottleStore`) so that they outlive a restart and are shared by
    the server's processes.
    """

    def __init__(self, max_keys: int = 10_000):
        if max_keys < 2:
            raise ValueError("max_keys must be at least 2")
        self.max_keys = int(max_keys)
        self._recs: OrderedDict[str, ThrottleRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> ThrottleRecord | None:
        with self._lock:
            rec = self._recs.get(key)
            return None if rec is None else ThrottleRecord(**vars(rec))

    def update(self, key: str, fn: Callable[[ThrottleRecord | None], ThrottleRecord | None]) -> None:
        """Replace the record of ``key`` by ``fn(record)`` atomically (None deletes it)."""
        with self._lock:
            new = fn(self._recs.get(key))
            if new is None:
                self._recs.pop(key, None)
                return
            self._recs[key] = new
            self._recs.move_to_end(key)
            while len(self._recs) > self.max_keys:
                self._recs.popitem(last=False)

    def prune(self, forgotten_before: float) -> None:
        """Drop records whose last failure and lock both ended before ``forgotten_before``."""
        with self._lock:
            for k in [k for k, r in self._recs.items() if max(r.last_failure, r.locked_until) < forgotten_before]:
                del self._recs[k]

    def __len__(self) -> int:
        return len(self._recs)


class LoginThrottle:
    """Refuse log-ins after repeated failures, per (account, client address) and per client address,
    with exponential back-off.

    Keys: ``"pair:<address> <account>"`` (one account tried from one address) and
    ``"addr:<address>"`` (every account tried from one address). The account alone is never a key,
    so that nobody can lock a user (an administrator, say) out from elsewhere by guessing wrong
    passwords for that account.

    A key holding ``limit`` failures is locked for ``window`` seconds; every further failure after
    a lock doubles the lock (up to ``max_lock``). Failures are remembered until ``window`` seconds
    after the last failure or the end of the last lock, whichever is later. While locked, even the
    right password is refused (and not checked, which also spares the bcrypt work). A successful
    log-in clears its (account, address) key, not the address's.

    Parameters
    ----------
    per_account : int
        Failures of one account from one address that lock that pair.
    per_address : int
        Failures from one address (any accounts) that lock the address.
    window : float
        Length of the first lock and how long failures are remembered, seconds (15 minutes).
    max_lock : float
        Longest lock, seconds (one day).
    max_keys : int
        Most keys of the default in-memory store.
    clock : callable
        Time in seconds (the wall clock: counters kept in a database outlive the process).
    store : optional
        Where the counters live: :class:`MemoryThrottleStore` (default) or
        :class:`~scopenet.label.db.SqlThrottleStore`.
    """

    def __init__(self, per_account: int = 5, per_address: int = 20, window: float = 900.0,
                 max_lock: float = 86_400.0, max_keys: int = 10_000, clock: Callable[[], float] = time.time,
                 store=None):
        if per_account < 1 or per_address < 1 or window <= 0 or max_keys < 2:
            raise ValueError("limits and max_keys must be positive and the window longer than 0 s")
        self.per_account, self.per_address, self.window = int(per_account), int(per_address), float(window)
        self.max_lock, self.max_keys, self.clock = max(float(max_lock), self.window), int(max_keys), clock
        self.has_own_store = store is not None
        self.store = store if store is not None else MemoryThrottleStore(max_keys)

    def with_store(self, store) -> "LoginThrottle":
        """The same policy keeping its counters in ``store``."""
        return LoginThrottle(self.per_account, self.per_address, self.window, self.max_lock, self.max_keys,
                             self.clock, store)

    @staticmethod
    def _keys(username: str, address: str | None) -> list[tuple[str, str]]:
        addr = address or "-"
        keys = [(f"pair:{addr} {(username or '').strip().lower()}"[:300], "account")]
        if address:
            keys.append(("addr:" + address[:200], "address"))
        return keys

    def _limit(self, kind: str) -> int:
        return self.per_account if kind == "account" else self.per_address

    def _live(self, rec: ThrottleRecord | None, now: float) -> ThrottleRecord | None:
        if rec is None or max(rec.last_failure, rec.locked_until) + self.window <= now:
            return None
        return rec

    def retry_after(self, username: str, address: str | None) -> float:
        """Seconds until a log-in of ``username`` from ``address`` may be tried again (0: not locked)."""
        now = self.clock()
        wait = 0.0
        for key, _kind in self._keys(username, address):
            rec = self._live(self.store.get(key), now)
            if rec is not None:
                wait = max(wait, rec.locked_until - now)
        return wait

    def failure(self, username: str, address: str | None) -> None:
        """Count one failed log-in."""
        now = self.clock()
        for key, kind in self._keys(username, address):
            limit = self._limit(kind)

            def bump(rec: ThrottleRecord | None, limit: int = limit) -> ThrottleRecord:
                rec = self._live(rec, now) or ThrottleRecord()
                rec = ThrottleRecord(rec.failures + 1, now, rec.locked_until)
                if rec.failures >= limit:
                    lock = min(self.max_lock, self.window * 2.0 ** min(rec.failures - limit, 40))
                    rec.locked_until = max(rec.locked_until, now + lock)
                return rec

            self.store.update(key, bump)
        self.store.prune(now - self.window)

    def success(self, username: str, address: str | None = None) -> None:
        """Forget the failures of this account from this address after a successful log-in."""
        self.store.update(self._keys(username, address)[0][0], lambda rec: None)

    def __len__(self) -> int:
        return len(self.store)
