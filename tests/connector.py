"""A local Bot Framework connector that records what the bot sends.

It serves the Connector REST API paths the bot calls on an activity's serviceUrl,
so replies travel over real HTTP exactly as they would to Teams:

- ``POST /v3/conversations/{id}/activities[/{replyTo}]``: a new message;
- ``PUT /v3/conversations/{id}/activities/{activityId}``: a message updated in place;
- ``POST /v3/conversations``: a new conversation, which for a Teams channel is a new
  thread (``channelData.channel.id``) starting with the given activity.

``throttle_next`` makes the next matching calls answer 429 with a Retry-After, as Teams
does when a bot sends too fast.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class SentActivity:
    method: str
    conversation_id: str
    activity_id: str | None
    body: dict[str, Any]
    response_id: str | None = None
    """The id the connector gave back: a new message's id, or the updated one's."""
    at: float = field(default_factory=time.monotonic)


@dataclass
class Throttled:
    method: str
    conversation_id: str
    activity_id: str | None
    at: float


@dataclass
class _Throttle:
    method: str
    remaining: int
    retry_after: str


@dataclass
class RecordingConnector:
    sent: list[SentActivity] = field(default_factory=list)
    throttled: list[Throttled] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _throttles: list[_Throttle] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [str(a.body.get("text", "")) for a in self.sent]

    def posts(self) -> list[SentActivity]:
        return [a for a in self.sent if a.method == "POST"]

    def updates(self, activity_id: str | None = None) -> list[SentActivity]:
        return [
            a
            for a in self.sent
            if a.method == "PUT" and (activity_id is None or a.activity_id == activity_id)
        ]

    def throttle_next(self, method: str = "PUT", *, count: int = 1, retry_after: str = "1") -> None:
        """Answer the next ``count`` calls of ``method`` with 429 and this Retry-After."""
        self._throttles.append(_Throttle(method, count, retry_after))

    async def wait_until(
        self, condition: Callable[[], bool], what: str, limit_s: float = 30.0
    ) -> None:
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    if condition():
                        return
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"timed out waiting until {what}") from None

    def _throttle_response(self, request: web.Request) -> web.Response | None:
        for throttle in self._throttles:
            if throttle.method == request.method and throttle.remaining > 0:
                throttle.remaining -= 1
                self.throttled.append(
                    Throttled(
                        request.method,
                        request.match_info.get("conversation_id", ""),
                        request.match_info.get("activity_id"),
                        time.monotonic(),
                    )
                )
                return web.json_response(
                    {"error": {"code": "TooManyRequests", "message": "Slow down."}},
                    status=429,
                    headers={"Retry-After": throttle.retry_after},
                )
        return None

    async def _record(self, request: web.Request) -> web.Response:
        throttled = self._throttle_response(request)
        if throttled is not None:
            return throttled
        body = await request.json()
        activity_id = request.match_info.get("activity_id")
        new_id = activity_id if request.method == "PUT" else f"sent-{next(self._ids)}"
        self.sent.append(
            SentActivity(
                request.method,
                request.match_info["conversation_id"],
                activity_id,
                body,
                response_id=new_id,
            )
        )
        return web.json_response({"id": new_id})

    async def _create_conversation(self, request: web.Request) -> web.Response:
        throttled = self._throttle_response(request)
        if throttled is not None:
            return throttled
        parameters = await request.json()
        channel = parameters.get("channelData", {}).get("channel", {}).get("id")
        activity_id = f"sent-{next(self._ids)}"
        conversation_id = (
            f"{channel};messageid={activity_id}" if channel else f"a:new-{activity_id}"
        )
        self.sent.append(
            SentActivity(
                "POST",
                conversation_id,
                None,
                parameters.get("activity") or {},
                response_id=activity_id,
            )
        )
        return web.json_response({"id": conversation_id, "activityId": activity_id})

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations/{conversation_id}/activities"
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post(base, self._record)
        app.router.add_post(base + "/{activity_id}", self._record)
        app.router.add_put(base + "/{activity_id}", self._record)
        return app
