"""Devices: SIP accounts on our registrar. Passwords become digest HA1s and are never stored or shown.

Every change is mirrored into the engine's `AccountDirectory` (the digest check reads only that), and
a change of credentials or a deletion drops the device's registrar bindings: from then on only a
REGISTER signed with the new credentials gets the device's calls.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from voxswitch.engine.accounts import AccountDirectory, SipAccount
from voxswitch.engine.registrar import BindingBook
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.services.validation import Problems, plain_text
from voxswitch.sip.digest import Algorithm, compute_ha1
from voxswitch.store.database import Database
from voxswitch.store.models import CallRoute, Device, SipEvent, User

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
MIN_SIP_PASSWORD = 8
MAX_SIP_PASSWORD = 128
EDITABLE = frozenset({"name", "username", "password", "type", "user_id", "enabled"})


@dataclass(frozen=True)
class LiveRegistration:
    """One live registrar binding, as `/api/devices/registrations` shows it."""

    device_id: int | None
    username: str
    contact: str
    source_host: str
    source_port: int
    transport: str
    user_agent: str
    expires_at: datetime
    expires_in: int
    q: float | None
    instance_id: str | None


def device_route_refs(route: CallRoute) -> list[int]:
    """The device ids a route's action names (forward, ring_group, voicemail)."""
    data = route.action_data or {}
    if route.action == "ring_group":
        ids = data.get("device_ids") or []
        return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []
    ref = data.get("device_id")
    return [ref] if isinstance(ref, int) and route.action in ("forward", "voicemail") else []


class DeviceService:
    def __init__(
        self, db: Database, directory: AccountDirectory, realm: str, bindings: BindingBook | None = None
    ) -> None:
        self.db = db
        self.directory = directory
        self.realm = realm
        self.bindings = bindings

    def _ha1s(self, username: str, password: str) -> tuple[str, str]:
        return (
            compute_ha1(username, self.realm, password, Algorithm.MD5),
            compute_ha1(username, self.realm, password, Algorithm.SHA256),
        )

    # --- checks ----------------------------------------------------------------------------------

    @staticmethod
    def _check_username(problems: Problems, username: object) -> str | None:
        if not isinstance(username, str) or not _USERNAME.match(username):
            problems.add("username", "must be 1-64 letters, digits, '.', '_' or '-'", username)
            return None
        return username

    @staticmethod
    def _check_password(problems: Problems, password: object) -> str | None:
        if not isinstance(password, str) or not MIN_SIP_PASSWORD <= len(password) <= MAX_SIP_PASSWORD:
            problems.add("password", f"must be {MIN_SIP_PASSWORD}-{MAX_SIP_PASSWORD} characters")
            return None
        if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in password):
            problems.add("password", "must not contain control characters")
            return None
        return password

    @staticmethod
    def _check_type(problems: Problems, value: object) -> str | None:
        if not isinstance(value, str) or not _TYPE.match(value):
            problems.add("type", "must be 1-50 letters, digits, '.', '_' or '-' (e.g. grandstream)", value)
            return None
        return value.lower()

    async def _check_user(self, problems: Problems, user_id: object) -> None:
        if user_id is None:
            return
        if not isinstance(user_id, str) or len(user_id) > 36:
            problems.add("user_id", "must be a user id", user_id)
            return
        async with self.db.session() as s:
            if await s.get(User, user_id) is None:
                problems.add("user_id", "no such user", user_id)

    @staticmethod
    def _conflict(username: str) -> VoxError:
        return VoxError(
            ErrorKind.CONFLICT,
            "A device with this username already exists",
            [FieldProblem("username", "already in use", username)],
        )

    # --- CRUD ------------------------------------------------------------------------------------

    async def create(
        self,
        *,
        name: str,
        username: str,
        password: str,
        type: str = "generic",
        user_id: str | None = None,
        enabled: bool = True,
    ) -> Device:
        problems = Problems()
        checked_name = plain_text(problems, "name", name, min_length=1, max_length=200)
        checked_username = self._check_username(problems, username)
        checked_password = self._check_password(problems, password)
        checked_type = self._check_type(problems, type or "generic")
        await self._check_user(problems, user_id)
        problems.check()
        assert checked_name and checked_username and checked_password and checked_type
        md5, sha256 = self._ha1s(checked_username, checked_password)
        device = Device(
            name=checked_name,
            username=checked_username,
            realm=self.realm,
            ha1_md5=md5,
            ha1_sha256=sha256,
            type=checked_type,
            user_id=user_id,
            enabled=bool(enabled),
        )
        async with self.db.writing() as s:
            s.add(device)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise self._conflict(checked_username) from exc
        self.directory.put(SipAccount.of(device))
        return device

    async def count(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(Device))).scalar_one())

    async def list_devices(self, *, limit: int, offset: int) -> tuple[list[Device], int]:
        async with self.db.session() as s:
            total = int((await s.execute(select(func.count()).select_from(Device))).scalar_one())
            rows = (await s.execute(select(Device).order_by(Device.id).limit(limit).offset(offset))).scalars().all()
        return list(rows), total

    async def get(self, device_id: int) -> Device:
        async with self.db.session() as s:
            device = await s.get(Device, device_id)
        if device is None:
            raise VoxError.not_found("Device")
        return device

    async def update(self, device_id: int, changes: dict[str, Any]) -> Device:
        """Apply the given fields; a new password re-computes both HA1s, a new username needs one
        (the HA1 covers the username) and releases the old name."""
        unknown = set(changes) - EDITABLE
        if unknown:
            raise VoxError.invalid(sorted(unknown)[0], "cannot be changed")
        device = await self.get(device_id)
        problems = Problems()
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = plain_text(problems, "name", changes["name"], min_length=1, max_length=200)
        if "type" in changes:
            values["type"] = self._check_type(problems, changes["type"])
        if "enabled" in changes:
            if not isinstance(changes["enabled"], bool):
                problems.add("enabled", "must be true or false")
            values["enabled"] = changes["enabled"]
        if "user_id" in changes:
            await self._check_user(problems, changes["user_id"])
            values["user_id"] = changes["user_id"]
        username = device.username
        if "username" in changes and changes["username"] != device.username:
            checked = self._check_username(problems, changes["username"])
            if checked is not None and "password" not in changes:
                problems.add("password", "is required to change the username (the digest hash covers both)")
            username = checked or username
        password = None
        if "password" in changes:
            password = self._check_password(problems, changes["password"])
        problems.check()
        credentials_changed = password is not None
        if password is not None:
            values["username"] = username
            values["ha1_md5"], values["ha1_sha256"] = self._ha1s(username, password)
        old_username = device.username
        async with self.db.writing() as s:
            row = await s.get(Device, device_id)
            if row is None:
                raise VoxError.not_found("Device")
            for key, value in values.items():
                setattr(row, key, value)
            if credentials_changed:
                s.add(
                    SipEvent(
                        device_id=device_id,
                        username=username,
                        kind="credentials_changed",
                        detail="password set through the API; bindings dropped",
                    )
                )
            try:
                await s.commit()
            except IntegrityError as exc:
                raise self._conflict(username) from exc
            device = row
        if old_username != device.username:
            self.directory.remove(old_username)
        self.directory.put(SipAccount.of(device))
        if credentials_changed and self.bindings is not None:
            await self.bindings.forget(old_username)
        return device

    async def delete(self, device_id: int) -> None:
        """Remove the account, its bindings and the device; refused while a route still names it."""
        async with self.db.session() as s:
            device = await s.get(Device, device_id)
            if device is None:
                raise VoxError.not_found("Device")
            routes = (
                await s.execute(select(CallRoute).where(CallRoute.action.in_(("forward", "ring_group", "voicemail"))))
            ).scalars()
            using = sorted(r.id for r in routes if device_id in device_route_refs(r))
        if using:
            raise VoxError(
                ErrorKind.CONFLICT,
                f"Device is used by route(s) {', '.join(map(str, using))}; change or delete them first",
                [FieldProblem("id", f"used by routes {using}", device_id)],
            )
        username = device.username
        self.directory.remove(username)
        async with self.db.writing() as s:
            row = await s.get(Device, device_id)
            if row is not None:
                await s.delete(row)
                await s.commit()
        if self.bindings is not None:
            await self.bindings.forget(username)

    # --- live state and history ------------------------------------------------------------------

    def registered(self, username: str) -> bool:
        return self.bindings is not None and bool(self.bindings.lookup(username))

    def registrations(self, now: float | None = None) -> list[LiveRegistration]:
        """Every live binding, by username then contact; the registrar's memory is the truth."""
        if self.bindings is None:
            return []
        now = time.time() if now is None else now
        out: list[LiveRegistration] = []
        for aor, bindings in sorted(self.bindings.all(now).items()):
            account = self.directory.get(aor)
            for b in sorted(bindings, key=lambda b: b.contact):
                out.append(
                    LiveRegistration(
                        device_id=account.id if account is not None else None,
                        username=aor,
                        contact=b.contact,
                        source_host=b.source_host,
                        source_port=b.source_port,
                        transport=b.transport,
                        user_agent=b.user_agent,
                        expires_at=datetime.fromtimestamp(b.expires_at, UTC),
                        expires_in=max(0, int(b.expires_at - now)),
                        q=b.q,
                        instance_id=b.instance_id,
                    )
                )
        return out

    async def events(self, device_id: int, *, limit: int, offset: int) -> tuple[list[SipEvent], int]:
        """Registration, credential and authentication events (bans included), newest first."""
        await self.get(device_id)
        where = SipEvent.device_id == device_id
        async with self.db.session() as s:
            total = int((await s.execute(select(func.count()).select_from(SipEvent).where(where))).scalar_one())
            rows = (
                await s.execute(select(SipEvent).where(where).order_by(SipEvent.id.desc()).limit(limit).offset(offset))
            ).scalars()
            return list(rows), total

    async def set_dnd(self, user_id: str, enabled: bool) -> list[Device]:
        """Do-not-disturb on every device of one user, in the store and in the engine's accounts."""
        async with self.db.writing() as s:
            await s.execute(update(Device).where(Device.user_id == user_id).values(dnd=enabled))
            await s.commit()
        async with self.db.session() as s:
            devices = list(
                (await s.execute(select(Device).where(Device.user_id == user_id).order_by(Device.id))).scalars()
            )
        for d in devices:
            self.directory.put(SipAccount.of(d))
        return devices
