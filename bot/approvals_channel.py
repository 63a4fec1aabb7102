"""The approvers' channel: where new requests are posted for approval.

An approver registers it by saying ``approvals here`` in a Teams channel. It is kept in
the store's settings, so every replica and every restart posts to the same place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from provisioning.persistence.store import Store

__all__ = [
    "APPROVALS_CHANNEL_KEY",
    "ApprovalsChannel",
    "load_approvals_channel",
    "save_approvals_channel",
]

log = logging.getLogger(__name__)

APPROVALS_CHANNEL_KEY: Final = "approvals_channel"


@dataclass(frozen=True)
class ApprovalsChannel:
    channel_id: str
    """The Teams channel (``19:…@thread.tacv2``), without any thread suffix."""
    tenant_id: str | None
    reference: Mapping[str, JsonValue]
    """A conversation reference for the channel: its service URL and the bot's account."""
    registered_by: str

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "channelId": self.channel_id,
            "tenantId": self.tenant_id,
            "reference": dict(self.reference),
            "registeredBy": self.registered_by,
        }

    @classmethod
    def from_json(cls, value: JsonValue) -> ApprovalsChannel | None:
        if not isinstance(value, Mapping):
            return None
        channel_id, reference = value.get("channelId"), value.get("reference")
        if not isinstance(channel_id, str) or not isinstance(reference, Mapping):
            log.warning("ignoring an unreadable approvers' channel setting")
            return None
        tenant_id = value.get("tenantId")
        registered_by = value.get("registeredBy")
        return cls(
            channel_id=channel_id,
            tenant_id=tenant_id if isinstance(tenant_id, str) else None,
            reference=dict(reference),
            registered_by=registered_by if isinstance(registered_by, str) else "",
        )

    def is_home_of(self, conversation_key: str) -> bool:
        """Whether a conversation is this channel or one of its threads."""
        return conversation_key.split(";", 1)[0] == self.channel_id


async def load_approvals_channel(store: Store) -> ApprovalsChannel | None:
    value = await asyncio.to_thread(store.get_kv, APPROVALS_CHANNEL_KEY)
    return ApprovalsChannel.from_json(value) if value is not None else None


async def save_approvals_channel(store: Store, channel: ApprovalsChannel) -> None:
    await asyncio.to_thread(store.set_kv, APPROVALS_CHANNEL_KEY, channel.to_json())
