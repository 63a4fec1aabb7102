"""Adaptive Cards for PhoneDesk, rendered as plain dicts from domain values and dialog specs.

Nothing here talks to Teams or imports botbuilder: the bot wraps the dicts with
``adaptive_attachment`` and sends them.
"""

from bot.cards.constants import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    MAX_REFRESH_USER_IDS,
    REASON_INPUT_ID,
    VERB_APPROVE,
    VERB_CANCEL,
    VERB_DIALOG,
    VERB_REFRESH,
    VERB_REJECT,
    VERB_RETRY,
    CardView,
)
from bot.cards.dialog_cards import confirmation_card, request_form_card
from bot.cards.envelope import adaptive_attachment, card_size_bytes
from bot.cards.request_card import MAX_REASON_LENGTH, request_card

__all__ = [
    "ADAPTIVE_CARD_CONTENT_TYPE",
    "MAX_REASON_LENGTH",
    "MAX_REFRESH_USER_IDS",
    "REASON_INPUT_ID",
    "VERB_APPROVE",
    "VERB_CANCEL",
    "VERB_DIALOG",
    "VERB_REFRESH",
    "VERB_REJECT",
    "VERB_RETRY",
    "CardView",
    "adaptive_attachment",
    "card_size_bytes",
    "confirmation_card",
    "request_card",
    "request_form_card",
]
