"""What the dialogs say, as plain data for the bot to render.

``Reply.text`` is Teams markdown written by PhoneDesk; any user text in it has already
been through ``escape_markdown``. Every string inside a card spec is plain, unescaped
text (form inputs need the raw value back), so the card renderer escapes what it shows.
``suggestions`` are button titles that send their own text back when clicked.

Buttons on cards send the ``data`` mappings given here; the bot passes whatever comes back
to ``handle_turn`` as ``Turn.data`` without looking inside, except to route it with
``is_dialog_action``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from provisioning.domain import AccountType, NumberType

__all__ = [
    "ACTION_FIELD",
    "DRAFT_FIELD",
    "SNAPSHOT_FIELD",
    "CardAction",
    "CardSpec",
    "Choice",
    "ConfirmationCardSpec",
    "FormField",
    "FormValues",
    "Reply",
    "RequestFormSpec",
    "SummaryField",
    "is_dialog_action",
]

ACTION_FIELD: Final = "action"
DRAFT_FIELD: Final = "draftId"
"""On the form: the draft id, the same for every submit of one form."""
SNAPSHOT_FIELD: Final = "snapshot"
"""On the confirmation card: the answers it showed, so a stale card is not acted on."""
CardData = Mapping[str, str]


class CardAction(StrEnum):
    SUBMIT = "phonedesk.request.submit"
    EDIT = "phonedesk.request.edit"
    CANCEL = "phonedesk.request.cancel"
    FORM_SUBMIT = "phonedesk.request.form.submit"


def is_dialog_action(data: Mapping[str, object]) -> bool:
    """Whether card data belongs to the request dialog (rather than, say, approval)."""
    return data.get(ACTION_FIELD) in set(CardAction)


@dataclass(frozen=True)
class Choice:
    value: str
    title: str


@dataclass(frozen=True)
class SummaryField:
    label: str
    value: str


@dataclass(frozen=True)
class ConfirmationCardSpec:
    """The summary shown before submitting, with Submit, Edit and Cancel buttons."""

    fields: tuple[SummaryField, ...]
    upn: str
    taken_upn: str | None
    """Set when the first UPN derived from the name was in use and ``upn`` replaces it."""
    submit_data: CardData
    edit_data: CardData
    cancel_data: CardData


class FormField(StrEnum):
    """Input ids on the request form; also the keys of its submitted data."""

    COUNTRY = "country"
    AREA_CODE = "areaCode"
    DISPLAY_NAME = "displayName"
    NUMBER_TYPE = "numberType"
    ACCOUNT_TYPE = "accountType"


@dataclass(frozen=True)
class FormValues:
    """What the form's inputs hold: empty strings for blanks."""

    country: str = ""
    area_code: str = ""
    display_name: str = ""
    number_type: str = NumberType.AUTO_ATTENDANT_TOLL.value
    account_type: str = AccountType.IVR_BOT.value

    def get(self, form_field: FormField) -> str:
        return {
            FormField.COUNTRY: self.country,
            FormField.AREA_CODE: self.area_code,
            FormField.DISPLAY_NAME: self.display_name,
            FormField.NUMBER_TYPE: self.number_type,
            FormField.ACCOUNT_TYPE: self.account_type,
        }[form_field]


@dataclass(frozen=True)
class RequestFormSpec:
    """The request form. ``errors`` go inline under their field; an empty area code means any."""

    values: FormValues
    errors: Mapping[FormField, str]
    country_choices: tuple[Choice, ...]
    area_code_choices: tuple[Choice, ...]
    """In-stock area codes of the chosen country; empty until a valid country is chosen."""
    number_type_choices: tuple[Choice, ...]
    account_type_choices: tuple[Choice, ...]
    submit_data: CardData
    upn: str | None = None
    """The UPN the current display name gives, once it is valid."""


CardSpec = ConfirmationCardSpec | RequestFormSpec


@dataclass(frozen=True)
class Reply:
    text: str
    suggestions: tuple[str, ...] = ()
    card: CardSpec | None = field(default=None)
