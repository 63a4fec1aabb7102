"""Messages the bot sends on its own: card updates and new posts in the approvers' channel.

Both go through the CloudAdapter with a stored conversation reference. A failure inside a
proactive turn would otherwise reach the adapter's ``on_turn_error``, which apologises to
the conversation; here it is caught in the callback and raised to the caller instead.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ConversationParameters,
    ErrorResponseException,
)
from pydantic import JsonValue

from bot.activities import reference_from_json
from bot.cards import adaptive_attachment
from bot.edge import EdgeRefusal, check_service_url
from bot.throttle import ConnectorThrottled

__all__ = ["ProactiveMessenger", "card_attachment", "retry_after_seconds"]

log = logging.getLogger(__name__)

TEAMS_CHANNEL_ID = "msteams"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Read a Retry-After header: seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _translate(error: Exception) -> Exception:
    response = getattr(error, "response", None)
    if getattr(response, "status_code", None) == 429:
        headers = getattr(response, "headers", None) or {}
        return ConnectorThrottled(retry_after_seconds(headers.get("Retry-After")))
    return error


def card_attachment(card: Mapping[str, Any]) -> Attachment:
    wrapped = adaptive_attachment(card)
    return Attachment(content_type=wrapped["contentType"], content=wrapped["content"])


class ProactiveMessenger:
    def __init__(
        self, adapter: CloudAdapter, bot_app_id: str, service_url_hosts: Iterable[str] = ()
    ) -> None:
        self._adapter = adapter
        # Anonymous (local) mode has no app id; the adapter then sends without a token.
        self._bot_app_id = bot_app_id
        self._service_url_hosts = tuple(service_url_hosts)

    def _check_reference(self, service_url: str | None) -> None:
        # /api/messages refuses such activities already; a reference stored before that
        # check, or written into the database by hand, must not be followed either.
        try:
            check_service_url(
                service_url or "",
                anonymous=not self._bot_app_id,
                allowed_hosts=self._service_url_hosts,
            )
        except EdgeRefusal as refusal:
            raise ValueError(f"stored conversation reference refused: {refusal.message}") from None

    async def update_card(
        self, reference: Mapping[str, JsonValue], activity_id: str, card: Mapping[str, Any]
    ) -> None:
        """Replace the card in a message the bot sent earlier."""
        conversation = reference_from_json(reference)
        self._check_reference(conversation.service_url)
        failure: list[Exception] = []

        async def update(turn_context: TurnContext) -> None:
            activity = Activity(
                type=ActivityTypes.message,
                id=activity_id,
                conversation=turn_context.activity.conversation,
                attachments=[card_attachment(card)],
            )
            try:
                await turn_context.update_activity(activity)
            except ErrorResponseException as exc:
                failure.append(_translate(exc))
            except Exception as exc:
                failure.append(exc)

        await self._adapter.continue_conversation(conversation, update, self._bot_app_id)
        if failure:
            raise failure[0]

    async def post_to_channel(
        self,
        reference: Mapping[str, JsonValue],
        channel: str,
        tenant: str | None,
        *,
        card: Mapping[str, Any],
        summary: str | None = None,
    ) -> tuple[dict[str, JsonValue], str]:
        """Start a new thread in a Teams channel; returns the thread's reference and message id.

        The post is the card alone, with ``summary`` as its notification preview: an update
        replaces the whole message, so text beside the card would vanish at the first one.
        """
        channel_reference = reference_from_json(reference)
        self._check_reference(channel_reference.service_url)
        channel_data: dict[str, Any] = {"channel": {"id": channel}}
        if tenant:
            channel_data["tenant"] = {"id": tenant}
        parameters = ConversationParameters(
            is_group=True,
            bot=channel_reference.bot,
            channel_data=channel_data,
            tenant_id=tenant,
            activity=Activity(
                type=ActivityTypes.message,
                summary=summary,
                attachments=[card_attachment(card)],
            ),
        )
        created: list[tuple[dict[str, JsonValue], str]] = []

        async def remember(turn_context: TurnContext) -> None:
            thread = TurnContext.get_conversation_reference(turn_context.activity)
            created.append((thread.serialize(), str(turn_context.activity.id)))

        try:
            await self._adapter.create_conversation(
                self._bot_app_id,
                remember,
                parameters,
                channel_reference.channel_id or TEAMS_CHANNEL_ID,
                channel_reference.service_url,
                None,
            )
        except ErrorResponseException as exc:
            raise _translate(exc) from exc
        if not created:
            raise RuntimeError("the Bot Connector created no conversation")
        return created[0]
