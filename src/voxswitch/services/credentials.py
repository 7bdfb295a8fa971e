"""Primitives for secrets: argon2id password hashes, signed access tokens, opaque random tokens.

Passwords are hashed with argon2id off the event loop (a hash costs tens of milliseconds by design).
Opaque tokens (refresh tokens, cookies, API keys) carry 256 random bits, so a plain SHA-256 is the
right way to store them: nothing to brute-force, and a lookup stays one indexed query.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from voxswitch.errors import ErrorKind, VoxError

ACCESS_TOKEN_TYPE = "access"
ISSUER = "voxswitch"
API_KEY_PREFIX = "vxk_"


class Passwords:
    """argon2id hashing with a decoy so unknown users cost the same time as wrong passwords."""

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if `password` matches; with no stored hash, burns the same time and says False."""
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(stored_hash or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_opaque_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    expires_at: int


class AccessTokens:
    """Short-lived HS256 JWTs naming the user and the login session they came from."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, session_id: str, role: str, now: float | None = None) -> str:
        iat = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user_id,
            "sid": session_id,
            "role": role,
            "typ": ACCESS_TOKEN_TYPE,
            "iat": iat,
            "exp": iat + self.ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def decode(self, token: str) -> AccessClaims:
        """The token's claims; `VoxError` (token_expired or token_invalid) when it cannot be used."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise VoxError(ErrorKind.TOKEN_EXPIRED, "Token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise VoxError(ErrorKind.TOKEN_INVALID, "Token invalid") from exc
        if claims.get("typ") != ACCESS_TOKEN_TYPE:
            raise VoxError(ErrorKind.TOKEN_INVALID, "Token invalid")
        return AccessClaims(claims["sub"], claims["sid"], str(claims.get("role", "user")), int(claims["exp"]))

    def subject_of(self, token: str) -> str | None:
        """The user id of a *validly signed* token, without touching the store (for rate-limit keys)."""
        try:
            return str(jwt.decode(token, self._secret, algorithms=["HS256"], issuer=ISSUER)["sub"])
        except jwt.InvalidTokenError:
            return None


def load_or_create_secret(configured: str | None, data_dir: Path, name: str = "secret.key") -> bytes:
    """A secret: configured, or generated once and kept (mode 0600) in the data directory as `name`."""
    if configured:
        return configured.encode()
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        # Another process may be writing it this instant: wait for its content.
        for _ in range(50):
            value = path.read_bytes().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} exists but is empty") from None
    value = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    return value
