from __future__ import annotations

from collections.abc import Mapping

import pytest

from dialogs import (
    Choice,
    DialogContext,
    FormField,
    RequestFormSpec,
    Submitted,
    new_form,
    validate_form,
)
from dialogs.slots import SlotError, check_area_code, check_display_name, match_country
from provisioning.domain import AccountType, NumberRequest, NumberType
from tests.dialogs.chat import DOMAIN, NOW, make_context, make_offer

F = FormField
VALID: Mapping[str, object] = {
    "action": "phonedesk.request.form.submit",
    "draftId": "draft-1",
    "country": "US",
    "areaCode": "425",
    "displayName": "Contoso Support",
    "numberType": "AutoAttendantToll",
    "accountType": "ivr_bot",
}


def rejected(result: Submitted | RequestFormSpec) -> RequestFormSpec:
    assert isinstance(result, RequestFormSpec), result
    return result


def with_values(**changes: object) -> dict[str, object]:
    return {**VALID, **changes}


def test_a_valid_form_is_a_submission(ctx: DialogContext) -> None:
    result = validate_form(VALID, ctx, NOW)
    assert result == Submitted(
        request=NumberRequest(
            country="US",
            area_code="425",
            display_name="Contoso Support",
            number_type=NumberType.AUTO_ATTENDANT_TOLL,
            account_type=AccountType.IVR_BOT,
        ),
        upn=f"contoso.support@{DOMAIN}",
        draft_id="draft-1",
    )


def test_form_values_are_read_leniently(ctx: DialogContext) -> None:
    result = validate_form(
        with_values(
            country="united kingdom",
            areaCode=" 20 ",
            displayName="  Help Desk ",
            numberType="",
            accountType="call_queue",
        ),
        ctx,
        NOW,
    )
    assert isinstance(result, Submitted)
    assert result.request.country == "GB"
    assert result.request.area_code == "20"
    assert result.request.display_name == "Help Desk"
    assert result.request.number_type is NumberType.AUTO_ATTENDANT_TOLL
    assert result.request.account_type is AccountType.CALL_QUEUE


def test_an_empty_area_code_means_any(ctx: DialogContext) -> None:
    result = validate_form(with_values(areaCode=""), ctx, NOW)
    assert isinstance(result, Submitted)
    assert result.request.area_code is None


def test_a_taken_upn_is_replaced_by_an_alternative() -> None:
    ctx = make_context(taken=[f"contoso.support@{DOMAIN}"])
    result = validate_form(VALID, ctx, NOW)
    assert isinstance(result, Submitted)
    assert result.upn == f"contoso.support2@{DOMAIN}"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"country": ""}, F.COUNTRY, "Choose a country."),
        ({"country": "Atlantis"}, F.COUNTRY, "couldn't find a country called"),
        ({"country": "JP"}, F.COUNTRY, "isn't one of the countries"),
        ({"areaCode": "212"}, F.AREA_CODE, "212 (New York) is out of stock"),
        ({"areaCode": "999"}, F.AREA_CODE, "isn't an area code United States offers"),
        ({"areaCode": "Gotham"}, F.AREA_CODE, "isn't an area code or a city"),
        ({"displayName": ""}, F.DISPLAY_NAME, "must not be blank"),
        ({"displayName": "x" * 257}, F.DISPLAY_NAME, "at most 256"),
        ({"displayName": "a\nb"}, F.DISPLAY_NAME, "control characters"),
        ({"displayName": "\u30b5\u30dd\u30fc\u30c8"}, F.DISPLAY_NAME, "usable in a user name"),
        ({"numberType": "Fax"}, F.NUMBER_TYPE, "isn't a number type"),
        ({"accountType": "robot army"}, F.ACCOUNT_TYPE, "isn't an account type"),
    ],
)
def test_each_bad_field_gets_its_own_error(
    ctx: DialogContext, changes: dict[str, object], field: FormField, message: str
) -> None:
    form = rejected(validate_form(with_values(**changes), ctx, NOW))
    assert list(form.errors) == [field]
    assert message in form.errors[field]


def test_every_bad_field_is_reported_at_once(ctx: DialogContext) -> None:
    form = rejected(
        validate_form(
            with_values(country="US", areaCode="212", displayName="", accountType="?"), ctx, NOW
        )
    )
    assert set(form.errors) == {F.AREA_CODE, F.DISPLAY_NAME, F.ACCOUNT_TYPE}


def test_the_area_code_is_not_judged_without_a_valid_country(ctx: DialogContext) -> None:
    form = rejected(validate_form(with_values(country="Atlantis", areaCode="212"), ctx, NOW))
    assert set(form.errors) == {F.COUNTRY}
    assert form.area_code_choices == ()


def reason(result: object) -> str:
    assert isinstance(result, SlotError), result
    return result.reason


def test_the_form_and_the_chat_give_the_same_reasons(ctx: DialogContext) -> None:
    form = rejected(validate_form(with_values(country="Narnia", displayName=" "), ctx, NOW))
    assert form.errors[F.COUNTRY] == reason(match_country("Narnia", ctx.offer))
    assert form.errors[F.DISPLAY_NAME] == reason(check_display_name(" ", ctx))
    us = make_offer().country("US")
    assert us is not None
    form = rejected(validate_form(with_values(areaCode="212"), ctx, NOW))
    assert form.errors[F.AREA_CODE] == reason(
        check_area_code("212", us, NumberType.AUTO_ATTENDANT_TOLL)
    )


def test_a_rejected_form_keeps_what_was_typed_and_its_draft_id(ctx: DialogContext) -> None:
    form = rejected(validate_form(with_values(areaCode="212", displayName="Help Desk"), ctx, NOW))
    assert form.values.country == "US"
    assert form.values.area_code == "212"
    assert form.values.display_name == "Help Desk"
    assert form.upn == f"help.desk@{DOMAIN}"
    assert form.submit_data["draftId"] == "draft-1"


def test_a_rejected_form_offers_the_area_codes_in_stock_for_its_country(
    ctx: DialogContext,
) -> None:
    form = rejected(validate_form(with_values(areaCode="212"), ctx, NOW))
    assert form.area_code_choices == (
        Choice("206", "206 (Seattle)"),
        Choice("425", "425 (Redmond)"),
        Choice("any", "Any area code"),
    )


def test_a_new_form_offers_every_country_and_type(ctx: DialogContext) -> None:
    form = new_form(ctx, NOW)
    assert form.errors == {}
    assert form.values.country == ""
    assert Choice("US", "United States") in form.country_choices
    assert len(form.country_choices) == len(ctx.offer.countries)
    assert [c.value for c in form.number_type_choices] == [t.value for t in NumberType]
    assert [c.value for c in form.account_type_choices] == [t.value for t in AccountType]
    assert form.area_code_choices == ()


def test_every_submit_of_one_form_carries_the_same_draft_id(ctx: DialogContext) -> None:
    form = new_form(ctx, NOW)
    data = {**VALID, **form.submit_data}
    first = validate_form(data, ctx, NOW)
    again = validate_form(data, ctx, NOW.replace(minute=5))
    assert isinstance(first, Submitted)
    assert isinstance(again, Submitted)
    assert first.draft_id == again.draft_id == form.submit_data["draftId"]
