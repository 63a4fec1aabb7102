"""PhoneDesk's entry point: build the aiohttp app from settings and serve it."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from bot.adapter import create_adapter, create_token_validator
from bot.notifier import CardNotifier
from bot.phonedesk_bot import PhoneDeskBot
from bot.proactive import ProactiveMessenger
from bot.routes import BOT_KEY, add_bot_routes
from provisioning.engine.launch import (
    EngineAlreadyRunning,
    EngineLock,
    engine_lock_path,
    open_engine,
    workflow_database_url,
)
from provisioning.errors import ProvisioningError
from provisioning.interfaces.local_api import add_local_api
from provisioning.microsoft.connect import Microsoft365, connect_microsoft
from provisioning.persistence.store import Store
from provisioning.service import ProvisioningService
from provisioning.settings import ConfigError, Settings, load_settings

log = logging.getLogger("phonedesk")

SETTINGS_KEY = web.AppKey("settings", Settings)
STORE_KEY = web.AppKey("store", Store)
MICROSOFT_KEY = web.AppKey("microsoft", Microsoft365)
SERVICE_KEY = web.AppKey("service", ProvisioningService)
NOTIFIER_KEY = web.AppKey("card_notifier", CardNotifier)


def _version() -> str:
    try:
        return version("phonedesk")
    except PackageNotFoundError:
        return "unknown"


async def healthz(request: web.Request) -> web.Response:
    # Kinds only: URLs and ports would map the deployment for whoever can reach this.
    store = request.app[STORE_KEY]
    microsoft = request.app[MICROSOFT_KEY]
    settings = request.app[SETTINGS_KEY]
    database_ok = await asyncio.to_thread(store.ping)
    body = {
        "status": "ok" if database_ok else "degraded",
        "version": _version(),
        "database": {"ok": database_ok, "backend": store.backend},
        "microsoft365": {"mode": microsoft.mode},
        "bot": {"auth": "authenticated" if settings.bot_auth_enabled else "anonymous"},
    }
    return web.json_response(body, status=200 if database_ok else 503)


async def _expire_dialogs(store: Store, expiry_h: float) -> None:
    """Forget abandoned request dialogs, at start and then a few times per expiry period."""
    idle_for = timedelta(hours=expiry_h)
    while True:
        try:
            expired = await asyncio.to_thread(store.expire_dialog_states, idle_for)
        except Exception:
            # A database hiccup must not end the sweeping; the next round tries again.
            log.exception("could not expire idle dialogs")
        else:
            if expired:
                log.info("forgot %d request dialogs idle for over %g h", expired, expiry_h)
        await asyncio.sleep(min(3600.0, idle_for.total_seconds() / 4))


async def create_app(settings: Settings) -> web.Application:
    settings.check_bind_address()
    app = web.Application()
    app[SETTINGS_KEY] = settings

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await asyncio.to_thread(Store, settings.effective_database_url)
        app[STORE_KEY] = store
        yield
        store.close()

    async def dialog_expiry_ctx(app: web.Application) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_expire_dialogs(app[STORE_KEY], settings.dialog_expiry_h))
        yield
        sweeper.cancel()

    async def microsoft_ctx(app: web.Application) -> AsyncIterator[None]:
        async with connect_microsoft(settings) as microsoft:
            app[MICROSOFT_KEY] = microsoft
            yield

    validator = create_token_validator(settings)
    adapter = create_adapter(settings, validator)

    async def token_keys_ctx(app: web.Application) -> AsyncIterator[None]:
        if validator is None:
            yield
            return
        # Loaded in the background: start-up does not wait on Microsoft, and a first
        # activity that arrives meanwhile joins this fetch instead of starting another.
        warming = asyncio.create_task(validator.keys.warm())
        yield
        warming.cancel()
        await validator.keys.aclose()

    messenger = ProactiveMessenger(adapter, settings.app_id, settings.service_url_hosts)

    async def notifier_ctx(app: web.Application) -> AsyncIterator[None]:
        notifier = CardNotifier(app[STORE_KEY], messenger, approvers=settings.approvers)
        async with notifier.running():
            app[NOTIFIER_KEY] = notifier
            yield

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        store, notifier = app[STORE_KEY], app[NOTIFIER_KEY]
        async with open_engine(settings, app[MICROSOFT_KEY], store, notifier) as service:
            app[SERVICE_KEY] = service
            app[BOT_KEY] = PhoneDeskBot(
                settings=settings,
                service=service,
                store=store,
                notifier=notifier,
                messenger=messenger,
            )
            yield

    app.cleanup_ctx.extend(
        [token_keys_ctx, store_ctx, dialog_expiry_ctx, microsoft_ctx, notifier_ctx, engine_ctx]
    )
    add_local_api(app, settings, SERVICE_KEY)
    add_bot_routes(app, adapter, settings, validator)
    app.router.add_get("/healthz", healthz)
    if not settings.bot_auth_enabled:
        log.warning(
            "No MicrosoftAppId/MicrosoftAppPassword: the bot accepts unauthenticated activities "
            "and only listens on loopback."
        )
    return app


def main() -> None:
    try:
        settings = load_settings()
        settings.check_bind_address()
    except ConfigError as exc:
        sys.stderr.write(f"phonedesk: {exc}\n")
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        # Both checked before anything starts, so a second `make run` says why in one line.
        _check_engine_is_free(settings)
        sock = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        sys.stderr.write(
            f"phonedesk: cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
            "Is PhoneDesk already running? Set PHONEDESK_PORT to use another port.\n"
        )
        raise SystemExit(1) from None
    except EngineAlreadyRunning as exc:
        sys.stderr.write(f"phonedesk: {exc}\n")
        raise SystemExit(1) from None
    log.info(
        "PhoneDesk %s listening on http://%s:%d/api/messages",
        _version(),
        settings.host,
        settings.port,
    )
    try:
        web.run_app(create_app(settings), sock=sock, print=None)
    except (ConfigError, ProvisioningError, EngineAlreadyRunning) as exc:
        sys.stderr.write(f"phonedesk: {exc}\n")
        raise SystemExit(1) from None


def _check_engine_is_free(settings: Settings) -> None:
    lock_path = engine_lock_path(workflow_database_url(settings))
    if lock_path is not None:
        EngineLock.acquire(lock_path, "app.py (start-up check)").release()


if __name__ == "__main__":
    main()
