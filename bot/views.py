"""Which request card each person sees, and who gets their own view refreshed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal

from bot.cards import MAX_REFRESH_USER_IDS, CardView, request_card
from dialogs import escape_markdown
from provisioning.domain import Person, Request

__all__ = ["refresh_user_ids", "render_request_card", "user_mri", "view_for", "with_notice"]

_ORG_USER_MRI_PREFIX: Final = "8:orgid:"


def user_mri(aad_object_id: str) -> str:
    """The Teams id of an Entra user that ``refresh.userIds`` accepts.

    The ``29:`` id in activities is scoped to the bot and only known once the person has
    written to it; approvers who never did are known by their Entra object id alone.
    """
    return f"{_ORG_USER_MRI_PREFIX}{aad_object_id}"


def refresh_user_ids(request: Request, approvers: Iterable[str]) -> list[str]:
    """The requester first, then the approvers; Teams refreshes for at most 60 users."""
    ids = dict.fromkeys(
        user_mri(aad) for aad in (request.requester.aad_object_id, *approvers) if aad
    )
    return list(ids)[:MAX_REFRESH_USER_IDS]


def view_for(person: Person, request: Request, *, is_approver: bool) -> CardView:
    # A requester who is also an approver gets the requester's view: approving their own
    # request is refused anyway, and Cancel is what they can use.
    if person.aad_object_id.lower() == request.requester.aad_object_id.lower():
        return CardView.REQUESTER
    if is_approver:
        return CardView.APPROVER
    return CardView.OBSERVER


def render_request_card(
    request: Request, view: CardView, approvers: Iterable[str], now: datetime
) -> dict[str, Any]:
    return request_card(
        request, view=view, refresh_user_ids=refresh_user_ids(request, approvers), now=now
    )


def with_notice(
    card: Mapping[str, Any], text: str, *, tone: Literal["good", "attention"]
) -> dict[str, Any]:
    """The card with a line on top saying what the click did, or why it did nothing."""
    notice = {
        "type": "TextBlock",
        "text": escape_markdown(text),
        "wrap": True,
        "weight": "Bolder",
        "color": "Good" if tone == "good" else "Attention",
    }
    return {**card, "body": [notice, *card.get("body", [])]}
