"""Cards for the request dialog: the form and the confirmation summary.

Their buttons carry the dialog's own data (``VERB_DIALOG``), so the bot hands whatever
comes back to the dialog without looking inside. Form inputs are not markdown: their
values are shown raw, exactly as the user typed them, while every TextBlock is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bot.cards.common import execute_action, facts, heading, new_card, text_block
from bot.cards.constants import VERB_DIALOG
from bot.cards.template import render
from bot.cards.text import card_text
from dialogs import Choice, ConfirmationCardSpec, FormField, RequestFormSpec
from provisioning.domain import MAX_DISPLAY_NAME_LENGTH

__all__ = ["confirmation_card", "request_form_card"]

ANY_AREA: Final = "any"
# A long list is easier to pick from when the client lets people type to filter it.
_FILTER_FROM: Final = 10


def confirmation_card(spec: ConfirmationCardSpec) -> dict[str, Any]:
    """The summary before submitting, with Submit, Edit and Cancel."""
    taken_note = None
    if spec.taken_upn:
        taken_note = text_block(
            f"{card_text(spec.taken_upn)} is already in use, so this name was chosen instead.",
            color="Warning",
            size="Small",
            spacing="None",
        )
    body = [
        heading("Check your request"),
        text_block("Submit it for approval, edit it, or cancel it.", subtle=True, spacing="None"),
        facts((card_text(f.label), card_text(f.value)) for f in spec.fields),
        render(
            "dialog",
            "upn_note",
            style="warning" if spec.taken_upn else "emphasis",
            text=f"The resource account will be **{card_text(spec.upn)}**",
            taken_note=taken_note,
        ),
    ]
    actions = [
        execute_action("Submit", VERB_DIALOG, spec.submit_data, style="positive"),
        execute_action("Edit", VERB_DIALOG, spec.edit_data),
        execute_action("Cancel", VERB_DIALOG, spec.cancel_data),
    ]
    return new_card(
        body=body, actions=actions, fallback_text="Check your PhoneDesk request and submit it."
    )


def request_form_card(spec: RequestFormSpec) -> dict[str, Any]:
    """The request form, prefilled, with each field's error shown right under it."""
    values = spec.values
    area_choices = _area_choices(spec.area_code_choices, values.area_code)
    body: list[dict[str, Any]] = [
        heading("Request a phone number"),
        text_block(
            "Fill in what you need and submit it; an approver will review it.",
            subtle=True,
            spacing="None",
        ),
        *_field(
            spec,
            FormField.COUNTRY,
            _choice_set(
                FormField.COUNTRY,
                "Country",
                spec.country_choices,
                values.country,
                required="Choose a country.",
            ),
        ),
        *_field(
            spec,
            FormField.AREA_CODE,
            _choice_set(FormField.AREA_CODE, "Area code", area_choices, values.area_code or "any"),
        ),
    ]
    if not spec.area_code_choices:
        body.append(
            text_block(
                "The area codes in stock are listed once a country is chosen; "
                "with Any, the service picks one.",
                subtle=True,
                size="Small",
                spacing="None",
            )
        )
    body += _field(
        spec,
        FormField.DISPLAY_NAME,
        render(
            "dialog",
            "text_input",
            id=FormField.DISPLAY_NAME.value,
            label="Display name",
            placeholder="e.g. Contoso Support",
            value=values.display_name or None,
            max_length=MAX_DISPLAY_NAME_LENGTH,
            error_message=(
                f"Enter a display name of at most {MAX_DISPLAY_NAME_LENGTH} characters."
            ),
        ),
    )
    if spec.upn:
        body.append(
            text_block(
                f"The account will be {card_text(spec.upn)}",
                subtle=True,
                size="Small",
                spacing="None",
            )
        )
    body += _field(
        spec,
        FormField.NUMBER_TYPE,
        _choice_set(
            FormField.NUMBER_TYPE,
            "Number type",
            spec.number_type_choices,
            values.number_type,
            required="Choose a number type.",
        ),
    )
    body += _field(
        spec,
        FormField.ACCOUNT_TYPE,
        _choice_set(
            FormField.ACCOUNT_TYPE,
            "Account type",
            spec.account_type_choices,
            values.account_type,
            required="Choose an account type.",
        ),
    )
    submit = execute_action("Submit for approval", VERB_DIALOG, spec.submit_data, style="positive")
    return new_card(
        body=body, actions=[submit], fallback_text="Request a phone number from PhoneDesk."
    )


def _field(
    spec: RequestFormSpec, form_field: FormField, element: dict[str, Any]
) -> list[dict[str, Any]]:
    error = spec.errors.get(form_field)
    if not error:
        return [element]
    return [element, render("dialog", "field_error", text=card_text(error))]


def _area_choices(offered: Sequence[Choice], current: str) -> tuple[Choice, ...]:
    """The offered area codes, then what the user asked for if it is not offered, then any."""
    specific = tuple(choice for choice in offered if choice.value.casefold() != ANY_AREA)
    anywhere = next(
        (choice for choice in offered if choice.value.casefold() == ANY_AREA),
        Choice(ANY_AREA, "Any area code"),
    )
    known = {choice.value.casefold() for choice in specific}
    if current and current.casefold() not in known and current.casefold() != ANY_AREA:
        # Keep what the user asked for selectable, so the error under it makes sense.
        specific += (Choice(current, current),)
    return (*specific, anywhere)


def _choice_set(
    form_field: FormField,
    label: str,
    choices: Sequence[Choice],
    current: str,
    *,
    required: str | None = None,
) -> dict[str, Any]:
    values = {choice.value for choice in choices}
    return render(
        "dialog",
        "choice_set",
        id=form_field.value,
        label=label,
        style="filtered" if len(choices) > _FILTER_FROM else "compact",
        choices=[
            render("dialog", "choice", title=choice.title, value=choice.value) for choice in choices
        ],
        value=current if current in values else None,
        required=True if required else None,
        error_message=required,
    )
