"""The card envelope: the Adaptive Card skeleton, the attachment wrapper and size checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.cards.constants import ADAPTIVE_CARD_CONTENT_TYPE

__all__ = ["adaptive_attachment", "card_size_bytes"]


def adaptive_attachment(card: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a card as a Bot Framework attachment."""
    return {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": dict(card)}


def card_size_bytes(card: Mapping[str, Any]) -> int:
    """The card's size on the wire, as UTF-8 JSON, to compare with Teams' message limit."""
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
