"""The engine as the server runs it: SIP accounts, registrar bindings and the SIP endpoint, started
and stopped together by the application's lifespan."""

from __future__ import annotations

import logging

from voxswitch.config import Settings
from voxswitch.engine.accounts import AccountDirectory
from voxswitch.engine.certificates import ensure_self_signed, server_context
from voxswitch.engine.registrar import BindingBook
from voxswitch.engine.sip_server import SipServer, SipServerConfig
from voxswitch.engine.trunk import TrunkConfig, TrunkRegistration
from voxswitch.sip.digest import Algorithm
from voxswitch.sip.security import BanPolicy
from voxswitch.sip.transaction import Timers
from voxswitch.store.database import Database

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, settings: Settings, db: Database, secret: bytes) -> None:
        self.settings = settings
        self.db = db
        self.accounts = AccountDirectory()
        self.bindings = BindingBook(db)
        self.sip: SipServer | None = None
        self.trunk: TrunkRegistration | None = None
        self._secret = secret
        self.listening: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        s = self.settings
        await self.accounts.load(self.db)
        await self.bindings.load()
        if not s.sip_enabled:
            return
        if s.sip_tls_cert and s.sip_tls_key:
            cert, key = s.sip_tls_cert, s.sip_tls_key
        else:
            cert, key = ensure_self_signed(s.data_dir / "tls")
        config = SipServerConfig(
            realm=s.sip_realm,
            algorithms=tuple(Algorithm(a) for a in s.sip_digest_algorithms),
            host=s.sip_host,
            port=s.sip_port,
            tls_port=s.sip_tls_port,
            tls_context=server_context(cert, key),
            advertised_host=s.sip_advertised_host,
            trusted_sources=tuple(s.sip_trusted_sources),
            timers=Timers(s.sip_t1, s.sip_t2, s.sip_t4),
            ban=BanPolicy(
                window_seconds=s.sip_ban_window_seconds, ban_after=s.sip_ban_after, ban_seconds=s.sip_ban_seconds
            ),
        )
        self.sip = SipServer(config, self.db, self.accounts, self.bindings, self._secret)
        self.listening = await self.sip.start()
        if s.sip_trunk_ip:
            self.trunk = TrunkRegistration(
                self.sip.stack,
                TrunkConfig(
                    host=s.sip_trunk_ip,
                    port=s.sip_trunk_port,
                    transport=s.sip_trunk_transport.upper(),
                    username=s.sip_username,
                    password=s.sip_password.get_secret_value() if s.sip_password else None,
                    domain=s.sip_trunk_domain,
                    register=s.sip_trunk_register,
                    expires=s.sip_trunk_expires,
                ),
            )
            if s.sip_trunk_register:
                self.trunk.start()
        log.info("SIP listening", extra={"sip_listeners": {k: f"{h}:{p}" for k, (h, p) in self.listening.items()}})

    async def stop(self) -> None:
        if self.trunk is not None:
            await self.trunk.stop()
        if self.sip is not None:
            await self.sip.stop()
