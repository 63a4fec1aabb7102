"""A local Bot Framework connector that records what the bot sends.

It serves the Connector REST API paths the bot calls on an activity's serviceUrl,
so replies travel over real HTTP exactly as they would to Teams.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class SentActivity:
    method: str
    conversation_id: str
    activity_id: str | None
    body: dict[str, Any]


@dataclass
class RecordingConnector:
    sent: list[SentActivity] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def texts(self) -> list[str]:
        return [str(a.body.get("text", "")) for a in self.sent]

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.json()
        activity_id = request.match_info.get("activity_id")
        self.sent.append(
            SentActivity(request.method, request.match_info["conversation_id"], activity_id, body)
        )
        new_id = activity_id if request.method == "PUT" else f"sent-{next(self._ids)}"
        return web.json_response({"id": new_id})

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations/{conversation_id}/activities"
        app.router.add_post(base, self._record)
        app.router.add_post(base + "/{activity_id}", self._record)
        app.router.add_put(base + "/{activity_id}", self._record)
        return app
