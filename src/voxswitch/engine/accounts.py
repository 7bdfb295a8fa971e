"""The SIP accounts the registrar authenticates, held in memory for the per-request digest check.

Loaded from the `devices` table at start and kept current by `DeviceService`, so a REGISTER or an
INVITE never waits on the database to learn whether its credentials are right.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from voxswitch.sip.digest import HA1, Algorithm
from voxswitch.store.database import Database
from voxswitch.store.models import Device


@dataclass(frozen=True, slots=True)
class SipAccount:
    id: int
    username: str
    ha1_md5: str
    ha1_sha256: str
    enabled: bool = True
    dnd: bool = False  # do not disturb: calls to this device are refused (486)
    user_id: str | None = None  # the user whose device it is (can_call and daily limits)

    @classmethod
    def of(cls, d: Device) -> SipAccount:
        return cls(d.id, d.username, d.ha1_md5, d.ha1_sha256, d.enabled, bool(d.dnd), d.user_id)


class AccountDirectory:
    def __init__(self) -> None:
        self._by_username: dict[str, SipAccount] = {}

    async def load(self, db: Database) -> None:
        async with db.session() as s:
            devices = (await s.execute(select(Device))).scalars().all()
        self._by_username = {d.username: SipAccount.of(d) for d in devices}

    def get(self, username: str) -> SipAccount | None:
        account = self._by_username.get(username)
        return account if account is not None and account.enabled else None

    def put(self, account: SipAccount) -> None:
        self._by_username[account.username] = account

    def remove(self, username: str) -> None:
        self._by_username.pop(username, None)

    def secret_for(self, username: str, realm: str, algorithm: Algorithm) -> HA1 | None:
        """The digest `SecretLookup`: the stored HA1 for the algorithm's base, or None if unknown."""
        account = self.get(username)
        if account is None:
            return None
        return HA1(account.ha1_sha256 if algorithm.base is Algorithm.SHA256 else account.ha1_md5)

    def __len__(self) -> int:
        return len(self._by_username)
