"""Reading what Teams sends: who spoke, where, and what they typed.

Identity comes from ``from.aadObjectId`` only; nothing a card sends back is trusted to say
who someone is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ConversationReference
from pydantic import JsonValue

from provisioning.domain import Person

__all__ = [
    "channel_id",
    "conversation_key",
    "in_channel",
    "is_personal",
    "message_text",
    "person_of",
    "reference_from_json",
    "reference_json",
    "tenant_id",
]

CHANNEL: Final = "channel"
PERSONAL: Final = "personal"
_AT_TAG: Final = re.compile(r"<at\b[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
# Teams wraps some channel messages in block tags; they carry no words.
_BLOCK_TAG: Final = re.compile(r"</?(?:p|div|span|br)\b[^>]*>", re.IGNORECASE)


def person_of(activity: Activity) -> Person | None:
    sender = activity.from_property
    aad_object_id = getattr(sender, "aad_object_id", None)
    if not aad_object_id:
        return None
    return Person(aad_object_id=aad_object_id, display_name=getattr(sender, "name", None) or "")


def conversation_key(activity: Activity) -> str:
    return str(activity.conversation.id)


def in_channel(activity: Activity) -> bool:
    return getattr(activity.conversation, "conversation_type", None) == CHANNEL


def is_personal(activity: Activity) -> bool:
    """A one-to-one chat; clients that send no conversation type are treated as one."""
    return getattr(activity.conversation, "conversation_type", None) in (None, PERSONAL)


def _channel_data(activity: Activity) -> Mapping[str, Any]:
    data = activity.channel_data
    return data if isinstance(data, Mapping) else {}


def channel_id(activity: Activity) -> str | None:
    """The Teams channel a channel message was posted in, without its thread suffix."""
    if not in_channel(activity):
        return None
    channel = _channel_data(activity).get("channel")
    if isinstance(channel, Mapping) and channel.get("id"):
        return str(channel["id"])
    return conversation_key(activity).split(";", 1)[0]


def tenant_id(activity: Activity) -> str | None:
    tenant = _channel_data(activity).get("tenant")
    if isinstance(tenant, Mapping) and tenant.get("id"):
        return str(tenant["id"])
    return getattr(activity.conversation, "tenant_id", None)


def _is_bot_mention(entity: Any, bot_id: str | None) -> bool:
    if getattr(entity, "type", "").lower() != "mention":
        return False
    mentioned = (getattr(entity, "additional_properties", None) or {}).get("mentioned") or {}
    return isinstance(mentioned, Mapping) and mentioned.get("id") == bot_id


def message_text(activity: Activity) -> str:
    """The words of a message, without the bot's @mention, tags or HTML entities.

    botbuilder's ``remove_recipient_mention`` feeds the bot's name to ``re.sub`` unescaped
    and strips that name anywhere in the text, so a display name that contains it would be
    damaged; here only the mention itself goes.
    """
    text = activity.text or ""
    bot_id = getattr(activity.recipient, "id", None)
    for entity in activity.entities or []:
        if not _is_bot_mention(entity, bot_id):
            continue
        mention_text = (entity.additional_properties or {}).get("text")
        if isinstance(mention_text, str) and mention_text:
            text = text.replace(mention_text, " ")
    # Anyone else mentioned stays in the text as their plain name.
    text = _AT_TAG.sub(lambda match: match.group(1), text)
    text = _BLOCK_TAG.sub(" ", text)
    return html.unescape(text).replace("\xa0", " ").strip()


def reference_json(activity: Activity) -> dict[str, JsonValue]:
    reference = TurnContext.get_conversation_reference(activity)
    serialized: dict[str, JsonValue] = reference.serialize()
    return serialized


def reference_from_json(data: Mapping[str, JsonValue]) -> ConversationReference:
    return ConversationReference.deserialize(dict(data))
