"""Posting a request's card and remembering where it went, so it can be updated in place.

The card everyone sees is the read-only view; Teams then asks the bot (``refresh``) for the
approvers' and the requester's own views, so one message serves every reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from bot.approvals_channel import load_approvals_channel
from bot.cards import CardView
from bot.notifier import CardNotifier
from bot.proactive import ProactiveMessenger
from bot.views import render_request_card
from provisioning.domain import Request, utc_now
from provisioning.persistence.store import Store

__all__ = ["RequestPosts"]

log = logging.getLogger(__name__)


class RequestPosts:
    def __init__(
        self,
        store: Store,
        messenger: ProactiveMessenger,
        notifier: CardNotifier,
        *,
        approvers: Sequence[str],
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._messenger = messenger
        self._notifier = notifier
        self._approvers = tuple(approvers)
        self._now = now

    def card(self, request: Request, view: CardView = CardView.OBSERVER) -> dict[str, Any]:
        return render_request_card(request, view, self._approvers, self._now())

    async def track(
        self, request: Request, conversation_key: str, activity_id: str, *, shown: bool = True
    ) -> None:
        """Keep the card in this message up to date from now on.

        ``shown`` says the message already shows this state of the request; otherwise (a
        form that was just submitted, say) it is brought up to date at once.
        """
        await asyncio.to_thread(
            self._store.add_card_activity, request.id, conversation_key, activity_id
        )
        if shown:
            self._notifier.showing(request, conversation_key, activity_id)
        self._notifier.publish(request)

    async def remember_reference(self, key: str, reference: dict[str, JsonValue]) -> None:
        await asyncio.to_thread(self._store.save_conversation_ref, key, reference)

    async def announce(self, request: Request, *, requested_in: str) -> bool:
        """Post a new request in the approvers' channel, unless it was asked for there.

        Returns whether the approvers' channel has the card. A failure is logged and left
        at that: the request is stored, and approvers still find it with ``pending``.
        """
        channel = await load_approvals_channel(self._store)
        if channel is None:
            return False
        if channel.is_home_of(requested_in):
            return True
        summary = f"New request {request.id} from {request.requester.display_name or 'a requester'}"
        try:
            thread, activity_id = await self._messenger.post_to_channel(
                channel.reference,
                channel.channel_id,
                channel.tenant_id,
                card=self.card(request),
                summary=summary,
            )
        except Exception:
            log.exception("%s: could not post it in the approvers' channel", request.id)
            return False
        conversation = thread.get("conversation")
        thread_key = conversation.get("id") if isinstance(conversation, dict) else None
        if not isinstance(thread_key, str) or not thread_key:
            log.warning("%s: the approvers' channel post came back without a thread", request.id)
            return False
        await self.remember_reference(thread_key, thread)
        await self.track(request, thread_key, activity_id)
        return True
