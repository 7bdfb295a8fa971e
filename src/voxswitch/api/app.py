"""The FastAPI application: one app serving all five documented surfaces from one host and port."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voxswitch import __version__
from voxswitch.api.errors import install_error_handlers
from voxswitch.api.middleware import RequestMiddleware
from voxswitch.api.routers import (
    agents_auth,
    health,
    logs,
    pbx_blocklist,
    pbx_calls,
    pbx_cdrs,
    pbx_devices,
    pbx_dids,
    pbx_identity,
    pbx_routes,
    pbx_system,
    softphone_identity,
    voice,
)
from voxswitch.api.state import AppState
from voxswitch.api.surfaces import HEALTH_TAG, TAGS
from voxswitch.collector import CollectorSchedule
from voxswitch.config import Settings, load_settings
from voxswitch.logs import configure_logging
from voxswitch.store.migrate import upgrade

log = logging.getLogger("voxswitch")


async def start_jobs(state: AppState) -> None:
    """The voice-call workers and their webhooks, in this process unless configured off."""
    if not state.settings.voice_workers:
        log.info("voice-call workers are off on this node (VOXSWITCH_VOICE_WORKERS=false)")
        return
    if state.engine.calls is None:
        log.warning("voice-call workers not started: SIP is disabled, queued calls wait for a node with SIP")
        return
    await state.voice_worker.start()
    state.webhooks.start()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = AppState.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, state.logs)
        revision = await upgrade(state.db)
        admin = await state.identity.bootstrap_admin(
            settings.admin_email,
            settings.admin_password.get_secret_value() if settings.admin_password else None,
        )
        if admin is not None:
            log.info("created the first admin from VOXSWITCH_ADMIN_EMAIL", extra={"user_id": admin.id})
        log.info(
            "voxswitch %s ready",
            __version__,
            extra={"schema_revision": revision, "data_dir": str(settings.data_dir)},
        )
        await state.engine.start()
        # The start-up heap frozen (a full collection of it took 183 ms), full collections on a
        # timer: voxswitch/collector.py says why.
        collector = CollectorSchedule(freeze=settings.gc_freeze, full_every=settings.gc_full_every_seconds)
        collector.start()
        await start_jobs(state)
        try:
            yield
        finally:
            await collector.stop()
            await state.voice_worker.stop()
            await state.webhooks.stop()
            state.voice.store.close()
            await state.engine.stop()
            await state.db.dispose()

    app = FastAPI(
        title="Voxswitch",
        version=__version__,
        summary="One self-hosted voice platform serving five documented APIs.",
        lifespan=lifespan,
        openapi_tags=[{"name": HEALTH_TAG}, *({"name": t} for t in TAGS.values())],
    )
    app.state.vox = state
    install_error_handlers(app)
    app.add_middleware(voice.VoiceCallFastPath, fastapi=app)
    app.add_middleware(RequestMiddleware, state=state)
    pbx = (pbx_identity, pbx_devices, pbx_dids, pbx_routes, pbx_cdrs, pbx_blocklist, pbx_system, pbx_calls)
    for module in (health, voice, agents_auth, *pbx, softphone_identity, logs):
        app.include_router(module.router)
    return app
