"""Names the bot and the cards agree on: card verbs, input ids and Teams' limits."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "ADAPTIVE_CARD_CONTENT_TYPE",
    "MAX_REFRESH_USER_IDS",
    "REASON_INPUT_ID",
    "VERB_APPROVE",
    "VERB_CANCEL",
    "VERB_DIALOG",
    "VERB_REFRESH",
    "VERB_REJECT",
    "VERB_RETRY",
    "CardView",
]


class CardView(StrEnum):
    """Whose eyes a request card is rendered for; decides which buttons it carries."""

    APPROVER = "approver"
    REQUESTER = "requester"
    OBSERVER = "observer"


VERB_APPROVE: Final = "approve"
VERB_REJECT: Final = "reject"
VERB_CANCEL: Final = "cancel"
VERB_RETRY: Final = "retry"
VERB_REFRESH: Final = "refresh"
VERB_DIALOG: Final = "dialog"

REASON_INPUT_ID: Final = "reason"
"""The Input.Text id that carries a rejection reason in the reject invoke's action data."""

ADAPTIVE_CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"

MAX_REFRESH_USER_IDS: Final = 60
"""Teams refreshes a card automatically for at most this many users."""
