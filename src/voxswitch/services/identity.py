"""Identity: users, logins, token rotation, API keys and the first admin, shared by every surface.

A login creates an `AuthSession`. Access tokens (short-lived JWTs) name that session, refresh tokens
rotate inside it, and the PBX's cookie points at it; revoking the session ends all of them at once.
A refresh token is single-use: presenting one twice is treated as theft and revokes the session
(the OAuth 2.0 Security BCP's refresh-token rotation, RFC 9700 §4.14.2).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.credentials import (
    API_KEY_PREFIX,
    AccessTokens,
    Passwords,
    new_opaque_token,
    sha256_hex,
)
from voxswitch.store.database import Database
from voxswitch.store.models import (
    ApiKey,
    AuthSession,
    CallRecord,
    RefreshToken,
    SystemSetting,
    User,
    UTCDateTime,
    utcnow,
)

ROLES = ("admin", "user")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
SETUP_DONE_KEY = "setup.completed_at"
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user as loaded for this request, and how they proved it."""

    user: User
    session_id: str | None
    via: str  # "token", "cookie" or "api_key"

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


@dataclass(frozen=True)
class Login:
    user: User
    session_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    cookie: str | None = None


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once, never stored


def normalise_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError) as exc:
        raise VoxError.invalid(field, "must be a valid e-mail address", value) from exc


def check_password(value: str, field: str = "password") -> str:
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise VoxError.invalid(field, f"must be at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise VoxError.invalid(field, f"must be at most {MAX_PASSWORD} characters")
    return value


def check_role(value: str, field: str = "role") -> str:
    if value not in ROLES:
        raise VoxError.invalid(field, f"must be one of {', '.join(ROLES)}", value)
    return value


class IdentityService:
    """Use cases of identity. HTTP-free: every surface and the CLI call these."""

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        tokens: AccessTokens,
        *,
        refresh_ttl_seconds: int,
        default_can_call: bool,
        default_call_limit: int,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.tokens = tokens
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self.default_can_call = default_can_call
        self.default_call_limit = default_call_limit

    # --- users ---------------------------------------------------------------------------------

    async def create_user(
        self,
        email: str,
        password: str | None,
        *,
        role: str = "user",
        display_name: str = "",
        first_name: str = "",
        last_name: str = "",
        can_call: bool | None = None,
        call_limit_per_day: int | None = None,
        external_subject: str | None = None,
    ) -> User:
        email = normalise_email(email)
        check_role(role)
        password_hash = await self.passwords.hash(check_password(password)) if password is not None else None
        user = User(
            email=email,
            password_hash=password_hash,
            role=role,
            display_name=display_name or " ".join(p for p in (first_name, last_name) if p) or email.split("@")[0],
            first_name=first_name,
            last_name=last_name,
            can_call=(role == "admin" or self.default_can_call) if can_call is None else can_call,
            call_limit_per_day=self.default_call_limit if call_limit_per_day is None else call_limit_per_day,
            external_subject=external_subject,
        )
        async with self.db.session() as s:
            s.add(user)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise VoxError(
                    ErrorKind.CONFLICT,
                    "A user with this email already exists",
                    [FieldProblem("email", "already registered", email)],
                ) from exc
        return user

    async def get_user(self, user_id: str) -> User:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise VoxError.not_found("User")
        return user

    async def find_by_email(self, email: str) -> User | None:
        async with self.db.session() as s:
            return (await s.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()

    async def list_users(self, *, limit: int, offset: int, search: str | None = None) -> tuple[list[User], int]:
        query = select(User)
        if search:
            like = f"%{search.lower()}%"
            query = query.where(or_(func.lower(User.email).like(like), func.lower(User.display_name).like(like)))
        async with self.db.session() as s:
            total = (await s.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
            rows = (await s.execute(query.order_by(User.created_at, User.id).limit(limit).offset(offset))).scalars()
            return list(rows), int(total)

    async def call_totals(self, user_ids: list[str]) -> dict[str, tuple[int, datetime | None]]:
        """Per user: how many calls they placed and when the last one started."""
        if not user_ids:
            return {}
        async with self.db.session() as s:
            rows = await s.execute(
                select(CallRecord.user_id, func.count(), func.max(CallRecord.created_at))
                .where(CallRecord.user_id.in_(user_ids))
                .group_by(CallRecord.user_id)
            )
            return {uid: (int(n), UTCDateTime().process_result_value(last, None)) for uid, n, last in rows}

    async def count_users(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(User))).scalar_one())

    async def update_user(self, user_id: str, changes: dict[str, Any], *, actor: Principal | None = None) -> User:
        """Apply validated `changes`; refuses to leave the system without an active admin."""
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise VoxError.not_found("User")
            if "email" in changes:
                changes["email"] = normalise_email(changes["email"])
            if "role" in changes:
                check_role(changes["role"])
            if "password" in changes:
                user.password_hash = await self.passwords.hash(check_password(changes.pop("password")))
                await self._revoke_user_sessions(s, user.id, "password_reset")
            demoted = (changes.get("role", user.role) != "admin") or changes.get("is_active") is False
            if user.is_admin and demoted:
                await self._ensure_other_admin(s, user.id)
            for key, value in changes.items():
                setattr(user, key, value)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise VoxError(
                    ErrorKind.CONFLICT,
                    "A user with this email already exists",
                    [FieldProblem("email", "taken")],
                ) from exc
            return user

    async def delete_user(self, user_id: str) -> None:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise VoxError.not_found("User")
            if user.is_admin:
                await self._ensure_other_admin(s, user.id)
            await s.delete(user)
            await s.commit()

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change one's own password; every other session of the user ends."""
        check_password(new, "new_password")
        async with self.db.session() as s:
            user = await s.get(User, principal.user.id)
            if user is None or not await self.passwords.verify(user.password_hash, current):
                raise VoxError.invalid("current_password", "is incorrect")
            user.password_hash = await self.passwords.hash(new)
            await self._revoke_user_sessions(s, user.id, "password_changed", keep=principal.session_id)
            await s.commit()

    async def _ensure_other_admin(self, s: Any, user_id: str) -> None:
        others = await s.execute(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.is_active.is_(True), User.id != user_id)
        )
        if others.scalar_one() == 0:
            raise VoxError(ErrorKind.CONFLICT, "The last active admin cannot be removed or demoted")

    async def _revoke_user_sessions(self, s: Any, user_id: str, reason: str, keep: str | None = None) -> None:
        query = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        if keep:
            query = query.where(AuthSession.id != keep)
        await s.execute(query.values(revoked_at=utcnow(), revoked_reason=reason))

    # --- logins --------------------------------------------------------------------------------

    async def login(self, email: str, password: str, *, method: str = "password", cookie: bool = False) -> Login:
        """Password login. Unknown e-mail and wrong password give the same answer in the same time."""
        user = await self.find_by_email(email) if isinstance(email, str) else None
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            raise VoxError(ErrorKind.AUTHENTICATION, "Invalid credentials", details="Email or password incorrect")
        return await self.start_session(user, method=method, cookie=cookie)

    async def start_session(self, user: User, *, method: str, cookie: bool = False) -> Login:
        now = utcnow()
        refresh = new_opaque_token("rt_")
        cookie_value = new_opaque_token("cs_") if cookie else None
        session = AuthSession(
            user_id=user.id,
            method=method,
            cookie_hash=sha256_hex(cookie_value) if cookie_value else None,
            created_at=now,
            expires_at=now + self.refresh_ttl,
        )
        async with self.db.session() as s:
            s.add(session)
            await s.flush()
            s.add(
                RefreshToken(token_hash=sha256_hex(refresh), session_id=session.id, expires_at=now + self.refresh_ttl)
            )
            await s.commit()
        return Login(
            user=user,
            session_id=session.id,
            access_token=self.tokens.issue(user.id, session.id, user.role),
            refresh_token=refresh,
            expires_in=self.tokens.ttl_seconds,
            cookie=cookie_value,
        )

    async def refresh(self, refresh_token: str) -> Login:
        """Rotate: the presented token is spent and a new pair is issued in the same session."""
        if not isinstance(refresh_token, str) or not refresh_token.startswith("rt_"):
            raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token invalid")
        now = utcnow()
        async with self.db.session() as s:
            row = await s.get(RefreshToken, sha256_hex(refresh_token))
            if row is None:
                raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token invalid")
            session = await s.get(AuthSession, row.session_id)
            if session is None or session.revoked_at is not None:
                raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token revoked")
            if row.used_at is not None:
                session.revoked_at, session.revoked_reason = now, "refresh_token_reuse"
                await s.commit()
                raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token already used; session revoked")
            if row.expires_at <= now or session.expires_at <= now:
                raise VoxError(ErrorKind.TOKEN_EXPIRED, "Refresh token expired")
            user = await s.get(User, session.user_id)
            if user is None or not user.is_active:
                raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token invalid")
            # Spend it with a guarded UPDATE so two concurrent refreshes cannot both succeed.
            spent = await s.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise VoxError(ErrorKind.TOKEN_INVALID, "Refresh token already used")
            new_refresh = new_opaque_token("rt_")
            s.add(
                RefreshToken(token_hash=sha256_hex(new_refresh), session_id=session.id, expires_at=session.expires_at)
            )
            await s.commit()
        return Login(
            user=user,
            session_id=session.id,
            access_token=self.tokens.issue(user.id, session.id, user.role),
            refresh_token=new_refresh,
            expires_in=self.tokens.ttl_seconds,
        )

    async def logout(self, session_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason="logout")
            )
            await s.commit()

    # --- authenticating a request --------------------------------------------------------------

    async def authenticate_token(self, token: str) -> Principal:
        """A Bearer credential: an API key (`vxk_...`) or an access token of a live session."""
        if token.startswith(API_KEY_PREFIX):
            return await self._authenticate_api_key(token)
        claims = self.tokens.decode(token)
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(User, AuthSession.revoked_at)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(AuthSession.id == claims.session_id, User.id == claims.user_id)
                )
            ).one_or_none()
        if row is None or row[1] is not None:
            raise VoxError(ErrorKind.TOKEN_INVALID, "Token revoked")
        user: User = row[0]
        if not user.is_active:
            raise VoxError(ErrorKind.TOKEN_INVALID, "Account disabled")
        return Principal(user=user, session_id=claims.session_id, via="token")

    async def authenticate_cookie(self, cookie: str) -> Principal:
        now = utcnow()
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(User, AuthSession)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(AuthSession.cookie_hash == sha256_hex(cookie))
                )
            ).one_or_none()
        if row is None or row[1].revoked_at is not None or row[1].expires_at <= now or not row[0].is_active:
            raise VoxError(ErrorKind.AUTHENTICATION, "Session expired or invalid")
        return Principal(user=row[0], session_id=row[1].id, via="cookie")

    async def _authenticate_api_key(self, token: str) -> Principal:
        prefix = token[len(API_KEY_PREFIX) : len(API_KEY_PREFIX) + 12]
        now = utcnow()
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
                )
            ).one_or_none()
            if (
                row is None
                or not hmac.compare_digest(row[0].key_hash, sha256_hex(token))
                or row[0].revoked_at is not None
                or not row[1].is_active
            ):
                raise VoxError(ErrorKind.TOKEN_INVALID, "API key invalid")
            key, user = row
            if key.last_used_at is None or now - key.last_used_at > API_KEY_TOUCH_INTERVAL:
                key.last_used_at = now
                await s.commit()
        return Principal(user=user, session_id=None, via="api_key")

    # --- API keys ------------------------------------------------------------------------------

    async def create_api_key(self, user_id: str, name: str) -> NewApiKey:
        if not name or len(name) > 100:
            raise VoxError.invalid("name", "must be 1 to 100 characters")
        await self.get_user(user_id)
        body = new_opaque_token()
        prefix = body[:12]
        secret = f"{API_KEY_PREFIX}{body}"
        key = ApiKey(user_id=user_id, name=name, prefix=prefix, key_hash=sha256_hex(secret))
        async with self.db.session() as s:
            s.add(key)
            await s.commit()
        return NewApiKey(key=key, secret=secret)

    async def revoke_api_key(self, key_id: str) -> None:
        async with self.db.session() as s:
            key = await s.get(ApiKey, key_id)
            if key is None:
                raise VoxError.not_found("API key")
            key.revoked_at = utcnow()
            await s.commit()

    # --- first admin ---------------------------------------------------------------------------

    async def setup_completed(self) -> bool:
        async with self.db.session() as s:
            done = await s.get(SystemSetting, SETUP_DONE_KEY)
            if done is not None:
                return True
            admins = await s.execute(select(func.count()).select_from(User).where(User.role == "admin"))
            return admins.scalar_one() > 0

    async def bootstrap_admin(self, email: str | None, password: str | None) -> User | None:
        """Create the first admin from the environment when the store has no user at all."""
        if not email or not password or await self.count_users() > 0:
            return None
        try:
            user = await self.create_user(email, password, role="admin", can_call=True)
        except VoxError as exc:
            if exc.kind is ErrorKind.CONFLICT:  # another process won the race
                return None
            raise
        await self.mark_setup_done()
        return user

    async def complete_setup(self, email: str, password: str, settings: dict[str, tuple[str, bool]]) -> User:
        """`/api/setup/complete`: once only, creates the admin and stores the given settings."""
        if await self.setup_completed():
            raise VoxError(ErrorKind.AUTHORIZATION, "Setup has already been completed")
        user = await self.create_user(email, password, role="admin", can_call=True)
        async with self.db.session() as s:
            for key, (value, secret) in settings.items():
                await s.merge(SystemSetting(key=key, value=value, secret=secret))
            await s.commit()
        await self.mark_setup_done()
        return user

    async def mark_setup_done(self) -> None:
        async with self.db.session() as s:
            await s.merge(SystemSetting(key=SETUP_DONE_KEY, value=utcnow().isoformat(), secret=False))
            await s.commit()

    # --- external identities (OAuth2 / OIDC) ---------------------------------------------------

    async def user_for_external(self, subject: str, email: str, display_name: str) -> User:
        """The local user of an external identity: found by subject, else linked by e-mail, else new."""
        async with self.db.session() as s:
            user = (await s.execute(select(User).where(User.external_subject == subject))).scalar_one_or_none()
            if user is None:
                user = (await s.execute(select(User).where(User.email == email.lower()))).scalar_one_or_none()
                if user is not None and user.external_subject is None:
                    user.external_subject = subject
                    await s.commit()
        if user is not None:
            if not user.is_active:
                raise VoxError(ErrorKind.AUTHENTICATION, "Account disabled")
            return user
        return await self.create_user(email, None, display_name=display_name or subject, external_subject=subject)
