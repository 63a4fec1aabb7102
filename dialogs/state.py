"""The request dialog's saved state: which question is open and what has been answered.

The bot stores ``DialogState.model_dump(mode="json")`` under ``DialogKey.storage_key``
between turns and reads it back with ``load_state``, so a dialog survives a restart. The
``version`` field lets a later release refuse a shape it no longer understands instead of
misreading it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from provisioning.domain import AccountType, NumberType, UtcDatetime

__all__ = [
    "STATE_VERSION",
    "AreaChoice",
    "DialogKey",
    "DialogState",
    "PendingAnswers",
    "Slots",
    "Step",
    "draft_id_at",
    "load_state",
]

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def draft_id_at(moment: datetime) -> str:
    """A draft's id, from when it was started; unique enough per requester."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Step(StrEnum):
    """The question the dialog is waiting on: the conversation's states."""

    COUNTRY = "country"
    AREA_CODE = "area_code"
    DISPLAY_NAME = "display_name"
    CONFIRM = "confirm"
    CHOOSE_EDIT = "choose_edit"
    NUMBER_TYPE = "number_type"
    ACCOUNT_TYPE = "account_type"


class AreaChoice(_Frozen):
    """An answered area code; ``code=None`` is the answer "any"."""

    code: str | None = None

    @property
    def label(self) -> str:
        return self.code if self.code is not None else "any"


class Slots(_Frozen):
    """Accepted answers. ``None`` means not answered (yet, or again after back/edit)."""

    country: str | None = None
    """ISO 3166 alpha-2 code."""
    area: AreaChoice | None = None
    display_name: str | None = None
    upn: str | None = None
    """Derived from the display name; a preview, the workflow derives it again."""
    taken_upn: str | None = None
    """The UPN the display name gave first, when it was already in use."""
    number_type: NumberType = NumberType.AUTO_ATTENDANT_TOLL
    account_type: AccountType = AccountType.IVR_BOT

    def fingerprint(self) -> str:
        """Short digest of the answers; a card carries it so a stale card is recognised."""
        payload = self.model_dump_json().encode()
        return hashlib.sha256(payload).hexdigest()[:16]


class PendingAnswers(_Frozen):
    """Raw answers given ahead of their question (one-shot input), checked in turn."""

    country: str | None = None
    area: str | None = None
    display_name: str | None = None


_Id = Annotated[str, StringConstraints(min_length=1)]


class DialogKey(_Frozen):
    """One dialog per user per conversation."""

    conversation_id: _Id
    user_id: _Id
    """The user's Entra object id (``from.aadObjectId``)."""

    @property
    def storage_key(self) -> str:
        return f"dialog/{self.conversation_id}/{self.user_id}"


class DialogState(_Frozen):
    version: Literal[1] = STATE_VERSION
    step: Step
    slots: Slots = Slots()
    pending: PendingAnswers = PendingAnswers()
    started_at: UtcDatetime
    last_activity: UtcDatetime

    @property
    def draft_id(self) -> str:
        """Identifies this draft for the requester, e.g. to drop a duplicate submission."""
        return draft_id_at(self.started_at)


def load_state(data: str | bytes | Mapping[str, object] | None) -> DialogState | None:
    """Read stored state; ``None`` when there is none or it cannot be used any more.

    State written by another version (or damaged) is dropped rather than guessed at: the
    user is asked again, which beats resuming a dialog with misread answers.
    """
    if data is None:
        return None
    try:
        if isinstance(data, str | bytes):
            return DialogState.model_validate_json(data)
        return DialogState.model_validate(data)
    except ValidationError as exc:
        log.warning("dropping unreadable dialog state: %s", exc.errors(include_input=False))
        return None
