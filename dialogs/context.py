"""What a dialog turn needs to know about the tenant and the deployment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from dialogs.offer import Offer
from provisioning.domain import validate_upn

__all__ = ["DEFAULT_IDLE_LIMIT", "DialogContext"]

DEFAULT_IDLE_LIMIT: Final = timedelta(minutes=30)


def _nothing_taken(upn: str) -> bool:
    return False


@dataclass(frozen=True)
class DialogContext:
    offer: Offer
    upn_domain: str
    is_upn_taken: Callable[[str], bool] = field(default=_nothing_taken)
    """Case-insensitive check against UPNs in use or already promised to other requests."""
    idle_limit: timedelta = DEFAULT_IDLE_LIMIT
    approvals_channel_registered: bool = True

    def __post_init__(self) -> None:
        # A bad domain is a deployment mistake; failing here beats blaming the user's
        # display name for it later.
        validate_upn(f"x@{self.upn_domain}")
        if self.idle_limit <= timedelta(0):
            raise ValueError("idle_limit must be positive")
