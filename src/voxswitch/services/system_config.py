"""The PBX's run-time system config (`/api/system/config`): Twilio credentials and the voicemail
address, kept in `system_settings`. The auth token is stored with `secret=True` and only ever shown
masked. Twilio credentials set here win over `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`, field by field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from voxswitch.config import Settings
from voxswitch.errors import VoxError
from voxswitch.services.identity import normalise_email
from voxswitch.services.twilio_account import TwilioAccount, TwilioCredentials
from voxswitch.services.validation import Problems, has_control_characters
from voxswitch.store.database import Database
from voxswitch.store.models import SystemSetting

MASK = "********"
_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{16,128}$")
# API field -> (system_settings key, secret). The Twilio keys are the ones first-run setup writes.
FIELDS: dict[str, tuple[str, bool]] = {
    "twilio_account_sid": ("twilio.account_sid", False),
    "twilio_auth_token": ("twilio.auth_token", True),
    "voicemail_email": ("pbx.voicemail_email", False),
}


@dataclass(frozen=True)
class SystemConfig:
    twilio_account_sid: str | None
    twilio_auth_token: str | None  # masked
    twilio_configured: bool
    twilio_source: str | None
    voicemail_email: str | None
    timezone: str


class SystemConfigService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def _stored(self) -> dict[str, str]:
        keys = [key for key, _ in FIELDS.values()]
        async with self.db.session() as s:
            rows = (await s.execute(select(SystemSetting).where(SystemSetting.key.in_(keys)))).scalars()
            return {r.key: r.value for r in rows}

    async def twilio_credentials(self) -> TwilioCredentials | None:
        stored = await self._stored()
        env_token = self.settings.twilio_auth_token
        sid_db, token_db = stored.get("twilio.account_sid"), stored.get("twilio.auth_token")
        sid = sid_db or self.settings.twilio_account_sid
        token = token_db or (env_token.get_secret_value() if env_token else None)
        if not sid or not token:
            return None
        sources = {"config" if sid_db else "environment", "config" if token_db else "environment"}
        return TwilioCredentials(sid, token, "+".join(sorted(sources)))

    async def twilio(self) -> TwilioAccount | None:
        credentials = await self.twilio_credentials()
        if credentials is None:
            return None
        s = self.settings
        return TwilioAccount(credentials, base_url=s.twilio_api_base_url, timeout=s.twilio_timeout_seconds)

    async def get(self) -> SystemConfig:
        stored = await self._stored()
        credentials = await self.twilio_credentials()
        env_token = self.settings.twilio_auth_token
        token = stored.get("twilio.auth_token") or (env_token.get_secret_value() if env_token else None)
        return SystemConfig(
            twilio_account_sid=stored.get("twilio.account_sid") or self.settings.twilio_account_sid,
            twilio_auth_token=MASK if token else None,
            twilio_configured=credentials is not None,
            twilio_source=credentials.source if credentials else None,
            voicemail_email=stored.get("pbx.voicemail_email"),
            timezone=self.settings.timezone,
        )

    async def update(self, changes: dict[str, Any]) -> SystemConfig:
        """Set the given fields; null or "" clears one (back to the environment's value, if any)."""
        problems = Problems()
        values: dict[str, str | None] = {}
        for name, value in changes.items():
            if name not in FIELDS:
                problems.add(name, "is not a setting that can be changed here")
                continue
            if value is None or value == "":
                values[name] = None
                continue
            if not isinstance(value, str) or has_control_characters(value):
                problems.add(name, "must be a string")
                continue
            value = value.strip()
            if name == "twilio_account_sid" and not _SID.match(value):
                problems.add(name, "must be 'AC' followed by 32 hex digits")
            elif name == "twilio_auth_token" and not _TOKEN.match(value):
                problems.add(name, "must be 16-128 letters and digits")
            elif name == "voicemail_email":
                try:
                    value = normalise_email(value, name)
                except VoxError:
                    problems.add(name, "must be a valid e-mail address")
            values[name] = value
        problems.check()
        async with self.db.writing() as s:
            for name, value in values.items():
                key, secret = FIELDS[name]
                if value is None:
                    await s.execute(delete(SystemSetting).where(SystemSetting.key == key))
                else:
                    await s.merge(SystemSetting(key=key, value=value, secret=secret))
            await s.commit()
        return await self.get()
