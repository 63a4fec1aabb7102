from __future__ import annotations

import pytest

from dialogs import CountryOffer, DialogContext
from dialogs.slots import (
    NameChoice,
    SlotError,
    check_account_type,
    check_area_code,
    check_display_name,
    check_number_type,
    match_country,
)
from dialogs.state import AreaChoice
from provisioning.domain import AccountType, NumberType
from tests.dialogs.chat import DOMAIN, TOLL_FREE, make_context, make_offer

OFFER = make_offer()
TOLL = NumberType.AUTO_ATTENDANT_TOLL


def country(iso: str) -> CountryOffer:
    found = OFFER.country(iso)
    assert found is not None
    return found


def error(result: object) -> SlotError:
    assert isinstance(result, SlotError), result
    return result


# --- country ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "iso"),
    [
        ("US", "US"),
        ("us", "US"),
        ("U.S.", "US"),
        ("United States", "US"),
        ("  united   STATES ", "US"),
        ("USA", "US"),
        ("the United Kingdom", "GB"),
        ("UK", "GB"),
        ("gb", "GB"),
        ("Deutschland", "DE"),
        ("Österreich", "AT"),
        ("Germny", "DE"),
        ("Ger", "DE"),
        ("kingdom", "GB"),
        ("Frnce", "FR"),
    ],
)
def test_country_is_matched_by_name_code_alias_or_near_spelling(answer: str, iso: str) -> None:
    result = match_country(answer, OFFER)
    assert isinstance(result, CountryOffer), result
    assert result.iso_code == iso


def test_a_name_matching_several_countries_asks_which_one() -> None:
    problem = error(match_country("United", OFFER))
    assert "United States" in problem.reason
    assert "United Kingdom" in problem.reason
    assert set(problem.suggestions) == {"United States", "United Kingdom"}


def test_a_spelling_close_to_two_countries_is_not_guessed() -> None:
    problem = error(match_country("Austrlia", OFFER))
    assert "Did you mean" in problem.reason
    assert set(problem.suggestions) == {"Australia", "Austria"}


def test_a_real_country_the_tenant_cannot_order_in_is_refused_with_the_choices() -> None:
    problem = error(match_country("JP", OFFER))
    assert "isn't one of the countries this tenant can order numbers in" in problem.reason
    assert "United States" in problem.reason
    assert problem.suggestions[:2] == ("United States", "United Kingdom")


def test_an_alias_of_a_country_not_offered_is_refused_rather_than_fuzzy_matched() -> None:
    problem = error(match_country("Holland", OFFER))
    assert "isn't one of the countries" in problem.reason


def test_an_unknown_country_lists_what_can_be_ordered() -> None:
    problem = error(match_country("Atlantis", OFFER))
    assert "Atlantis" in problem.reason
    assert "Germany" in problem.reason
    assert 0 < len(problem.suggestions) <= 6


def test_a_blank_country_asks_for_one() -> None:
    assert "Tell me a country" in error(match_country("   ", OFFER)).reason


# --- area code -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code"),
    [("425", "425"), (" (206) ", "206"), ("Seattle", "206"), ("redmond", "425")],
)
def test_an_area_code_in_stock_is_accepted_by_code_or_city(answer: str, code: str) -> None:
    assert check_area_code(answer, country("US"), TOLL) == AreaChoice(code=code)


@pytest.mark.parametrize("answer", ["any", "ANY", "no preference", "don't care", "whatever"])
def test_any_lets_the_service_choose(answer: str) -> None:
    assert check_area_code(answer, country("US"), TOLL) == AreaChoice(code=None)


def test_an_area_code_out_of_stock_is_refused_and_others_offered() -> None:
    problem = error(check_area_code("212", country("US"), TOLL))
    assert "212 (New York) is out of stock in United States" in problem.reason
    assert "In stock: 206 (Seattle) and 425 (Redmond)." in problem.reason
    assert problem.suggestions == ("206", "425", "any")


def test_an_out_of_stock_city_is_refused_too() -> None:
    assert "out of stock" in error(check_area_code("München", country("DE"), TOLL)).reason


def test_an_area_code_not_offered_for_the_number_type_is_refused() -> None:
    problem = error(check_area_code("800", country("US"), TOLL))
    assert "isn't an area code United States offers for auto attendant (toll)" in problem.reason
    assert check_area_code("800", country("US"), TOLL_FREE) == AreaChoice(code="800")


def test_a_non_area_code_answer_is_refused_with_the_choices() -> None:
    problem = error(check_area_code("somewhere nice", country("GB"), TOLL))
    assert "isn't an area code or a city" in problem.reason
    assert "20 (London)" in problem.reason
    assert problem.suggestions == ("20", "161", "any")


def test_a_blank_area_code_asks_for_one() -> None:
    assert "Tell me an area code" in error(check_area_code("", country("GB"), TOLL)).reason


def test_a_country_with_nothing_in_stock_still_allows_any() -> None:
    problem = error(check_area_code("1", country("FR"), TOLL))
    assert "No auto attendant (toll) numbers are in stock in France" in problem.reason
    assert problem.suggestions == ("any",)
    assert check_area_code("any", country("FR"), TOLL) == AreaChoice(code=None)


# --- display name ----------------------------------------------------------------------


def test_a_display_name_gives_its_upn(ctx: DialogContext) -> None:
    choice = check_display_name("Contoso Support (Émilie)", ctx)
    assert choice == NameChoice(
        display_name="Contoso Support (Émilie)",
        upn=f"contoso.support.emilie@{DOMAIN}",
        taken_upn=None,
    )


def test_surrounding_quotes_and_spaces_are_not_part_of_the_name(ctx: DialogContext) -> None:
    choice = check_display_name('  "Help Desk"  ', ctx)
    assert isinstance(choice, NameChoice)
    assert choice.display_name == "Help Desk"


def test_a_taken_upn_gets_an_alternative_and_says_which_was_taken() -> None:
    ctx = make_context(taken=[f"help.desk@{DOMAIN}", f"HELP.DESK2@{DOMAIN}"])
    choice = check_display_name("Help Desk", ctx)
    assert isinstance(choice, NameChoice)
    assert choice.upn == f"help.desk3@{DOMAIN}"
    assert choice.taken_upn == f"help.desk@{DOMAIN}"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("   ", "must not be blank"),
        ("x" * 257, "at most 256"),
        ("Help\x07Desk", "control characters"),
        ("サポート", "no letters or digits usable in a user name"),
    ],
)
def test_display_names_entra_refuses_are_refused_with_the_reason(
    ctx: DialogContext, answer: str, reason: str
) -> None:
    assert reason in error(check_display_name(answer, ctx)).reason


def test_a_display_name_at_the_length_limit_is_accepted(ctx: DialogContext) -> None:
    assert isinstance(check_display_name("x" * 256, ctx), NameChoice)


def test_a_name_whose_every_alternative_is_taken_is_refused() -> None:
    ctx = DialogContext(offer=OFFER, upn_domain=DOMAIN, is_upn_taken=lambda upn: True)
    assert "all taken" in error(check_display_name("Help Desk", ctx)).reason


# --- number type and account type ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "current", "chosen"),
    [
        ("AutoAttendantTollFree", TOLL, TOLL_FREE),
        ("Auto attendant (toll-free)", TOLL, TOLL_FREE),
        ("toll free", TOLL, TOLL_FREE),
        ("toll", TOLL_FREE, TOLL),
        ("toll-free", NumberType.CALL_QUEUE_TOLL, NumberType.CALL_QUEUE_TOLL_FREE),
    ],
)
def test_number_type_by_name_label_or_shorthand(
    answer: str, current: NumberType, chosen: NumberType
) -> None:
    assert check_number_type(answer, None, current) is chosen


def test_a_number_type_the_country_does_not_offer_is_refused() -> None:
    problem = error(check_number_type("toll free", country("GB"), TOLL))
    assert "United Kingdom doesn't offer auto attendant (toll-free) numbers" in problem.reason
    assert problem.suggestions == ("Auto attendant (toll)",)


def test_an_unknown_number_type_lists_the_choices() -> None:
    problem = error(check_number_type("mobile", country("US"), TOLL))
    assert problem.suggestions == ("Auto attendant (toll)", "Auto attendant (toll-free)")


@pytest.mark.parametrize(
    ("answer", "chosen"),
    [
        ("IVR bot", AccountType.IVR_BOT),
        ("ivr_bot", AccountType.IVR_BOT),
        ("Auto attendant", AccountType.AUTO_ATTENDANT),
        ("call_queue", AccountType.CALL_QUEUE),
        ("queue", AccountType.CALL_QUEUE),
    ],
)
def test_account_type_by_label_value_or_short_word(answer: str, chosen: AccountType) -> None:
    assert check_account_type(answer) is chosen


def test_an_unknown_account_type_lists_the_choices() -> None:
    problem = error(check_account_type("fax machine"))
    assert problem.suggestions == ("IVR bot", "Auto attendant", "Call queue")
