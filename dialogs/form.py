"""The request form: the dialog's questions as one Adaptive Card, checked in one go.

Every field is checked with the same slot checks the chat dialog uses; the errors come back
per field so the bot can show them under their inputs on the returned card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from dialogs.context import DialogContext
from dialogs.offer import CountryOffer
from dialogs.outcomes import Submitted
from dialogs.replies import (
    ACTION_FIELD,
    DRAFT_FIELD,
    CardAction,
    Choice,
    FormField,
    FormValues,
    RequestFormSpec,
)
from dialogs.slots import (
    ACCOUNT_TYPE_LABELS,
    NUMBER_TYPE_LABELS,
    NameChoice,
    SlotError,
    check_account_type,
    check_area_code,
    check_display_name,
    check_number_type,
    match_country,
    number_type_choices,
)
from dialogs.state import AreaChoice, draft_id_at
from provisioning.domain import AccountType, NumberRequest, NumberType

__all__ = ["new_form", "validate_form"]


def new_form(ctx: DialogContext, now: datetime) -> RequestFormSpec:
    """An empty form; its draft id is fixed now so a double-clicked submit is recognisable."""
    return _spec(FormValues(), {}, ctx, draft_id_at(now))


def _text(data: Mapping[str, object], form_field: FormField, default: str = "") -> str:
    value = data.get(form_field.value)
    text = "" if value is None else str(value)
    return text if text.strip() else default


def validate_form(
    data: Mapping[str, object], ctx: DialogContext, now: datetime
) -> Submitted | RequestFormSpec:
    """Check submitted form data; a submission, or the form again with an error per field."""
    defaults = FormValues()
    values = FormValues(
        country=_text(data, FormField.COUNTRY),
        area_code=_text(data, FormField.AREA_CODE),
        display_name=_text(data, FormField.DISPLAY_NAME),
        number_type=_text(data, FormField.NUMBER_TYPE, defaults.number_type),
        account_type=_text(data, FormField.ACCOUNT_TYPE, defaults.account_type),
    )
    raw_draft_id = data.get(DRAFT_FIELD)
    draft_id = str(raw_draft_id) if raw_draft_id else draft_id_at(now)
    errors: dict[FormField, str] = {}

    country: CountryOffer | None = None
    if not values.country:
        errors[FormField.COUNTRY] = "Choose a country."
    else:
        matched = match_country(values.country, ctx.offer)
        if isinstance(matched, SlotError):
            errors[FormField.COUNTRY] = matched.reason
        else:
            country = matched
            values = replace(values, country=matched.iso_code)

    number_type = check_number_type(values.number_type, country, NumberType(defaults.number_type))
    if isinstance(number_type, SlotError):
        errors[FormField.NUMBER_TYPE] = number_type.reason
    else:
        values = replace(values, number_type=number_type.value)

    account_type = check_account_type(values.account_type)
    if isinstance(account_type, SlotError):
        errors[FormField.ACCOUNT_TYPE] = account_type.reason
    else:
        values = replace(values, account_type=account_type.value)

    area: AreaChoice | SlotError | None = None
    if country is not None and isinstance(number_type, NumberType):
        area = check_area_code(values.area_code or "any", country, number_type)
        if isinstance(area, SlotError):
            errors[FormField.AREA_CODE] = area.reason

    name = check_display_name(values.display_name, ctx)
    if isinstance(name, SlotError):
        errors[FormField.DISPLAY_NAME] = name.reason

    if (
        errors
        or country is None
        or not isinstance(area, AreaChoice)
        or not isinstance(number_type, NumberType)
        or not isinstance(account_type, AccountType)
        or not isinstance(name, NameChoice)
    ):
        upn = name.upn if isinstance(name, NameChoice) else None
        valid_type = number_type if isinstance(number_type, NumberType) else None
        return _spec(
            values, errors, ctx, draft_id, upn=upn, country=country, number_type=valid_type
        )
    request = NumberRequest(
        country=country.iso_code,
        area_code=area.code,
        display_name=name.display_name,
        number_type=number_type,
        account_type=account_type,
    )
    return Submitted(request=request, upn=name.upn, draft_id=draft_id)


def _spec(
    values: FormValues,
    errors: Mapping[FormField, str],
    ctx: DialogContext,
    draft_id: str,
    *,
    upn: str | None = None,
    country: CountryOffer | None = None,
    number_type: NumberType | None = None,
) -> RequestFormSpec:
    area_choices: tuple[Choice, ...] = ()
    if country is not None and number_type is not None:
        area_choices = (
            *(
                Choice(a.area_code, f"{a.area_code} ({a.city})" if a.city else a.area_code)
                for a in country.in_stock(number_type)
            ),
            Choice("any", "Any area code"),
        )
    return RequestFormSpec(
        values=values,
        errors=dict(errors),
        country_choices=tuple(Choice(c.iso_code, c.name) for c in ctx.offer.countries),
        area_code_choices=area_choices,
        number_type_choices=tuple(
            Choice(t.value, NUMBER_TYPE_LABELS[t]) for t in number_type_choices(country)
        ),
        account_type_choices=tuple(
            Choice(t.value, label) for t, label in ACCOUNT_TYPE_LABELS.items()
        ),
        submit_data={ACTION_FIELD: CardAction.FORM_SUBMIT.value, DRAFT_FIELD: draft_id},
        upn=upn,
    )
