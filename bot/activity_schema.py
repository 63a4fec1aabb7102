"""The shape of an incoming activity, checked before botbuilder deserializes it.

``Activity().deserialize`` and the bot assume the types the Bot Framework schema promises
(``from`` an object, ``entities`` a list of objects, ``timestamp`` an ISO 8601 time); given
anything else they raise deep inside a turn. Checking here turns that into a 400 that names
the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

__all__ = ["MAX_DEPTH", "ActivityShapeError", "check_activity"]

MAX_DEPTH: Final = 64
"""Deeper than any card data or channelData Teams sends; deeper JSON is refused."""

_ACCOUNTS: Final = ("from", "recipient", "conversation")
_STRINGS: Final = (
    "id",
    "channelId",
    "text",
    "name",
    "replyToId",
    "locale",
    "textFormat",
    "summary",
    "action",
)
_TIMES: Final = ("timestamp", "localTimestamp")
_ACCOUNT_LISTS: Final = ("membersAdded", "membersRemoved")
_ACCOUNT_STRINGS: Final = ("id", "name", "aadObjectId", "role", "conversationType", "tenantId")


class ActivityShapeError(ValueError):
    """The message names the field, for a 400 the sender can act on."""


def _depth_exceeds(node: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _check_account(value: object, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ActivityShapeError(f"`{where}` must be an object")
    for key in _ACCOUNT_STRINGS:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise ActivityShapeError(f"`{where}.{key}` must be a string")


def _check_objects(value: object, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise ActivityShapeError(f"`{where}` must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ActivityShapeError(f"`{where}[{index}]` must be an object")
    return value


def check_activity(body: object) -> Mapping[str, Any]:
    """Raise ActivityShapeError unless ``body`` has the shape of a Bot Framework activity."""
    if not isinstance(body, Mapping):
        raise ActivityShapeError("the body must be a JSON object (a Bot Framework activity)")
    if _depth_exceeds(body, MAX_DEPTH):
        raise ActivityShapeError(f"the activity is nested deeper than {MAX_DEPTH} levels")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise ActivityShapeError("`type` must be a non-empty string")
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url:
        raise ActivityShapeError("`serviceUrl` must be a non-empty string")
    for key in _STRINGS:
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ActivityShapeError(f"`{key}` must be a string")
    for key in _TIMES:
        value = body.get(key)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            datetime.fromisoformat(value)
        except ValueError:
            raise ActivityShapeError(f"`{key}` must be an ISO 8601 date and time") from None
    if not isinstance(body.get("conversation"), Mapping):
        raise ActivityShapeError("`conversation` must be an object")
    for key in _ACCOUNTS:
        if body.get(key) is not None:
            _check_account(body[key], key)
    conversation_id = body["conversation"].get("id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ActivityShapeError("`conversation.id` must be a non-empty string")
    for key in _ACCOUNT_LISTS:
        if body.get(key) is not None:
            for index, account in enumerate(_check_objects(body[key], key)):
                _check_account(account, f"{key}[{index}]")
    if body.get("attachments") is not None:
        for index, attachment in enumerate(_check_objects(body["attachments"], "attachments")):
            for key in ("contentType", "contentUrl", "name"):
                item = attachment.get(key)
                if item is not None and not isinstance(item, str):
                    raise ActivityShapeError(f"`attachments[{index}].{key}` must be a string")
    if body.get("entities") is not None:
        for index, entity in enumerate(_check_objects(body["entities"], "entities")):
            if not isinstance(entity.get("type"), str):
                raise ActivityShapeError(f"`entities[{index}].type` must be a string")
            mentioned = entity.get("mentioned")
            if mentioned is not None:
                _check_account(mentioned, f"entities[{index}].mentioned")
    channel_data = body.get("channelData")
    if channel_data is not None:
        if not isinstance(channel_data, Mapping):
            raise ActivityShapeError("`channelData` must be an object")
        for key in ("tenant", "channel", "team"):
            item = channel_data.get(key)
            if item is not None:
                _check_account(item, f"channelData.{key}")
    return body
