"""The aiohttp edge of the bot: POST /api/messages through the CloudAdapter."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from botbuilder.core import Bot
from botbuilder.integration.aiohttp import CloudAdapter

log = logging.getLogger(__name__)

ADAPTER_KEY = web.AppKey("bot_adapter", CloudAdapter)
BOT_KEY = web.AppKey("bot", Bot)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


async def messages(request: web.Request) -> web.StreamResponse:
    if "application/json" not in request.headers.get("Content-Type", ""):
        return _problem(415, "activities must be sent as application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _problem(400, "the request body is not valid JSON")
    if not isinstance(body, dict) or not body.get("type"):
        return _problem(400, "the request body is not a Bot Framework activity (no 'type')")
    adapter = request.app[ADAPTER_KEY]
    bot = request.app.get(BOT_KEY)
    if bot is None:
        return _problem(503, "the bot is still starting; try again in a moment")
    try:
        response = await adapter.process(request, bot)
    except web.HTTPUnauthorized:
        return _problem(401, "the request's Bot Framework token is missing or invalid")
    return response if response is not None else web.Response(status=201)


def add_bot_routes(app: web.Application, adapter: CloudAdapter) -> None:
    """Serve /api/messages; the bot itself is put under ``BOT_KEY`` once the app has started."""
    app[ADAPTER_KEY] = adapter
    app.router.add_post("/api/messages", messages)
