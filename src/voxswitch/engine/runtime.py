"""The engine as the server runs it: SIP accounts, registrar bindings and the SIP endpoint, started
and stopped together by the application's lifespan."""

from __future__ import annotations

import logging
import socket

from voxswitch.config import Settings
from voxswitch.engine.accounts import AccountDirectory
from voxswitch.engine.call import close_interrupted
from voxswitch.engine.calls import CallManager, music_from_file
from voxswitch.engine.certificates import ensure_self_signed, server_context
from voxswitch.engine.pbx_routing import PbxRouter
from voxswitch.engine.registrar import BindingBook
from voxswitch.engine.routing import DefaultRouter
from voxswitch.engine.sip_leg import SipContext, SrtpSettings, offer_codecs
from voxswitch.engine.sip_server import SipServer, SipServerConfig
from voxswitch.engine.targets import Targets
from voxswitch.engine.trunk import TrunkConfig, TrunkRegistration
from voxswitch.media.clock import MediaClock
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.media.session import MediaResources
from voxswitch.sip.dialog import DialogSet
from voxswitch.sip.digest import Algorithm
from voxswitch.sip.security import BanPolicy
from voxswitch.sip.transaction import Timers
from voxswitch.store.database import Database
from voxswitch.voice.tts import TtsConfig, create_engine

log = logging.getLogger(__name__)


def primary_ip() -> str:
    """The address other hosts reach us on (a connected UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never contacted, only routed
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Engine:
    def __init__(self, settings: Settings, db: Database, secret: bytes) -> None:
        self.settings = settings
        self.db = db
        self.accounts = AccountDirectory()
        self.bindings = BindingBook(db)
        self.sip: SipServer | None = None
        self.trunk: TrunkRegistration | None = None
        self.targets: Targets | None = None
        self.calls: CallManager | None = None
        self._secret = secret
        self.listening: dict[str, tuple[str, int]] = {}

    async def start(self) -> None:
        s = self.settings
        await self.accounts.load(self.db)
        await self.bindings.load()
        await close_interrupted(self.db)
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
            # the trunk's own address is trusted: trunks send calls for our numbers without digest
            trusted_sources=tuple(s.sip_trusted_sources)
            + ((f"{s.sip_trunk_ip}:{s.sip_trunk_port}",) if s.sip_trunk_ip else ()),
            timers=Timers(s.sip_t1, s.sip_t2, s.sip_t4),
            ban=BanPolicy(
                window_seconds=s.sip_ban_window_seconds, ban_after=s.sip_ban_after, ban_seconds=s.sip_ban_seconds
            ),
        )
        self.sip = SipServer(config, self.db, self.accounts, self.bindings, self._secret)
        self.listening = await self.sip.start()
        advertised = s.sip_advertised_host or (s.sip_host if s.sip_host not in ("0.0.0.0", "::") else primary_ip())
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
        tts = create_engine(s.tts_service, TtsConfig.from_settings(s), cache_dir=s.data_dir / "tts-cache")
        media = MediaResources(MediaClock(), RtpPortAllocator(s.rtp_port_min, s.rtp_port_max, host=s.sip_host))
        srtp = SrtpSettings(s.srtp, s.srtp_fallback, tuple(s.srtp_suites))
        sip = SipContext(self.sip.stack, DialogSet(), advertised, offer_codecs(media.codecs), srtp)
        self.targets = Targets(self.accounts, self.bindings, self.trunk)
        router = PbxRouter(self.db, self.accounts, DefaultRouter(self.targets), timezone=s.timezone)
        self.calls = self.sip.calls = CallManager(
            self.db,
            sip,
            media,
            tts,
            self.targets,
            recordings_dir=s.data_dir / "recordings",
            router=router,
            media_timeout=s.media_timeout_seconds,
            ring_timeout=s.ring_timeout_seconds,
            music=music_from_file(s.moh_file) if s.moh_file else None,
        )
        log.info("SIP listening", extra={"sip_listeners": {k: f"{h}:{p}" for k, (h, p) in self.listening.items()}})

    async def stop(self) -> None:
        if self.trunk is not None:
            await self.trunk.stop()
        if self.sip is not None:
            await self.sip.stop()
        await self.bindings.close()
