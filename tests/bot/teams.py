"""Teams-shaped activities, posted to the real app, and ways to read the cards it sends.

The activities look like what Teams sends a bot: ``channelData.tenant``, ``from`` with an
``aadObjectId``, mention entities in channels, ``conversationType`` personal or channel,
and ``adaptiveCard/action`` invokes for Universal Action clicks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient

from app import SERVICE_KEY, STORE_KEY, create_app
from provisioning.domain import Person
from provisioning.persistence.store import Store
from provisioning.service import ProvisioningService
from provisioning.settings import Settings
from tests.connector import RecordingConnector, SentActivity
from tests.provisioning.conftest import APPROVER, REQUESTER, SECOND_APPROVER, STRANGER

TENANT: Final = "3f6c2a9e-8b41-4d7a-9c5e-1a2b3c4d5e6f"
BOT: Final = {"id": "28:phonedesk-bot", "name": "PhoneDesk"}
CHANNEL_ID: Final = "19:approvals@thread.tacv2"
TEAM_ID: Final = "19:it-team@thread.tacv2"
_REQUEST_ID: Final = re.compile(r"PD-[0-9A-Z]{4}")


@dataclass(frozen=True)
class TeamsUser:
    person: Person
    mri: str

    @property
    def account(self) -> dict[str, str]:
        return {
            "id": self.mri,
            "name": self.person.display_name,
            "aadObjectId": self.person.aad_object_id,
        }


RITA = TeamsUser(REQUESTER, "29:1rita")
ABE = TeamsUser(APPROVER, "29:1abe")
ANN = TeamsUser(SECOND_APPROVER, "29:1ann")
SAM = TeamsUser(STRANGER, "29:1sam")


@dataclass(frozen=True)
class Conversation:
    id: str
    type: str
    channel: str | None = None

    def account(self) -> dict[str, str]:
        return {"id": self.id, "conversationType": self.type, "tenantId": TENANT}

    def channel_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tenant": {"id": TENANT}}
        if self.channel is not None:
            data["channel"] = {"id": self.channel}
            data["team"] = {"id": TEAM_ID}
        return data


def personal(user: TeamsUser) -> Conversation:
    return Conversation(f"a:1-personal-{user.mri}", "personal")


def channel_thread(message_id: str = "1700000000001") -> Conversation:
    return Conversation(f"{CHANNEL_ID};messageid={message_id}", "channel", CHANNEL_ID)


def thread_of(sent: SentActivity) -> Conversation:
    """The channel thread a message the bot posted lives in."""
    return Conversation(sent.conversation_id, "channel", CHANNEL_ID)


# --- reading cards -----------------------------------------------------------------------


def card_of(sent: SentActivity) -> dict[str, Any]:
    attachments = sent.body.get("attachments") or []
    assert attachments, f"no card in {sent.body.get('text')!r}"
    content: dict[str, Any] = attachments[0]["content"]
    return content


def has_card(sent: SentActivity) -> bool:
    return bool(sent.body.get("attachments"))


def _walk(node: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def card_text(card: Mapping[str, Any]) -> str:
    """Everything a reader of the card sees, as one string."""
    parts: list[str] = []
    for element in _walk(card.get("body", [])):
        for key in ("text", "title", "value"):
            value = element.get(key)
            if isinstance(value, str):
                parts.append(value)
    return "\n".join(parts)


def card_verbs(card: Mapping[str, Any]) -> list[str]:
    """The Universal Action verbs a reader can click (not the automatic refresh)."""
    actions = card.get("actions") or []
    return [
        str(action["verb"])
        for action in _walk(actions)
        if action.get("type") == "Action.Execute" and "verb" in action
    ]


def action_data(card: Mapping[str, Any], title: str) -> dict[str, Any]:
    """What clicking the card's button with this title sends back."""
    for action in _walk(card.get("actions") or []):
        if action.get("type") == "Action.Execute" and action.get("title") == title:
            return dict(action.get("data") or {})
    raise AssertionError(f"no {title!r} button on the card")


def request_id_in(text: str) -> str:
    match = _REQUEST_ID.search(text)
    assert match, f"no request id in {text!r}"
    return match.group(0)


# --- talking to the bot ------------------------------------------------------------------


@dataclass
class Teams:
    """A Teams client for tests: posts activities to /api/messages, reads the connector."""

    aiohttp_client: AiohttpClient
    settings: Settings
    connector: RecordingConnector
    service_url: str
    client: Any = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def service(self) -> ProvisioningService:
        return self.client.app[SERVICE_KEY]  # type: ignore[no-any-return]

    @property
    def store(self) -> Store:
        return self.client.app[STORE_KEY]  # type: ignore[no-any-return]

    async def start(self) -> None:
        self.client = await self.aiohttp_client(await create_app(self.settings))

    async def restart(self) -> None:
        """Stop the whole app, as a deploy would, and start a new one on the same data."""
        await self.client.close()
        await self.start()

    def _base(self, kind: str, user: TeamsUser, conversation: Conversation) -> dict[str, Any]:
        return {
            "type": kind,
            "id": f"incoming-{next(self._ids)}",
            "timestamp": "2026-03-02T09:00:00.000Z",
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "from": user.account,
            "recipient": BOT,
            "conversation": conversation.account(),
            "channelData": conversation.channel_data(),
            "locale": "en-US",
        }

    async def say(
        self, user: TeamsUser, text: str, conversation: Conversation | None = None
    ) -> list[SentActivity]:
        """Send a message; in a channel the bot is @mentioned. Returns the bot's replies.

        Replies are the messages the bot posted in that conversation while answering;
        card updates and posts elsewhere are in ``connector.sent``.
        """
        where = conversation or personal(user)
        activity = self._base("message", user, where)
        if where.type == "channel":
            mention = f"<at>{BOT['name']}</at>"
            activity["text"] = f"{mention}&nbsp;{text}"
            activity["entities"] = [
                {"type": "mention", "text": mention, "mentioned": dict(BOT)},
                {"type": "clientInfo", "locale": "en-US", "platform": "Web"},
            ]
        else:
            activity["text"] = text
        before = len(self.connector.sent)
        response = await self.client.post("/api/messages", json=activity)
        assert response.status in (200, 201), await response.text()
        return [
            sent
            for sent in self.connector.sent[before:]
            if sent.method == "POST" and sent.conversation_id == where.id
        ]

    async def click(
        self,
        user: TeamsUser,
        verb: str,
        data: Mapping[str, Any],
        conversation: Conversation,
        *,
        reply_to_id: str | None = None,
    ) -> dict[str, Any]:
        """An Action.Execute click (or refresh); returns the invoke response body."""
        activity = self._base("invoke", user, conversation)
        activity["name"] = "adaptiveCard/action"
        activity["value"] = {
            "action": {"type": "Action.Execute", "verb": verb, "data": dict(data)},
            "trigger": "automatic" if verb == "refresh" else "manual",
        }
        if reply_to_id is not None:
            activity["replyToId"] = reply_to_id
        response: ClientResponse = await self.client.post("/api/messages", json=activity)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body
