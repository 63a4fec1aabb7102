"""Making text safe and readable on a card: markdown escaping, bounded length, UTC times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from dialogs import escape_markdown

__all__ = ["card_text", "clock", "duration", "truncate"]

# escape_markdown keeps text on one line, so these can only start a block at the very
# beginning: "- x" or "+ x" would render as a list item, "1. x" as a numbered one.
_LEADING_BLOCK: Final = re.compile(r"^(\s*)([-+](?=\s)|\d{1,9}(?=\.(?:\s|$)))")
_ELLIPSIS: Final = "\N{HORIZONTAL ELLIPSIS}"


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + _ELLIPSIS


def card_text(text: str, *, limit: int | None = None) -> str:
    """Text from a user or from Microsoft, made inert for a TextBlock or FactSet.

    No link, emphasis, heading, list or ``<at>`` mention survives. Text is cut before it
    is escaped so an escape sequence is never split.
    """
    if limit is not None:
        text = truncate(text, limit)
    escaped = escape_markdown(text)
    match = _LEADING_BLOCK.match(escaped)
    if match is None:
        return escaped
    lead, marker = match.group(1), match.group(2)
    rest = escaped[match.end() :]
    if marker.isdigit():
        # "1." becomes "1\.": the digits stay, the list marker goes.
        return f"{lead}{marker}\\{rest}"
    return f"{lead}\\{marker}{rest}"


def clock(moment: datetime, now: datetime) -> str:
    """``14:05 UTC`` today, ``3 Mar 14:05 UTC`` another day, with the year if it differs."""
    at = moment.astimezone(UTC)
    today = now.astimezone(UTC)
    time = f"{at:%H:%M} UTC"
    if at.date() == today.date():
        return time
    day = f"{at.day} {at:%b}"
    if at.year != today.year:
        day += f" {at.year}"
    return f"{day} {time}"


def duration(start: datetime, end: datetime) -> str:
    """A short human duration: ``under a minute``, ``7 min``, ``2 h 5 min``, ``3 days``."""
    seconds = max(0.0, (end - start).total_seconds())
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"
