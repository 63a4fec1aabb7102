"""Building blocks every card shares: the card itself, actions, text and fact sets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.cards.constants import MAX_REFRESH_USER_IDS, VERB_REFRESH
from bot.cards.template import render

__all__ = ["execute_action", "facts", "heading", "new_card", "refresh", "text_block"]


def new_card(
    *,
    body: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]] = (),
    refresh_action: Mapping[str, Any] | None = None,
    fallback_text: str,
) -> dict[str, Any]:
    return render(
        "common",
        "card",
        body=[dict(element) for element in body],
        actions=[dict(action) for action in actions] or None,
        refresh=dict(refresh_action) if refresh_action is not None else None,
        fallback_text=fallback_text,
    )


def refresh(request_id: str, user_ids: Iterable[str]) -> dict[str, Any]:
    """Teams' automatic refresh for up to 60 users, each of whom gets their own view."""
    unique = [user_id for user_id in dict.fromkeys(user_ids) if user_id]
    return render(
        "common",
        "refresh",
        verb=VERB_REFRESH,
        data={"requestId": request_id},
        user_ids=unique[:MAX_REFRESH_USER_IDS],
    )


def execute_action(
    title: str, verb: str, data: Mapping[str, Any], *, style: str | None = None
) -> dict[str, Any]:
    """A Universal Action button; ``data`` comes back in the invoke unchanged."""
    return render("common", "execute", title=title, verb=verb, data=dict(data), style=style)


def heading(text: str) -> dict[str, Any]:
    return render("common", "title", text=text)


def text_block(
    text: str,
    *,
    color: str | None = None,
    weight: str | None = None,
    size: str | None = None,
    subtle: bool | None = None,
    spacing: str | None = None,
) -> dict[str, Any]:
    """A wrapping TextBlock; ``text`` is markdown and must already be escaped."""
    return render(
        "common",
        "text",
        text=text,
        color=color,
        weight=weight,
        size=size,
        subtle=subtle,
        spacing=spacing,
    )


def facts(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A FactSet; values are markdown in some Teams clients, so they must be escaped."""
    return render(
        "common",
        "facts",
        facts=[render("common", "fact", title=title, value=value) for title, value in pairs],
    )
