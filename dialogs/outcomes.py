"""How a request dialog can end, for the bot to act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provisioning.domain import NumberRequest

__all__ = ["Cancelled", "Expired", "Outcome", "Submitted"]


@dataclass(frozen=True)
class Submitted:
    """The requester confirmed; hand ``request`` to the service."""

    request: NumberRequest
    upn: str
    """The UPN shown to the requester; the workflow derives it again when it creates it."""
    draft_id: str
    """Same value for a repeated submission of one draft or form (a double click)."""


@dataclass(frozen=True)
class Cancelled:
    """The requester left the dialog; nothing was submitted."""


@dataclass(frozen=True)
class Expired:
    """The dialog sat idle past the limit and was dropped; nothing was submitted."""

    last_activity: datetime


Outcome = Submitted | Cancelled | Expired
