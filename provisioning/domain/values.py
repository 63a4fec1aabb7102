"""The small values every domain module shares: UTC times, E.164 numbers, visible text.

Timestamps are always timezone-aware UTC. A naive datetime is refused rather than guessed,
because a guess made in one process is wrong in another. Every model is frozen: a change
is a new value, which is what the store's compare-and-set and the workflow's replayed
steps expect.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
)

from provisioning.domain.phone_numbers import check_e164


def utc_now() -> datetime:
    return datetime.now(UTC)


# Categories that render as nothing or reorder what follows: controls (Cc), format characters
# such as bidi overrides and zero-width joiners (Cf), line and paragraph separators (Zl, Zp),
# and unassigned or private-use code points whose look nobody can predict.
def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC; naive input is a validation error."""


TelephoneNumber = Annotated[str, AfterValidator(check_e164)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def check_visible(name: str) -> None:
    """Refuse a display name that could look like something else, saying which character."""
    for position, ch in enumerate(name, start=1):
        if _invisible(ch):
            label = unicodedata.name(ch, "(a control character)")
            raise ValueError(
                "display name must not contain invisible or control characters, which can "
                f"make it look like another name; found U+{ord(ch):04X} {label} at position "
                f"{position}"
            )


def strip_invisible(name: str) -> str:
    """A name from Teams, with anything that could disguise it removed."""
    return "".join(ch for ch in name if not _invisible(ch)).strip()
