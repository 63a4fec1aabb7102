"""Builds botbuilder's CloudAdapter from PhoneDesk's settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import ActivityTypes

from bot.channel_auth import ChannelTokenValidator, SigningKeys, with_channel_tokens
from bot.connector_timeouts import with_connector_timeouts
from provisioning.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _BotFrameworkConfiguration:
    """The attribute names ConfigurationBotFrameworkAuthentication looks for."""

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str
    APP_TENANTID: str


def create_token_validator(settings: Settings) -> ChannelTokenValidator | None:
    """The check of inbound Bot Framework tokens; None without a MicrosoftAppId (anonymous).

    Its signing keys hold an HTTP client: close them (``validator.keys.aclose()``) on shutdown.
    """
    if not settings.bot_auth_enabled:
        return None
    keys = SigningKeys(settings.bot_openid_metadata_url, timeout_s=settings.bot_keys_timeout_s)
    return ChannelTokenValidator(settings.app_id, keys)


def create_adapter(settings: Settings, validator: ChannelTokenValidator | None) -> CloudAdapter:
    if settings.bot_auth_enabled and validator is None:
        raise ValueError("an authenticated bot needs a token validator")
    password = settings.app_password.get_secret_value() if settings.app_password else ""
    configuration = _BotFrameworkConfiguration(
        APP_ID=settings.app_id,
        APP_PASSWORD=password,
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.app_tenant_id or "",
    )
    adapter = CloudAdapter(
        with_connector_timeouts(
            with_channel_tokens(ConfigurationBotFrameworkAuthentication(configuration), validator),
            connect_s=settings.connector_connect_timeout_s,
            read_s=settings.connector_read_timeout_s,
        )
    )

    async def on_turn_error(turn_context: TurnContext, error: Exception) -> None:
        # The user gets a plain apology; the details stay in the log.
        log.exception("unhandled error in a bot turn", exc_info=error)
        if turn_context.activity.type != ActivityTypes.message:
            # A proactive turn or a card click: nobody typed anything to apologise to.
            return
        try:
            await turn_context.send_activity(
                "Sorry, something went wrong on my side. Nothing you sent was lost; "
                "please try again in a moment."
            )
        except Exception as apology_error:
            # Usually the same dead connector: its traceback is already in the log above.
            log.error("could not tell the user about the error: %r", apology_error)

    adapter.on_turn_error = on_turn_error
    return adapter
