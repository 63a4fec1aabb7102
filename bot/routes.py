"""The aiohttp edge of the bot: POST /api/messages through the CloudAdapter."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from botbuilder.core import Bot
from botbuilder.integration.aiohttp import CloudAdapter
from multidict import CIMultiDict

from bot.activity_schema import ActivityShapeError, check_activity
from bot.channel_auth import ChannelTokenValidator, KeysUnavailable, TokenRefused, VerifiedToken
from bot.edge import (
    EdgeRefusal,
    check_browser_request,
    check_content_type,
    check_host,
    check_service_url,
)
from provisioning.settings import Settings

log = logging.getLogger(__name__)

ADAPTER_KEY = web.AppKey("bot_adapter", CloudAdapter)
BOT_KEY = web.AppKey("bot", Bot)
EDGE_SETTINGS_KEY = web.AppKey("bot_edge_settings", Settings)
TOKEN_VALIDATOR_KEY = web.AppKey("bot_token_validator", ChannelTokenValidator)


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message}}, status=status, headers=headers
    )


async def _verify_token(request: web.Request, validator: ChannelTokenValidator) -> VerifiedToken:
    try:
        return await validator.verify(request.headers.get("Authorization"))
    except TokenRefused as refused:
        raise _unauthorized(request, refused) from None


def _unauthorized(request: web.Request, refused: TokenRefused) -> EdgeRefusal:
    # One line per refusal and no traceback: a flood of forged tokens must not drown the log.
    log.warning("refused an activity from %s: %s", request.remote, refused.reason)
    return EdgeRefusal(401, f"the request's Bot Framework token was refused: {refused.reason}")


async def _read_activity(
    request: web.Request, settings: Settings, validator: ChannelTokenValidator | None
) -> web.Request:
    """The request, checked, with its body read; refusals raise EdgeRefusal."""
    anonymous = validator is None
    # The token comes first: without one, nothing about the body is worth an answer.
    token = None if validator is None else await _verify_token(request, validator)
    if anonymous:
        check_host(request.headers.get("Host"))
        check_browser_request(request.headers)
    check_content_type(request.headers.get("Content-Type"))
    # botbuilder tests the header for the substring "application/json", case-sensitively;
    # a valid "Application/JSON; charset=UTF-8" must not be refused there.
    headers = CIMultiDict(request.headers)
    headers["Content-Type"] = "application/json"
    request = request.clone(headers=headers)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise EdgeRefusal(413, "the activity is larger than the bot accepts") from None
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EdgeRefusal(400, "the request body is not valid JSON") from None
    except RecursionError:
        raise EdgeRefusal(400, "the request body is nested too deeply") from None
    try:
        activity = check_activity(body)
    except ActivityShapeError as exc:
        raise EdgeRefusal(400, str(exc)) from None
    if token is not None:
        try:
            ChannelTokenValidator.check_activity(
                token,
                service_url=str(activity["serviceUrl"]),
                channel_id=str(activity.get("channelId") or ""),
            )
        except TokenRefused as refused:
            raise _unauthorized(request, refused) from None
    check_service_url(
        str(activity["serviceUrl"]),
        anonymous=anonymous,
        allowed_hosts=settings.service_url_hosts,
    )
    return request


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        request = await _read_activity(
            request, request.app[EDGE_SETTINGS_KEY], request.app.get(TOKEN_VALIDATOR_KEY)
        )
    except EdgeRefusal as refusal:
        return _problem(refusal.status, refusal.message)
    except KeysUnavailable as unavailable:
        log.warning("answered 503: %s", unavailable)
        return _problem(
            503,
            "the bot cannot check Bot Framework tokens yet: "
            "Microsoft's signing keys are not loaded",
            {"Retry-After": str(unavailable.retry_after_s)},
        )
    adapter = request.app[ADAPTER_KEY]
    bot = request.app.get(BOT_KEY)
    if bot is None:
        return _problem(503, "the bot is still starting; try again in a moment")
    try:
        response = await adapter.process(request, bot)
    except web.HTTPUnauthorized:
        return _problem(401, "the request's Bot Framework token is missing or invalid")
    return response if response is not None else web.Response(status=201)


def add_bot_routes(
    app: web.Application,
    adapter: CloudAdapter,
    settings: Settings,
    validator: ChannelTokenValidator | None,
) -> None:
    """Serve /api/messages; the bot itself is put under ``BOT_KEY`` once the app has started.

    ``validator`` checks each activity's token; None is anonymous mode (loopback only).
    """
    app[ADAPTER_KEY] = adapter
    app[EDGE_SETTINGS_KEY] = settings
    if validator is not None:
        app[TOKEN_VALIDATOR_KEY] = validator
    app.router.add_post("/api/messages", messages)
