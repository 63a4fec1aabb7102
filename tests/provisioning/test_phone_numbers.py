"""E.164 checks and area-code geography, for countries a hand-written table never listed."""

from __future__ import annotations

import pytest

from provisioning.domain.phone_numbers import check_e164, national_area_code, number_in_area


@pytest.mark.parametrize(
    ("number", "country", "area_code"),
    [
        ("+81312345678", "JP", "3"),  # Tokyo
        ("+81312345678", "JP", "03"),  # as written in Japan, with the trunk prefix
        ("+551123456789", "BR", "11"),  # São Paulo
        ("+82212345678", "KR", "2"),  # Seoul
        ("+576012345678", "CO", "601"),  # Bogotá
        ("+6621234567", "TH", "2"),  # Bangkok
        ("+442071234567", "GB", "020"),  # London, with the trunk prefix
        ("+14165550123", "CA", "416"),  # shares +1 with the US
    ],
)
def test_a_number_lies_in_its_area_in_any_country(
    number: str, country: str, area_code: str
) -> None:
    assert number_in_area(number, country, area_code)


@pytest.mark.parametrize(
    ("number", "country", "area_code"),
    [
        ("+81612345678", "JP", "3"),  # Osaka is not Tokyo
        ("+81312345678", "BR", "3"),  # the right digits in another country
    ],
)
def test_a_number_outside_the_area_or_country_does_not_match(
    number: str, country: str, area_code: str
) -> None:
    assert not number_in_area(number, country, area_code)


def test_any_area_code_matches_every_number() -> None:
    assert number_in_area("+81312345678", "JP", None)


def test_a_number_that_is_not_e164_matches_no_area() -> None:
    assert not number_in_area("03-1234-5678", "JP", "3")


def test_the_trunk_prefix_is_only_dropped_where_the_country_has_one() -> None:
    assert national_area_code("JP", "03") == "3"
    assert national_area_code("IT", "06") == "06"  # Italian numbers keep their leading 0
    assert national_area_code("US", "425") == "425"
    assert national_area_code("HU", "061") == "1"  # Budapest, trunk prefix 06
    assert national_area_code("RU", "812") == "812"  # St Petersburg; Russia's trunk prefix is 8


@pytest.mark.parametrize("number", ["+14255550100", "+81312345678", "+551123456789"])
def test_e164_numbers_pass(number: str) -> None:
    assert check_e164(number) == number


@pytest.mark.parametrize(
    "number", ["14255550100", "+1 425 555 0100", "+1425", "+0425555010", "", "+1425555010000000"]
)
def test_anything_else_is_refused_with_an_example(number: str) -> None:
    with pytest.raises(ValueError, match=r"is not an E\.164 telephone number such as \+1425"):
        check_e164(number)
