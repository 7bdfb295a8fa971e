"""Devices: SIP accounts on our registrar. Passwords become digest HA1s and are never stored or shown."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voxswitch.engine.accounts import AccountDirectory, SipAccount
from voxswitch.errors import ErrorKind, FieldProblem, VoxError
from voxswitch.sip.digest import Algorithm, compute_ha1
from voxswitch.store.database import Database
from voxswitch.store.models import Device

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_SIP_PASSWORD = 8


class DeviceService:
    def __init__(self, db: Database, directory: AccountDirectory, realm: str) -> None:
        self.db = db
        self.directory = directory
        self.realm = realm

    def _ha1s(self, username: str, password: str) -> tuple[str, str]:
        return (
            compute_ha1(username, self.realm, password, Algorithm.MD5),
            compute_ha1(username, self.realm, password, Algorithm.SHA256),
        )

    async def create(self, *, name: str, username: str, password: str, type: str = "generic") -> Device:
        if not _USERNAME.match(username or ""):
            raise VoxError.invalid("username", "must be 1-64 letters, digits, '.', '_' or '-'", username)
        if not isinstance(password, str) or len(password) < MIN_SIP_PASSWORD:
            raise VoxError.invalid("password", f"must be at least {MIN_SIP_PASSWORD} characters")
        if not name or len(name) > 200:
            raise VoxError.invalid("name", "must be 1-200 characters", name)
        md5, sha256 = self._ha1s(username, password)
        device = Device(
            name=name, username=username, realm=self.realm, ha1_md5=md5, ha1_sha256=sha256, type=type or "generic"
        )
        async with self.db.session() as s:
            s.add(device)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise VoxError(
                    ErrorKind.CONFLICT,
                    "A device with this username already exists",
                    [FieldProblem("username", "already in use", username)],
                ) from exc
        self.directory.put(SipAccount.of(device))
        return device

    async def count(self) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(Device))).scalar_one())
